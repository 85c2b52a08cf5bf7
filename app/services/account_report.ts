import db from '@adonisjs/lucid/services/db'
import { currentPeriod, type PlanInfo } from '#gateway/types'
import { toPico } from '#gateway/metering/money'
import { periodBounds } from '#gateway/metering/spend_period'

/** Read-side reports over the metering tables (usage and balance endpoints, portal, admin). */
export async function monthlyUsageReport(userId: number, plan: PlanInfo | null, now = new Date()) {
  const period = currentPeriod(now)
  const rows = await db
    .from('monthly_usage')
    .where('user_id', userId)
    .where('period', period)
    .orderBy('model')
    .select('model', 'provider', 'input_tokens', 'output_tokens')
  let input = 0
  let output = 0
  const byModel = rows.map((row) => {
    const inp = Number(row.input_tokens)
    const out = Number(row.output_tokens)
    input += inp
    output += out
    return { model: row.model, provider: row.provider, inp, out, total: inp + out }
  })
  return {
    object: 'usage',
    period: { start: `${period}T00:00:00Z`, end: now.toISOString().replace(/\.\d{3}Z$/, 'Z') },
    totals: { input_tokens: input, output_tokens: output, total_tokens: input + output },
    plan_limits: {
      monthly_input_tokens: plan?.monthlyInputTokens ?? null,
      monthly_output_tokens: plan?.monthlyOutputTokens ?? null,
      allowed_models: plan?.allowedModels ?? ['*'],
    },
    by_model: byModel,
  }
}

export async function balanceReport(userId: number) {
  const result = await db.rawQuery(
    `SELECT u.balance,
            COALESCE((SELECT -SUM(amount) FROM balance_ledger WHERE user_id = u.id AND kind IN ('charge','refund')), 0) AS spent,
            (SELECT MAX(created_at) FROM balance_ledger WHERE user_id = u.id) AS last_entry,
            u.updated_at
       FROM users u WHERE u.id = ?`,
    [userId]
  )
  const row = result.rows[0]
  const lastUpdated = row?.last_entry ?? row?.updated_at ?? new Date()
  return {
    balance: Number(row?.balance ?? 0),
    currency: 'USD',
    total_spent: Number(row?.spent ?? 0),
    last_updated: new Date(lastUpdated).toISOString().replace(/\.\d{3}Z$/, 'Z'),
  }
}

/**
 * What OpenRouter's `/api/v1/key` and `/api/v1/credits` need of the database,
 * in one read (after the meter's queue is drained, as /v1/balance reads it):
 * the user's balance and total spent (the same sums as balanceReport),
 * whether money was ever brought in (a ledger top-up: card, code, operator),
 * and the key's lifetime spend (api_keys.spent, which the meter keeps whole
 * even when the key's cap counts a period). Amounts as exact pico-USD.
 */
export async function creditReport(userId: number, keyId: number) {
  const result = await db.rawQuery(
    `SELECT u.balance,
            COALESCE((SELECT -SUM(amount) FROM balance_ledger WHERE user_id = u.id AND kind IN ('charge','refund')), 0) AS spent,
            EXISTS (SELECT 1 FROM balance_ledger WHERE user_id = u.id AND kind = 'topup') AS paid,
            (SELECT k.spent FROM api_keys k WHERE k.id = ? AND k.user_id = u.id) AS key_spent
       FROM users u WHERE u.id = ?`,
    [keyId, userId]
  )
  const row = result.rows[0]
  return {
    balancePico: toPico(String(row?.balance ?? '0')),
    spentPico: toPico(String(row?.spent ?? '0')),
    paid: row?.paid === true,
    keySpentPico: toPico(String(row?.key_spent ?? '0')),
  }
}

/**
 * What a key spent in the current UTC day, week (from Monday) and month,
 * for OpenRouter's `usage_daily` / `usage_weekly` / `usage_monthly`, as
 * exact pico-USD. No rollup keeps spend per key and period (usage_daily's
 * dimensions are model, user, channel and tags; monthly_usage is per user
 * and model; api_keys keeps the lifetime `spent` and only its cap's
 * period), so this is one sum over the key's own usage rows since the
 * earliest of the three starts (at most 37 days), on the
 * (api_key_id, created_at) index; those rows are kept (retention keeps at
 * least 31 days, and the month's rows with them).
 */
export async function keyPeriodSpend(keyId: number, now = Date.now()) {
  const day = new Date(periodBounds('day', now).start)
  const week = new Date(periodBounds('week', now).start)
  const month = new Date(periodBounds('month', now).start)
  const result = await db.rawQuery(
    `SELECT COALESCE(SUM(cost) FILTER (WHERE created_at >= ?), 0) AS daily,
            COALESCE(SUM(cost) FILTER (WHERE created_at >= ?), 0) AS weekly,
            COALESCE(SUM(cost) FILTER (WHERE created_at >= ?), 0) AS monthly
       FROM usage_records WHERE api_key_id = ? AND created_at >= ?`,
    [day, week, month, keyId, week < month ? week : month]
  )
  const row = result.rows[0]
  return {
    dailyPico: toPico(String(row?.daily ?? '0')),
    weeklyPico: toPico(String(row?.weekly ?? '0')),
    monthlyPico: toPico(String(row?.monthly ?? '0')),
  }
}
