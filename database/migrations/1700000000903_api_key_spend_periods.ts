import { BaseSchema } from '@adonisjs/lucid/schema'

/**
 * A key's spend cap may reset each day, week or month (LiteLLM's
 * `budget_duration`): `spend_period` says which (null: the cap is for the
 * key's whole life), `period_spent` is what the key spent in the period
 * starting `period_start` (UTC calendar day, Monday, first of the month).
 * The meter's statement keeps both (usage_meter.ts METER_EFFECTS).
 *
 * The change trigger learns `spend_period` (and `rpm`, `tpm`, missing from
 * it until now), so an operator's change reaches every cache; not
 * `period_spent`/`period_start`, which every metered batch writes.
 */
export default class extends BaseSchema {
  async up() {
    this.schema.alterTable('api_keys', (table) => {
      table.string('spend_period', 8).nullable()
      table.decimal('period_spent', 24, 12).notNullable().defaultTo(0)
      table.date('period_start').nullable()
    })
    this.schema.raw(
      `ALTER TABLE api_keys ADD CONSTRAINT api_keys_spend_period_kind CHECK (spend_period IN ('day', 'week', 'month'))`
    )
    this.schema.raw('DROP TRIGGER IF EXISTS api_keys_notify_change ON api_keys')
    this.schema.raw(
      `CREATE TRIGGER api_keys_notify_change AFTER INSERT OR DELETE OR UPDATE OF user_id, key_hash, allowed_models, spend_limit, spend_period, rpm, tpm, expires_at, revoked_at
       ON api_keys FOR EACH ROW EXECUTE FUNCTION gateway_notify_change()`
    )
  }

  async down() {
    this.schema.raw('DROP TRIGGER IF EXISTS api_keys_notify_change ON api_keys')
    this.schema.raw(
      `CREATE TRIGGER api_keys_notify_change AFTER INSERT OR DELETE OR UPDATE OF user_id, key_hash, allowed_models, spend_limit, expires_at, revoked_at
       ON api_keys FOR EACH ROW EXECUTE FUNCTION gateway_notify_change()`
    )
    this.schema.alterTable('api_keys', (table) => {
      table.dropColumn('spend_period')
      table.dropColumn('period_spent')
      table.dropColumn('period_start')
    })
  }
}
