import { BaseSchema } from '@adonisjs/lucid/schema'

/**
 * Finished days whose rollup missed usage rows that arrived after it was
 * computed: a metering batch replayed from the spill file after an outage,
 * or one written just after midnight for a call of the day before. The meter
 * marks the day (app/gateway/metering/usage_meter.ts) and the next reader
 * rolls it up again (app/services/usage_rollup.ts).
 */
export default class extends BaseSchema {
  async up() {
    this.schema.createTable('usage_daily_stale', (table) => {
      table.date('day').primary()
    })
  }

  async down() {
    this.schema.dropTable('usage_daily_stale')
  }
}
