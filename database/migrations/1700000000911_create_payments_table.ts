import { BaseSchema } from '@adonisjs/lucid/schema'

/**
 * Card top-ups through Stripe Checkout (OpenRouter's "buy credits", new-api's
 * online top-up). A row is made before the user is sent to Stripe, gets the
 * Checkout Session's id, and becomes `paid` exactly once: one UPDATE guarded
 * by `status <> 'paid'`, in the transaction that writes the ledger top-up,
 * whichever of the webhook and the user's return to the site comes first.
 *
 * `amount` is what the user asked for, in USD; `amount_cents` is what Stripe
 * must report as paid (`amount_total`) before anything is credited.
 */
export default class extends BaseSchema {
  protected tableName = 'payments'

  async up() {
    this.schema.createTable(this.tableName, (table) => {
      table.bigIncrements('id')
      table.bigInteger('user_id').notNullable().references('id').inTable('users').onDelete('CASCADE')
      table.string('provider', 20).notNullable().defaultTo('stripe')
      /** Stripe's Checkout Session id (cs_...): null only between the insert and Stripe's answer */
      table.string('session_id', 255).nullable().unique()
      table.decimal('amount', 24, 12).notNullable()
      table.integer('amount_cents').notNullable()
      table.string('currency', 3).notNullable().defaultTo('usd')
      /** pending -> paid | expired | failed (a failed or expired one can still be paid: Stripe decides) */
      table.string('status', 10).notNullable().defaultTo('pending')
      /** Why a payment failed or was not credited (Stripe's message, or an amount mismatch) */
      table.text('failure').nullable()
      table.bigInteger('ledger_entry_id').nullable().references('id').inTable('balance_ledger').onDelete('SET NULL')
      table.timestamp('created_at', { useTz: true }).notNullable().defaultTo(this.now())
      table.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(this.now())
      table.timestamp('paid_at', { useTz: true }).nullable()
      table.index(['user_id', 'id'])
      table.index(['status', 'id'])
    })
    this.schema.raw(
      `ALTER TABLE payments ADD CONSTRAINT payments_status_known CHECK (status IN ('pending', 'paid', 'expired', 'failed')),
                            ADD CONSTRAINT payments_amount_positive CHECK (amount > 0 AND amount_cents > 0)`
    )
  }

  async down() {
    this.schema.dropTable(this.tableName)
  }
}
