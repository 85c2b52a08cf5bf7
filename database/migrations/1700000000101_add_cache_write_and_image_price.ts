import { BaseSchema } from '@adonisjs/lucid/schema'

/** Prompt tokens written to a provider cache (Anthropic cache_creation), and per-image prices. */
export default class extends BaseSchema {
  async up() {
    this.schema.alterTable('usage_records', (table) => {
      table.integer('cache_write_tokens').notNullable().defaultTo(0)
      /** Images generated (images.generations), priced per image */
      table.integer('images').notNullable().defaultTo(0)
    })
    this.schema.alterTable('model_prices', (table) => {
      /** USD per generated image (null: the model is not priced per image) */
      table.decimal('per_image', 20, 6).nullable()
    })
  }

  async down() {
    this.schema.alterTable('usage_records', (table) => {
      table.dropColumn('cache_write_tokens')
      table.dropColumn('images')
    })
    this.schema.alterTable('model_prices', (table) => table.dropColumn('per_image'))
  }
}
