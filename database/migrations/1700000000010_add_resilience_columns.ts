import { BaseSchema } from '@adonisjs/lucid/schema'

/**
 * Routing resilience and limits (issue 4): per-channel timeouts and circuit
 * state, per-key rate limits and spend, attempts per request, and the
 * limiter's database store table.
 */
export default class extends BaseSchema {
  async up() {
    this.schema.alterTable('channels', (table) => {
      /** Null = gateway defaults (see app/gateway/upstream/timeouts.ts) */
      table.integer('connect_timeout_ms').nullable()
      table.integer('first_byte_timeout_ms').nullable()
      table.integer('idle_timeout_ms').nullable()
      table.integer('total_timeout_ms').nullable()
      /** Circuit breaker, mirrored here on each transition for admins: closed | open | half_open */
      table.string('health', 16).notNullable().defaultTo('closed')
      table.timestamp('cooldown_until', { useTz: true }).nullable()
      table.text('last_error').nullable()
      table.timestamp('last_error_at', { useTz: true }).nullable()
    })
    this.schema.alterTable('api_keys', (table) => {
      table.integer('rpm').nullable()
      table.integer('tpm').nullable()
      /** USD spent through this key (for spend_limit), maintained by metering */
      table.decimal('spent', 24, 12).notNullable().defaultTo(0)
    })
    this.schema.alterTable('usage_records', (table) => {
      table.smallint('attempts').notNullable().defaultTo(1)
    })
    this.schema.createTable('request_attempts', (table) => {
      table.bigIncrements('id')
      table.uuid('request_id').notNullable().index()
      table.smallint('attempt').notNullable()
      table.bigInteger('channel_id').nullable().references('id').inTable('channels').onDelete('SET NULL')
      /** Upstream HTTP status, or null for a network failure/timeout */
      table.integer('status').nullable()
      table.string('outcome', 32).notNullable()
      table.text('error').nullable()
      table.integer('latency_ms').notNullable()
      table.timestamp('created_at', { useTz: true }).notNullable().defaultTo(this.now())
    })
    // Limiter database store (LIMITER_STORE=database)
    this.schema.createTable('rate_limits', (table) => {
      table.string('key', 255).notNullable().primary()
      table.integer('points', 9).notNullable().defaultTo(0)
      table.bigint('expire').unsigned()
    })
    // Health columns change on circuit transitions: the routing snapshot must reload then too,
    // which the channels trigger already does (it watches every column).
  }

  async down() {
    this.schema.dropTable('rate_limits')
    this.schema.dropTable('request_attempts')
    this.schema.alterTable('usage_records', (t) => t.dropColumn('attempts'))
    this.schema.alterTable('api_keys', (t) => t.dropColumns('rpm', 'tpm', 'spent'))
    this.schema.alterTable('channels', (t) =>
      t.dropColumns('connect_timeout_ms', 'first_byte_timeout_ms', 'idle_timeout_ms', 'total_timeout_ms', 'health', 'cooldown_until', 'last_error', 'last_error_at')
    )
  }
}
