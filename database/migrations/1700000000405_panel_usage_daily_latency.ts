import { BaseSchema } from '@adonisjs/lucid/schema'

/**
 * Latency histogram per finished day (fixed buckets, see
 * app/services/usage_rollup.ts), so the dashboard's month p50 needs no scan
 * of the month's usage rows. Days are rolled up again to fill it.
 */
export default class extends BaseSchema {
  async up() {
    this.schema.createTable('usage_daily_latency', (table) => {
      table.date('day').notNullable()
      /** width_bucket() index over LATENCY_BOUNDS_MS: 0 = below the first bound */
      table.smallint('bucket').notNullable()
      table.integer('requests').notNullable()
      table.primary(['day', 'bucket'])
    })
    this.schema.raw('TRUNCATE usage_daily_days')
  }

  async down() {
    this.schema.dropTable('usage_daily_latency')
  }
}
