import { BaseSchema } from '@adonisjs/lucid/schema'

/**
 * A plan's price multiplier (new-api's "group ratio"): its users pay the
 * model prices times this factor (0.8 for a discounted tier, 1.5 for
 * retail). Four decimals; 1 = list prices.
 */
export default class extends BaseSchema {
  async up() {
    this.schema.alterTable('plans', (table) => {
      table.decimal('price_multiplier', 9, 4).notNullable().defaultTo(1)
    })
    this.schema.raw(
      `ALTER TABLE plans ADD CONSTRAINT plans_price_multiplier_range CHECK (price_multiplier > 0 AND price_multiplier <= 1000)`
    )
  }

  async down() {
    this.schema.alterTable('plans', (table) => {
      table.dropColumn('price_multiplier')
    })
  }
}
