import { BaseSchema } from '@adonisjs/lucid/schema'

/**
 * Low-balance e-mails to users (app/services/mail/low_balance_notice.ts):
 * the threshold a user sets in the portal (NULL: off), the language the
 * mail is written in (the portal's when it was set), and whether the
 * notice for the current dip was sent.
 *
 * `low_balance_notified` is the durable "sent" mark: set by one conditional
 * UPDATE after a metering batch commits (only one instance's UPDATE finds
 * it false), and cleared by the trigger below whenever the balance is at or
 * above the threshold again (a top-up, a code, an adjustment, whoever writes
 * it). Charges only lower the balance, so on the metering path the trigger's
 * WHEN is false and no function runs.
 *
 * The threshold is cached with the user (catalog.ts): changing it notifies
 * the other processes like a role or plan change.
 */
export default class extends BaseSchema {
  async up() {
    this.schema.alterTable('users', (table) => {
      table.decimal('low_balance_threshold', 24, 12).nullable()
      table.boolean('low_balance_notified').notNullable().defaultTo(false)
      table.string('notice_locale', 8).nullable()
    })
    this.schema.raw(`
      CREATE FUNCTION users_low_balance_rearm() RETURNS trigger AS $$
      BEGIN
        NEW.low_balance_notified := false;
        RETURN NEW;
      END;
      $$ LANGUAGE plpgsql;
    `)
    this.schema.raw(`
      CREATE TRIGGER users_low_balance_rearm BEFORE UPDATE OF balance ON users
      FOR EACH ROW WHEN (NEW.low_balance_notified AND NEW.balance >= NEW.low_balance_threshold)
      EXECUTE FUNCTION users_low_balance_rearm();
    `)
    this.schema.raw('DROP TRIGGER IF EXISTS users_notify_change ON users')
    this.schema.raw(
      `CREATE TRIGGER users_notify_change AFTER INSERT OR DELETE OR UPDATE OF email, role, plan_id, disabled_at, low_balance_threshold
         ON users FOR EACH ROW EXECUTE FUNCTION gateway_notify_change()`
    )
  }

  async down() {
    this.schema.raw('DROP TRIGGER IF EXISTS users_notify_change ON users')
    this.schema.raw(
      `CREATE TRIGGER users_notify_change AFTER INSERT OR DELETE OR UPDATE OF email, role, plan_id, disabled_at
         ON users FOR EACH ROW EXECUTE FUNCTION gateway_notify_change()`
    )
    this.schema.raw('DROP TRIGGER IF EXISTS users_low_balance_rearm ON users')
    this.schema.raw('DROP FUNCTION IF EXISTS users_low_balance_rearm()')
    this.schema.alterTable('users', (table) => {
      table.dropColumn('low_balance_threshold')
      table.dropColumn('low_balance_notified')
      table.dropColumn('notice_locale')
    })
  }
}
