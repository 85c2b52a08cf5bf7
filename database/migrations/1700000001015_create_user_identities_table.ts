import { BaseSchema } from '@adonisjs/lucid/schema'

/**
 * Single sign-on (app/services/sso/): an account's identities at an identity
 * provider (`oidc`, `github`), by the provider's stable subject (the id_token's
 * `sub`, GitHub's numeric user id), never by e-mail: an address can change
 * hands at the provider, the subject does not. The e-mail is the one verified
 * when the identity was linked, shown on the Security page.
 *
 * users.password becomes nullable: an account created by a sign-in through a
 * provider has no gateway password (only its identities let it in).
 */
export default class extends BaseSchema {
  async up() {
    this.schema.createTable('user_identities', (table) => {
      table.bigIncrements('id')
      table.bigInteger('user_id').notNullable().references('id').inTable('users').onDelete('CASCADE')
      table.string('provider', 32).notNullable()
      table.string('subject', 255).notNullable()
      table.string('email', 254).nullable()
      table.timestamp('created_at', { useTz: true }).notNullable().defaultTo(this.now())
      table.timestamp('last_used_at', { useTz: true }).nullable()
      table.unique(['provider', 'subject'])
      table.index(['user_id'])
    })
    this.schema.alterTable('users', (table) => {
      table.string('password').nullable().alter()
    })
  }

  async down() {
    this.schema.dropTable('user_identities')
    // Accounts without a password cannot go back under NOT NULL: they get an unusable one.
    this.defer(async (db) => {
      await db.from('users').whereNull('password').update({ password: '!sso-only' })
    })
    this.schema.alterTable('users', (table) => {
      table.string('password').notNullable().alter()
    })
  }
}
