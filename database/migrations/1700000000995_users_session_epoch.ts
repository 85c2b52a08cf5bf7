import { BaseSchema } from '@adonisjs/lucid/schema'

/**
 * Sessions live in the signed cookie (no server-side store to delete), so a
 * password change could not end the other sessions of the account: one
 * stolen or left open elsewhere stayed valid. Each session now carries the
 * account's `session_epoch` from its sign-in; a password change or reset
 * bumps it, and a session whose epoch is older is signed out at its next
 * request (app/services/session_epoch.ts). Sessions made before this
 * migration carry none and count as epoch 0: nobody is signed out by it.
 *
 * Not in the users trigger's list: the API's caches never read it.
 */
export default class extends BaseSchema {
  protected tableName = 'users'

  async up() {
    this.schema.alterTable(this.tableName, (table) => {
      table.integer('session_epoch').notNullable().defaultTo(0)
    })
  }

  async down() {
    this.schema.alterTable(this.tableName, (table) => {
      table.dropColumn('session_epoch')
    })
  }
}
