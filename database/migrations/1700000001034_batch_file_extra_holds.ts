import { BaseSchema } from '@adonisjs/lucid/schema'

/**
 * What a batch input file's lines may cost beyond their tokens, for the
 * batch's hold (batch_input.ts), as a single request of each holds it:
 * `search_hold`, the web searches they may make (each line's webSearchHold:
 * a Responses web_search tool, chat's web_search_options), held at the
 * price per search; `audio_hold`, the completion tokens of the lines that
 * ask for a spoken answer (chat's `modalities: ["text", "audio"]`), held at
 * the audio output price. Null (files uploaded before): none.
 */
export default class extends BaseSchema {
  async up() {
    this.schema.alterTable('batch_objects', (table) => {
      table.bigInteger('search_hold').nullable()
      table.bigInteger('audio_hold').nullable()
    })
  }

  async down() {
    this.schema.alterTable('batch_objects', (table) => {
      table.dropColumn('search_hold')
      table.dropColumn('audio_hold')
    })
  }
}
