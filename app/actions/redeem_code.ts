import db from '@adonisjs/lucid/services/db'
import type { TransactionClientContract } from '@adonisjs/lucid/types/database'
import BalanceLedgerEntry from '#models/balance_ledger_entry'
import User from '#models/user'
import { hashRedemptionCode, normaliseRedemptionCode } from '#services/redemption_code_token'
import { PortalInputError } from '#actions/portal_input_error'
import { writeAudit, type Actor } from '#actions/audit'
import { lockForReward, rewardInviter } from '#actions/referrals'

/**
 * A user redeems a prepaid code: its amount becomes a top-up on their
 * ledger. Exactly once, whoever races for it: the code is claimed by one
 * UPDATE that only matches an unused, enabled, unexpired code, in the same
 * transaction as the ledger entry (the ledger trigger moves the balance, and
 * the gateway's caches hear of it through NOTIFY). Refusals name the reason
 * (errors.form.redeem_*) and change nothing.
 */
export async function redeemCode(userId: number, typed: string, actor: Actor) {
  const normal = normaliseRedemptionCode(typed)
  if (!normal) throw new PortalInputError('redeem_malformed', 'code')
  const codeHash = hashRedemptionCode(normal)
  return db.transaction(async (trx) => {
    const claimed = await trx.rawQuery(
      `UPDATE redemption_codes SET redeemed_by = ?, redeemed_at = now()
        WHERE code_hash = ? AND redeemed_at IS NULL AND disabled_at IS NULL
          AND (expires_at IS NULL OR expires_at > now())
        RETURNING id, amount::text AS amount, hint, batch`,
      [userId, codeHash]
    )
    const code = claimed.rows[0] as { id: string; amount: string; hint: string; batch: string } | undefined
    if (!code) throw new PortalInputError(await refusal(trx, codeHash, userId), 'code')

    const user = await User.findOrFail(userId, { client: trx })
    // The inviter it may reward and this user, locked in id order before the entry locks this one.
    await lockForReward(trx, userId)
    const entry = await BalanceLedgerEntry.create(
      { userId, kind: 'topup', amount: code.amount, note: `Redemption code ${code.hint}`, actorId: userId },
      { client: trx }
    )
    await trx.from('redemption_codes').where('id', code.id).update({ ledger_entry_id: entry.id })
    await rewardInviter(trx, userId)
    await writeAudit(trx, actor, {
      action: 'redemption.redeem',
      subjectType: 'user',
      subjectId: userId,
      summary: `${user.email} redeemed code ${code.hint} (batch "${code.batch}") for +${trimAmount(code.amount)} USD`,
      before: { balance: user.balance },
      after: { code: code.hint, batch: code.batch, amount: code.amount },
    })
    await user.refresh()
    return { amount: code.amount, hint: code.hint, balance: user.balance }
  })
}

/** Why a code could not be claimed (read after the UPDATE matched nothing). */
async function refusal(trx: TransactionClientContract, codeHash: string, userId: number) {
  const row = await trx
    .from('redemption_codes')
    .where('code_hash', codeHash)
    .select('redeemed_by', 'redeemed_at', 'disabled_at', db.raw('expires_at <= now() AS expired'))
    .first()
  if (!row) return 'redeem_unknown'
  if (row.redeemed_at) return Number(row.redeemed_by) === userId ? 'redeem_used_by_you' : 'redeem_used'
  if (row.disabled_at) return 'redeem_disabled'
  if (row.expired) return 'redeem_expired'
  return 'redeem_unknown'
}

/** "10.000000000000" -> "10", "2.500000000000" -> "2.5" */
export function trimAmount(amount: string) {
  return amount.includes('.') ? amount.replace(/\.?0+$/, '') : amount
}
