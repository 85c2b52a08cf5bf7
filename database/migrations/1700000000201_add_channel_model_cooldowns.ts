import { BaseSchema } from '@adonisjs/lucid/schema'

/**
 * Per-model cool-downs and automatic disabling, visible to admins (issue 7,
 * issue 8 item 5):
 *
 * - channels.model_cooldowns: the (channel, upstream model) pairs cooling
 *   down after a 429 or a 403, mirrored by the gateway:
 *   {"<upstream model>": {"until": ISO time, "kind": "rate_limited"|"forbidden", "reason": "..."}}.
 *   Entries whose `until` has passed are over (readers filter them).
 * - channels.auto_disabled_at: set when the gateway itself disabled the
 *   channel (a 401, or 403s for several models), so a successful test may
 *   put it back in rotation; null when an admin disabled it.
 *
 * The mirror writes model_cooldowns often under rate limiting: such updates
 * must not make every process reload its channels, so the change trigger
 * ignores an update that changed nothing else.
 */
export default class extends BaseSchema {
  async up() {
    this.schema.alterTable('channels', (table) => {
      table.jsonb('model_cooldowns').notNullable().defaultTo(JSON.stringify({}))
      table.timestamp('auto_disabled_at', { useTz: true }).nullable()
    })
    this.schema.raw('DROP TRIGGER IF EXISTS channels_notify_change ON channels')
    this.schema.raw(
      `CREATE TRIGGER channels_notify_change AFTER INSERT OR DELETE ON channels
       FOR EACH ROW EXECUTE FUNCTION gateway_notify_change()`
    )
    this.schema.raw(
      `CREATE TRIGGER channels_notify_update AFTER UPDATE ON channels
       FOR EACH ROW WHEN ((to_jsonb(OLD) - 'model_cooldowns') IS DISTINCT FROM (to_jsonb(NEW) - 'model_cooldowns'))
       EXECUTE FUNCTION gateway_notify_change()`
    )
  }

  async down() {
    this.schema.raw('DROP TRIGGER IF EXISTS channels_notify_update ON channels')
    this.schema.raw('DROP TRIGGER IF EXISTS channels_notify_change ON channels')
    this.schema.raw(
      `CREATE TRIGGER channels_notify_change AFTER INSERT OR UPDATE OR DELETE ON channels
       FOR EACH ROW EXECUTE FUNCTION gateway_notify_change()`
    )
    this.schema.alterTable('channels', (table) => table.dropColumns('model_cooldowns', 'auto_disabled_at'))
  }
}
