import { AdminInputError } from '#actions/admin_input_error'
import { budgetResetsAt, budgetSpentNow, type BudgetGroupRow, type BudgetGroupSettings } from '#actions/budget_group'
import { money, numberAsText } from '#services/management_api'
import { isLimitInput } from '#validators/team'

/**
 * What the management API's teams and organizations (/api/admin/teams,
 * /api/admin/organizations) share: a budget group's settings in the API's
 * names, and its fields in the answer. Each level adds its own (a team's
 * organization_id and members, an organization's teams and members).
 */

/** A budget group's settings in the API's names (the fields given only); the validator checks the values. */
export function budgetGroupSettingsOf(body: Record<string, any>): BudgetGroupSettings {
  const settings: BudgetGroupSettings = {}
  if (body.alias !== undefined) settings.alias = body.alias
  if (body.max_budget !== undefined) settings.maxBudget = numberAsText(body.max_budget) as string | null
  if (body.budget_period !== undefined) settings.budgetPeriod = body.budget_period
  if (body.models !== undefined) settings.models = body.models
  for (const field of ['rpm', 'tpm'] as const) {
    if (body[field] !== undefined && !isLimitInput(body[field])) throw new AdminInputError(`${field}: a whole number, or null`, field)
  }
  if (body.rpm !== undefined) settings.rpm = body.rpm
  if (body.tpm !== undefined) settings.tpm = body.tpm
  if (body.blocked !== undefined) settings.blocked = body.blocked
  if (body.metadata !== undefined) {
    if (body.metadata !== null && (typeof body.metadata !== 'object' || Array.isArray(body.metadata))) {
      throw new AdminInputError('metadata: an object', 'metadata')
    }
    settings.metadata = body.metadata
  }
  return settings
}

const iso = (value: Date | null) => (value ? new Date(value).toISOString() : null)

/** A budget group's own fields, in the answer's order (the level's fields, then created_at and updated_at, follow). */
export function budgetGroupJson(group: BudgetGroupRow, object: string) {
  return {
    id: group.id,
    object,
    alias: group.alias,
    max_budget: money(group.max_budget),
    budget_period: group.budget_period,
    /** What the budget counts now: this period's spend, or the whole without a period */
    budget_spent: money(budgetSpentNow(group)),
    budget_resets_at: budgetResetsAt(group),
    spent: money(group.spent),
    models: group.allowed_models,
    rpm: group.rpm,
    tpm: group.tpm,
    blocked: group.blocked_at !== null,
    blocked_at: iso(group.blocked_at),
    metadata: group.metadata,
  }
}
