import db from '@adonisjs/lucid/services/db'
import encryption from '@adonisjs/core/services/encryption'
import { cliActor, writeAudit, type Actor } from '#actions/audit'

export interface ReencryptResult {
  /** Channel keys, 2FA secrets and users' alert webhook signing secrets now saved with the current APP_KEY */
  channels: number
  twoFactorAccounts: number
  webhookSecrets: number
  /** Readable with none of APP_KEY and APP_KEY_PREVIOUS: left as they are */
  unreadableChannels: string[]
  unreadableTwoFactorAccounts: number
  unreadableWebhookSecrets: number
}

/**
 * The end of an APP_KEY rotation: every stored secret (channel keys, 2FA
 * secrets, users' alert webhook secrets) readable with APP_KEY
 * or one of APP_KEY_PREVIOUS is saved again with APP_KEY, so the previous
 * keys can be dropped. One transaction, rows locked; secrets no key reads are
 * left untouched (and counted). Channel rows changing reload the catalog by
 * their NOTIFY trigger.
 */
export async function reencryptSecrets(actor: Actor = cliActor()): Promise<ReencryptResult> {
  return db.transaction(async (trx) => {
    const result: ReencryptResult = {
      channels: 0,
      twoFactorAccounts: 0,
      webhookSecrets: 0,
      unreadableChannels: [],
      unreadableTwoFactorAccounts: 0,
      unreadableWebhookSecrets: 0,
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
    await writeAudit(trx, actor, {
      action: 'secrets.reencrypt',
      subjectType: 'settings',
      subjectId: null,
      summary:
        `secrets saved again with the current APP_KEY: ${result.channels} channel key(s), ${result.twoFactorAccounts} two-factor secret(s), ${result.webhookSecrets} alert webhook secret(s)` +
        (result.unreadableChannels.length || result.unreadableTwoFactorAccounts || result.unreadableWebhookSecrets
          ? `; unreadable, left as they were: ${result.unreadableChannels.length} channel key(s), ${result.unreadableTwoFactorAccounts} two-factor secret(s), ${result.unreadableWebhookSecrets} alert webhook secret(s)`
          : ''),
    })
    return result
  })
}
