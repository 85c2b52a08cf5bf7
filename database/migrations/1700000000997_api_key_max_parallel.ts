import { BaseSchema } from '@adonisjs/lucid/schema'

/**
 * A key's cap on requests in flight at once (LiteLLM's `max_parallel_requests`,
 * new-api's token concurrency): NULL = no cap. The change trigger learns the
 * column, so a new cap reaches every gateway's key cache at once.
 */
export default class extends BaseSchema {
  async up() {
    this.schema.alterTable('api_keys', (table) => {
      table.integer('max_parallel').nullable()
    })
    this.schema.raw('ALTER TABLE api_keys ADD CONSTRAINT api_keys_max_parallel_positive CHECK (max_parallel > 0)')
    this.schema.raw('DROP TRIGGER IF EXISTS api_keys_notify_change ON api_keys')
    this.schema.raw(
      `CREATE TRIGGER api_keys_notify_change AFTER INSERT OR DELETE OR UPDATE OF user_id, key_hash, allowed_models, spend_limit, spend_period, rpm, tpm, expires_at, revoked_at, manage, allowed_ips, max_parallel
       ON api_keys FOR EACH ROW EXECUTE FUNCTION gateway_notify_change()`
    )
  }

  async down() {
    this.schema.raw('DROP TRIGGER IF EXISTS api_keys_notify_change ON api_keys')
    this.schema.raw(
      `CREATE TRIGGER api_keys_notify_change AFTER INSERT OR DELETE OR UPDATE OF user_id, key_hash, allowed_models, spend_limit, spend_period, rpm, tpm, expires_at, revoked_at, manage, allowed_ips
       ON api_keys FOR EACH ROW EXECUTE FUNCTION gateway_notify_change()`
    )
    this.schema.alterTable('api_keys', (table) => {
      table.dropColumn('max_parallel')
    })
  }
}
