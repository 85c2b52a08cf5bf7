import { BaseSchema } from '@adonisjs/lucid/schema'

/**
 * An OIDC identity is bound to the issuer that vouched for it: `sub` is
 * unique only within one issuer (OpenID Connect Core 2), so once the
 * operator points the OIDC provider at another issuer (Settings > Sign-in,
 * or OIDC_ISSUER), that issuer's person with the same `sub` ("1", "admin",
 * an e-mail-like id) must not sign in to the account linked under the old
 * one. Identities are now unique per (provider, issuer, subject); GitHub's
 * (one github.com, numeric ids) keep an empty issuer.
 *
 * Existing OIDC rows were linked under the issuer in force now: the
 * environment's when it names the provider, else the panel's saved one.
 * With neither (OIDC switched off before the upgrade), they stay unbound
 * ('') and the first issuer they sign in through afterwards takes them
 * (sso_accounts.ts).
 */
export default class extends BaseSchema {
  async up() {
    this.schema.alterTable('user_identities', (table) => {
      table.string('issuer', 300).notNullable().defaultTo('')
      table.dropUnique(['provider', 'subject'])
      table.unique(['provider', 'issuer', 'subject'])
    })
    this.defer(async (db) => {
      const issuer = await issuerInForce(db)
      if (issuer) await db.from('user_identities').where('provider', 'oidc').where('issuer', '').update({ issuer })
    })
  }

  async down() {
    this.schema.alterTable('user_identities', (table) => {
      table.dropUnique(['provider', 'issuer', 'subject'])
    })
    // Back to one identity per (provider, subject): the oldest of each kept.
    this.defer(async (db) => {
      await db.rawQuery(
        `DELETE FROM user_identities a USING user_identities b
          WHERE a.provider = b.provider AND a.subject = b.subject AND a.id > b.id`
      )
    })
    this.schema.alterTable('user_identities', (table) => {
      table.unique(['provider', 'subject'])
      table.dropColumn('issuer')
    })
  }
}

/** As sso_settings.ts decides it: the environment wins when it names the provider, else the panel's saved issuer. */
async function issuerInForce(db: any): Promise<string | null> {
  const trim = (text: unknown) => (typeof text === 'string' ? text.trim().replace(/\/+$/, '') : '')
  if (process.env.OIDC_ISSUER?.trim() || process.env.OIDC_CLIENT_ID?.trim()) return trim(process.env.OIDC_ISSUER) || null
  const row = await db.from('app_settings').where('key', 'sso').first()
  const value = typeof row?.value === 'string' ? JSON.parse(row.value) : row?.value
  return trim(value?.oidc?.issuer) || null
}
