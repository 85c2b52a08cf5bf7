import { BaseSchema } from '@adonisjs/lucid/schema'

/**
 * Admin panel (issue 9): users can be disabled (their keys stop working at
 * once), and every admin change is written to audit_log, from the panel or
 * from an ace command. The audit row keeps the actor's email as text so it
 * survives the actor's deletion; upstream keys are never written into it.
 */
export default class extends BaseSchema {
  async up() {
    this.schema.alterTable('users', (table) => {
      table.timestamp('disabled_at', { useTz: true }).nullable()
    })
    // The hot path caches users: a disable must reach every process at once.
    this.schema.raw('DROP TRIGGER IF EXISTS users_notify_change ON users')
    this.schema.raw(
      `CREATE TRIGGER users_notify_change AFTER INSERT OR DELETE OR UPDATE OF email, role, plan_id, disabled_at
         ON users FOR EACH ROW EXECUTE FUNCTION gateway_notify_change()`
    )

    this.schema.createTable('audit_log', (table) => {
      table.bigIncrements('id')
      /** Admin user id (no foreign key: the row outlives the account) */
      table.bigInteger('actor_id').nullable()
      /** The admin's email, or "cli:<os user>" for an ace command */
      table.string('actor', 254).notNullable()
      /** panel | cli */
      table.string('source', 16).notNullable()
      /** e.g. user.create, plan.update, key.revoke, channel.disable */
      table.string('action', 64).notNullable()
      table.string('subject_type', 32).notNullable()
      table.bigInteger('subject_id').nullable()
      /** One line a person reads in the log: "plan pro: rpm 60 → 120" */
      table.text('summary').notNullable()
      table.jsonb('before').nullable()
      table.jsonb('after').nullable()
      table.string('ip', 64).nullable()
      table.timestamp('created_at', { useTz: true }).notNullable().defaultTo(this.now())
      table.index(['subject_type', 'subject_id'])
      table.index(['actor_id'])
    })
  }

  async down() {
    this.schema.dropTable('audit_log')
    this.schema.raw('DROP TRIGGER IF EXISTS users_notify_change ON users')
    this.schema.raw(
      `CREATE TRIGGER users_notify_change AFTER INSERT OR DELETE OR UPDATE OF email, role, plan_id
         ON users FOR EACH ROW EXECUTE FUNCTION gateway_notify_change()`
    )
    this.schema.alterTable('users', (table) => table.dropColumn('disabled_at'))
  }
}
