import { BaseSchema } from '@adonisjs/lucid/schema'

/**
 * A fixed price per request (new-api's per-call "model price"), USD, charged
 * on top of the token prices for each request that succeeded (times the
 * upstream's search units for a Cohere rerank). Null: no per-request price.
 */
export default class extends BaseSchema {
  async up() {
    this.schema.alterTable('model_prices', (table) => {
      table.decimal('per_request', 20, 6).nullable()
    })
  }

  async down() {
    this.schema.alterTable('model_prices', (table) => table.dropColumn('per_request'))
  }
}
