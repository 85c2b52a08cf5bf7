import db from '@adonisjs/lucid/services/db'
import { currentPeriod, type PlanInfo } from '#gateway/types'
import { toPico } from '#gateway/metering/money'

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
