import db from '@adonisjs/lucid/services/db'
import type { TransactionClientContract } from '@adonisjs/lucid/types/database'
import encryption from '@adonisjs/core/services/encryption'
import { cliActor, writeAudit, type Actor } from '#actions/audit'
import { getSetting, putSetting } from '#services/app_settings'
import { SMTP_SETTING, type StoredSmtp } from '#services/mail/smtp_settings'
import { SSO_SETTING, type StoredSso } from '#services/sso/sso_panel_settings'

export interface ReencryptResult {
  /** Secrets now saved with the current APP_KEY */
  channels: number
  twoFactorAccounts: number
  webhookSecrets: number
  /** The SMTP password (Settings > E-mail) and the OIDC / GitHub client secrets (Settings > Sign-in) */
  panelSecrets: number
  /** Readable with none of APP_KEY and APP_KEY_PREVIOUS: left as they are */
  unreadableChannels: string[]
  unreadableTwoFactorAccounts: number
  unreadableWebhookSecrets: number
  /** Which panel secrets: 'smtp', 'oidc', 'github' (names, never the secret) */
  unreadablePanelSecrets: string[]
}


/** The secret decrypted (null: no key given reads it; a throw counts as unreadable too). */
function decrypted(encrypted: string): string | null {
  try {
    const clear = encryption.decrypt<string>(encrypted)
    return typeof clear === 'string' ? clear : null
  } catch {
    return null
  }
}

/**
 * The secrets the panel keeps in app_settings (the SMTP password, the SSO
 * client secrets), saved again in place. Their rows are locked first so a
 * save from the panel meanwhile waits instead of being overwritten.
 */
async function reencryptPanelSecrets(trx: TransactionClientContract, result: ReencryptResult) {
  await trx.from('app_settings').whereIn('key', [SMTP_SETTING, SSO_SETTING]).forUpdate().select('key')
  const again = (encrypted: string, name: string): string => {
    const clear = decrypted(encrypted)
    if (clear === null) {
      result.unreadablePanelSecrets.push(name)
      return encrypted
    }
    result.panelSecrets++
    return encryption.encrypt(clear)
  }
  const smtp = await getSetting<StoredSmtp | null>(SMTP_SETTING, null, trx)
  if (smtp?.passwordEncrypted) {
    await putSetting(SMTP_SETTING, { ...smtp, passwordEncrypted: again(smtp.passwordEncrypted, 'smtp') }, trx)
  }
  const sso = await getSetting<Partial<StoredSso> | null>(SSO_SETTING, null, trx)
  if (sso && (sso.oidc?.secretEncrypted || sso.github?.secretEncrypted)) {
    const next: Partial<StoredSso> = { ...sso }
    if (sso.oidc?.secretEncrypted) next.oidc = { ...sso.oidc, secretEncrypted: again(sso.oidc.secretEncrypted, 'oidc') }
    if (sso.github?.secretEncrypted) next.github = { ...sso.github, secretEncrypted: again(sso.github.secretEncrypted, 'github') }
    // The NOTIFY trigger on app_settings makes every running instance read the new secrets.
    await putSetting(SSO_SETTING, next, trx)
  }
}

/**
 * The end of an APP_KEY rotation: every stored secret (channel keys, 2FA
 * secrets, users' alert webhook secrets, the panel's SMTP password and SSO
 * client secrets) readable with APP_KEY or one of APP_KEY_PREVIOUS is saved
 * again with APP_KEY, so the previous keys can be dropped. One transaction,
 * rows locked; secrets no key reads are left untouched (and counted).
 * Channel rows changing reload the catalog by their NOTIFY trigger.
 */
export async function reencryptSecrets(actor: Actor = cliActor()): Promise<ReencryptResult> {
  return db.transaction(async (trx) => {
    const result: ReencryptResult = {
      channels: 0,
      twoFactorAccounts: 0,
      webhookSecrets: 0,
      panelSecrets: 0,
      unreadableChannels: [],
      unreadableTwoFactorAccounts: 0,
      unreadableWebhookSecrets: 0,
      unreadablePanelSecrets: [],
    }
    const channels = await trx.from('channels').whereNotNull('api_key_encrypted').forUpdate().select('id', 'name', 'api_key_encrypted')
    for (const row of channels) {
      const clear = encryption.decrypt<string>(row.api_key_encrypted)
      if (clear === null) {
        result.unreadableChannels.push(row.name)
        continue
      }
      await trx.from('channels').where('id', row.id).update({ api_key_encrypted: encryption.encrypt(clear) })
      result.channels++
    }
    const accounts = await trx.from('users').whereNotNull('totp_secret_encrypted').forUpdate().select('id', 'totp_secret_encrypted')
    for (const row of accounts) {
      const clear = encryption.decrypt<string>(row.totp_secret_encrypted)
      if (clear === null) {
        result.unreadableTwoFactorAccounts++
        continue
      }
      await trx.from('users').where('id', row.id).update({ totp_secret_encrypted: encryption.encrypt(clear) })
      result.twoFactorAccounts++
    }
    // The users' alert webhook secrets (user_webhook.ts): left with the old key, every post failed once it was dropped.
    const hooks = await trx.from('users').whereNotNull('alert_webhook_secret').forUpdate().select('id', 'alert_webhook_secret')
    for (const row of hooks) {
      const clear = encryption.decrypt<string>(row.alert_webhook_secret)
      if (clear === null) {
        result.unreadableWebhookSecrets++
        continue
      }
      await trx.from('users').where('id', row.id).update({ alert_webhook_secret: encryption.encrypt(clear) })
      result.webhookSecrets++
    }
    // Left with the old key, e-mail stopped (the password unreadable) and SSO sign-in failed once it was dropped.
    await reencryptPanelSecrets(trx, result)
    await writeAudit(trx, actor, {
      action: 'secrets.reencrypt',
      subjectType: 'settings',
      subjectId: null,
      summary: `secrets saved again with the current APP_KEY: ${savedSummary(result)}` + (unreadableCount(result) ? `; unreadable, left as they were: ${unreadableSummary(result)}` : ''),
    })
    return result
  })
}

export function savedSummary(result: ReencryptResult): string {
  return (
    `${result.channels} channel key(s), ${result.twoFactorAccounts} two-factor secret(s), ${result.webhookSecrets} alert webhook secret(s), ` +
    `${result.panelSecrets} panel secret(s) (SMTP password, SSO client secrets)`
  )
}

export function unreadableCount(result: ReencryptResult): number {
  return result.unreadableChannels.length + result.unreadableTwoFactorAccounts + result.unreadableWebhookSecrets + result.unreadablePanelSecrets.length
}

/** `withNames`: the channels' names too (the command says them; the audit row counts only, as before). */
export function unreadableSummary(result: ReencryptResult, withNames = false): string {
  const names = withNames && result.unreadableChannels.length ? ` (${result.unreadableChannels.join(', ')})` : ''
  return (
    `${result.unreadableChannels.length} channel key(s)${names}, ${result.unreadableTwoFactorAccounts} two-factor secret(s), ` +
    `${result.unreadableWebhookSecrets} alert webhook secret(s), ${result.unreadablePanelSecrets.length} panel secret(s)` +
    (result.unreadablePanelSecrets.length ? ` (${result.unreadablePanelSecrets.join(', ')})` : '')
  )
}
