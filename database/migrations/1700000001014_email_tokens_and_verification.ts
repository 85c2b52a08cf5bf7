import { BaseSchema } from '@adonisjs/lucid/schema'

/**
 * E-mail: the password-reset and sign-up verification links
 * (app/services/mail/email_tokens.ts), and whether an account's address is
 * verified.
 *
 * `users.email_verified_at` defaults to now(): every account that exists at
 * the upgrade is verified, and so is any account made without asking
 * (administrators, ace, the management API); only /register with
 * verification on writes null.
 *
 * `email_tokens` holds one link per account and purpose: a new one replaces
 * the old (so an older link stops working), using one deletes it (single
 * use), and only its SHA-256 is kept. `session_epoch` is the account's epoch
 * when the link was made: a password change bumps the account's and so
 * voids a reset link made before it.
 */
export default class extends BaseSchema {
  async up() {
    this.schema.alterTable('users', (table) => {
      table.timestamp('email_verified_at', { useTz: true }).nullable().defaultTo(this.now())
    })
    this.schema.createTable('email_tokens', (table) => {
      table.bigInteger('user_id').notNullable().references('id').inTable('users').onDelete('CASCADE')
      table.string('purpose', 24).notNullable()
      table.string('token_hash', 64).notNullable().unique()
      table.integer('session_epoch').notNullable()
      table.timestamp('expires_at', { useTz: true }).notNullable()
      table.timestamp('created_at', { useTz: true }).notNullable().defaultTo(this.now())
      table.primary(['user_id', 'purpose'])
    })
  }

  async down() {
    this.schema.dropTable('email_tokens')
    this.schema.alterTable('users', (table) => {
      table.dropColumn('email_verified_at')
    })
  }
}
