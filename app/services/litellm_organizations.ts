import type { OrganizationMember, OrganizationRow, OrganizationSettings } from '#actions/organizations'
import { budgetResetsAt, budgetSpentNow } from '#actions/budget_group'
import type { TeamRow } from '#actions/teams'
import { ORGANIZATION_ROLES, type OrganizationRole } from '#validators/organization'
import { BUDGET_DURATIONS, fieldError, litellmMembersOf } from '#services/litellm_management'
import { litellmTeamJson, teamSettingsOf } from '#services/litellm_teams'

/**
 * LiteLLM's organizations (/organization/*) over the gateway's
 * (app/actions/organizations.ts): field names and shapes only.
 * `organization_id` is our id as text. Kept: organization_alias,
 * max_budget, budget_duration, models, tpm_limit, rpm_limit, blocked,
 * metadata; LiteLLM keeps the budget fields in a budget row
 * (`litellm_budget_table`, `budget_id`): answered the same way, its id the
 * organization's. Ignored: budget_id (a shared budget), soft_budget,
 * max_parallel_requests, model_max_budget, tags, object_permission, a chosen
 * organization_id.
 */

/** LiteLLM's organization_id: our id as text (or a number): 400 when absent or not text */
export function organizationIdOf(value: unknown, field = 'organization_id'): string {
  if (typeof value === 'number' && Number.isInteger(value)) return String(value)
  if (typeof value !== 'string' || value.trim() === '') throw fieldError(field, 'required: the organization id')
  return value.trim()
}

/** /organization/new and /update's settings (the fields given only), read as a team's */
export function organizationSettingsOf(body: Record<string, unknown>): OrganizationSettings {
  const { team_alias: _t, organization_id: _o, ...rest } = body
  if ('organization_alias' in body && body.organization_alias !== null && typeof body.organization_alias !== 'string') {
    throw fieldError('organization_alias', 'the organization\'s name, as text')
  }
  const { organization: _ignored, ...settings } = teamSettingsOf('organization_alias' in body ? { ...rest, team_alias: body.organization_alias } : rest)
  return settings
}

/** LiteLLM's member ({user_id | user_email, role}), one or a list, as our user refs */
export function organizationMembersOf(value: unknown, field: string): Array<{ user: string; role: OrganizationRole }> {
  return litellmMembersOf(value, field, (role) => roleOf(role ?? 'internal_user', field))
}

export function roleOf(value: unknown, field = 'role'): OrganizationRole {
  if (!(ORGANIZATION_ROLES as readonly unknown[]).includes(value)) throw fieldError(field, `a role is one of ${ORGANIZATION_ROLES.join(', ')}`)
  return value as OrganizationRole
}

const iso = (value: Date | null) => (value ? new Date(value).toISOString() : null)

/** An organization membership as LiteLLM answers it (LiteLLM_OrganizationMembershipTable) */
export function litellmMembershipJson(orgId: number, member: OrganizationMember) {
  return {
    user_id: String(member.user_id),
    organization_id: String(orgId),
    user_role: member.role,
    user_email: member.email,
    spend: 0,
    budget_id: null,
    created_at: iso(member.created_at),
    updated_at: iso(member.created_at),
  }
}

/**
 * An organization as LiteLLM answers it (LiteLLM_OrganizationTableWithMembers):
 * `spend` what the budget counts now, the budget fields also in
 * `litellm_budget_table`, and its members and teams.
 */
export function litellmOrganizationJson(org: OrganizationRow, members: OrganizationMember[], teams: TeamRow[]) {
  const budgetDuration = org.budget_period ? BUDGET_DURATIONS[org.budget_period] : null
  const maxBudget = org.max_budget === null ? null : Number(org.max_budget)
  return {
    organization_id: String(org.id),
    organization_alias: org.alias,
    budget_id: String(org.id),
    metadata: org.metadata,
    models: org.allowed_models ?? [],
    spend: Number(budgetSpentNow(org)),
    model_spend: {},
    blocked: org.blocked_at !== null,
    created_at: iso(org.created_at),
    created_by: null,
    updated_at: iso(org.updated_at),
    updated_by: null,
    litellm_budget_table: {
      budget_id: String(org.id),
      max_budget: maxBudget,
      soft_budget: null,
      max_parallel_requests: null,
      tpm_limit: org.tpm,
      rpm_limit: org.rpm,
      model_max_budget: null,
      budget_duration: budgetDuration,
      budget_reset_at: budgetResetsAt(org),
    },
    members: members.map((m) => litellmMembershipJson(org.id, m)),
    teams: teams.map((t) => litellmTeamJson(t, [])),
  }
}
