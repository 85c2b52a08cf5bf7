import { BaseSchema } from '@adonisjs/lucid/schema'

/**
 * The WebRTC calls running now (app/gateway/realtime/realtime_calls.ts), one
 * row per call from its answer to its end: what another instance needs to
 * hang one up or join its events (the call lives in the memory of the
 * instance that made it, where its sideband is). Written once when a call is
 * given out and deleted when it ends. A call of an instance that died (its
 * heartbeat in gateway_instances stale) lost its sideband with it and would
 * run on unmetered: another instance's sweep hangs it up and deletes its row.
 * Read only on a hangup or a join that the instance does not hold itself,
 * and by that sweep; never on the HTTP path. Deleting the user deletes them.
 */
export default class extends BaseSchema {
  async up() {
    this.schema.createTable('realtime_calls', (table) => {
      /** The gateway's call id (`rtc_gw_` + 32 hex), the one clients name */
      table.string('id', 64).primary()
      table.bigInteger('user_id').notNullable().references('id').inTable('users').onDelete('CASCADE')
      /** The model the call was made for (what a joining sideband is opened as) */
      table.string('model', 255).notNullable()
      /** The channel that holds it and its model name there (no foreign key: a deleted channel answers 503 on a hangup) */
      table.bigInteger('channel_id').notNullable()
      table.string('upstream_model', 255).notNullable()
      /** The provider's call id (its Location's last segment) */
      table.string('upstream_id', 255).notNullable()
      /** The instance that meters it (gateway_instances.id): its heartbeat gone stale, the call is hung up */
      table.string('instance_id', 64).notNullable()
      table.timestamp('created_at', { useTz: true }).notNullable().defaultTo(this.now())
      table.index(['created_at'], 'realtime_calls_age')
      table.index(['instance_id'], 'realtime_calls_instance')
    })
  }

  async down() {
    this.schema.dropTable('realtime_calls')
  }
}
