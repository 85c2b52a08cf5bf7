import type { HttpContext } from '@adonisjs/core/http'
import { createBudget, deleteBudget, findBudget, listBudgets, updateBudget, type BudgetRow, type BudgetSettings } from '#actions/budgets'
import { isLimitInput } from '#validators/team'
import { apiActor } from '#services/management_api'
import { BUDGET_DURATIONS, budgetIdOf, budgetPeriod, budgetText, fieldError, litellmManaged } from '#services/litellm_management'
import { plain } from '#actions/end_users'

/**
 * LiteLLM's budgets (/budget/new, /update, /info, /list, /delete, /settings)
 * over app/actions/budgets.ts: shared limits customers link to with
 * `/customer/new {user_id, budget_id}`. A budget still linked is not deleted
 * (400 naming how many customers): unlink them first.
 */
export default class LiteLLMBudgetsController {
  /** POST /budget/new {budget_id?, max_budget?, soft_budget?, budget_duration?, rpm_limit?, tpm_limit?, max_parallel_requests?} */
  async store(ctx: HttpContext) {
    return litellmManaged(async () => budgetJson(await createBudget(settingsOf(ctx.request.body(), true), apiActor(ctx))))
  }

  /** POST /budget/update {budget_id, ...}: the fields given */
  async update(ctx: HttpContext) {
    return litellmManaged(async () => {
      const body = ctx.request.body()
      const id = budgetIdOf(body.budget_id, 'budget_id')
      return budgetJson(await updateBudget(id, settingsOf(body, false), apiActor(ctx)))
    })
  }

  /** POST /budget/info {budgets: [budget_id]}: each one (an unknown one: 404) */
  async info(ctx: HttpContext) {
    return litellmManaged(async () => {
      const ids = ctx.request.body().budgets
      if (!Array.isArray(ids) || ids.length === 0 || ids.length > 100) throw fieldError('budgets', 'a list of 1 to 100 budget ids')
      const rows = []
      for (const id of ids) rows.push(budgetJson(await findBudget(budgetIdOf(id, 'budgets'))))
      return rows
    })
  }

  /** GET /budget/list */
  async index() {
    return litellmManaged(async () => (await listBudgets()).map(budgetJson))
  }

  /** POST /budget/delete {id}: the deleted budget */
  async destroy(ctx: HttpContext) {
    return litellmManaged(async () => budgetJson(await deleteBudget(budgetIdOf(ctx.request.body().id, 'id'), apiActor(ctx))))
  }

  /** GET /budget/settings?budget_id=: LiteLLM's list of fields with their values (its admin UI's form) */
  async settings(ctx: HttpContext) {
    return litellmManaged(async () => {
      const budget = budgetJson(await findBudget(budgetIdOf(ctx.request.input('budget_id'), 'budget_id')))
      const fields: Array<[keyof typeof budget, string, string]> = [
        ['max_budget', 'float', 'Max budget in USD for each linked customer, per budget_duration'],
        ['soft_budget', 'float', 'Soft budget in USD: alerts the operator once per period when a linked customer passes it (never refuses)'],
        ['budget_duration', 'string', 'How often the spend restarts: 1d, 7d or 1mo (null: never)'],
        ['rpm_limit', 'int', 'Requests a minute for each linked customer'],
        ['tpm_limit', 'int', 'Tokens a minute for each linked customer'],
        ['max_parallel_requests', 'int', 'Kept, not enforced for customers'],
      ]
      return fields.map(([name, type, description]) => ({
        field_name: name,
        field_type: type,
        field_description: description,
        field_value: budget[name],
        stored_in_db: true,
        field_default_value: null,
      }))
    })
  }
}

/** The LiteLLM fields given, as our settings (budgetText keeps amounts to the micro-dollar; whole numbers as isLimitInput reads them) */
function settingsOf(body: Record<string, unknown>, creating: boolean): BudgetSettings {
  const settings: BudgetSettings = {}
  if (creating && body.budget_id !== undefined && body.budget_id !== null) settings.budgetId = budgetIdOf(body.budget_id, 'budget_id')
  for (const [field, name] of [['max_budget', 'maxBudget'], ['soft_budget', 'softBudget']] as const) {
    if (!(field in body)) continue
    const text = budgetText(body[field])
    if (text !== null && typeof text !== 'string') throw fieldError(field, 'an amount in USD, or null')
    settings[name] = text as string | null
  }
  if ('budget_duration' in body) settings.budgetPeriod = budgetPeriod(body.budget_duration)
  for (const [field, name] of [['rpm_limit', 'rpm'], ['tpm_limit', 'tpm'], ['max_parallel_requests', 'maxParallel']] as const) {
    if (!(field in body)) continue
    if (!isLimitInput(body[field])) throw fieldError(field, 'a whole number, or null')
    settings[name] = body[field] as number | null
  }
  return settings
}

/** LiteLLM_BudgetTable's shape */
export function budgetJson(row: BudgetRow) {
  const amount = (value: string | null) => (value === null ? null : Number(plain(value)))
  return {
    budget_id: row.budget_id,
    max_budget: amount(row.max_budget),
    soft_budget: amount(row.soft_budget),
    max_parallel_requests: row.max_parallel,
    tpm_limit: row.tpm,
    rpm_limit: row.rpm,
    model_max_budget: null,
    budget_duration: row.budget_period === null ? null : BUDGET_DURATIONS[row.budget_period],
    created_at: new Date(row.created_at).toISOString(),
    updated_at: new Date(row.updated_at).toISOString(),
    customers: Number(row.end_users),
  }
}
