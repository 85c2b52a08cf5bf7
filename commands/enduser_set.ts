import { args, flags } from '@adonisjs/core/ace'
import { AdminInputError } from '#actions/admin_input_error'
import { AdminCommand } from '#services/admin_command'
import { deleteEndUser, plain, setEndUser } from '#actions/end_users'

export default class EndUserSet extends AdminCommand {
  static commandName = 'enduser:set'
  static description =
    "Block or limit one of a user's end users (the request's `user`): --block / --unblock, --limit USD a month (none: no limit), or --remove"

  @args.string({ description: 'The owner: user e-mail or id (whose keys send the end user)' })
  declare user: string

  @args.string({ description: 'The end user id as the app sends it' })
  declare endUser: string

  @flags.boolean({ description: 'Refuse its requests (403 end_user_blocked)' })
  declare block?: boolean

  @flags.boolean({ description: 'Serve its requests again' })
  declare unblock?: boolean

  @flags.string({ description: 'Monthly spend limit in USD (UTC month; 402 end_user_budget_exceeded once reached), or none' })
  declare limit?: string

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
    })
    const limit = endUser.monthly_limit === null ? 'no monthly limit' : `limit $${plain(endUser.monthly_limit)} a month`
    this.logger.success(`End user ${endUser.end_user} of ${owner.email}: ${endUser.blocked ? 'blocked' : 'allowed'}, ${limit}`)
  }
}
