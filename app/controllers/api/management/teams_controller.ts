import type { HttpContext } from '@adonisjs/core/http'
import ApiKey from '#models/api_key'
import {
  addTeamMembers,
  createTeam,
  deleteTeams,
  findTeam,
  listTeams,
  removeTeamMembers,
  teamMembers,
  updateTeam,
  type TeamMember,
  type TeamRow,
  type TeamSettings,
} from '#actions/teams'
import { AdminInputError } from '#actions/admin_input_error'
import { updateTeamMember, type MemberLimits } from '#actions/team_member_budgets'
import { budgetResetsAt, budgetSpentNow } from '#actions/budget_group'
import { apiActor, managed, money, numberAsText } from '#services/management_api'
import { isLimitInput } from '#validators/team'
import { budgetGroupJson, budgetGroupSettingsOf } from '#services/management_budget_groups'
import { settleMetering } from '#services/settle_metering'

/**
 * Teams over the management API (LiteLLM's /team/* in the API's own names):
 * a shared budget (max_budget per budget_period), model globs, rpm/tpm
 * shared by the team's keys, a block, and members. The same actions as
 * LiteLLM's paths, the panel and `team:create` (app/actions/teams.ts),
 * audited with source `api`. A key joins a team with PATCH /api/admin/keys/:id {team_id}.
 */
export default class ManagementTeamsController {
  /** GET /api/admin/teams: every team, newest first, with this period's spend */
  async index() {
    await settleMetering()
    const teams = await listTeams()
    const members = await teamMembers(teams.map((t) => t.id))
    return { object: 'list', data: teams.map((t) => teamJson(t, members.get(t.id) ?? [])) }
  }

  /** POST /api/admin/teams {alias, max_budget?, budget_period?, models?, rpm?, tpm?, blocked?, metadata?, organization_id?}: 201 */
  async store(ctx: HttpContext) {
    return managed(async () => {
      const team = await createTeam(settingsOf(ctx.request.body()), apiActor(ctx))
      ctx.response.status(201)
      return teamJson(team, [])
    })
  }

  /** GET /api/admin/teams/:id: the team, its members and its keys */
  async show({ params }: HttpContext) {
    return managed(async () => {
      await settleMetering()
      const team = await findTeam(params.id)
      const keys = await ApiKey.query().where('team_id', team.id).whereNull('revoked_at').orderBy('id', 'desc')
      const members = (await teamMembers([team.id])).get(team.id) ?? []
      return { ...teamJson(team, members), keys: keys.map((k) => ({ id: k.id, name: k.name, display: k.masked, user_id: k.userId })) }
    })
  }

  /** PATCH /api/admin/teams/:id: the fields given change (null clears a budget or limit) */
  async update(ctx: HttpContext) {
    return managed(async () => {
      const team = await updateTeam(ctx.params.id, settingsOf(ctx.request.body()), apiActor(ctx))
      await settleMetering()
      return teamJson(await findTeam(team.id), (await teamMembers([team.id])).get(team.id) ?? [])
    })
  }

  /** DELETE /api/admin/teams/:id: its keys stay, in no team */
  async destroy(ctx: HttpContext) {
    return managed(async () => {
      const [team] = await deleteTeams([ctx.params.id], apiActor(ctx))
      return { object: 'team', id: team.id, deleted: true }
    })
  }

  /**
   * POST /api/admin/teams/:id/members {user (id or e-mail), role?: admin|user} (or {members: [...]}), and the
   * members' limits in the team: max_budget?, budget_period?, rpm?, tpm? (the same for each)
   */
  async addMembers(ctx: HttpContext) {
    return managed(async () => {
      const body = ctx.request.body()
      const list = Array.isArray(body.members) ? body.members : [body]
      const members = list.map((m: any) => ({ user: numberAsText(m?.user) as string, role: m?.role }))
      const { team } = await addTeamMembers(ctx.params.id, members, apiActor(ctx), memberLimitsOf(body))
      await settleMetering()
      return teamJson(team, (await teamMembers([team.id])).get(team.id) ?? [])
    })
  }

  /** PATCH /api/admin/teams/:id/members/:user {role?, max_budget?, budget_period?, rpm?, tpm?}: a member's role and limits (null clears one) */
  async updateMember(ctx: HttpContext) {
    return managed(async () => {
      const body = ctx.request.body()
      const { team } = await updateTeamMember(ctx.params.id, String(ctx.params.user), { ...memberLimitsOf(body), role: body.role }, apiActor(ctx))
      await settleMetering()
      return teamJson(team, (await teamMembers([team.id])).get(team.id) ?? [])
    })
  }

  /** DELETE /api/admin/teams/:id/members?user=<id|email> */
  async removeMember(ctx: HttpContext) {
    return managed(async () => {
      const user = ctx.request.input('user')
      if (typeof user !== 'string' || user === '') throw new AdminInputError('user is required', 'user')
      const { team } = await removeTeamMembers(ctx.params.id, [user], apiActor(ctx))
      return teamJson(team, (await teamMembers([team.id])).get(team.id) ?? [])
    })
  }
}

/** A team's settings in the API's names: a budget group's and its organization_id. */
function settingsOf(body: Record<string, any>): TeamSettings {
  const settings: TeamSettings = {}
  if (body.organization_id !== undefined) settings.organization = body.organization_id
  return Object.assign(settings, budgetGroupSettingsOf(body))
}

/** A member's limits in the API's names (the fields given only); the validator checks the values. */
function memberLimitsOf(body: Record<string, any>): MemberLimits {
  const limits: MemberLimits = {}
  if (body.max_budget !== undefined) limits.maxBudget = numberAsText(body.max_budget) as string | null
  if (body.budget_period !== undefined) limits.budgetPeriod = body.budget_period
  for (const field of ['rpm', 'tpm'] as const) {
    if (body[field] !== undefined && !isLimitInput(body[field])) throw new AdminInputError(`${field}: a whole number, or null`, field)
  }
  if (body.rpm !== undefined) limits.rpm = body.rpm
  if (body.tpm !== undefined) limits.tpm = body.tpm
  return limits
}

const iso = (value: Date | null) => (value ? new Date(value).toISOString() : null)

/** A member and their limits in the team: `budget_spent` what their budget counts now (kept while they have a limit). */
export function memberJson(m: TeamMember) {
  return {
    user_id: m.user_id,
    email: m.email,
    role: m.role,
    max_budget: money(m.max_budget),
    budget_period: m.budget_period,
    budget_spent: money(budgetSpentNow(m)),
    budget_resets_at: budgetResetsAt(m),
    rpm: m.rpm,
    tpm: m.tpm,
  }
}

export function teamJson(team: TeamRow, members: TeamMember[]) {
  return {
    ...budgetGroupJson(team, 'team'),
    organization_id: team.organization_id,
    members: members.map(memberJson),
    created_at: iso(team.created_at),
    updated_at: iso(team.updated_at),
  }
}
