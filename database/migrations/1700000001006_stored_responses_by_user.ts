import { BaseSchema } from '@adonisjs/lucid/schema'

/**
 * A user's stored responses, newest first: where a Responses `item_reference`
 * whose id names no response (an item id the client gave, not one the gateway
 * minted) is looked for, among that user's latest responses only
 * (responses_store/item_references.ts). Without it, that look-up would scan
 * the whole table.
 */
export default class extends BaseSchema {
  async up() {
    this.schema.raw('CREATE INDEX stored_responses_user_recent ON stored_responses (user_id, created_at DESC)')
  }

  async down() {
    this.schema.raw('DROP INDEX IF EXISTS stored_responses_user_recent')
  }
}
