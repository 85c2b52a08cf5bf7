import db from '@adonisjs/lucid/services/db'
import app from '@adonisjs/core/services/app'
import logger from '@adonisjs/core/services/logger'
import BalanceLedgerEntry from '#models/balance_ledger_entry'
import Payment from '#models/payment'
import User from '#models/user'
import { writeAudit } from '#actions/audit'
import { formatUsd } from '#services/format'
import { stripeSettings } from '#services/payments/stripe_settings'
import { retrieveCheckoutSession, type CheckoutSession } from '#services/payments/stripe_client'
import { lockForReward, rewardInviter } from '#actions/referrals'

export type SettleOutcome = 'credited' | 'already_paid' | 'pending' | 'expired' | 'failed' | 'mismatch' | 'unknown'

/** Stripe, as the actor of a credit: the payment is the user's, the decision Stripe's. */
const STRIPE_ACTOR = { id: null, label: 'stripe', source: 'stripe' as const }

/**
 * Brings a payment in line with its Checkout Session as Stripe reports it
 * (a webhook's event, or a session read back from Stripe). A paid session
 * is credited exactly once: one UPDATE guarded by `status <> 'paid'` claims
 * it in the transaction that writes the ledger top-up, so the webhook, the
 * user's return to the site and Stripe's retries of the same event can race
 * and only one of them credits. A session paid for another amount or
 * currency than the payment asked is not credited (marked failed, logged).
 */
export async function settleCheckoutSession(session: CheckoutSession): Promise<{ outcome: SettleOutcome; payment: Payment | null }> {
  const payment = await findPayment(session)
  if (!payment) return { outcome: 'unknown', payment: null }

  if (session.payment_status === 'paid') {
    if (session.amount_total !== payment.amountCents || String(session.currency).toLowerCase() !== payment.currency) {
      const failure = `Stripe reported ${session.amount_total} ${session.currency} paid, the payment asked ${payment.amountCents} ${payment.currency}: not credited`
      logger.error({ paymentId: payment.id, sessionId: session.id }, `stripe: ${failure}`)
      await mark(payment, 'failed', failure, ['pending', 'expired', 'failed'])
      return { outcome: 'mismatch', payment: await payment.refresh() }
    }
    const credited = await credit(payment, session.id)
    if (credited) await tellOperator(payment)
    return { outcome: credited ? 'credited' : 'already_paid', payment: await payment.refresh() }
  }
  if (payment.status === 'paid') return { outcome: 'already_paid', payment }
  if (session.status === 'expired') {
    await mark(payment, 'expired', null, ['pending'])
    return { outcome: 'expired', payment: await payment.refresh() }
  }
  return { outcome: payment.status === 'failed' ? 'failed' : 'pending', payment }
}

/** A delayed payment method (a bank debit) failed after the session completed. */
export async function failCheckoutSession(session: CheckoutSession, reason: string) {
  const payment = await findPayment(session)
  if (payment) await mark(payment, 'failed', reason, ['pending'])
  return payment
}

/** Asks Stripe for the payment's session now (the user came back; an operator's "check"; a missed webhook). */
export async function syncPayment(payment: Payment) {
  const settings = stripeSettings()
  if (!settings || !payment.sessionId) return { outcome: payment.status as SettleOutcome, payment }
  return settleCheckoutSession(await retrieveCheckoutSession(settings, payment.sessionId))
}

/** A card payment is news for the operator's alert webhook, when there is one (after the commit: never for a rolled-back credit). */
async function tellOperator(payment: Payment) {
  const gateway = await app.container.make('gateway')
  gateway.alerts?.notify('payment.received', payment.id, async () => {
    const user = await User.find(payment.userId)
    return {
      text: `Card payment received: ${user?.email ?? payment.userId} paid ${formatUsd(payment.amount)}; their balance is ${formatUsd(user?.balance ?? '0')}.`,
      data: { payment_id: payment.id, user_id: payment.userId, email: user?.email ?? null, amount: payment.amount, session_id: payment.sessionId },
    }
  })
}

/** By session id, or (a session made just before a crash, before its id was saved) by the metadata's payment id. */
async function findPayment(session: CheckoutSession) {
  const bySession = await Payment.findBy('sessionId', session.id)
  if (bySession) return bySession
  const id = Number(session.metadata?.payment_id)
  if (!Number.isSafeInteger(id) || id <= 0) return null
  const byId = await Payment.find(id)
  if (!byId || byId.sessionId !== null || String(byId.userId) !== session.client_reference_id) return null
  return byId
}

async function credit(payment: Payment, sessionId: string): Promise<boolean> {
  return db.transaction(async (trx) => {
    const claimed = await trx.rawQuery(
      `UPDATE payments SET status = 'paid', paid_at = now(), updated_at = now(), failure = NULL,
              session_id = COALESCE(session_id, ?)
        WHERE id = ? AND status <> 'paid'
        RETURNING id`,
      [sessionId, payment.id]
    )
    if (claimed.rows.length === 0) return false
    const user = await User.findOrFail(payment.userId, { client: trx })
    // The inviter it may reward and this user, locked in id order before the entry locks this one.
    await lockForReward(trx, payment.userId)
    const entry = await BalanceLedgerEntry.create(
      { userId: payment.userId, kind: 'topup', amount: payment.amount, note: `Card payment ${sessionHint(sessionId)}`, actorId: null },
      { client: trx }
    )
    await trx.from('payments').where('id', payment.id).update({ ledger_entry_id: entry.id })
    await rewardInviter(trx, payment.userId)
    await writeAudit(trx, STRIPE_ACTOR, {
      action: 'payment.credit',
      subjectType: 'user',
      subjectId: payment.userId,
      summary: `${user.email} paid ${formatUsd(payment.amount)} by card (Stripe ${sessionHint(sessionId)}): +${formatUsd(payment.amount)} on the balance`,
      before: { balance: user.balance },
      after: { payment: payment.id, session: sessionId, amount: payment.amount },
    })
    return true
  })
}

async function mark(payment: Payment, status: 'failed' | 'expired', failure: string | null, from: string[]) {
  await db
    .from('payments')
    .where('id', payment.id)
    .whereIn('status', from)
    .update({ status, failure, updated_at: new Date() })
}

/** "cs_test_a1B2...x9Y8" -> "cs_…x9Y8z0": enough to find it in Stripe's dashboard with the full id on the admin page. */
export function sessionHint(sessionId: string) {
  return sessionId.length > 12 ? `${sessionId.slice(0, 3)}…${sessionId.slice(-8)}` : sessionId
}
