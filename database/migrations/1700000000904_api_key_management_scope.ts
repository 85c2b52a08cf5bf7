import { BaseSchema } from '@adonisjs/lucid/schema'

/**
 * Which keys may call the management API (/api/admin): only those issued
 * with `manage` for an administrator. An admin's everyday key (in a coding
 * agent on a laptop) cannot create users or move money if it leaks.
 * The change trigger learns the column, so revoking the scope reaches every
 * cache at once.
 */
export default class extends BaseSchema {
  async up() {
    this.schema.alterTable('api_keys', (table) => {
      table.boolean('manage').notNullable().defaultTo(false)
    })
    this.schema.raw('DROP TRIGGER IF EXISTS api_keys_notify_change ON api_keys')
    this.schema.raw(
      `CREATE TRIGGER api_keys_notify_change AFTER INSERT OR DELETE OR UPDATE OF user_id, key_hash, allowed_models, spend_limit, spend_period, rpm, tpm, expires_at, revoked_at, manage
       ON api_keys FOR EACH ROW EXECUTE FUNCTION gateway_notify_change()`
    )
  }

  async down() {
    this.schema.raw('DROP TRIGGER IF EXISTS api_keys_notify_change ON api_keys')
    this.schema.raw(
      `CREATE TRIGGER api_keys_notify_change AFTER INSERT OR DELETE OR UPDATE OF user_id, key_hash, allowed_models, spend_limit, spend_period, rpm, tpm, expires_at, revoked_at
       ON api_keys FOR EACH ROW EXECUTE FUNCTION gateway_notify_change()`
    )
    this.schema.alterTable('api_keys', (table) => {
      table.dropColumn('manage')
    })
  }
}
