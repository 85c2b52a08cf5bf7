import { BaseSchema } from '@adonisjs/lucid/schema'

/**
 * `batch_input_tokens`: an embedding batch's (Gemini's asyncBatchEmbedContent)
 * requests' input tokens as the gateway counted them at its creation
 * (batches/embed_tokens.ts), one unsigned 32-bit little-endian count per
 * request in the requests' order: Google's embedding answers may carry no
 * token count, and by the time the batch ends its inputs are gone, so each
 * answered request is billed at its count here (marked estimated), as
 * `:batchEmbedContents` counts its inputs. 400 KB for 100,000 requests. A
 * table of its own, as batch_custom_ids: batch_objects rows are read whole by
 * every look and list, the counts only by the bill.
 */
export default class extends BaseSchema {
  async up() {
    this.schema.createTable('batch_input_tokens', (table) => {
      table.bigInteger('object_id').primary().references('id').inTable('batch_objects').onDelete('CASCADE')
      table.binary('counts').notNullable()
    })
  }

  async down() {
    this.schema.dropTable('batch_input_tokens')
  }
}
