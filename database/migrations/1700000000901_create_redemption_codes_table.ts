import { BaseSchema } from '@adonisjs/lucid/schema'

/**
 * Prepaid codes an operator sells or hands out (new-api's "redemption
 * codes"): a user redeems one on the billing page and its amount becomes a
 * top-up. Only the SHA-256 of a code is kept, like API keys; `hint` (its
 * first and last four characters) is what pages and the ledger show.
 *
 * A code is redeemed once: the redeem is one UPDATE guarded by
 * `redeemed_at IS NULL`, in the transaction that writes the ledger top-up.
 */
export default class extends BaseSchema {
  protected tableName = 'redemption_codes'

  async up() {
    this.schema.createTable(this.tableName, (table) => {
      table.bigIncrements('id')
      /** The batch's name: the codes made together ("black-friday", "reseller-42") */
      table.string('batch', 100).notNullable()
      table.string('code_hash', 64).notNullable().unique()
      table.string('hint', 20).notNullable()
      /** USD credited when redeemed */
      table.decimal('amount', 24, 12).notNullable()
      table.timestamp('expires_at', { useTz: true }).nullable()
      table.timestamp('disabled_at', { useTz: true }).nullable()
      table.bigInteger('redeemed_by').nullable().references('id').inTable('users').onDelete('SET NULL')
      table.timestamp('redeemed_at', { useTz: true }).nullable()
      table.bigInteger('ledger_entry_id').nullable().references('id').inTable('balance_ledger').onDelete('SET NULL')
      /** The admin who made the batch (null: an ace command) */
      table.bigInteger('created_by').nullable()
      table.timestamp('created_at', { useTz: true }).notNullable().defaultTo(this.now())
      table.index(['batch'])
      table.index(['redeemed_by'])
    })
    this.schema.raw(`ALTER TABLE redemption_codes ADD CONSTRAINT redemption_codes_amount_positive CHECK (amount > 0)`)
  }

  async down() {
    this.schema.dropTable(this.tableName)
  }
}
