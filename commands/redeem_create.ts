import { flags } from '@adonisjs/core/ace'
import { AdminCommand, num } from '#services/admin_command'
import { createRedemptionCodesValidator } from '#validators/admin'
import { createRedemptionCodes } from '#actions/create_redemption_codes'

export default class RedeemCreate extends AdminCommand {
  static commandName = 'redeem:create'
  static description = 'Make a batch of prepaid redemption codes; the codes are printed once, one per line, after the summary'

  @flags.string({ description: 'Batch name (to find and disable the codes later)', required: true })
  declare batch: string

  @flags.string({ description: 'USD each code adds to the balance, e.g. 10 or 2.50', required: true })
  declare perCode: string

  @flags.string({ description: 'How many codes (1 to 1000)', default: '1' })
  declare count: string

  @flags.string({ description: 'Codes expire after N days (default: never)' })
  declare expiresInDays?: string

  async execute() {
    const input = await createRedemptionCodesValidator.validate({
      batch: this.batch,
      perCode: this.perCode,
      count: num(this.count),
      expiresInDays: num(this.expiresInDays),
    })
    const made = await createRedemptionCodes({
      batch: input.batch,
      amount: input.perCode,
      count: input.count,
      expiresInDays: input.expiresInDays,
    })
    const expiry = made.expiresAt ? `, expiring ${made.expiresAt.toISODate()}` : ''
    this.logger.success(`Made ${made.codes.length} code(s) of $${input.perCode} in batch "${made.batch}"${expiry}; they are shown only once:`)
    // One per line on stdout, nothing else: scripts redirect them to a file.
    console.log(made.codes.map((c) => c.code).join('\n'))
  }
}
