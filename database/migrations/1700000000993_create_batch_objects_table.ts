import { BaseSchema } from '@adonisjs/lucid/schema'

/**
 * OpenAI's Files and Batch API through the gateway (app/gateway/batches/):
 * one row per file or batch a client made through a key, naming who owns it
 * (user and key: nobody else sees it), the channel that holds it and the
 * upstream's id there. Clients see the gateway's own ids (`public_id`:
 * `file-gw...`, `batch_gw...`), so two channels that mint the same id never
 * collide. `object` is the upstream's last word on it (the list endpoints
 * answer from it).
 *
 * A batch holds money on its owner's balance (`hold`) from its creation until
 * it is billed: `billed_at` is set once, by the one UPDATE guarded by
 * `billed_at IS NULL` that wins, and only the winner writes the usage row
 * (whose request id is `request_id`: unique in usage_records, so even a
 * repeated write could not charge twice). The partial indexes serve the
 * periodic sweep of batches not billed yet, the holds read at boot, and the
 * sweep's look for a recent bill whose usage row a crash lost.
 */
export default class extends BaseSchema {
  protected tableName = 'batch_objects'

  async up() {
    this.schema.createTable(this.tableName, (table) => {
      table.bigIncrements('id')
      /** file | batch */
      table.string('kind', 8).notNullable()
      table.string('public_id', 64).notNullable().unique()
      table.string('upstream_id', 255).notNullable()
      table.bigInteger('user_id').notNullable().references('id').inTable('users').onDelete('CASCADE')
      table.bigInteger('api_key_id').nullable().references('id').inTable('api_keys').onDelete('SET NULL')
      table.bigInteger('channel_id').nullable().references('id').inTable('channels').onDelete('SET NULL')
      /** The model the client named (a batch file's one model), and the name sent upstream */
      table.text('model').nullable()
      table.text('served_model').nullable()
      /** A file's purpose (batch, batch_output); a batch's or a batch file's endpoint (/v1/chat/completions...) */
      table.string('purpose', 32).nullable()
      table.string('endpoint', 64).nullable()
      table.text('filename').nullable()
      /** A file's size as the client sent it; its request lines; the completion tokens they may use (the hold) */
      table.bigInteger('bytes').nullable()
      table.integer('lines').nullable()
      table.bigInteger('completion_hold').nullable()
      /** A batch's input file (the gateway's id) */
      table.string('input_file_id', 64).nullable()
      /** The upstream's status (a batch: validating ... completed, failed, expired, cancelled) */
      table.string('status', 32).notNullable()
      /** The upstream's last answer for it, its ids as the upstream's */
      table.jsonb('object').nullable()
      /** A batch's usage row id; what it holds on the balance (pico-USD as USD, like the ledger) */
      table.uuid('request_id').nullable()
      table.decimal('hold', 24, 12).notNullable().defaultTo(0)
      /** Billed once: when, what, and the tokens summed from its output file (the usage row's, kept to write it again if it was lost) */
      table.timestamp('billed_at', { useTz: true }).nullable()
      table.decimal('billed_cost', 24, 12).nullable()
      table.bigInteger('prompt_tokens').nullable()
      table.bigInteger('completion_tokens').nullable()
      table.bigInteger('cached_tokens').nullable()
      table.bigInteger('reasoning_tokens').nullable()
      table.timestamp('created_at', { useTz: true }).notNullable().defaultTo(this.now())
      table.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(this.now())
      table.timestamp('polled_at', { useTz: true }).nullable()
      table.index(['user_id', 'kind', 'id'])
    })
    this.schema.raw(
      `ALTER TABLE batch_objects ADD CONSTRAINT batch_objects_kind_known CHECK (kind IN ('file', 'batch'))`
    )
    // One gateway row per upstream object of a channel: a batch's output file registered twice is one file.
    this.schema.raw('CREATE UNIQUE INDEX batch_objects_upstream ON batch_objects (channel_id, kind, upstream_id)')
    this.schema.raw("CREATE INDEX batch_objects_unbilled ON batch_objects (polled_at NULLS FIRST, id) WHERE kind = 'batch' AND billed_at IS NULL")
    // The sweep's check that every recent bill has its usage row (batch_service.ts repairBills).
    this.schema.raw("CREATE INDEX batch_objects_billed ON batch_objects (billed_at) WHERE kind = 'batch' AND billed_at IS NOT NULL")
  }

  async down() {
    this.schema.dropTable(this.tableName)
  }
}
