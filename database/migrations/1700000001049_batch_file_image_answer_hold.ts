import { BaseSchema } from '@adonisjs/lucid/schema'

/**
 * `image_answer_hold`: the tokens a batch input file's lines whose answer may
 * be an image hold when the model's image output price is the higher: each
 * line's completion tokens, at least one image (1,290 tokens) per choice when
 * it sets no max tokens (reservation.ts imageAnswerTokenHold), as a single
 * request of each is held. `image_hold` (migration 1040) is the same lines at
 * their max tokens or the default allowance (1,024, less than one image).
 * Null (files uploaded before): image_hold.
 */
export default class extends BaseSchema {
  async up() {
    this.schema.alterTable('batch_objects', (table) => {
      table.bigInteger('image_answer_hold').nullable()
    })
  }

  async down() {
    this.schema.alterTable('batch_objects', (table) => {
      table.dropColumn('image_answer_hold')
    })
  }
}
