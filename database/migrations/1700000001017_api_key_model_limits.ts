import { BaseSchema } from '@adonisjs/lucid/schema'

const KEY_COLUMNS =
  'user_id, key_hash, allowed_models, spend_limit, spend_period, rpm, tpm, expires_at, revoked_at, manage, allowed_ips, max_parallel, blocked_at, team_id'

/**
 * A key's limits per model (LiteLLM's model_rpm_limit / model_tpm_limit):
 * {"<model as the client names it>": {"rpm": n, "tpm": n}}, NULL = none
 * (limits/model_limits.ts reads it into a Map with the key). The change
 * trigger learns the column, so a new limit reaches every gateway's key cache.
 */
export default class extends BaseSchema {
  async up() {
    this.schema.alterTable('api_keys', (table) => {
      table.jsonb('model_limits').nullable()
    })
    this.schema.raw(
      "ALTER TABLE api_keys ADD CONSTRAINT api_keys_model_limits_object CHECK (model_limits IS NULL OR jsonb_typeof(model_limits) = 'object')"
    )
    this.schema.raw('DROP TRIGGER IF EXISTS api_keys_notify_change ON api_keys')
    this.schema.raw(
      `CREATE TRIGGER api_keys_notify_change AFTER INSERT OR DELETE OR UPDATE OF ${KEY_COLUMNS}, model_limits
       ON api_keys FOR EACH ROW EXECUTE FUNCTION gateway_notify_change()`
    )
  }

  async down() {
    this.schema.raw('DROP TRIGGER IF EXISTS api_keys_notify_change ON api_keys')
    this.schema.raw(
      `CREATE TRIGGER api_keys_notify_change AFTER INSERT OR DELETE OR UPDATE OF ${KEY_COLUMNS}
       ON api_keys FOR EACH ROW EXECUTE FUNCTION gateway_notify_change()`
    )
    this.schema.alterTable('api_keys', (table) => {
      table.dropColumn('model_limits')
    })
  }
}
