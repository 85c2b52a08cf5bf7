import type { HttpContext } from '@adonisjs/core/http'
import logger from '@adonisjs/core/services/logger'
import { readRawBody } from '#gateway/http/raw_body'
import { GatewayError } from '#exceptions/gateway_error'
import { failCheckoutSession, settleCheckoutSession } from '#actions/settle_payment'
import { stripeSettings } from '#services/payments/stripe_settings'
import { stripeSignatureProblem } from '#services/payments/stripe_signature'
import type { CheckoutSession } from '#services/payments/stripe_client'

/** Stripe's events are a few KB; anything far larger is not one. */
const BODY_LIMIT = 512 * 1024

/** The events a card top-up listens to (set them on the endpoint in Stripe's dashboard). */
const SETTLING = new Set(['checkout.session.completed', 'checkout.session.async_payment_succeeded', 'checkout.session.expired'])

export default class StripeWebhookController {
  /**
   * POST /webhooks/stripe: Stripe tells of a Checkout Session. The signature
   * is checked over the body's exact bytes (no body parser on this route).
   * 2xx tells Stripe to stop retrying: given for anything handled or not
   * ours; a database failure answers 500 so Stripe sends the event again.
   */
  async handle({ request, response }: HttpContext) {
    const settings = stripeSettings()
    if (!settings?.webhookSecret) {
      return response.status(404).json({ error: { message: 'Stripe webhooks are not configured on this gateway (STRIPE_WEBHOOK_SECRET)', type: 'invalid_request_error', code: 'not_configured' } })
    }
    let raw: Buffer
    try {
      raw = await readRawBody(request.request, response.response, BODY_LIMIT)
    } catch (error) {
      if (!(error instanceof GatewayError)) throw error
      return response.status(error.status).json({ error: { message: error.message, type: 'invalid_request_error', code: error.code } })
    }
    const problem = stripeSignatureProblem(raw, request.header('stripe-signature'), settings.webhookSecret)
    if (problem) {
      logger.warn({ problem }, 'stripe webhook refused')
      return response.status(400).json({ error: { message: `Invalid Stripe signature: ${problem}`, type: 'invalid_request_error', code: 'invalid_signature' } })
    }
    let event: { id?: string; type?: string; data?: { object?: CheckoutSession } }
    try {
      event = JSON.parse(raw.toString('utf8'))
    } catch {
      return response.status(400).json({ error: { message: 'The event is not JSON', type: 'invalid_request_error', code: 'invalid_json' } })
    }
    const session = event.data?.object
    if (!event.type || !session || typeof session.id !== 'string' || !session.id.startsWith('cs_')) {
      return response.json({ received: true, handled: false })
    }
    if (SETTLING.has(event.type)) {
      const { outcome, payment } = await settleCheckoutSession(session)
      if (outcome === 'unknown') logger.info({ event: event.id, session: session.id }, 'stripe webhook: a session this gateway did not make')
      return response.json({ received: true, handled: true, outcome, payment: payment?.id ?? null })
    }
    if (event.type === 'checkout.session.async_payment_failed') {
      const payment = await failCheckoutSession(session, 'The payment method failed after checkout (Stripe: async_payment_failed)')
      return response.json({ received: true, handled: true, outcome: payment ? 'failed' : 'unknown', payment: payment?.id ?? null })
    }
    return response.json({ received: true, handled: false })
  }
}
