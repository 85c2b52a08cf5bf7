import { BaseSchema } from '@adonisjs/lucid/schema'

/**
 * Admin panel reports at scale (1M+ usage rows):
 * - usage_daily: per day × user × model × channel totals, filled by the
 *   panel (app/services/usage_rollup.ts) for past days once they are over
 *   and for today at most once a minute; the dashboard reads these instead
 *   of scanning usage_records.
 * - usage_records filters: per channel and per model over time.
 * - request_attempts: BRIN on created_at (append-only) for the channels
 *   page's last-hour success rate and latency.
 * The hot path's writes are unchanged apart from these two small indexes.
 */
export default class extends BaseSchema {
  async up() {
    this.schema.createTable('usage_daily', (table) => {
      table.date('day').notNullable()
      table.bigInteger('user_id').notNullable()
      table.string('model', 200).notNullable()
      table.bigInteger('channel_id').nullable()
      table.integer('requests').notNullable()
      table.integer('errors').notNullable()
      table.bigInteger('input_tokens').notNullable()
      table.bigInteger('output_tokens').notNullable()
      table.decimal('cost', 24, 12).notNullable()
      table.index(['day'])
    })
    this.schema.createTable('usage_daily_days', (table) => {
      table.date('day').primary()
      table.timestamp('computed_at', { useTz: true }).notNullable()
    })
    this.schema.raw('CREATE INDEX usage_records_channel_created_at ON usage_records (channel_id, created_at)')
    this.schema.raw('CREATE INDEX usage_records_model_created_at ON usage_records (model, created_at)')
    this.schema.raw('CREATE INDEX request_attempts_created_at_brin ON request_attempts USING brin (created_at)')
  }

  async down() {
    this.schema.raw('DROP INDEX IF EXISTS request_attempts_created_at_brin')
    this.schema.raw('DROP INDEX IF EXISTS usage_records_model_created_at')
    this.schema.raw('DROP INDEX IF EXISTS usage_records_channel_created_at')
    this.schema.dropTable('usage_daily_days')
    this.schema.dropTable('usage_daily')
  }
}
