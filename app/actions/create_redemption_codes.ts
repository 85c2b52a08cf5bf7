import { DateTime } from 'luxon'
import db from '@adonisjs/lucid/services/db'
import { issueRedemptionCode } from '#services/redemption_code_token'
import { cliActor, writeAudit, type Actor } from '#actions/audit'
import { AdminInputError } from '#actions/admin_input_error'

export interface CreateRedemptionCodesInput {
  batch: string
  /** USD per code, a positive decimal string */
  amount: string
  count: number
  expiresInDays?: number
}

/** The most codes one batch makes (one insert; the page lists them all once). */
export const MAX_CODES_PER_BATCH = 1000

/**
 * Makes a batch of prepaid codes. The clear codes are returned here only
 * (the panel shows them once, the ace command prints them); the database
 * keeps their hashes. One audit row for the batch.
 */
export async function createRedemptionCodes(input: CreateRedemptionCodesInput, actor: Actor = cliActor()) {
  if (!(Number(input.amount) > 0)) throw new AdminInputError('The amount per code must be more than zero', 'perCode')
  if (!Number.isInteger(input.count) || input.count < 1 || input.count > MAX_CODES_PER_BATCH) {
    throw new AdminInputError(`Make between 1 and ${MAX_CODES_PER_BATCH} codes at a time`, 'count')
  }
  const expiresAt = input.expiresInDays ? DateTime.now().plus({ days: input.expiresInDays }) : null
  const codes = Array.from({ length: input.count }, () => issueRedemptionCode())
  return db.transaction(async (trx) => {
    const rows = await trx
      .table('redemption_codes')
      .insert(
        codes.map((c) => ({
          batch: input.batch,
          code_hash: c.hash,
          hint: c.hint,
          amount: input.amount,
          expires_at: expiresAt?.toJSDate() ?? null,
          created_by: actor.id,
        }))
      )
      .returning('id')
    await writeAudit(trx, actor, {
      action: 'redemption.create',
      subjectType: 'redemption_batch',
      subjectId: null,
      summary: `${input.count} redemption code${input.count === 1 ? '' : 's'} of $${input.amount} in batch "${input.batch}"${expiresAt ? `, expiring ${expiresAt.toISODate()}` : ''}`,
      after: { batch: input.batch, amount: input.amount, count: input.count, expiresAt: expiresAt?.toISO() ?? null },
    })
    return {
      batch: input.batch,
      amount: input.amount,
      expiresAt,
      codes: codes.map((c, i) => ({ id: Number((rows[i] as { id: number | string }).id), code: c.code, hint: c.hint })),
    }
  })
}
