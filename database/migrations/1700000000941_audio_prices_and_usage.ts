import { BaseSchema } from '@adonisjs/lucid/schema'

/**
 * The audio endpoints' units (LiteLLM's): transcriptions and translations
 * priced per second of input audio, speech per input character; the usage
 * row keeps how many of each it billed. Nullable: other rows and prices
 * carry none.
 */
export default class extends BaseSchema {
  async up() {
    this.schema.alterTable('model_prices', (table) => {
      /** USD per second of input audio (whisper-1: 0.0001); nine decimals so seconds in ms stay exact */
      table.decimal('per_second', 20, 9).nullable()
      /** USD per input character (tts-1: 0.000015) */
      table.decimal('per_character', 20, 9).nullable()
    })
    this.schema.alterTable('usage_records', (table) => {
      /** Seconds of audio billed (transcriptions, translations), to the millisecond */
      table.decimal('audio_seconds', 12, 3).nullable()
      /** Characters of input billed (speech) */
      table.integer('characters').nullable()
    })
  }

  async down() {
    this.schema.alterTable('usage_records', (table) => {
      table.dropColumn('audio_seconds')
      table.dropColumn('characters')
    })
    this.schema.alterTable('model_prices', (table) => {
      table.dropColumn('per_second')
      table.dropColumn('per_character')
    })
  }
}
