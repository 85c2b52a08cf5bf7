import type { HttpContext } from '@adonisjs/core/http'
import logger from '@adonisjs/core/services/logger'
import Payment from '#models/payment'
import { startCheckout } from '#actions/start_checkout'
import { syncPayment } from '#actions/settle_payment'
import { PortalInputError } from '#actions/portal_input_error'
import { checkoutValidator } from '#validators/portal'
import { flashInputError } from '#services/form_errors'
import { localeFormatters } from '#services/locale'
import { StripeError } from '#services/payments/stripe_client'
import { requestBaseUrl } from '#controllers/pages/docs_controller'
import env from '#start/env'

export default class CheckoutController {
  /** POST /dashboard/billing/checkout: a card top-up; the user goes on to Stripe's page. */
  async store(ctx: HttpContext) {
    const { request, response, auth, i18n } = ctx
    const user = auth.use('web').getUserOrFail()
    const input = await request.validateUsing(checkoutValidator, { messagesProvider: i18n.createMessagesProvider() })
    try {
      // Stripe sends the user back to the public address: APP_URL when set, else the one they reached us at.
      const siteBase = env.get('APP_URL')?.replace(/\/+$/, '') || requestBaseUrl(request)
      const { url } = await startCheckout(user, Number(input.amount), siteBase)
      return response.redirect(url)
    } catch (error) {
      if (!(error instanceof PortalInputError)) throw error
      flashInputError(ctx, error)
      return response.redirect('/dashboard/billing')
    }
  }

  /**
   * GET /dashboard/billing/checkout/return?session_id=cs_...: Stripe sends the
   * user back here after paying. The session is read from Stripe at once, so
   * the balance is right when the page shows, without waiting for the webhook
   * (whichever comes first credits; the other finds it paid).
   */
  async return(ctx: HttpContext) {
    const { request, response, session, auth, i18n } = ctx
    const user = auth.use('web').getUserOrFail()
    const sessionId = String(request.input('session_id') ?? '')
    const payment = sessionId ? await Payment.query().where('session_id', sessionId).where('user_id', user.id).first() : null
    if (!payment) {
      session.flash('error', i18n.t('errors.form.checkout_unknown'))
      return response.redirect('/dashboard/billing')
    }
    const money = localeFormatters(i18n).money(payment.amount)
    try {
      const { outcome } = await syncPayment(payment)
      if (outcome === 'credited' || outcome === 'already_paid') session.flash('success', i18n.t('portal.billing.paid', { amount: money }))
      else if (outcome === 'expired' || outcome === 'failed' || outcome === 'mismatch') session.flash('error', i18n.t('portal.billing.payment_failed', { amount: money }))
      else session.flash('success', i18n.t('portal.billing.payment_processing', { amount: money }))
    } catch (error) {
      if (!(error instanceof StripeError)) throw error
      // Stripe is slow or away: the webhook (or the next visit) settles it.
      logger.warn({ err: error, paymentId: payment.id }, 'stripe: session could not be read on return')
      session.flash('success', i18n.t('portal.billing.payment_processing', { amount: money }))
    }
    return response.redirect('/dashboard/billing')
  }
}
