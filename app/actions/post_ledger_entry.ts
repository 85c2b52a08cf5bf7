import db from '@adonisjs/lucid/services/db'
import type { TransactionClientContract } from '@adonisjs/lucid/types/database'
import type { LedgerKind } from '#models/balance_ledger_entry'
import User from '#models/user'
import { AdminInputError } from '#actions/admin_input_error'
import { cliActor, writeAudit, type Actor } from '#actions/audit'
import { lockForReward, rewardInviter } from '#actions/referrals'
import { recordId } from '#services/record_id'

/**
 * Moves money on a user's balance (top-up, refund, adjustment). The ledger
 * trigger updates users.balance in the same transaction as the entry and
 * its audit row; never write the balance directly.
 *
 * `idempotencyKey` (the panel form's per-rendering key, the management API's
 * `Idempotency-Key`) makes a repeat of the same request a no-op: the entry is
 * inserted with ON CONFLICT DO NOTHING on (user, key), so a double click or
 * a retry racing the first waits on its index entry and then posts nothing,
 * writes no second audit row and pays no second referral reward. The same
 * key for another entry is refused (AdminInputError.conflict).
 */
export async function postLedgerEntry(input: LedgerEntryInput, actor: Actor = cliActor()) {
  return (await postLedgerEntryOnce(input, actor)).user
}

export interface LedgerEntryInput {
  userRef: string
  kind: Exclude<LedgerKind, 'charge'>
  amount: string
  note?: string | null
  actorId?: number | null
  idempotencyKey?: string | null
}

/** postLedgerEntry, saying whether this call posted the entry or found it posted under its key. */
export async function postLedgerEntryOnce(input: LedgerEntryInput, actor: Actor = cliActor()) {
  if (/^-?0*(\.0*)?$/.test(input.amount)) throw new AdminInputError('The amount must not be zero', 'amount')
  // Top-ups and refunds add money; only an adjustment may take some away (the ledger's signs say which is which).
  if (input.kind !== 'adjustment' && input.amount.startsWith('-')) {
    throw new AdminInputError(`A ${input.kind === 'topup' ? 'top-up' : 'refund'} amount must be positive (use an adjustment to remove money)`, 'amount')
  }
  const note = input.note ?? null
  const key = input.idempotencyKey || null
  return db.transaction(async (trx) => {
    const user = await findUser(input.userRef, trx)
    // A top-up may reward an inviter: both users locked in id order before the entry locks this one.
    if (input.kind === 'topup') await lockForReward(trx, user.id)
    const inserted = await trx
      .rawQuery(
        `INSERT INTO balance_ledger (user_id, kind, amount, note, actor_id, idempotency_key, created_at)
         VALUES (?, ?, ?, ?, ?, ?, now())
         ON CONFLICT (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
         RETURNING id`,
        // node-pg sends null as NULL; Lucid's binding type does not list it.
        [user.id, input.kind, input.amount, note, input.actorId ?? actor.id ?? null, key] as any[]
      )
      .catch((error: { code?: string }) => {
        // The trigger's new balance does not fit numeric(24,12): a refusal, not a 500.
        if (error.code === NUMERIC_OVERFLOW) {
          throw new AdminInputError(`The balance would go past ${MAX_BALANCE} USD (it is ${user.balance})`, 'amount')
        }
        throw error
      })
    if (inserted.rows.length === 0) {
      // Posted already under this key (a double click, a retry): answer as the first one did.
      const first = await trx
        .from('balance_ledger')
        .where({ user_id: user.id, idempotency_key: key })
        .select('kind', 'note', db.raw('amount = ?::numeric AS same_amount', [input.amount]))
        .first()
      if (!first || first.kind !== input.kind || !first.same_amount || (first.note ?? null) !== note) {
        throw AdminInputError.conflict('This idempotency key was already used for another ledger entry')
      }
      // Read after the first post committed (the insert waited for it): the balance it left.
      await user.refresh()
      return { user, posted: false }
    }
    await writeAudit(trx, actor, {
      action: `balance.${input.kind}`,
      subjectType: 'user',
      subjectId: user.id,
      summary: `${input.kind} ${input.amount.startsWith('-') ? '' : '+'}${input.amount} USD for ${user.email}${note ? ` (${note})` : ''}`,
      before: { balance: user.balance },
      after: { amount: input.amount, note },
    })
    // Money brought in (not a refund or a correction) can be the first top-up an inviter is rewarded for.
    if (input.kind === 'topup') await rewardInviter(trx, user.id)
    await user.refresh()
    return { user, posted: true }
  })
}

/** Postgres: a value too large for its numeric column */
const NUMERIC_OVERFLOW = '22003'
/** users.balance is numeric(24,12) */
const MAX_BALANCE = '999999999999.99'

/** A user by email or numeric id (digits that are no id, such as 20 of them, name nobody). */
export async function findUser(ref: string, trx?: TransactionClientContract) {
  const options = trx ? { client: trx } : undefined
  // No address holds a NUL (and Postgres cannot compare one: a 400 saying the value cannot be stored): nobody.
  const user = /^\d+$/.test(ref)
    ? await User.find(recordId(ref) ?? 0, options)
    : ref.includes('\u0000')
      ? null
      : await User.query(options).where('email', ref).first()
  if (!user) throw Object.assign(AdminInputError.notFound(`No user "${ref}"`), { field: 'user' })
  return user
}
