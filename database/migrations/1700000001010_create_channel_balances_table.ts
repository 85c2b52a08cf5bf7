import { BaseSchema } from '@adonisjs/lucid/schema'

/**
 * What each channel's upstream account has left, as its provider last said
 * (new-api's channel balance: OpenRouter's credits, DeepSeek's balance, the
 * `/dashboard/billing` figures of OpenAI-compatible resellers, new-api and
 * one-api). A table of its own, not columns of `channels`: a channel update
 * makes every instance reload its channels (the change trigger), and a
 * balance refresh changes nothing they route by.
 */
export default class extends BaseSchema {
  async up() {
    this.schema.createTable('channel_balances', (table) => {
      table.integer('channel_id').primary().references('id').inTable('channels').onDelete('CASCADE')
      /** The last amount the upstream gave; kept when a later check fails */
      table.decimal('amount', 20, 6).nullable()
      table.string('currency', 8).nullable()
      /** When `amount` was read */
      table.timestamp('amount_at', { useTz: true }).nullable()
      /** When the upstream was last asked, and what went wrong then (null: it answered) */
      table.timestamp('checked_at', { useTz: true }).notNullable()
      table.string('error', 500).nullable()
    })
  }

  async down() {
    this.schema.dropTable('channel_balances')
  }
}
