import type ApiKey from '#models/api_key'
import { budgetResetsAt, budgetSpentNow } from '#actions/budget_group'
import type { MemberRole, TeamMember, TeamRow, TeamSettings } from '#actions/teams'
import { isLimitInput } from '#validators/team'
import { hasLimits, type MemberLimits } from '#actions/team_member_budgets'
import { BUDGET_DURATIONS, budgetPeriod, budgetText, fieldError, litellmKeyJson, litellmMembersOf, modelGlobs } from '#services/litellm_management'

/**
 * LiteLLM's teams (/team/*) over the gateway's (app/actions/teams.ts): field
 * names and shapes only. `team_id` is our team id as text. Fields we keep:
 * team_alias, max_budget, budget_duration, models, tpm_limit, rpm_limit,
 * blocked, metadata, members_with_roles, organization_id, and a member's
 * max_budget_in_team, budget_duration, tpm_limit, rpm_limit (member_add,
 * member_update); others (tags, guardrails, team_member_budget, model_aliases,
 * soft_budget, a chosen team_id...) are ignored.
 */

/** LiteLLM's team_id: our id as text (or a number): 400 when absent or not text */
export function teamIdOf(value: unknown, field = 'team_id'): string {
  if (typeof value === 'number' && Number.isInteger(value)) return String(value)
  if (typeof value !== 'string' || value.trim() === '') throw fieldError(field, 'required: the team id')
  return value.trim()
}

/** /team/new and /team/update's settings (the fields given only) */
export function teamSettingsOf(body: Record<string, unknown>): TeamSettings {
  const settings: TeamSettings = {}
  if ('team_alias' in body && body.team_alias !== null) {
    if (typeof body.team_alias !== 'string') throw fieldError('team_alias', 'the team\'s name, as text')
    settings.alias = body.team_alias
  }
  if ('max_budget' in body) {
    const text = budgetText(body.max_budget)
    if (text !== null && typeof text !== 'string') throw fieldError('max_budget', 'an amount in USD, or null')
    settings.maxBudget = text as string | null
  }
  if ('budget_duration' in body) settings.budgetPeriod = budgetPeriod(body.budget_duration)
  if ('models' in body) {
    const models = modelGlobs(body.models)
    if (models !== null && !Array.isArray(models)) throw fieldError('models', 'a list of model names or globs')
    settings.models = models as string[] | null
  }
  for (const field of ['tpm_limit', 'rpm_limit'] as const) {
    if (field in body && !isLimitInput(body[field])) throw fieldError(field, 'a whole number, or null')
  }
  if ('tpm_limit' in body) settings.tpm = body.tpm_limit as number | null
  if ('rpm_limit' in body) settings.rpm = body.rpm_limit as number | null
  if ('blocked' in body && body.blocked !== null) {
    if (typeof body.blocked !== 'boolean') throw fieldError('blocked', 'true or false')
    settings.blocked = body.blocked
  }
  if ('organization_id' in body) {
    const org = body.organization_id
    // Our organization id as text (or a number), or null: out of its organization.
    if (org !== null && !(typeof org === 'string' || (typeof org === 'number' && Number.isInteger(org)))) {
      throw fieldError('organization_id', 'an organization id, or null')
    }
    settings.organization = org
  }
  if ('metadata' in body) {
    const metadata = body.metadata
    if (metadata !== null && (typeof metadata !== 'object' || Array.isArray(metadata))) throw fieldError('metadata', 'an object')
    settings.metadata = metadata as Record<string, unknown> | null
  }
  return settings
}

/** LiteLLM's Member ({user_id | user_email, role}), one or a list (`member`, `members_with_roles`), as our user refs */
export function membersOf(value: unknown, field: string): Array<{ user: string; role: MemberRole }> {
  return litellmMembersOf(value, field, (value) => {
    const role = value ?? 'user'
    if (role !== 'admin' && role !== 'user') throw fieldError(field, 'a member\'s role is admin or user')
    return role
  })
}

/**
 * A member's limits on /team/member_add and /team/member_update (the fields
 * given only): `max_budget_in_team` (USD, null: none), `budget_duration`
 * (the member budget's period, a team's durations), `tpm_limit`, `rpm_limit`.
 */
export function memberLimitsOf(body: Record<string, unknown>): MemberLimits {
  const limits: MemberLimits = {}
  if ('max_budget_in_team' in body) {
    const text = budgetText(body.max_budget_in_team)
    if (text !== null && typeof text !== 'string') throw fieldError('max_budget_in_team', 'an amount in USD, or null')
    limits.maxBudget = text as string | null
  }
  if ('budget_duration' in body) limits.budgetPeriod = budgetPeriod(body.budget_duration)
  for (const field of ['tpm_limit', 'rpm_limit'] as const) {
    if (field in body && !isLimitInput(body[field])) throw fieldError(field, 'a whole number, or null')
  }
  if ('tpm_limit' in body) limits.tpm = body.tpm_limit as number | null
  if ('rpm_limit' in body) limits.rpm = body.rpm_limit as number | null
  return limits
}

/**
 * A membership as LiteLLM answers it (LiteLLM_TeamMembership): `spend` what
 * the member's budget counts now (kept while the member has a limit), and
 * `litellm_budget_table` their limits (null: none).
 */
export function litellmMembershipJson(teamId: number, m: TeamMember) {
  return {
    team_id: String(teamId),
    user_id: String(m.user_id),
    user_email: m.email,
    role: m.role,
    spend: Number(budgetSpentNow(m)),
    budget_id: null,
    litellm_budget_table: hasLimits(m)
      ? {
          max_budget: m.max_budget === null ? null : Number(m.max_budget),
          budget_duration: m.budget_period ? BUDGET_DURATIONS[m.budget_period] : null,
          budget_reset_at: budgetResetsAt(m),
          tpm_limit: m.tpm,
          rpm_limit: m.rpm,
        }
      : null,
  }
}

/** /team/member_update's answer (LiteLLM's TeamMemberUpdateResponse, with the period and role) */
export function litellmMemberUpdateJson(teamId: number, m: TeamMember) {
  return {
    team_id: String(teamId),
    user_id: String(m.user_id),
    user_email: m.email,
    role: m.role,
    max_budget_in_team: m.max_budget === null ? null : Number(m.max_budget),
    budget_duration: m.budget_period ? BUDGET_DURATIONS[m.budget_period] : null,
    tpm_limit: m.tpm,
    rpm_limit: m.rpm,
    spend: Number(budgetSpentNow(m)),
  }
}

const iso = (value: Date | null) => (value ? new Date(value).toISOString() : null)

/** A team as LiteLLM answers it (LiteLLM_TeamTable), with `spend` what the budget counts now */
export function litellmTeamJson(team: TeamRow, members: TeamMember[]) {
  return {
    team_id: String(team.id),
    team_alias: team.alias,
    members_with_roles: members.map((m) => ({ user_id: String(m.user_id), user_email: m.email, role: m.role })),
    admins: members.filter((m) => m.role === 'admin').map((m) => String(m.user_id)),
    members: members.filter((m) => m.role === 'user').map((m) => String(m.user_id)),
    max_budget: team.max_budget === null ? null : Number(team.max_budget),
    budget_duration: team.budget_period ? BUDGET_DURATIONS[team.budget_period] : null,
    budget_reset_at: budgetResetsAt(team),
    spend: Number(budgetSpentNow(team)),
    models: team.allowed_models ?? [],
    tpm_limit: team.tpm,
    rpm_limit: team.rpm,
    blocked: team.blocked_at !== null,
    metadata: team.metadata,
    organization_id: team.organization_id === null ? null : String(team.organization_id),
    created_at: iso(team.created_at),
    updated_at: iso(team.updated_at),
  }
}

/** /team/info's answer: {team_id, team_info, keys, team_memberships} */
export function litellmTeamInfo(team: TeamRow, members: TeamMember[], keys: ApiKey[]) {
  return {
    team_id: String(team.id),
    team_info: litellmTeamJson(team, members),
    keys: keys.map(litellmKeyJson),
    team_memberships: members.map((m) => litellmMembershipJson(team.id, m)),
  }
}
