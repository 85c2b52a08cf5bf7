import { AdminCommand } from '#services/admin_command'
import { reencryptSecrets } from '#actions/reencrypt_secrets'

export default class SecretsReencrypt extends AdminCommand {
  static commandName = 'secrets:reencrypt'
  static description =
    'After an APP_KEY rotation (new APP_KEY, the old one in APP_KEY_PREVIOUS): save every channel key, 2FA secret and alert webhook secret again with APP_KEY'

  async execute() {
    const result = await reencryptSecrets()
    this.logger.success(
      `Saved again with the current APP_KEY: ${result.channels} channel key(s), ${result.twoFactorAccounts} two-factor secret(s), ${result.webhookSecrets} alert webhook secret(s)`
    )
    if (result.unreadableChannels.length || result.unreadableTwoFactorAccounts || result.unreadableWebhookSecrets) {
      this.logger.warning(
        `Readable with no key given (APP_KEY, APP_KEY_PREVIOUS), left as they were: ` +
          `${result.unreadableChannels.length} channel key(s)${result.unreadableChannels.length ? ` (${result.unreadableChannels.join(', ')})` : ''}, ` +
          `${result.unreadableTwoFactorAccounts} two-factor secret(s), ${result.unreadableWebhookSecrets} alert webhook secret(s)` +
          (result.unreadableWebhookSecrets ? ' (their users save the webhook URL again for a new secret)' : '')
      )
      this.exitCode = 1
    }
  }
}
