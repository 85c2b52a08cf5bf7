import { BaseSchema } from '@adonisjs/lucid/schema'

/**
 * Request and response bodies of API calls, kept when the operator turns
 * body logging on (LOG_BODIES=errors|all): what a client sent and what it
 * got back, for debugging a failing agent (Portkey's and Helicone's request
 * logs, LiteLLM's stored prompts). One row per usage row that was logged,
 * same request id; each body cut at LOG_BODIES_MAX_KB (`*_truncated`).
 * Postgres compresses the text (TOAST). No foreign key: the meter writes
 * usage rows on its own schedule, and retention may drop them first.
 */
export default class extends BaseSchema {
  protected tableName = 'request_logs'

  async up() {
    this.schema.createTable(this.tableName, (table) => {
      table.uuid('request_id').primary()
      table.text('request_body').notNullable()
      table.boolean('request_truncated').notNullable().defaultTo(false)
      table.text('response_body').nullable()
      table.boolean('response_truncated').notNullable().defaultTo(false)
      table.timestamp('created_at', { useTz: true }).notNullable().defaultTo(this.now())
      table.index(['created_at'])
    })
  }

  async down() {
    this.schema.dropTable(this.tableName)
  }
}
