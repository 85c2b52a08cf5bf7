import { BaseSchema } from '@adonisjs/lucid/schema'

const OLD_END_USER_COLUMNS = 'user_id, end_user, blocked, monthly_limit'
const END_USER_COLUMNS = `${OLD_END_USER_COLUMNS}, budget_period, rpm, tpm, budget_id`

/**
 * Budgets (LiteLLM's /budget/*): a named set of limits an admin shares
 * between end users (LiteLLM's customers). A customer linked to one
 * (`end_users.budget_id`) takes its `max_budget` per `budget_period`, its rpm
 * and tpm, each customer counting its own spend and windows; changing the
 * budget changes every linked customer at once (the change trigger notifies
 * `budgets:<id>`, which reloads end_user_policies.ts on every instance). A
 * budget still linked cannot be deleted (ON DELETE RESTRICT; the actions
 * refuse it first with a clear message).
 *
 * End users gain what teams have: `budget_period` (day/week/month; NULL: the
 * limit covers the end user's whole life, counted in `spent`), rpm and tpm.
 * `monthly_limit` keeps its name (the limit per period now). Rows written
 * before this were monthly: they get `budget_period = 'month'`, and `spent`
 * is filled from their usage rows so a later lifetime budget counts it.
 */
export default class extends BaseSchema {
  async up() {
    this.schema.createTable('budgets', (table) => {
      table.bigIncrements('id')
      table.text('budget_id').notNullable().unique()
      table.decimal('max_budget', 24, 12).nullable()
      table.decimal('soft_budget', 24, 12).nullable()
      table.string('budget_period', 8).nullable()
      table.integer('rpm').nullable()
      table.integer('tpm').nullable()
      table.integer('max_parallel').nullable()
      table.timestamp('created_at', { useTz: true }).notNullable().defaultTo(this.now())
      table.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(this.now())
    })
    this.schema.raw(`ALTER TABLE budgets ADD CONSTRAINT budgets_budget_period CHECK (budget_period IN ('day', 'week', 'month'))`)
    this.schema.raw('ALTER TABLE budgets ADD CONSTRAINT budgets_max_budget_positive CHECK (max_budget >= 0 AND soft_budget >= 0)')
    this.schema.raw('ALTER TABLE budgets ADD CONSTRAINT budgets_budget_id_length CHECK (char_length(budget_id) BETWEEN 1 AND 128)')
    this.schema.raw(
      `CREATE TRIGGER budgets_notify_change AFTER INSERT OR DELETE OR UPDATE OF max_budget, budget_period, rpm, tpm
       ON budgets FOR EACH ROW EXECUTE FUNCTION gateway_notify_change()`
    )

    this.schema.alterTable('end_users', (table) => {
      table.string('budget_period', 8).nullable()
      table.integer('rpm').nullable()
      table.integer('tpm').nullable()
      table.decimal('spent', 24, 12).notNullable().defaultTo(0)
      table.bigInteger('budget_id').nullable().references('id').inTable('budgets').onDelete('RESTRICT')
    })
    this.schema.raw(`ALTER TABLE end_users ADD CONSTRAINT end_users_budget_period CHECK (budget_period IN ('day', 'week', 'month'))`)
    this.schema.raw('CREATE INDEX end_users_budget_id ON end_users (budget_id) WHERE budget_id IS NOT NULL')
    // The upgrade: every limit set before this was monthly.
    this.schema.raw(`UPDATE end_users SET budget_period = 'month'`)
    this.schema.raw(
      `UPDATE end_users e SET spent = COALESCE((SELECT SUM(u.cost) FROM usage_records u
          WHERE u.end_user = e.end_user AND u.user_id = e.user_id), 0)`
    )
    this.schema.raw('DROP TRIGGER IF EXISTS end_users_notify_change ON end_users')
    this.schema.raw(
      `CREATE TRIGGER end_users_notify_change AFTER INSERT OR DELETE OR UPDATE OF ${END_USER_COLUMNS}
       ON end_users FOR EACH ROW EXECUTE FUNCTION gateway_notify_change()`
    )
  }

  async down() {
    this.schema.raw('DROP TRIGGER IF EXISTS end_users_notify_change ON end_users')
    this.schema.raw(
      `CREATE TRIGGER end_users_notify_change AFTER INSERT OR DELETE OR UPDATE OF ${OLD_END_USER_COLUMNS}
       ON end_users FOR EACH ROW EXECUTE FUNCTION gateway_notify_change()`
    )
    this.schema.raw('DROP INDEX IF EXISTS end_users_budget_id')
    this.schema.alterTable('end_users', (table) => {
      table.dropColumn('budget_id')
      table.dropColumn('spent')
      table.dropColumn('tpm')
      table.dropColumn('rpm')
      table.dropColumn('budget_period')
    })
    this.schema.raw('DROP TRIGGER IF EXISTS budgets_notify_change ON budgets')
    this.schema.dropTableIfExists('budgets')
  }
}
