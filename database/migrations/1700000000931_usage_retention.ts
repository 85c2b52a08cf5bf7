import { BaseSchema } from '@adonisjs/lucid/schema'

/**
 * Usage log retention (app/actions/prune_usage.ts): request rows older than
 * USAGE_RETENTION_DAYS are deleted, the totals they made are not.
 *
 * - usage_daily_pruned, usage_daily_latency_pruned: what the deleted rows of
 *   a day added up to, in the shape of usage_daily and usage_daily_latency.
 *   The prune moves each batch's totals here in the transaction that deletes
 *   its rows, and a day's rollup (app/services/usage_rollup.ts) is its live
 *   rows plus these: a day rolled up again after a prune (a late row marked
 *   it stale) keeps what was deleted.
 * - usage_pruned_days: per day, how many rows and attempts went, the id
 *   range they had, and when: the request page tells a pruned id from one
 *   that never was, and the pages say since when rows are kept.
 *
 * The ledger keeps every charge, and its usage_record_id: the retention's
 * deletes skip the metering_rows_on_usage_delete trigger's `SET NULL`
 * (they set gateway.usage_prune for their transaction). The ledger stays
 * untouched (no rewrite of a million charges), and an admin following a
 * charge to its pruned request gets the page that says so. Any other delete
 * of a usage row clears the reference as before.
 */
export default class extends BaseSchema {
  async up() {
    this.schema.createTable('usage_daily_pruned', (table) => {
      table.date('day').notNullable()
      table.string('dim', 16).notNullable()
      table.string('key', 200).notNullable()
      table.bigInteger('requests').notNullable()
      table.bigInteger('errors').notNullable()
      table.bigInteger('input_tokens').notNullable()
      table.bigInteger('output_tokens').notNullable()
      table.decimal('cost', 24, 12).notNullable()
      table.primary(['day', 'dim', 'key'])
    })
    this.schema.createTable('usage_daily_latency_pruned', (table) => {
      table.date('day').notNullable()
      table.smallint('bucket').notNullable()
      table.bigInteger('requests').notNullable()
      table.primary(['day', 'bucket'])
    })
    this.schema.createTable('usage_pruned_days', (table) => {
      table.date('day').primary()
      table.bigInteger('rows').notNullable()
      table.bigInteger('attempts').notNullable()
      table.bigInteger('first_id').notNullable()
      table.bigInteger('last_id').notNullable()
      table.timestamp('pruned_at', { useTz: true }).notNullable()
    })
    this.schema.raw(
      `CREATE OR REPLACE FUNCTION metering_rows_on_usage_delete() RETURNS trigger AS $$ BEGIN
         IF current_setting('gateway.usage_prune', true) = 'on' THEN RETURN NULL; END IF;
         UPDATE balance_ledger SET usage_record_id = NULL WHERE usage_record_id IN (SELECT id FROM gone);
         RETURN NULL; END; $$ LANGUAGE plpgsql`
    )
  }

  async down() {
    this.schema.raw(
      `CREATE OR REPLACE FUNCTION metering_rows_on_usage_delete() RETURNS trigger AS $$ BEGIN
         UPDATE balance_ledger SET usage_record_id = NULL WHERE usage_record_id IN (SELECT id FROM gone);
         RETURN NULL; END; $$ LANGUAGE plpgsql`
    )
    this.schema.dropTable('usage_pruned_days')
    this.schema.dropTable('usage_daily_latency_pruned')
    this.schema.dropTable('usage_daily_pruned')
  }
}
