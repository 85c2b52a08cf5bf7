import type { HttpContext } from '@adonisjs/core/http'
import { createBudget, deleteBudget, findBudget, listBudgets, updateBudget, type BudgetRow, type BudgetSettings } from '#actions/budgets'
import { AdminInputError } from '#actions/admin_input_error'
import { apiActor, managed, money, numberAsText } from '#services/management_api'

/**
 * Shared budgets over the management API (LiteLLM's /budget/* in the API's
 * own names): max_budget per budget_period (day/week/month; null: each
 * linked end user's whole life), rpm, tpm, for every end user linked to it
 * (POST /api/admin/end-users {budget_id}). The same actions as LiteLLM's
 * paths and the panel (app/actions/budgets.ts), audited with source `api`.
 * A budget is named by its budget_id (URL-encoded in the path).
 */
export default class ManagementBudgetsController {
  /** GET /api/admin/budgets */
  async index() {
    return { object: 'list', data: (await listBudgets()).map(budgetJson) }
  }

  /** GET /api/admin/budgets/:budget_id */
  async show({ params }: HttpContext) {
    return managed(async () => budgetJson(await findBudget(String(params.budget_id))))
  }

  /** POST /api/admin/budgets {budget_id?, max_budget?, soft_budget?, budget_period?, rpm?, tpm?, max_parallel?}: 201 */
  async store(ctx: HttpContext) {
    return managed(async () => {
      const body = ctx.request.body()
      const settings = settingsOf(body)
      if (body.budget_id !== undefined && body.budget_id !== null) settings.budgetId = body.budget_id
      const row = await createBudget(settings, apiActor(ctx))
      ctx.response.status(201)
      return budgetJson(row)
    })
  }

  /** PATCH /api/admin/budgets/:budget_id {...}: the fields given; every linked end user takes them at once */
  async update(ctx: HttpContext) {
    return managed(async () => budgetJson(await updateBudget(String(ctx.params.budget_id), settingsOf(ctx.request.body()), apiActor(ctx))))
  }

  /** DELETE /api/admin/budgets/:budget_id: 400 while end users are linked to it */
  async destroy(ctx: HttpContext) {
    return managed(async () => {
      const row = await deleteBudget(String(ctx.params.budget_id), apiActor(ctx))
      return { object: 'budget', budget_id: row.budget_id, deleted: true }
    })
  }
}

/** The body's fields, as given: the actions' validator reads them (whole numbers, amounts, periods). */
function settingsOf(body: Record<string, any>): BudgetSettings {
  const settings: BudgetSettings = {}
  for (const [field, name] of [['max_budget', 'maxBudget'], ['soft_budget', 'softBudget']] as const) {
    if (body[field] === undefined) continue
    const text = numberAsText(body[field])
    if (text !== null && typeof text !== 'string') throw new AdminInputError(`${field}: an amount in USD, or null`, field)
    settings[name] = text
  }
  if (body.budget_period !== undefined) settings.budgetPeriod = body.budget_period
  if (body.rpm !== undefined) settings.rpm = body.rpm
  if (body.tpm !== undefined) settings.tpm = body.tpm
  if (body.max_parallel !== undefined) settings.maxParallel = body.max_parallel
  return settings
}

function budgetJson(row: BudgetRow) {
  return {
    object: 'budget',
    budget_id: row.budget_id,
    max_budget: money(row.max_budget),
    soft_budget: money(row.soft_budget),
    budget_period: row.budget_period,
    rpm: row.rpm,
    tpm: row.tpm,
    max_parallel: row.max_parallel,
    end_users: Number(row.end_users),
    created_at: row.created_at,
    updated_at: row.updated_at,
  }
}
