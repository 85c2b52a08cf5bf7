import { BaseSchema } from '@adonisjs/lucid/schema'

/**
 * Metered usage reaches the other instances' caches. A gateway applies its
 * own requests' charges, tokens and key spend to its cached user and key at
 * once, but another instance on the same database kept its copy until the
 * TTL (15 s for users, 60 s for keys): for that long it let a user spend
 * again what the first instance had already charged, and a key overrun its
 * spend cap by what the other instance billed.
 *
 * After each statement that inserts usage rows (the meter's batch, a spill
 * replay, seed:demo), one NOTIFY per user and key in it:
 * `charged:<user id>:<key id or empty>` (identical payloads in one
 * transaction are sent once). The instance whose meter wrote the batch
 * ignores it (it knows the backends of its meter's pool, change_listener.ts);
 * the others re-read that user and key in the background.
 */
export default class extends BaseSchema {
  async up() {
    this.schema.raw(`
      CREATE FUNCTION gateway_notify_charged() RETURNS trigger AS $$
      BEGIN
        PERFORM pg_notify('gateway_changes', 'charged:' || c.user_id::text || ':' || COALESCE(c.api_key_id::text, ''))
           FROM (SELECT DISTINCT user_id, api_key_id FROM added) c;
        RETURN NULL;
      END;
      $$ LANGUAGE plpgsql;
    `)
    this.schema.raw(`
      CREATE TRIGGER usage_records_notify_charged AFTER INSERT ON usage_records
      REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION gateway_notify_charged()
    `)
  }

  async down() {
    this.schema.raw('DROP TRIGGER IF EXISTS usage_records_notify_charged ON usage_records')
    this.schema.raw('DROP FUNCTION IF EXISTS gateway_notify_charged()')
  }
}
