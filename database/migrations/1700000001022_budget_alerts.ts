import { BaseSchema } from '@adonisjs/lucid/schema'

const KEY_COLUMNS =
  'user_id, key_hash, allowed_models, spend_limit, spend_period, rpm, tpm, expires_at, revoked_at, manage, allowed_ips, max_parallel, blocked_at, team_id, model_limits'
const BUDGET_COLUMNS = 'max_budget, budget_period, rpm, tpm'

/**
 * Budget alerts (app/services/budget_alerts.ts):
 *
 * - `api_keys.soft_budget` (LiteLLM's key soft_budget): crossing it alerts,
 *   never refuses. The change trigger learns it (the key cache holds it), and
 *   the budgets trigger learns `soft_budget` (the end-user cache holds it).
 * - `budget_alert_marks`: one row per alert sent, (kind, subject, threshold,
 *   period): `key` rows for a key's 80 % and 100 % of its spend cap and its
 *   soft budget (threshold 0), `end_user` rows for a customer's shared
 *   budget's soft budget. A lifetime budget's period is '-infinity'. The row
 *   is the durable "sent" mark: after a metering batch commits, one
 *   `INSERT ... ON CONFLICT DO NOTHING` per crossing decides the one instance
 *   that sends. A new period is a new row; a changed cap or soft budget
 *   deletes the subject's marks for it (triggers below), so it warns again.
 * - `users.alert_webhook_url` / `alert_webhook_secret`: the user's own
 *   webhook (new-api's "Webhook" notification), read only when an alert for
 *   the user is sent.
 */
export default class extends BaseSchema {
  async up() {
    this.schema.alterTable('api_keys', (table) => {
      table.decimal('soft_budget', 24, 12).nullable()
    })
    this.schema.raw('ALTER TABLE api_keys ADD CONSTRAINT api_keys_soft_budget_positive CHECK (soft_budget >= 0)')
    this.schema.alterTable('users', (table) => {
      table.text('alert_webhook_url').nullable()
      table.text('alert_webhook_secret').nullable()
    })
    this.schema.raw(
      `CREATE TABLE budget_alert_marks (
         kind text NOT NULL CHECK (kind IN ('key', 'end_user')),
         subject_id bigint NOT NULL,
         threshold smallint NOT NULL CHECK (threshold IN (0, 80, 100)),
         period_start date NOT NULL,
         created_at timestamptz NOT NULL DEFAULT now(),
         PRIMARY KEY (kind, subject_id, threshold, period_start)
       )`
    )
    // A new cap re-arms its 80 % / 100 % warnings, a new soft budget its alert (any instance, any writer).
    this.schema.raw(`
      CREATE FUNCTION api_keys_budget_alerts_rearm() RETURNS trigger AS $$
      BEGIN
        DELETE FROM budget_alert_marks WHERE kind = 'key' AND subject_id = NEW.id
          AND ((threshold > 0 AND (NEW.spend_limit IS DISTINCT FROM OLD.spend_limit OR NEW.spend_period IS DISTINCT FROM OLD.spend_period))
            OR (threshold = 0 AND (NEW.soft_budget IS DISTINCT FROM OLD.soft_budget OR NEW.spend_period IS DISTINCT FROM OLD.spend_period)));
        RETURN NULL;
      END;
      $$ LANGUAGE plpgsql;
    `)
    this.schema.raw(`
      CREATE TRIGGER api_keys_budget_alerts_rearm AFTER UPDATE OF spend_limit, spend_period, soft_budget ON api_keys
      FOR EACH ROW WHEN (NEW.spend_limit IS DISTINCT FROM OLD.spend_limit OR NEW.spend_period IS DISTINCT FROM OLD.spend_period
                         OR NEW.soft_budget IS DISTINCT FROM OLD.soft_budget)
      EXECUTE FUNCTION api_keys_budget_alerts_rearm();
    `)
    this.schema.raw(`
      CREATE FUNCTION budgets_budget_alerts_rearm() RETURNS trigger AS $$
      BEGIN
        DELETE FROM budget_alert_marks WHERE kind = 'end_user'
          AND subject_id IN (SELECT id FROM end_users WHERE budget_id = NEW.id);
        RETURN NULL;
      END;
      $$ LANGUAGE plpgsql;
    `)
    this.schema.raw(`
      CREATE TRIGGER budgets_budget_alerts_rearm AFTER UPDATE OF soft_budget, budget_period ON budgets
      FOR EACH ROW WHEN (NEW.soft_budget IS DISTINCT FROM OLD.soft_budget OR NEW.budget_period IS DISTINCT FROM OLD.budget_period)
      EXECUTE FUNCTION budgets_budget_alerts_rearm();
    `)
    this.schema.raw(`
      CREATE FUNCTION end_users_budget_alerts_rearm() RETURNS trigger AS $$
      BEGIN
        DELETE FROM budget_alert_marks WHERE kind = 'end_user' AND subject_id = NEW.id;
        RETURN NULL;
      END;
      $$ LANGUAGE plpgsql;
    `)
    this.schema.raw(`
      CREATE TRIGGER end_users_budget_alerts_rearm AFTER UPDATE OF budget_id ON end_users
      FOR EACH ROW WHEN (NEW.budget_id IS DISTINCT FROM OLD.budget_id)
      EXECUTE FUNCTION end_users_budget_alerts_rearm();
    `)
    this.schema.raw('DROP TRIGGER IF EXISTS api_keys_notify_change ON api_keys')
    this.schema.raw(
      `CREATE TRIGGER api_keys_notify_change AFTER INSERT OR DELETE OR UPDATE OF ${KEY_COLUMNS}, soft_budget
       ON api_keys FOR EACH ROW EXECUTE FUNCTION gateway_notify_change()`
    )
    this.schema.raw('DROP TRIGGER IF EXISTS budgets_notify_change ON budgets')
    this.schema.raw(
      `CREATE TRIGGER budgets_notify_change AFTER INSERT OR DELETE OR UPDATE OF ${BUDGET_COLUMNS}, soft_budget
       ON budgets FOR EACH ROW EXECUTE FUNCTION gateway_notify_change()`
    )
  }

  async down() {
    this.schema.raw('DROP TRIGGER IF EXISTS budgets_notify_change ON budgets')
    this.schema.raw(
      `CREATE TRIGGER budgets_notify_change AFTER INSERT OR DELETE OR UPDATE OF ${BUDGET_COLUMNS}
       ON budgets FOR EACH ROW EXECUTE FUNCTION gateway_notify_change()`
    )
    this.schema.raw('DROP TRIGGER IF EXISTS api_keys_notify_change ON api_keys')
    this.schema.raw(
      `CREATE TRIGGER api_keys_notify_change AFTER INSERT OR DELETE OR UPDATE OF ${KEY_COLUMNS}
       ON api_keys FOR EACH ROW EXECUTE FUNCTION gateway_notify_change()`
    )
    this.schema.raw('DROP TRIGGER IF EXISTS end_users_budget_alerts_rearm ON end_users')
    this.schema.raw('DROP FUNCTION IF EXISTS end_users_budget_alerts_rearm()')
    this.schema.raw('DROP TRIGGER IF EXISTS budgets_budget_alerts_rearm ON budgets')
    this.schema.raw('DROP FUNCTION IF EXISTS budgets_budget_alerts_rearm()')
    this.schema.raw('DROP TRIGGER IF EXISTS api_keys_budget_alerts_rearm ON api_keys')
    this.schema.raw('DROP FUNCTION IF EXISTS api_keys_budget_alerts_rearm()')
    this.schema.raw('DROP TABLE IF EXISTS budget_alert_marks')
    this.schema.alterTable('users', (table) => {
      table.dropColumn('alert_webhook_url')
      table.dropColumn('alert_webhook_secret')
    })
    this.schema.alterTable('api_keys', (table) => {
      table.dropColumn('soft_budget')
    })
  }
}
