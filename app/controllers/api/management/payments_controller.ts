import type { HttpContext } from '@adonisjs/core/http'
import Payment from '#models/payment'
import { filterId, keysetPage, money } from '#services/management_api'

const STATUSES = new Set(['pending', 'paid', 'expired', 'failed'])

export default class ManagementPaymentsController {
  /** GET /api/admin/payments[?status=][&user_id=][&before=id]: card top-ups, newest first. */
  async index({ request }: HttpContext) {
    const status = String(request.input('status', '') ?? '')
    const userId = filterId(request.input('user_id'), 'user_id')
    const before = filterId(request.input('before'), 'before')
    return keysetPage(
      (limit) => {
        const query = Payment.query().orderBy('id', 'desc').limit(limit)
        if (STATUSES.has(status)) query.where('status', status)
        if (userId) query.where('user_id', userId)
        if (before) query.where('id', '<', before)
        return query
      },
      (p: Payment) => ({
        id: p.id,
        object: 'payment',
        user_id: p.userId,
        provider: p.provider,
        session_id: p.sessionId,
        amount: money(p.amount),
        currency: p.currency,
        status: p.status,
        failure: p.failure,
        ledger_entry_id: p.ledgerEntryId,
        created_at: p.createdAt.toISO(),
        paid_at: p.paidAt?.toISO() ?? null,
      })
    )
  }
}
