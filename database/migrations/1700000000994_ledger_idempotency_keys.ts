import { BaseSchema } from '@adonisjs/lucid/schema'

/**
 * An operator's ledger entry (top-up, refund, adjustment) can carry the key
 * of the form or API call that asked for it: the panel's form holds one per
 * rendering, the management API takes `Idempotency-Key`. A double click or a
 * client's retry sends the same key again, and the unique index lets the
 * second insert match the first instead of adding the money twice (racing
 * inserts wait on the index entry, then conflict). Charges and entries made
 * without a key leave it NULL, which the partial index does not hold: the
 * meter's inserts pay nothing for it.
 */
export default class extends BaseSchema {
  protected tableName = 'balance_ledger'

  async up() {
    this.schema.alterTable(this.tableName, (table) => {
      table.string('idempotency_key', 100).nullable()
    })
    this.schema.raw(
      'CREATE UNIQUE INDEX balance_ledger_idempotency_key ON balance_ledger (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL'
    )
  }

  async down() {
    this.schema.raw('DROP INDEX IF EXISTS balance_ledger_idempotency_key')
    this.schema.alterTable(this.tableName, (table) => {
      table.dropColumn('idempotency_key')
    })
  }
}
