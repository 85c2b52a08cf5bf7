import logger from '@adonisjs/core/services/logger'
import Payment from '#models/payment'
import { PortalInputError } from '#actions/portal_input_error'
import { stripeSettings } from '#services/payments/stripe_settings'
import { createCheckoutSession, StripeError } from '#services/payments/stripe_client'

/** A user may have this many card payments opened and not finished within PENDING_WINDOW_MS. */
const MAX_RECENT_PENDING = 5
const PENDING_WINDOW_MS = 10 * 60_000

/**
 * A user asks to add `amountUsd` to their balance by card: a `payments` row
 * (pending) and a Stripe Checkout Session for exactly that amount, in USD.
 * Returns the session's page to send the user to. Nothing is credited here:
 * settleCheckoutSession does that once Stripe says the session is paid.
 *
 * `siteBase` is the address the user reached the portal at: Stripe sends
 * them back to `<siteBase>/dashboard/billing/checkout/return`.
 */
export async function startCheckout(user: { id: number; email: string }, amountUsd: number, siteBase: string) {
  const settings = stripeSettings()
  if (!settings) throw new PortalInputError('checkout_off')
  const cents = Math.round(amountUsd * 100)
  if (!Number.isFinite(amountUsd) || Math.abs(amountUsd * 100 - cents) > 1e-6) {
    throw new PortalInputError('checkout_amount_cents', 'amount')
  }
  if (amountUsd < settings.minUsd || amountUsd > settings.maxUsd) {
    throw new PortalInputError('checkout_amount_range', 'amount', { min: settings.minUsd, max: settings.maxUsd })
  }
  const recent = await Payment.query()
    .where('user_id', user.id)
    .where('status', 'pending')
    .where('created_at', '>', new Date(Date.now() - PENDING_WINDOW_MS))
    .count('* as n')
    .first()
  if (Number(recent?.$extras.n ?? 0) >= MAX_RECENT_PENDING) throw new PortalInputError('checkout_too_many')

  const payment = await Payment.create({ userId: user.id, provider: 'stripe', amount: (cents / 100).toFixed(2), amountCents: cents, currency: 'usd', status: 'pending' })
  try {
    const session = await createCheckoutSession(
      settings,
      {
        'mode': 'payment',
        'line_items[0][quantity]': 1,
        'line_items[0][price_data][currency]': 'usd',
        'line_items[0][price_data][unit_amount]': cents,
        'line_items[0][price_data][product_data][name]': 'Balance top-up',
        'client_reference_id': String(user.id),
        'customer_email': user.email,
        'metadata[payment_id]': String(payment.id),
        'metadata[user_id]': String(user.id),
        'success_url': `${siteBase}/dashboard/billing/checkout/return?session_id={CHECKOUT_SESSION_ID}`,
        'cancel_url': `${siteBase}/dashboard/billing?checkout=cancelled`,
      },
      // A retried call (a timeout after Stripe made the session) gets the same session back.
      `gateway-payment-${payment.id}-${payment.createdAt.toMillis()}`
    )
    if (!session.url || !session.id) throw new StripeError('Stripe answered without a checkout page')
    payment.sessionId = session.id
    await payment.save()
    return { payment, url: session.url }
  } catch (error) {
    if (!(error instanceof StripeError)) throw error
    logger.error({ err: error, paymentId: payment.id }, 'stripe: checkout session could not be created')
    payment.status = 'failed'
    payment.failure = error.message
    await payment.save()
    throw new PortalInputError('checkout_unavailable')
  }
}
