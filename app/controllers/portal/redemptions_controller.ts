import type { HttpContext } from '@adonisjs/core/http'
import { redeemCode } from '#actions/redeem_code'
import { PortalInputError } from '#actions/portal_input_error'
import { redeemCodeValidator } from '#validators/portal'
import { throttledRedeem } from '#services/form_throttle'
import { flashInputError } from '#services/form_errors'
import { portalActor } from '#services/portal_actor'
import { localeFormatters } from '#services/locale'

export default class RedemptionsController {
  /** POST /dashboard/billing/redeem: a prepaid code becomes a top-up (failed tries throttled per user). */
  async store(ctx: HttpContext) {
    const { request, response, session, auth, i18n } = ctx
    const user = auth.use('web').getUserOrFail()
    const input = await request.validateUsing(redeemCodeValidator, { messagesProvider: i18n.createMessagesProvider() })
    try {
      const { wait, result } = await throttledRedeem(user.id, () => redeemCode(user.id, input.code, portalActor(ctx)))
      if (wait > 0) {
        response.header('retry-after', String(wait))
        session.flash('error', i18n.t('errors.form.throttled', { seconds: wait }))
        return response.redirect('/dashboard/billing')
      }
      session.flash(
        'success',
        i18n.t('portal.billing.redeemed', { amount: localeFormatters(i18n).money(result!.amount), code: result!.hint })
      )
      return response.redirect('/dashboard/billing')
    } catch (error) {
      if (error instanceof PortalInputError) {
        flashInputError(ctx, error)
        return response.redirect('/dashboard/billing')
      }
      throw error
    }
  }
}
