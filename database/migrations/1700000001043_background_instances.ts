import { BaseSchema } from '@adonisjs/lucid/schema'

/**
 * Background responses an instance runs itself live in its memory only
 * (responses_store/background_runs.ts): one killed rather than stopped left
 * their rows queued or in progress for good. Each row now names the instance
 * that runs it (`instance_id`, a process-unique id), each instance keeps a
 * heartbeat row (`gateway_instances.seen_at`, the database's clock), and any
 * instance marks failed the unfinished rows whose instance's heartbeat is
 * stale (responses_store/background_sweeper.ts). `error` keeps how a
 * background response failed, so a GET from any instance says why.
 * The partial index holds only unfinished background rows: the sweep reads
 * it, other rows' writes never enter it.
 */
export default class extends BaseSchema {
  async up() {
    this.schema.createTable('gateway_instances', (table) => {
      table.string('id', 64).primary()
      table.timestamp('started_at', { useTz: true }).notNullable().defaultTo(this.now())
      table.timestamp('seen_at', { useTz: true }).notNullable().defaultTo(this.now())
    })
    this.schema.alterTable('stored_responses', (table) => {
      table.string('instance_id', 64).nullable()
      table.jsonb('error').nullable()
    })
    this.schema.raw(
      `CREATE INDEX stored_responses_unfinished ON stored_responses (instance_id) WHERE background AND status IN ('queued', 'in_progress')`
    )
  }

  async down() {
    this.schema.raw('DROP INDEX IF EXISTS stored_responses_unfinished')
    this.schema.alterTable('stored_responses', (table) => {
      table.dropColumn('error')
      table.dropColumn('instance_id')
    })
    this.schema.dropTable('gateway_instances')
  }
}
