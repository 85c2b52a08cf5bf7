import { BaseSchema } from '@adonisjs/lucid/schema'

/**
 * Per-key IP allowlists (new-api's token IP restriction, LiteLLM's
 * `allowed_ips`): `allowed_ips` is a JSON array of IPv4/IPv6 addresses and
 * CIDR ranges, normalised by app/gateway/auth/ip_allowlist.ts; NULL = any
 * address. The change trigger learns the column, so a new list reaches every
 * gateway's key cache at once.
 */
export default class extends BaseSchema {
  async up() {
    this.schema.alterTable('api_keys', (table) => {
      table.jsonb('allowed_ips').nullable()
    })
    this.schema.raw('DROP TRIGGER IF EXISTS api_keys_notify_change ON api_keys')
    this.schema.raw(
      `CREATE TRIGGER api_keys_notify_change AFTER INSERT OR DELETE OR UPDATE OF user_id, key_hash, allowed_models, spend_limit, spend_period, rpm, tpm, expires_at, revoked_at, manage, allowed_ips
       ON api_keys FOR EACH ROW EXECUTE FUNCTION gateway_notify_change()`
    )
  }

  async down() {
    this.schema.raw('DROP TRIGGER IF EXISTS api_keys_notify_change ON api_keys')
    this.schema.raw(
      `CREATE TRIGGER api_keys_notify_change AFTER INSERT OR DELETE OR UPDATE OF user_id, key_hash, allowed_models, spend_limit, spend_period, rpm, tpm, expires_at, revoked_at, manage
       ON api_keys FOR EACH ROW EXECUTE FUNCTION gateway_notify_change()`
    )
    this.schema.alterTable('api_keys', (table) => {
      table.dropColumn('allowed_ips')
    })
  }
}
