import { AdminCommand } from '#services/admin_command'
import { reencryptSecrets } from '#actions/reencrypt_secrets'

export default class SecretsReencrypt extends AdminCommand {
  static commandName = 'secrets:reencrypt'
  static description =
    'After an APP_KEY rotation (new APP_KEY, the old one in APP_KEY_PREVIOUS): save every channel key and 2FA secret again with APP_KEY'

  async execute() {
    const result = await reencryptSecrets()
    this.logger.success(
      `Saved again with the current APP_KEY: ${result.channels} channel key(s), ${result.twoFactorAccounts} two-factor secret(s)`
    )
    if (result.unreadableChannels.length || result.unreadableTwoFactorAccounts) {
      this.logger.warning(
        `Readable with no key given (APP_KEY, APP_KEY_PREVIOUS), left as they were: ` +
          `${result.unreadableChannels.length} channel key(s)${result.unreadableChannels.length ? ` (${result.unreadableChannels.join(', ')})` : ''}, ` +
          `${result.unreadableTwoFactorAccounts} two-factor secret(s)`
      )
      this.exitCode = 1
    }
  }
}
