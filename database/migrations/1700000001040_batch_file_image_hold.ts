import { BaseSchema } from '@adonisjs/lucid/schema'

/**
 * `image_hold`: of a batch input file's completion tokens, those of the lines
 * whose answer may be an image (batch_input.ts, as reservation.ts
 * mayAnswerImages: asking for images, or naming no modalities), held at the
 * model's image output price when it has a higher one ($30 per 1M against
 * $2.50 for gemini-2.5-flash-image's text), as a single request of each is.
 * Null (files uploaded before): none.
 */
export default class extends BaseSchema {
  async up() {
    this.schema.alterTable('batch_objects', (table) => {
      table.bigInteger('image_hold').nullable()
    })
  }

  async down() {
    this.schema.alterTable('batch_objects', (table) => {
      table.dropColumn('image_hold')
    })
  }
}
