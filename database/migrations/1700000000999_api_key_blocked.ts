import { BaseSchema } from '@adonisjs/lucid/schema'

/**
 * A key blocked for a while (LiteLLM's /key/block, /key/unblock): NULL = not
 * blocked. Unlike `revoked_at` (for good: a revoked key is history), a block is
 * lifted by setting it back to NULL. The change trigger learns the column, so a
 * block reaches every gateway's key cache at once.
 */
export default class extends BaseSchema {
  async up() {
    this.schema.alterTable('api_keys', (table) => {
      table.timestamp('blocked_at', { useTz: true }).nullable()
    })
    this.schema.raw('DROP TRIGGER IF EXISTS api_keys_notify_change ON api_keys')
    this.schema.raw(
      `CREATE TRIGGER api_keys_notify_change AFTER INSERT OR DELETE OR UPDATE OF user_id, key_hash, allowed_models, spend_limit, spend_period, rpm, tpm, expires_at, revoked_at, manage, allowed_ips, max_parallel, blocked_at
       ON api_keys FOR EACH ROW EXECUTE FUNCTION gateway_notify_change()`
    )
  }

  async down() {
    this.schema.raw('DROP TRIGGER IF EXISTS api_keys_notify_change ON api_keys')
    this.schema.raw(
      `CREATE TRIGGER api_keys_notify_change AFTER INSERT OR DELETE OR UPDATE OF user_id, key_hash, allowed_models, spend_limit, spend_period, rpm, tpm, expires_at, revoked_at, manage, allowed_ips, max_parallel
       ON api_keys FOR EACH ROW EXECUTE FUNCTION gateway_notify_change()`
    )
    this.schema.alterTable('api_keys', (table) => {
      table.dropColumn('blocked_at')
    })
  }
}
