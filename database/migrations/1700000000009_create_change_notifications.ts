import { BaseSchema } from '@adonisjs/lucid/schema'

/**
 * Cache invalidation across processes: any change to the configuration the
 * hot path caches (keys, users, plans, channels, prices) sends
 * NOTIFY gateway_changes '<table>:<id>' after commit, whoever made it
 * (the server, an ace command, another instance, psql).
 *
 * Column lists keep the hot path's own writes (api_keys.last_used_at,
 * users.balance via charges) from invalidating caches on every request.
 */
export default class extends BaseSchema {
  async up() {
    this.schema.raw(`
      CREATE FUNCTION gateway_notify_change() RETURNS trigger AS $$
      DECLARE row_id text;
      BEGIN
        IF TG_OP = 'DELETE' THEN row_id := OLD.id::text; ELSE row_id := NEW.id::text; END IF;
        PERFORM pg_notify('gateway_changes', TG_TABLE_NAME || ':' || row_id);
        RETURN NULL;
      END;
      $$ LANGUAGE plpgsql;
    `)
    const watched: Array<[string, string]> = [
      ['plans', 'INSERT OR UPDATE OR DELETE'],
      ['channels', 'INSERT OR UPDATE OR DELETE'],
      ['model_prices', 'INSERT OR UPDATE OR DELETE'],
      ['users', 'INSERT OR DELETE OR UPDATE OF email, role, plan_id'],
      [
        'api_keys',
        'INSERT OR DELETE OR UPDATE OF user_id, key_hash, allowed_models, spend_limit, expires_at, revoked_at',
      ],
    ]
    for (const [table, events] of watched) {
      this.schema.raw(
        `CREATE TRIGGER ${table}_notify_change AFTER ${events} ON ${table} FOR EACH ROW EXECUTE FUNCTION gateway_notify_change()`
      )
    }
    // Manual balance entries (top-ups, refunds, adjustments) must reach other
    // processes' cached balances; per-request charges are applied locally.
    this.schema.raw(`
      CREATE FUNCTION gateway_notify_balance() RETURNS trigger AS $$
      BEGIN
        PERFORM pg_notify('gateway_changes', 'balance:' || NEW.user_id::text);
        RETURN NULL;
      END;
      $$ LANGUAGE plpgsql;
    `)
    this.schema.raw(`
      CREATE TRIGGER balance_ledger_notify AFTER INSERT ON balance_ledger
      FOR EACH ROW WHEN (NEW.kind <> 'charge') EXECUTE FUNCTION gateway_notify_balance();
    `)
  }

  async down() {
    for (const table of ['plans', 'channels', 'model_prices', 'users', 'api_keys']) {
      this.schema.raw(`DROP TRIGGER IF EXISTS ${table}_notify_change ON ${table}`)
    }
    this.schema.raw('DROP TRIGGER IF EXISTS balance_ledger_notify ON balance_ledger')
    this.schema.raw('DROP FUNCTION IF EXISTS gateway_notify_change()')
    this.schema.raw('DROP FUNCTION IF EXISTS gateway_notify_balance()')
  }
}
