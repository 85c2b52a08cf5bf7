import { BaseSchema } from '@adonisjs/lucid/schema'

/**
 * Stored Responses (app/gateway/responses_store/): what `previous_response_id`
 * and `GET/DELETE /v1/responses/{id}` need, one row per Responses answer a
 * client let be stored (`store` not false).
 *
 * - kind 'gateway': answered on a translated channel (Anthropic, Gemini,
 *   chat-only): the gateway keeps the conversation itself: the request's own
 *   input items and instructions, the answer's output items and usage.
 * - kind 'upstream': answered by a Responses-native channel, which stores it
 *   itself: only the id and the channel that holds it (a follow-up goes back
 *   to that channel; GET/DELETE are relayed there).
 *
 * `id` is the response id as the client saw it. Owner: `user_id` (another
 * user's id is unknown to them). Rows past `expires_at` are deleted by the
 * retention sweep (RESPONSES_STORE_DAYS).
 */
export default class extends BaseSchema {
  protected tableName = 'stored_responses'

  async up() {
    this.schema.createTable(this.tableName, (table) => {
      table.string('id', 128).primary()
      table.string('kind', 8).notNullable()
      table.bigInteger('user_id').notNullable().references('id').inTable('users').onDelete('CASCADE')
      table.bigInteger('api_key_id').nullable().references('id').inTable('api_keys').onDelete('SET NULL')
      table.bigInteger('channel_id').nullable().references('id').inTable('channels').onDelete('SET NULL')
      table.text('model').notNullable()
      table.string('previous_response_id', 128).nullable()
      /** The request's own input items (not the earlier responses'), its instructions */
      table.jsonb('input_items').nullable()
      table.text('instructions').nullable()
      /** The answer's output items, usage (Responses' shape) and status (completed, incomplete) */
      table.jsonb('output_items').nullable()
      table.jsonb('usage').nullable()
      table.string('status', 16).notNullable()
      table.timestamp('created_at', { useTz: true }).notNullable().defaultTo(this.now())
      table.timestamp('expires_at', { useTz: true }).notNullable()
    })
    this.schema.raw(`ALTER TABLE stored_responses ADD CONSTRAINT stored_responses_kind_known CHECK (kind IN ('gateway', 'upstream'))`)
    // The retention sweep's delete of expired rows
    this.schema.raw('CREATE INDEX stored_responses_expiry ON stored_responses (expires_at)')
  }

  async down() {
    this.schema.dropTable(this.tableName)
  }
}
