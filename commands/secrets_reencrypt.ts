import { AdminCommand } from '#services/admin_command'
import { reencryptSecrets, savedSummary, unreadableCount, unreadableSummary } from '#actions/reencrypt_secrets'

export default class SecretsReencrypt extends AdminCommand {
  static commandName = 'secrets:reencrypt'
  static description =
    'After an APP_KEY rotation (new APP_KEY, the old one in APP_KEY_PREVIOUS): save every channel key, 2FA secret, alert webhook secret, SMTP password and SSO client secret again with APP_KEY'

  async execute() {
    const result = await reencryptSecrets()
    this.logger.success(`Saved again with the current APP_KEY: ${savedSummary(result)}`)
    if (unreadableCount(result)) {
      this.logger.warning(
        `Readable with no key given (APP_KEY, APP_KEY_PREVIOUS), left as they were: ${unreadableSummary(result, true)}` +
          (result.unreadableWebhookSecrets ? ' (their users save the webhook URL again for a new secret)' : '') +
          (result.unreadablePanelSecrets.length ? '; type those again in Settings > E-mail / Sign-in' : '')
      )
      this.exitCode = 1
    }
  }
}
