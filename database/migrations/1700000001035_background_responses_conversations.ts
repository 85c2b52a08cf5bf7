import { BaseSchema } from '@adonisjs/lucid/schema'

/**
 * Responses' background mode (`background: true`; responses_store/background_runs.ts):
 * a stored response created in the background. Only those may be cancelled
 * (`POST /v1/responses/{id}/cancel`, as at OpenAI), and only those have their
 * row written again when they end (queued -> completed, incomplete, failed,
 * cancelled): the store's INSERT updates a row on conflict only when it is one.
 *
 * The Conversations API (app/gateway/conversations/): a user's conversations
 * and their items, in order (`position`, never reused: a deleted item leaves
 * a gap), read as a Responses request's input when it names the conversation.
 * `items` and `bytes` count what the conversation holds (its bound);
 * `expires_at` is RESPONSES_STORE_DAYS after its last write.
 */
export default class extends BaseSchema {
  async up() {
    this.schema.alterTable('stored_responses', (table) => {
      table.boolean('background').notNullable().defaultTo(false)
    })
    this.schema.createTable('conversations', (table) => {
      table.string('id', 64).primary()
      table.bigInteger('user_id').notNullable().references('id').inTable('users').onDelete('CASCADE')
      table.jsonb('metadata').notNullable().defaultTo('{}')
      table.bigInteger('next_position').notNullable().defaultTo(0)
      table.integer('items').notNullable().defaultTo(0)
      table.bigInteger('bytes').notNullable().defaultTo(0)
      table.timestamp('created_at', { useTz: true }).notNullable().defaultTo(this.now())
      table.timestamp('expires_at', { useTz: true }).notNullable()
      table.index(['expires_at'], 'conversations_expiry')
    })
    this.schema.createTable('conversation_items', (table) => {
      table.string('conversation_id', 64).notNullable().references('id').inTable('conversations').onDelete('CASCADE')
      table.bigInteger('position').notNullable()
      table.string('id', 128).notNullable()
      table.jsonb('item').notNullable()
      table.integer('bytes').notNullable()
      table.timestamp('created_at', { useTz: true }).notNullable().defaultTo(this.now())
      table.primary(['conversation_id', 'position'])
      table.index(['conversation_id', 'id'], 'conversation_items_by_id')
    })
  }

  async down() {
    this.schema.dropTable('conversation_items')
    this.schema.dropTable('conversations')
    this.schema.alterTable('stored_responses', (table) => {
      table.dropColumn('background')
    })
  }
}
