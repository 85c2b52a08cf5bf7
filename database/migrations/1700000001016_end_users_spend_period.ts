import { BaseSchema } from '@adonisjs/lucid/schema'

/**
 * The period an end user's limit counts in, on its own row
 * (`end_users.spend_period`: its shared budget's when linked, else its own
 * `budget_period`; NULL: its whole life), kept by setEndUser and by a
 * budget's period change (app/actions/end_users.ts, budgets.ts).
 *
 * Why on the row: the meter's statement (END_USER_SPEND_EFFECT) read the
 * period through a join to `budgets` in a CTE, i.e. from the statement's
 * snapshot. A period change committed while a metering batch waited on the
 * rows it locked (the owner's, the end users') left the batch computing with
 * the old period over the new row: a lifetime budget made daily had its
 * recount of the day's spend replaced by 0 (the customer could spend its
 * daily budget again), a monthly one made daily lost the batch's cost. An
 * UPDATE re-reads the row it waited for, so a period read from the row
 * itself is always the one its period_start and period_spent were set for.
 */
export default class extends BaseSchema {
  async up() {
    this.schema.alterTable('end_users', (table) => {
      table.string('spend_period', 8).nullable()
    })
    this.schema.raw(`ALTER TABLE end_users ADD CONSTRAINT end_users_spend_period CHECK (spend_period IN ('day', 'week', 'month'))`)
    this.schema.raw(
      `UPDATE end_users e SET spend_period = CASE WHEN e.budget_id IS NULL THEN e.budget_period
          ELSE (SELECT b.budget_period FROM budgets b WHERE b.id = e.budget_id) END`
    )
  }

  async down() {
    this.schema.alterTable('end_users', (table) => {
      table.dropColumn('spend_period')
    })
  }
}
