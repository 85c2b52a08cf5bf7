import { BaseSchema } from '@adonisjs/lucid/schema'

/**
 * An image output token price. Google's image models (gemini-2.5-flash-image,
 * gemini-3-pro-image-preview) answer chat and generateContent calls with
 * images, whose tokens they report apart (usageMetadata's IMAGE modality;
 * OpenRouter's completion_tokens_details.image_tokens) and price apart:
 * $30 per 1M for gemini-2.5-flash-image against $2.50 for its text. USD per
 * 1M image output tokens; null = the output price (as before).
 */
export default class extends BaseSchema {
  async up() {
    this.schema.alterTable('model_prices', (table) => {
      table.decimal('image_output_per_million', 20, 6).nullable()
    })
  }

  async down() {
    this.schema.alterTable('model_prices', (table) => {
      table.dropColumn('image_output_per_million')
    })
  }
}
