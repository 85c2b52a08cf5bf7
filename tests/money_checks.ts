import db from '@adonisjs/lucid/services/db'
import { gateway } from '#tests/helpers'

/**
 * The ledger's promises, checked over the whole database after the meter's
 * queue is drained: each user's balance is the sum of their ledger; every
 * usage row that cost something has exactly one charge, of minus its cost,
 * on the row's own user; no charge without a usage row; no entry of a user
 * who is gone. Returns the broken promises as sentences (empty: all kept),
 * so a failing test says which one.
 */
export async function ledgerProblems(): Promise<string[]> {
  await (await gateway()).meter.drain()
  const problems: string[] = []
  const balances = await db.rawQuery(
    `SELECT u.id, u.balance::text AS balance, COALESCE(SUM(l.amount), 0)::text AS ledger
       FROM users u LEFT JOIN balance_ledger l ON l.user_id = u.id
      GROUP BY u.id HAVING u.balance <> COALESCE(SUM(l.amount), 0)`
  )
  for (const r of balances.rows) problems.push(`user ${r.id}: balance ${r.balance} but ledger sums to ${r.ledger}`)
  const charges = await db.rawQuery(
    `SELECT r.id, r.user_id, r.cost::text AS cost, COUNT(l.id)::int AS entries,
            COALESCE(SUM(l.amount), 0)::text AS charged, bool_and(l.user_id = r.user_id) AS same_user
       FROM usage_records r LEFT JOIN balance_ledger l ON l.usage_record_id = r.id AND l.kind = 'charge'
      GROUP BY r.id
     HAVING COUNT(l.id) <> (CASE WHEN r.cost > 0 THEN 1 ELSE 0 END)
         OR COALESCE(SUM(l.amount), 0) <> -r.cost OR NOT COALESCE(bool_and(l.user_id = r.user_id), true)`
  )
  for (const r of charges.rows) {
    problems.push(`usage row ${r.id} (user ${r.user_id}, cost ${r.cost}): ${r.entries} charge(s) summing ${r.charged}${r.same_user === false ? ', on another user' : ''}`)
  }
  const loose = await db.rawQuery(
    `SELECT l.id, l.kind, l.amount::text AS amount, l.user_id FROM balance_ledger l
      WHERE (l.kind = 'charge' AND (l.usage_record_id IS NULL OR NOT EXISTS (SELECT 1 FROM usage_records r WHERE r.id = l.usage_record_id)))
         OR (l.kind = 'charge') <> (l.amount < 0 AND l.usage_record_id IS NOT NULL)
         OR (l.kind IN ('topup', 'refund') AND l.amount <= 0)
         OR NOT EXISTS (SELECT 1 FROM users u WHERE u.id = l.user_id)`
  )
  for (const r of loose.rows) problems.push(`ledger entry ${r.id} (${r.kind} ${r.amount}, user ${r.user_id}) has no usage row, a wrong sign or no user`)
  return problems
}

/** The user's ledger entries, of one kind if given (oldest first), once the meter's queue is written. */
export async function ledgerOf(userId: number, kind?: string) {
  await (await gateway()).meter.drain()
  const query = db.from('balance_ledger').where('user_id', userId).orderBy('id').select('id', 'kind', db.raw('amount::text AS amount'), 'note')
  if (kind) query.where('kind', kind)
  return query
}

/** Fires `count` calls of `make` at once and waits for all of them (settled, never rejected). */
export function all<T>(count: number, make: (i: number) => Promise<T>) {
  return Promise.allSettled(Array.from({ length: count }, (_, i) => make(i)))
}
