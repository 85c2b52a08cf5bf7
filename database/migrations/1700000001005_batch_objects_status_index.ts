import { BaseSchema } from '@adonisjs/lucid/schema'

/**
 * The Batches pages' status filter (app/services/batch_pages.ts), newest
 * first: a status few batches have (failed, expired) would otherwise be found
 * by reading the whole table backwards on its primary key (measured: 130 ms
 * for 200,000 batches on 2 cores, growing with the table). Batches only
 * (files are never listed there); the unbilled ones already have their
 * partial index (batch_objects_unbilled), which the `running` filter uses.
 */
export default class extends BaseSchema {
  async up() {
    this.schema.raw("CREATE INDEX batch_objects_batch_status ON batch_objects (status, id) WHERE kind = 'batch'")
  }

  async down() {
    this.schema.raw('DROP INDEX IF EXISTS batch_objects_batch_status')
  }
}
