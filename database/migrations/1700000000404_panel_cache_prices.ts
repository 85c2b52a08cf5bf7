import { BaseSchema } from '@adonisjs/lucid/schema'

/**
 * Prompt tokens read from / written to a provider's cache can be priced on
 * their own (USD per 1M). Null: billed at the input price, as before.
 */
export default class extends BaseSchema {
  async up() {
    this.schema.alterTable('model_prices', (table) => {
      table.decimal('cache_read_per_million', 20, 6).nullable()
      table.decimal('cache_write_per_million', 20, 6).nullable()
    })
  }

  async down() {
    this.schema.alterTable('model_prices', (table) => {
      table.dropColumn('cache_read_per_million')
      table.dropColumn('cache_write_per_million')
    })
  }
}
