import { args, flags } from '@adonisjs/core/ace'
import { AdminInputError } from '#actions/admin_input_error'
import { AdminCommand } from '#services/admin_command'
import { deleteEndUser, plain, setEndUser } from '#actions/end_users'

export default class EndUserSet extends AdminCommand {
  static commandName = 'enduser:set'
  static description =
    "Block or limit one of a user's end users (the request's `user`): --block / --unblock, --limit USD (none: no limit) per --period, --rpm / --tpm, --budget (a shared budget), or --remove"

  @args.string({ description: 'The owner: user e-mail or id (whose keys send the end user)' })
  declare user: string

  @args.string({ description: 'The end user id as the app sends it' })
  declare endUser: string

  @flags.boolean({ description: 'Refuse its requests (403 end_user_blocked)' })
  declare block?: boolean

  @flags.boolean({ description: 'Serve its requests again' })
  declare unblock?: boolean

  @flags.string({ description: 'Spend limit in USD per --period (402 end_user_budget_exceeded once reached), or none' })
  declare limit?: string

  @flags.string({ description: 'The limit resets each UTC day, week or month (a new end user: month), or never' })
  declare period?: string

  @flags.string({ description: 'Requests a minute (429 once spent), or none' })
  declare rpm?: string

  @flags.string({ description: 'Tokens a minute (429 once spent), or none' })
  declare tpm?: string

  @flags.string({ description: 'Link to a shared budget by its budget_id (its limits apply), or none to unlink' })
  declare budget?: string

  @flags.boolean({ description: 'Remove the settings of this end user (its usage stays)' })
  declare remove?: boolean

  async execute() {
    if (this.remove) {
      await deleteEndUser(this.user, this.endUser)
      this.logger.success(`Removed the settings of end user ${this.endUser}`)
      return
    }
    if (this.block && this.unblock) throw new AdminInputError('Give --block or --unblock, not both')
    const { owner, endUser } = await setEndUser({
      userRef: this.user,
      endUser: this.endUser,
      blocked: this.block ? true : this.unblock ? false : undefined,
      monthlyLimit: this.limit === 'none' ? null : this.limit,
      // Checked by setEndUser's validator (a period name; whole numbers as whole_number_field.ts reads them).
      budgetPeriod: this.period === undefined ? undefined : this.period === 'never' ? null : (this.period as any),
      rpm: this.rpm === undefined ? undefined : this.rpm === 'none' ? null : (this.rpm as any),
      tpm: this.tpm === undefined ? undefined : this.tpm === 'none' ? null : (this.tpm as any),
      budgetId: this.budget === undefined ? undefined : this.budget === 'none' ? null : this.budget,
    })
    const per = endUser.budget_period === null ? 'in all' : `a ${endUser.budget_period}`
    const limit =
      endUser.budget_id !== null
        ? `linked to budget ${this.budget}`
        : endUser.monthly_limit === null
          ? 'no limit'
          : `limit $${plain(endUser.monthly_limit)} ${per}`
    this.logger.success(`End user ${endUser.end_user} of ${owner.email}: ${endUser.blocked ? 'blocked' : 'allowed'}, ${limit}`)
  }
}
