import type { HttpContext } from '@adonisjs/core/http'
import type { BudgetGroupSettings } from '#actions/budget_group'
import { listField, optionalNumber } from '#controllers/admin/panel'

/**
 * A budget group's form fields (the team and organization forms) -> the
 * actions' settings: alias, budget, period, models, rpm, tpm; empty = none.
 * Each form adds its own (a team's organization, an organization's block).
 */
export function budgetGroupSettings(request: HttpContext['request']): BudgetGroupSettings {
  const budget = String(request.input('maxBudget') ?? '').trim()
  const models = listField(request.input('models'))
  return {
    alias: String(request.input('alias') ?? '').trim(),
    maxBudget: budget === '' ? null : budget,
    budgetPeriod: request.input('budgetPeriod') || null,
    models: models.length > 0 ? models : null,
    rpm: optionalNumber(request.input('rpm')) ?? null,
    tpm: optionalNumber(request.input('tpm')) ?? null,
  }
}
