import { BaseSchema } from '@adonisjs/lucid/schema'

/**
 * End users: the id an app that resells through one gateway key sends for
 * its own customer (OpenAI's `user`, Anthropic's `metadata.user_id`,
 * LiteLLM's `x-litellm-end-user-id`: app/gateway/end_users/end_user_id.ts).
 *
 * `usage_records.end_user` holds it on each row (NULL when the request sent
 * none, the usual case; a nullable column without a default rewrites
 * nothing). Its index is partial, like the tags' GIN index: rows without an
 * end user are not in it, so the meter's usual insert does not touch it. It
 * serves the usage filter (`end_user = ?` over a date range); spend per end
 * user of one account reads that account's rows through (user_id, created_at).
 *
 * `end_users` is what an owner (the gateway user whose keys send them) set
 * for some of them, LiteLLM's customers: blocked, and a monthly spend limit
 * (USD, NULL = none). `period_spent` is what the end user spent in the UTC
 * month starting `period_start`, kept by the meter's statement
 * (usage_meter.ts METER_EFFECTS) for the end users listed here only. The
 * change trigger fires on the settings, not on the meter's spend, so a
 * change reaches every gateway's cache (end_user_policies.ts) at once.
 */
export default class extends BaseSchema {
  async up() {
    this.schema.alterTable('usage_records', (table) => {
      table.text('end_user').nullable()
    })
    this.schema.raw(
      'CREATE INDEX usage_records_end_user ON usage_records (end_user, created_at) WHERE end_user IS NOT NULL'
    )

    this.schema.createTable('end_users', (table) => {
      table.bigIncrements('id')
      table.bigInteger('user_id').notNullable().references('id').inTable('users').onDelete('CASCADE')
      table.text('end_user').notNullable()
      table.boolean('blocked').notNullable().defaultTo(false)
      table.decimal('monthly_limit', 24, 12).nullable()
      table.decimal('period_spent', 24, 12).notNullable().defaultTo(0)
      table.date('period_start').nullable()
      table.timestamp('created_at', { useTz: true }).notNullable().defaultTo(this.now())
      table.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(this.now())
      table.unique(['user_id', 'end_user'])
    })
    this.schema.raw('ALTER TABLE end_users ADD CONSTRAINT end_users_end_user_length CHECK (char_length(end_user) BETWEEN 1 AND 128)')
    this.schema.raw('ALTER TABLE end_users ADD CONSTRAINT end_users_monthly_limit_positive CHECK (monthly_limit >= 0)')
    this.schema.raw(
      `CREATE TRIGGER end_users_notify_change AFTER INSERT OR DELETE OR UPDATE OF user_id, end_user, blocked, monthly_limit
       ON end_users FOR EACH ROW EXECUTE FUNCTION gateway_notify_change()`
    )
  }

  async down() {
    this.schema.raw('DROP TRIGGER IF EXISTS end_users_notify_change ON end_users')
    this.schema.dropTableIfExists('end_users')
    this.schema.raw('DROP INDEX IF EXISTS usage_records_end_user')
    this.schema.alterTable('usage_records', (table) => {
      table.dropColumn('end_user')
    })
  }
}
