import { flags } from '@adonisjs/core/ace'
import { AdminCommand } from '#services/admin_command'
import { AdminInputError } from '#actions/admin_input_error'
import { disableRedemptionCodes } from '#actions/disable_redemption_code'

export default class RedeemDisable extends AdminCommand {
  static commandName = 'redeem:disable'
  static description = 'Disable unused redemption codes: one (--id) or every unused code of a batch (--batch)'

  @flags.string({ description: 'Id of one code (see the panel\'s Redemption codes page)' })
  declare id?: string

  @flags.string({ description: 'Batch name: disables all its unused codes' })
  declare batch?: string

  async execute() {
    if (!this.id === !this.batch) throw new AdminInputError('Give either --id or --batch')
    if (this.id && !/^\d+$/.test(this.id)) throw new AdminInputError('--id must be a code\'s number')
    const count = await disableRedemptionCodes(this.id ? { id: Number(this.id) } : { batch: this.batch!.trim() })
    this.logger.success(`Disabled ${count} unused code(s)`)
  }
}
