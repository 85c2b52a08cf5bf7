import db from '@adonisjs/lucid/services/db'
import { AdminInputError } from '#actions/admin_input_error'
import { cliActor, writeAudit, type Actor } from '#actions/audit'
import { findApiKey, keyLabel } from '#actions/revoke_api_key'

/** USD as the key's soft budget takes it: up to 12 digits and 6 decimals, as a spend cap */
const SOFT_BUDGET = /^\d{1,12}(\.\d{1,6})?$/

/** The soft budget as text, or null (none); AdminInputError on anything else (checked before a key is made). */
export function softBudgetText(value: unknown): string | null {
  if (value === null) return null
  if (typeof value !== 'string' || !SOFT_BUDGET.test(value)) {
    throw new AdminInputError('soft_budget: a USD amount such as 5 or 12.5 (at most 6 decimals), or null', 'soft_budget')
  }
  return value
}

/**
 * Sets a key's soft budget (LiteLLM's soft_budget): crossing it, in the
 * cap's period when the cap resets, sends the operator `key.soft_budget_crossed`
 * once (budget_alerts.ts); calls are never refused for it. A new amount
 * re-arms the alert (migration 1022's trigger); the key caches hear of it
 * through the api_keys trigger.
 */
export async function setKeySoftBudget(ref: string, softBudget: string | null, actor: Actor = cliActor()) {
  return db.transaction(async (trx) => {
    const key = await findApiKey(ref, trx)
    if (key.revokedAt) throw new AdminInputError(`Key ${key.masked} is revoked: issue a new key instead`, 'key')
    const before = key.softBudget === null ? null : String(Number(key.softBudget))
    const after = softBudget === null ? null : String(Number(softBudget))
    if (before === after) return key
    key.softBudget = softBudget
    key.useTransaction(trx)
    await key.save()
    await writeAudit(trx, actor, {
      action: 'key.update',
      subjectType: 'api_key',
      subjectId: key.id,
      summary: `${await keyLabel(trx, key)}: softBudget: ${before ?? '—'} → ${after ?? '—'}`,
      before: { softBudget: before },
      after: { softBudget: after },
    })
    return key
  })
}
