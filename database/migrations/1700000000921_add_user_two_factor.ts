import { BaseSchema } from '@adonisjs/lucid/schema'

/**
 * Two-factor sign-in with an authenticator app (TOTP, RFC 6238). The secret
 * is encrypted with APP_KEY like upstream channel keys; it is written when
 * enrolment starts and counts only once `totp_enabled_at` is set (the user
 * confirmed a code). `totp_last_step` is the last time step whose code was
 * accepted: a code is taken only for a later step (replay protection), in
 * one guarded UPDATE. Recovery codes are kept as SHA-256 hashes (a jsonb
 * array of hex strings); using one removes it.
 *
 * None of these columns is in the users trigger's list: the API's caches
 * never read them, so enrolling does not invalidate anything.
 */
export default class extends BaseSchema {
  protected tableName = 'users'

  async up() {
    this.schema.alterTable(this.tableName, (table) => {
      table.text('totp_secret_encrypted').nullable()
      table.timestamp('totp_enabled_at', { useTz: true }).nullable()
      table.bigInteger('totp_last_step').nullable()
      table.jsonb('totp_recovery_codes').notNullable().defaultTo(this.raw(`'[]'::jsonb`))
    })
  }

  async down() {
    this.schema.alterTable(this.tableName, (table) => {
      table.dropColumn('totp_secret_encrypted')
      table.dropColumn('totp_enabled_at')
      table.dropColumn('totp_last_step')
      table.dropColumn('totp_recovery_codes')
    })
  }
}
