import { BaseSchema } from '@adonisjs/lucid/schema'

/**
 * What a batch is billed by, kept from its creation:
 *
 * - `batch_custom_ids`: the custom ids its requests carry (a batch input
 *   file's lines at upload, copied to the batch made of it; a message batch's
 *   requests), as 8-byte digests after a 16-byte random salt
 *   (batches/custom_ids.ts): 800 KB for OpenAI's 50,000 lines at most, of ids
 *   of any length. Its bill counts each id's usage once and no id the batch
 *   never had (an upstream repeating or inventing lines billed them). A table
 *   of its own: batch_objects rows are read whole (`*`) by every look and
 *   list, the digests only by the bill.
 * - `batch_objects.team_id`: the team the creating key was in, whose budget
 *   the hold counts against and whose spend the bill adds to (ON DELETE SET
 *   NULL: a team deleted leaves the batch billed to its owner only).
 */
export default class extends BaseSchema {
  async up() {
    this.schema.createTable('batch_custom_ids', (table) => {
      table.bigInteger('object_id').primary().references('id').inTable('batch_objects').onDelete('CASCADE')
      table.binary('digests').notNullable()
    })
    this.schema.alterTable('batch_objects', (table) => {
      table.bigInteger('team_id').nullable().references('id').inTable('teams').onDelete('SET NULL')
    })
    // A team's deletion sets its batches' team_id NULL: found by this index, not a scan of every batch and file.
    this.schema.raw('CREATE INDEX batch_objects_team_id ON batch_objects (team_id) WHERE team_id IS NOT NULL')
  }

  async down() {
    this.schema.alterTable('batch_objects', (table) => {
      table.dropColumn('team_id')
    })
    this.schema.dropTable('batch_custom_ids')
  }
}
