import db from '@adonisjs/lucid/services/db'
import type { StoredModelLimits } from '#gateway/limits/model_limits'
import { periodBounds } from '#gateway/metering/spend_period'

/**
 * What each model with a budget has spent of it (limits/model_budgets.ts):
 * the current period's spend for a budget that resets, else the whole of it,
 * committed rows only (api_key_model_spend). LiteLLM's /key/info shows it as
 * `model_spend`; empty when the key has no budget per model.
 */
export async function modelBudgetSpend(keyId: number, column: StoredModelLimits | null): Promise<Record<string, number>> {
  const spend: Record<string, number> = Object.create(null)
  if (column === null) return { ...spend }
  const budgeted = Object.entries(column).filter(([, limit]) => limit?.budget !== undefined)
  if (budgeted.length === 0) return { ...spend }
  const rows = await db.from('api_key_model_spend').where('api_key_id', keyId).select('model', 'spent', 'period_spent', 'period_start')
  const byModel = new Map(rows.map((row) => [row.model as string, row]))
  for (const [model, limit] of budgeted.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const row = byModel.get(model)
    if (!limit.budget_period) {
      spend[model] = row ? Number(row.spent) : 0
      continue
    }
    const start = new Date(periodBounds(limit.budget_period, Date.now()).start).toISOString().slice(0, 10)
    spend[model] = row && dayText(row.period_start) === start ? Number(row.period_spent) : 0
  }
  return { ...spend }
}

function dayText(value: Date | string | null): string | null {
  if (value === null) return null
  if (typeof value === 'string') return value.slice(0, 10)
  return `${value.getFullYear()}-${String(value.getMonth() + 1).padStart(2, '0')}-${String(value.getDate()).padStart(2, '0')}`
}
