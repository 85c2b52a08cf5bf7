import encryption from '@adonisjs/core/services/encryption'
import db from '@adonisjs/lucid/services/db'
import type { StoredSmtp } from '#services/mail/smtp_settings'
import type { StoredSso } from '#services/sso/sso_panel_settings'

/**
 * Secrets are stored encrypted with APP_KEY (upstream channel keys, 2FA
 * secrets, users' alert webhook secrets, the SMTP password and the SSO client
 * secrets saved in the panel). Started with another APP_KEY (a second instance whose DATA_DIR
 * generated its own, a container given a new one), the gateway cannot read
 * them, and nothing failed loudly: a channel's requests went up without
 * their key, the provider's 401s disabled the channel, and its Test button
 * failed the same way. A channel whose key is unreadable is now out of
 * rotation with this reason, the panel says so, and the start says it once.
 */
export const UNREADABLE_KEY_REASON =
  'its upstream key cannot be read with this APP_KEY (saved with another one): start with that APP_KEY, or enter the key again'

export interface UnreadableSecrets {
  /** Names of the channels whose stored upstream key this APP_KEY cannot read */
  channels: string[]
  /** Accounts with two-factor sign-in whose secret this APP_KEY cannot read */
  twoFactorAccounts: number
  /** Users whose alert webhook's signing secret this APP_KEY cannot read (their webhook posts nothing) */
  webhookAccounts: number
  /** Secrets saved in the panel this APP_KEY cannot read: 'smtp' (e-mail stops), 'oidc', 'github' (sign-in fails) */
  panel: string[]
}

export function readable(encrypted: string | null): boolean {
  return encrypted === null || encryption.decrypt(encrypted) !== null
}

export async function unreadableSecrets(): Promise<UnreadableSecrets> {
  const channels = await db.from('channels').whereNotNull('api_key_encrypted').select('name', 'api_key_encrypted').orderBy('id')
  const accounts = await db.from('users').whereNotNull('totp_secret_encrypted').select('totp_secret_encrypted')
  const hooks = await db.from('users').whereNotNull('alert_webhook_secret').select('alert_webhook_secret')
  // Loaded here, not with this module: the catalog imports it at boot, before those services may load.
  const { getSetting } = await import('#services/app_settings')
  const { SMTP_SETTING } = await import('#services/mail/smtp_settings')
  const { SSO_SETTING } = await import('#services/sso/sso_panel_settings')
  const smtp = await getSetting<StoredSmtp | null>(SMTP_SETTING, null)
  const sso = await getSetting<Partial<StoredSso> | null>(SSO_SETTING, null)
  const panel: string[] = []
  if (!readable(smtp?.passwordEncrypted ?? null)) panel.push('smtp')
  if (!readable(sso?.oidc?.secretEncrypted ?? null)) panel.push('oidc')
  if (!readable(sso?.github?.secretEncrypted ?? null)) panel.push('github')
  return {
    channels: channels.filter((row) => !readable(row.api_key_encrypted)).map((row) => String(row.name)),
    twoFactorAccounts: accounts.filter((row) => !readable(row.totp_secret_encrypted)).length,
    webhookAccounts: hooks.filter((row) => !readable(row.alert_webhook_secret)).length,
    panel,
  }
}

/** What the start says when secrets are unreadable (null when all are readable). */
export function unreadableSecretsWarning(found: UnreadableSecrets): string | null {
  const parts: string[] = []
  if (found.channels.length) {
    const names = found.channels.slice(0, 10).join(', ') + (found.channels.length > 10 ? ', ...' : '')
    parts.push(`${found.channels.length} channel key(s) (${names}: out of rotation until their key is entered again)`)
  }
  if (found.twoFactorAccounts) {
    parts.push(`${found.twoFactorAccounts} account(s)' two-factor secret (they can sign in with a recovery code, or an admin turns 2FA off for them)`)
  }
  if (found.webhookAccounts) {
    parts.push(`${found.webhookAccounts} user(s)' alert webhook signing secret (their webhook posts nothing until they save its URL again)`)
  }
  if (found.panel.length) {
    const what: Record<string, string> = { smtp: 'the SMTP password (e-mail stops)', oidc: 'the OIDC client secret (its sign-in fails)', github: 'the GitHub client secret (its sign-in fails)' }
    parts.push(`${found.panel.map((name) => what[name] ?? name).join(', ')} saved in Settings`)
  }
  if (!parts.length) return null
  return (
    `APP_KEY is not the one these secrets were saved with: ${parts.join('; ')} cannot be read. ` +
    'Start with the APP_KEY they were saved with (every instance sharing this database needs the same one), or enter them again.'
  )
}
