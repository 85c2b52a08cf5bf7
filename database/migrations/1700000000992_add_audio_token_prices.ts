import { BaseSchema } from '@adonisjs/lucid/schema'

/**
 * Audio token prices (OpenAI's Realtime API reports text and audio tokens
 * apart, and prices audio several times higher: gpt-realtime $32 / $64 per
 * 1M against $4 / $16 for text). USD per 1M audio input / output tokens;
 * null = the model's token prices.
 */
export default class extends BaseSchema {
  async up() {
    this.schema.alterTable('model_prices', (table) => {
      table.decimal('audio_input_per_million', 20, 6).nullable()
      table.decimal('audio_output_per_million', 20, 6).nullable()
    })
  }

  async down() {
    this.schema.alterTable('model_prices', (table) => {
      table.dropColumn('audio_input_per_million')
      table.dropColumn('audio_output_per_million')
    })
  }
}
