import { flags } from '@adonisjs/core/ace'
import { AdminCommand } from '#services/admin_command'
import { AdminInputError } from '#actions/admin_input_error'
import { resetTwoFactor } from '#actions/disable_two_factor'

export default class UserTwoFactorReset extends AdminCommand {
  static commandName = 'user:2fa-reset'
  static description = 'Turn off two-factor sign-in for a user who lost their device (they sign in with the password, and can set it up again)'

  @flags.string({ description: 'E-mail (or id) of the user', required: true })
  declare email: string

  async execute() {
    if (!this.email?.trim()) throw new AdminInputError('--email is required')
    const user = await resetTwoFactor(this.email.trim())
    this.logger.success(`Two-factor sign-in of ${user.email} is off; the secret and recovery codes are gone`)
  }
}
