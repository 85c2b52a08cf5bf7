import type { HttpContext } from '@adonisjs/core/http'
import { containsPattern, recordId } from '#services/record_id'
import db from '@adonisjs/lucid/services/db'
import logger from '@adonisjs/core/services/logger'
import Payment from '#models/payment'
import { syncPayment } from '#actions/settle_payment'
import { stripeSettings } from '#services/payments/stripe_settings'
import { StripeError } from '#services/payments/stripe_client'

const PAGE = 50
const STATUSES = ['pending', 'paid', 'expired', 'failed'] as const

export default class PaymentsController {
  /**
   * Card top-ups, newest first: who, how much, Stripe's session, status and
   * when paid; filter by status or a user's e-mail. At the top, what was paid
   * this month and what is still open, and whether Stripe is configured.
   */
  async index({ request, view }: HttpContext) {
    const status = STATUSES.find((s) => s === request.input('status')) ?? ''
    const email = String(request.input('email', '') ?? '').trim()
    const before = recordId(request.input('before'))
    const query = Payment.query().preload('user').orderBy('id', 'desc').limit(PAGE + 1)
    if (status) query.where('status', status)
    if (email) query.whereIn('user_id', db.from('users').select('id').whereILike('email', containsPattern(email)))
    if (before) query.where('id', '<', before)
    const [rows, totals] = await Promise.all([query, monthTotals()])
    const payments = rows.slice(0, PAGE)
    const next = rows.length > PAGE ? payments[payments.length - 1].id : null
    const settings = stripeSettings()
    return view.render('admin/payments/index', {
      payments,
      totals,
      status,
      email,
      before,
      next,
      stripe: settings ? { webhook: settings.webhookSecret !== null, min: settings.minUsd, max: settings.maxUsd, live: settings.secretKey.startsWith('sk_live_') } : null,
    })
  }

  /** Reads the payment's session from Stripe and settles it (a missed webhook, a user asking "where is my money"). */
  async check({ params, response, session }: HttpContext) {
    const payment = await Payment.findOrFail(params.id)
    try {
      const { outcome } = await syncPayment(payment)
      session.flash('success', CHECKED[outcome] ?? `Stripe says: ${outcome}.`)
    } catch (error) {
      if (!(error instanceof StripeError)) throw error
      logger.warn({ err: error, paymentId: payment.id }, 'stripe: check failed')
      session.flash('error', `Stripe could not be asked: ${error.message}`)
    }
    return response.redirect().back()
  }
}

const CHECKED: Record<string, string> = {
  credited: 'Stripe says it is paid: the amount was added to the balance now.',
  already_paid: 'Paid, and already on the balance (nothing added twice).',
  pending: 'Not paid yet: the user has not finished on Stripe\'s page.',
  expired: 'The checkout expired unpaid (Stripe gives a session 24 hours).',
  failed: 'The payment failed.',
  mismatch: 'Stripe reports another amount than the payment asked: not credited. See the failure and Stripe\'s dashboard.',
}

/** This month's paid total and count, and what is still open. */
async function monthTotals() {
  const start = new Date()
  start.setUTCDate(1)
  start.setUTCHours(0, 0, 0, 0)
  const row = await db
    .from('payments')
    .select(
      db.raw(`COALESCE(SUM(amount) FILTER (WHERE status = 'paid' AND paid_at >= ?), 0)::text AS paid`, [start]),
      db.raw(`COUNT(*) FILTER (WHERE status = 'paid' AND paid_at >= ?)::int AS paid_count`, [start]),
      db.raw(`COUNT(*) FILTER (WHERE status = 'pending')::int AS pending_count`)
    )
    .first()
  return { paid: row.paid as string, paidCount: row.paid_count as number, pendingCount: row.pending_count as number }
}
