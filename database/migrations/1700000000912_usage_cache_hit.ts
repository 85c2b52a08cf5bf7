import { BaseSchema } from '@adonisjs/lucid/schema'

/**
 * A usage row answered from the response cache (`x-gateway-cache-ttl`): no
 * provider was called, the row's tokens and cost are 0. A constant default
 * rewrites nothing (Postgres keeps it in the catalog), however large the
 * table; the meter sends the flag only for hits (NULL otherwise, written as
 * false).
 */
export default class extends BaseSchema {
  async up() {
    this.schema.alterTable('usage_records', (table) => {
      table.boolean('cache_hit').notNullable().defaultTo(false)
    })
  }

  async down() {
    this.schema.alterTable('usage_records', (table) => {
      table.dropColumn('cache_hit')
    })
  }
}
