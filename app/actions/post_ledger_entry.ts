import db from '@adonisjs/lucid/services/db'
import type { TransactionClientContract } from '@adonisjs/lucid/types/database'
import BalanceLedgerEntry, { type LedgerKind } from '#models/balance_ledger_entry'
import User from '#models/user'
import { AdminInputError } from '#actions/admin_input_error'
import { cliActor, writeAudit, type Actor } from '#actions/audit'
import { rewardInviter } from '#actions/referrals'

/**
 * Moves money on a user's balance (top-up, refund, adjustment). The ledger
 * trigger updates users.balance in the same transaction as the entry and
 * its audit row; never write the balance directly.
 */
export async function postLedgerEntry(
  input: {
    userRef: string
    kind: Exclude<LedgerKind, 'charge'>
    amount: string
    note?: string | null
    actorId?: number | null
  },
  actor: Actor = cliActor()
) {
  if (/^-?0*(\.0*)?$/.test(input.amount)) throw new AdminInputError('The amount must not be zero', 'amount')
  if (input.kind === 'topup' && input.amount.startsWith('-')) {
    throw new AdminInputError('A top-up amount must be positive (use an adjustment to remove money)', 'amount')
  }
  return db.transaction(async (trx) => {
    const user = await findUser(input.userRef, trx)
    await BalanceLedgerEntry.create(
      {
        userId: user.id,
        kind: input.kind,
        amount: input.amount,
        note: input.note ?? null,
        actorId: input.actorId ?? actor.id ?? null,
      },
      { client: trx }
    )
    await writeAudit(trx, actor, {
      action: `balance.${input.kind}`,
      subjectType: 'user',
      subjectId: user.id,
      summary: `${input.kind} ${input.amount.startsWith('-') ? '' : '+'}${input.amount} USD for ${user.email}${input.note ? ` (${input.note})` : ''}`,
      before: { balance: user.balance },
      after: { amount: input.amount, note: input.note ?? null },
    })
    // Money brought in (not a refund or a correction) can be the first top-up an inviter is rewarded for.
    if (input.kind === 'topup') await rewardInviter(trx, user.id)
    await user.refresh()
    return user
  })
}

/** A user by email or numeric id. */
export async function findUser(ref: string, trx?: TransactionClientContract) {
  const options = trx ? { client: trx } : undefined
  const user = /^\d+$/.test(ref)
    ? await User.find(Number(ref), options)
    : await User.query(options).where('email', ref).first()
  if (!user) throw Object.assign(AdminInputError.notFound(`No user "${ref}"`), { field: 'user' })
  return user
}
