import { flags } from '@adonisjs/core/ace'
import { AdminCommand } from '#services/admin_command'
import { referralTerms, setReferralTerms } from '#actions/referrals'
import { cliActor } from '#actions/audit'

export default class ReferralSet extends AdminCommand {
  static commandName = 'referral:set'
  static description =
    "Referral rewards: USD paid to the inviter at the invitee's first top-up, and to the invitee at sign-up (0 and 0: off)"

  @flags.string({ description: "USD paid to the inviter when the invitee first adds funds (0: none)" })
  declare inviter?: string

  @flags.string({ description: 'USD on the balance of whoever signs up with a link (0: none)' })
  declare invitee?: string

  async execute() {
    const current = await referralTerms()
    const terms = await setReferralTerms(
      { inviterCredit: this.inviter ?? current.inviterCredit, inviteeCredit: this.invitee ?? current.inviteeCredit },
      cliActor()
    )
    this.logger.success(`Referral rewards: inviter ${terms.inviterCredit} USD at the first top-up, invitee ${terms.inviteeCredit} USD at sign-up`)
  }
}
