import { BaseSchema } from '@adonisjs/lucid/schema'

/**
 * Referrals (new-api's invitation rewards): each user may hand out a link
 * with their `referral_code` (made the first time they open Billing); a user
 * who signs up through it keeps `referred_by`. The inviter is rewarded once,
 * when the invitee first adds money (a card payment, a redemption code or a
 * top-up): one guarded UPDATE sets `referral_rewarded_at` and the amount paid
 * (`referral_reward`, what the inviter's page adds up), in the transaction
 * that credits the invitee, so racing top-ups reward once.
 *
 * None of these columns is in the users trigger's list: the API's caches
 * never read them.
 */
export default class extends BaseSchema {
  protected tableName = 'users'

  async up() {
    this.schema.alterTable(this.tableName, (table) => {
      table.string('referral_code', 16).nullable().unique()
      table.integer('referred_by').nullable().references('id').inTable('users').onDelete('SET NULL')
      table.timestamp('referral_rewarded_at', { useTz: true }).nullable()
      table.decimal('referral_reward', 24, 12).nullable()
    })
    // The inviter's page lists the people it invited.
    this.schema.raw('CREATE INDEX users_referred_by_index ON users (referred_by) WHERE referred_by IS NOT NULL')
  }

  async down() {
    this.schema.raw('DROP INDEX IF EXISTS users_referred_by_index')
    this.schema.alterTable(this.tableName, (table) => {
      table.dropColumn('referral_code')
      table.dropColumn('referred_by')
      table.dropColumn('referral_rewarded_at')
      table.dropColumn('referral_reward')
    })
  }
}
