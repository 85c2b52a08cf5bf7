import type { HttpContext } from '@adonisjs/core/http'
import { lowBalanceValidator } from '#validators/portal'
import { PortalInputError } from '#actions/portal_input_error'
import { flashInputError } from '#services/form_errors'
import { checkbox } from '#controllers/admin/panel'
import { LOW_BALANCE_MAX, parseThreshold, setLowBalanceThreshold } from '#services/mail/low_balance_notice'
import { mailConfigured } from '#services/mail/smtp_settings'

export default class LowBalanceController {
  /** POST /dashboard/billing/low-balance: the "e-mail me when my balance falls below" setting (off: unticked). */
  async update(ctx: HttpContext) {
    const { request, response, session, auth, i18n } = ctx
    const user = auth.use('web').getUserOrFail()
    const input = await request.validateUsing(lowBalanceValidator, { messagesProvider: i18n.createMessagesProvider() })
    const enabled = checkbox(input.low_balance_on)
    const threshold = enabled ? parseThreshold(input.low_balance ?? '') : ''
    if (threshold === null || (enabled && threshold === '')) {
      flashInputError(ctx, new PortalInputError('low_balance_amount', 'low_balance', { max: LOW_BALANCE_MAX }))
      return response.redirect('/dashboard/billing#low-balance')
    }
    await setLowBalanceThreshold(user.id, threshold, i18n.locale)
    // Without e-mail the notice goes to the user's webhook only: the words say so.
    const saved = (await mailConfigured()) ? 'portal.billing.low_balance_saved' : 'portal.billing.low_balance_saved_webhook'
    session.flash('success', i18n.t(threshold === '' ? 'portal.billing.low_balance_off' : saved))
    return response.redirect('/dashboard/billing#low-balance')
  }
}
