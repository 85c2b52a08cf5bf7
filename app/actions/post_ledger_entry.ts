import BalanceLedgerEntry, { type LedgerKind } from '#models/balance_ledger_entry'
import User from '#models/user'
import { AdminInputError } from '#actions/admin_input_error'

/**
 * Moves money on a user's balance (top-up, refund, adjustment). The ledger
 * trigger updates users.balance in the same transaction; never write the
 * balance directly.
 */
export async function postLedgerEntry(input: {
  userRef: string
  kind: Exclude<LedgerKind, 'charge'>
  amount: string
  note?: string | null
  actorId?: number | null
}) {
  const user = await findUser(input.userRef)
  if (input.kind === 'topup' && input.amount.startsWith('-')) {
    throw new AdminInputError('A top-up amount must be positive (use an adjustment to remove money)')
  }
  await BalanceLedgerEntry.create({
    userId: user.id,
    kind: input.kind,
    amount: input.amount,
    note: input.note ?? null,
    actorId: input.actorId ?? null,
  })
  await user.refresh()
  return user
}

/** A user by email or numeric id. */
export async function findUser(ref: string) {
  const user = /^\d+$/.test(ref) ? await User.find(Number(ref)) : await User.findBy('email', ref)
  if (!user) throw new AdminInputError(`No user "${ref}"`)
  return user
}
