import { BaseSchema } from '@adonisjs/lucid/schema'

export default class extends BaseSchema {
  protected tableName = 'usage_records'

  async up() {
    this.schema.createTable(this.tableName, (table) => {
      table.bigIncrements('id')
      /** One row per request: the request id makes metering idempotent */
      table.uuid('request_id').notNullable().unique()
      table.bigInteger('user_id').notNullable().references('id').inTable('users').onDelete('CASCADE')
      table.bigInteger('api_key_id').nullable().references('id').inTable('api_keys').onDelete('SET NULL')
      table.bigInteger('channel_id').nullable().references('id').inTable('channels').onDelete('SET NULL')
      table.string('provider', 32).nullable()
      /** The model the client asked for, and the name sent upstream */
      table.string('model', 200).notNullable()
      table.string('served_model', 200).nullable()
      table.string('endpoint', 100).notNullable()
      table.boolean('stream').notNullable().defaultTo(false)
      table.integer('status').notNullable()
      table.string('error_code', 64).nullable()
      table.integer('prompt_tokens').notNullable().defaultTo(0)
      table.integer('completion_tokens').notNullable().defaultTo(0)
      table.integer('total_tokens').notNullable().defaultTo(0)
      table.integer('cached_tokens').notNullable().defaultTo(0)
      table.integer('reasoning_tokens').notNullable().defaultTo(0)
      /** True when tokens were counted by the gateway's tokenizer, not reported by the upstream */
      table.boolean('estimated').notNullable().defaultTo(false)
      table.decimal('cost', 24, 12).notNullable().defaultTo(0)
      table.integer('latency_ms').notNullable().defaultTo(0)
      table.integer('ttft_ms').nullable()
      table.timestamp('created_at', { useTz: true }).notNullable().defaultTo(this.now())
      table.index(['user_id', 'created_at'])
      table.index(['api_key_id', 'created_at'])
      table.index(['created_at'])
    })
  }

  async down() {
    this.schema.dropTable(this.tableName)
  }
}
