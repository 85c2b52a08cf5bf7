import { BaseSchema } from '@adonisjs/lucid/schema'

/**
 * usage_daily per (day × user × model × channel) was nearly as large as the
 * log itself (20k rows a day for 1,000 users): replaced by one row per day
 * and dimension value (dim = model | user | channel), ~1k rows a day, which
 * the dashboard and the usage page's totals read for past days.
 */
export default class extends BaseSchema {
  async up() {
    this.schema.dropTable('usage_daily')
    this.schema.raw('TRUNCATE usage_daily_days')
    this.schema.createTable('usage_daily', (table) => {
      table.date('day').notNullable()
      /** model | user | channel */
      table.string('dim', 16).notNullable()
      /** The model name, user id or channel id ('' for none) */
      table.string('key', 200).notNullable()
      table.integer('requests').notNullable()
      table.integer('errors').notNullable()
      table.bigInteger('input_tokens').notNullable()
      table.bigInteger('output_tokens').notNullable()
      table.decimal('cost', 24, 12).notNullable()
      table.primary(['dim', 'day', 'key'])
    })
  }

  async down() {
    this.schema.dropTable('usage_daily')
    this.schema.raw('TRUNCATE usage_daily_days')
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
  }
}
