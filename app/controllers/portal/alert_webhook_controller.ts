import type { HttpContext } from '@adonisjs/core/http'
import { alertWebhookValidator } from '#validators/portal'
import { PortalInputError } from '#actions/portal_input_error'
import { flashInputError } from '#services/form_errors'
import { WEBHOOK_URL_MAX, parseWebhookUrl, setUserWebhook } from '#services/user_webhook'
import { renderBilling } from '#controllers/portal/billing_controller'

export default class AlertWebhookController {
  /**
   * POST /dashboard/billing/webhook: the user's own alert webhook (empty:
   * removed). A saved URL gets a new signing secret, shown in this answer
   * only (the page, not a redirect: the secret never goes in a cookie).
   */
  async update(ctx: HttpContext) {
    const { request, response, session, auth, i18n } = ctx
    const user = auth.use('web').getUserOrFail()
    const input = await request.validateUsing(alertWebhookValidator, { messagesProvider: i18n.createMessagesProvider() })
    const url = parseWebhookUrl(input.webhook_url ?? '')
    if (url === null) {
      flashInputError(ctx, new PortalInputError('webhook_url', 'webhook_url', { max: WEBHOOK_URL_MAX }))
      return response.redirect('/dashboard/billing#alert-webhook')
    }
    const { secret } = await setUserWebhook(user.id, url)
    if (secret === null) {
      session.flash('success', i18n.t('portal.billing.webhook_removed'))
      return response.redirect('/dashboard/billing#alert-webhook')
    }
    return renderBilling(ctx, secret)
  }
}
