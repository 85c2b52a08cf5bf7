import { BaseSchema } from '@adonisjs/lucid/schema'

/**
 * Self-service registration: the plan new users get (at most one plan is the
 * default), and operator settings edited from the admin panel (registration
 * open or closed).
 */
export default class extends BaseSchema {
  async up() {
    this.schema.alterTable('plans', (table) => {
      table.boolean('is_default').notNullable().defaultTo(false)
    })
    this.schema.raw('CREATE UNIQUE INDEX plans_one_default ON plans (is_default) WHERE is_default')
    this.schema.createTable('app_settings', (table) => {
      table.string('key', 64).primary()
      table.jsonb('value').notNullable()
      table.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(this.now())
    })
  }

  async down() {
    this.schema.dropTable('app_settings')
    this.schema.raw('DROP INDEX IF EXISTS plans_one_default')
    this.schema.alterTable('plans', (table) => table.dropColumn('is_default'))
  }
}
