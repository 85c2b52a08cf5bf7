import { flags } from '@adonisjs/core/ace'
import { AdminCommand } from '#services/admin_command'
import { topUpValidator } from '#validators/admin'
import { postLedgerEntry } from '#actions/post_ledger_entry'
import { displayUsd } from '#gateway/metering/money'

export default class BalanceTopup extends AdminCommand {
  static commandName = 'balance:topup'
  static description = "Add USD to a user's prepaid balance (a ledger top-up entry)"

  @flags.string({ description: 'User email or id', required: true })
  declare user: string

  @flags.string({ description: 'Amount in USD, e.g. 10 or 2.50', required: true })
  declare amount: string

  @flags.string({ description: 'Note stored on the ledger entry' })
  declare note?: string

  async execute() {
    const input = await topUpValidator.validate({ user: this.user, amount: this.amount, note: this.note })
    const user = await postLedgerEntry({
      userRef: input.user,
      kind: 'topup',
      amount: input.amount,
      note: input.note,
    })
    this.logger.success(`Topped up ${user.email} by $${input.amount}; balance $${displayUsd(user.balance)}`)
  }
}
