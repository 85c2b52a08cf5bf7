import { DateTime } from 'luxon'
import db from '@adonisjs/lucid/services/db'
import type { TransactionClientContract } from '@adonisjs/lucid/types/database'
import ApiKey from '#models/api_key'
import { AdminInputError } from '#actions/admin_input_error'
import { allowedIpsColumn } from '#actions/allowed_ips'
import { changedFields, cliActor, describeChanges, writeAudit, type Actor } from '#actions/audit'
import { periodBounds, type SpendPeriod } from '#gateway/metering/spend_period'
import { modelLimitsText, type StoredModelLimits } from '#gateway/limits/model_limits'

export interface UpdateApiKeyInput {
  name: string
  /** Globs; empty or null = what the plan allows */
  models?: string[] | null
  /** The last UTC day the key works, YYYY-MM-DD (it expires at the next midnight), or null = never */
  expiresOn?: string | null
  rpm?: number | null
  tpm?: number | null
  /** Requests in flight at once; null = no cap; undefined = unchanged */
  maxParallel?: number | null
  /** rpm/tpm per model, checked (model_limits.ts); null = none; undefined = unchanged */
  modelLimits?: StoredModelLimits | null
  /** USD; null = no cap */
  spendLimit?: string | null
  spendPeriod?: SpendPeriod | null
  /** USD, LiteLLM's soft_budget (an alert, never a refusal); null = none; undefined = unchanged */
  softBudget?: string | null
  /** Addresses and CIDR ranges the key may be used from; empty or null = any; undefined = unchanged */
  allowedIps?: string[] | null
}

/** The fields of a key as the edit forms and the audit log show them. */
export function keySnapshot(key: ApiKey) {
  return {
    name: key.name,
    models: key.allowedModels,
    expires: key.expiresAt?.toUTC().toFormat("yyyy-LL-dd HH:mm 'UTC'") ?? null,
    rpm: key.rpm,
    tpm: key.tpm,
    maxParallel: key.maxParallel,
    // As the panel writes them, one line: the audit log shows `gpt-4o rpm=10; m tpm=5`.
    modelLimits: modelLimitsText(key.modelLimits).replaceAll('\n', '; ') || null,
    spendLimit: key.spendLimit === null ? null : String(Number(key.spendLimit)),
    spendPeriod: key.spendPeriod,
    softBudget: key.softBudget === null ? null : String(Number(key.softBudget)),
    allowedIps: key.allowedIps,
  }
}

/**
 * Replaces a key's name, models, expiry, rate limits, spend cap and, when
 * given, soft budget and IP allowlist (LiteLLM's
 * /key/update, new-api's token edit). The key itself, its owner and its
 * spend stay. A revoked key is history: refused. When the cap starts to
 * reset (or resets on another period), what the key already spent in the
 * current period is summed from its usage rows, under the key's row lock:
 * a metering batch committing meanwhile waits for the lock and then adds its
 * own cost, so nothing is counted twice or missed. The change reaches every
 * gateway's cache through the api_keys trigger.
 */
export async function updateApiKey(
  id: number,
  input: UpdateApiKeyInput,
  actor: Actor = cliActor(),
  /** More of the same change, under the key's row lock, before its fields are saved (a portal move between teams) */
  within?: (trx: TransactionClientContract, key: ApiKey) => Promise<void>,
  /** Rows to lock before the key's, as the meter's statement orders them (the teams of a portal move) */
  lockFirst?: (trx: TransactionClientContract) => Promise<void>
) {
  if (input.spendPeriod && !input.spendLimit) {
    throw new AdminInputError('A spend cap that resets needs a spend cap', 'spendPeriod')
  }
  const lastDay = input.expiresOn ? lastDayFrom(input.expiresOn) : null
  if (input.expiresOn && !lastDay) throw new AdminInputError('Last day it works must be a date such as 2027-01-31', 'expiresOn')
  const allowedIps = input.allowedIps === undefined ? undefined : allowedIpsColumn(input.allowedIps)
  return db.transaction(async (trx) => {
    if (lockFirst) await lockFirst(trx)
    const key = await ApiKey.query({ client: trx }).where('id', id).preload('user').forUpdate().first()
    if (!key) throw AdminInputError.notFound(`No API key with id ${id}`)
    if (key.revokedAt) throw new AdminInputError(`Key ${key.masked} is revoked: issue a new key instead`)
    if (within) await within(trx, key)
    const before = keySnapshot(key)
    const spendPeriod = input.spendLimit ? (input.spendPeriod ?? null) : null
    key.merge({
      name: input.name,
      allowedModels: input.models?.length ? input.models : null,
      expiresAt: expiryFor(lastDay, key.expiresAt),
      rpm: input.rpm ?? null,
      tpm: input.tpm ?? null,
      spendLimit: input.spendLimit ?? null,
      spendPeriod,
    })
    if (allowedIps !== undefined) key.allowedIps = allowedIps
    if (input.maxParallel !== undefined) key.maxParallel = input.maxParallel
    // A new amount re-arms its alert (migration 1022's trigger).
    if (input.softBudget !== undefined && input.softBudget !== before.softBudget) key.softBudget = input.softBudget
    if (input.modelLimits !== undefined) {
      await recountModelBudgets(trx, key.id, key.modelLimits, input.modelLimits)
      key.modelLimits = input.modelLimits
    }
    if (spendPeriod && spendPeriod !== before.spendPeriod) {
      const start = new Date(periodBounds(spendPeriod, Date.now()).start)
      const spent = await trx
        .from('usage_records')
        .where('api_key_id', key.id)
        .where('created_at', '>=', start)
        .sum('cost as total')
        .first()
      key.periodSpent = String(spent?.total ?? '0')
      key.periodStart = DateTime.fromJSDate(start, { zone: 'utc' })
    }
    if (!spendPeriod) {
      key.periodSpent = '0'
      key.periodStart = null
    }
    key.useTransaction(trx)
    await key.save()
    const after = keySnapshot(key)
    const changes = describeChanges(before, after)
    if (changes) {
      await writeAudit(trx, actor, {
        action: 'key.update',
        subjectType: 'api_key',
        subjectId: key.id,
        summary: `key ${key.masked} of ${key.user.email}: ${changes}`,
        ...changedFields(before, after),
      })
    }
    return key
  })
}

/**
 * A model whose budget is new, or whose amount or period changed, starts
 * from what the key spent on it (the name asked for: requested_model when a
 * fallback answered) in its usage rows: the whole of it, and in the current
 * period. Under the key's row lock, as the cap's period above: a metering
 * batch committing meanwhile waits for it and adds its own cost
 * (MODEL_BUDGET_SPEND_EFFECT). A model whose budget is gone loses its row.
 */
async function recountModelBudgets(
  trx: TransactionClientContract,
  keyId: number,
  before: StoredModelLimits | null,
  after: StoredModelLimits | null
) {
  const gone: string[] = []
  for (const [model, limit] of Object.entries(before ?? {})) {
    if (limit?.budget !== undefined && after?.[model]?.budget === undefined) gone.push(model)
  }
  if (gone.length > 0) await trx.from('api_key_model_spend').where('api_key_id', keyId).whereIn('model', gone).delete()
  for (const [model, limit] of Object.entries(after ?? {})) {
    if (limit?.budget === undefined) continue
    const old = before?.[model]
    if (old?.budget === limit.budget && old?.budget_period === limit.budget_period) continue
    const start = limit.budget_period ? new Date(periodBounds(limit.budget_period, Date.now()).start) : null
    await trx.rawQuery(
      `INSERT INTO api_key_model_spend (api_key_id, model, spent, period_spent, period_start)
       SELECT ?, ?, COALESCE(SUM(cost), 0),
              CASE WHEN ?::timestamptz IS NULL THEN 0 ELSE COALESCE(SUM(cost) FILTER (WHERE created_at >= ?::timestamptz), 0) END,
              ?::date
         FROM usage_records WHERE api_key_id = ? AND COALESCE(requested_model, model) = ?
       ON CONFLICT (api_key_id, model) DO UPDATE SET
         spent = EXCLUDED.spent, period_spent = EXCLUDED.period_spent, period_start = EXCLUDED.period_start`,
      [keyId, model, start as any, start as any, (start === null ? null : start.toISOString().slice(0, 10)) as any, keyId, model]
    )
  }
}

/**
 * A last working day as the forms and key:update give it (2027-01-31), or
 * null when it is no day an expiry can be stored for: 2027-02-30, or a year
 * Postgres refuses (0000) or no key lives in (before 1970).
 */
export function lastDayFrom(value: string): DateTime | null {
  const day = DateTime.fromISO(value, { zone: 'utc' })
  return day.isValid && day.year >= 1970 && day.year <= 9999 ? day : null
}

/** The last day a key works, as the edit form shows it (the day before a midnight expiry). */
export function lastDayOf(expiresAt: DateTime | null): string | null {
  return expiresAt ? expiresAt.toUTC().minus({ milliseconds: 1 }).toISODate() : null
}

/** A form's last working day -> the expiry: the next UTC midnight, or the key's own expiry when that day is unchanged. */
function expiryFor(lastDay: DateTime | null, current: DateTime | null): DateTime | null {
  if (!lastDay) return null
  if (current && lastDayOf(current) === lastDay.toISODate()) return current
  return lastDay.startOf('day').plus({ days: 1 })
}
