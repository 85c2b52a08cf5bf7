import { flags } from '@adonisjs/core/ace'
import Payment from '#models/payment'
import { AdminCommand } from '#services/admin_command'
import { AdminInputError } from '#actions/admin_input_error'
import { syncPayment } from '#actions/settle_payment'
import { stripeSettings } from '#services/payments/stripe_settings'
import { StripeError } from '#services/payments/stripe_client'
import { formatUsd } from '#services/format'

/**
 * Asks Stripe about every card payment still pending (a webhook that never
 * arrived: an endpoint misconfigured or down) and settles it: paid ones are
 * credited once, expired ones marked. Safe to run from cron; running it
 * twice, or beside the webhook, credits nothing twice.
 */
/** The summary's order: what changed first */
const ORDER = ['credited', 'expired', 'mismatch', 'failed', 'already_paid', 'pending', 'unknown', 'unreachable']

export default class PaymentsSync extends AdminCommand {
  static commandName = 'payments:sync'
  static description = 'Settle pending card payments with Stripe (missed webhooks): credit the paid, mark the expired'

  @flags.number({ description: 'Only payments started at least this many minutes ago (default 5: the user may still be paying)' })
  declare olderThan?: number

  async execute() {
    if (!stripeSettings()) throw new AdminInputError('Card payments are off: STRIPE_SECRET_KEY is not set')
    const minutes = this.olderThan ?? 5
    if (!Number.isFinite(minutes) || minutes < 0) throw new AdminInputError('--older-than must be a number of minutes')
    const pending = await Payment.query()
      .where('status', 'pending')
      .whereNotNull('session_id')
      .where('created_at', '<=', new Date(Date.now() - minutes * 60_000))
      .orderBy('id')
    const counts: Record<string, number> = {}
    for (const payment of pending) {
      try {
        const { outcome } = await syncPayment(payment)
        counts[outcome] = (counts[outcome] ?? 0) + 1
        if (outcome === 'credited') this.logger.info(`payment ${payment.id}: paid, ${formatUsd(payment.amount)} credited to user ${payment.userId}`)
      } catch (error) {
        if (!(error instanceof StripeError)) throw error
        counts.unreachable = (counts.unreachable ?? 0) + 1
        this.logger.warning(`payment ${payment.id}: Stripe could not be asked (${error.message})`)
      }
    }
    const summary = ORDER.filter((k) => counts[k]).map((k) => `${counts[k]} ${k.replace('_', ' ')}`).join(', ')
    this.logger.success(`Checked ${pending.length} pending payment(s)${summary ? `: ${summary}` : ''}`)
    if (counts.unreachable) this.exitCode = 1
  }
}
