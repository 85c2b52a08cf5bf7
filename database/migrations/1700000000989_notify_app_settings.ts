import { BaseSchema } from '@adonisjs/lucid/schema'

/**
 * Operator settings the hot path caches (the sensitive-word filter) reach
 * every running instance: a change to app_settings sends
 * NOTIFY gateway_changes 'app_settings:<key>' after commit, whoever made it
 * (the panel, an ace command, the management API, psql). The catalog
 * reloads the settings it caches on it and ignores the others.
 */
export default class extends BaseSchema {
  async up() {
    this.schema.raw(`
      CREATE FUNCTION gateway_notify_setting() RETURNS trigger AS $$
      DECLARE setting_key text;
      BEGIN
        IF TG_OP = 'DELETE' THEN setting_key := OLD.key; ELSE setting_key := NEW.key; END IF;
        PERFORM pg_notify('gateway_changes', 'app_settings:' || setting_key);
        RETURN NULL;
      END;
      $$ LANGUAGE plpgsql;
    `)
    this.schema.raw(
      'CREATE TRIGGER app_settings_notify_change AFTER INSERT OR UPDATE OR DELETE ON app_settings FOR EACH ROW EXECUTE FUNCTION gateway_notify_setting()'
    )
  }

  async down() {
    this.schema.raw('DROP TRIGGER IF EXISTS app_settings_notify_change ON app_settings')
    this.schema.raw('DROP FUNCTION IF EXISTS gateway_notify_setting()')
  }
}
