import db from '@adonisjs/lucid/services/db'
import { currentPeriod, type PlanInfo } from '#gateway/types'

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
