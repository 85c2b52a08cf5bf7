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
import { apiActor, managed, numberAsText } from '#services/management_api'
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

  /** POST /api/admin/teams/:id/members {user (id or e-mail), role?: admin|user} (or {members: [...]}) */
  async addMembers(ctx: HttpContext) {
    return managed(async () => {
      const body = ctx.request.body()
      const list = Array.isArray(body.members) ? body.members : [body]
      const members = list.map((m: any) => ({ user: numberAsText(m?.user) as string, role: m?.role }))
      const { team } = await addTeamMembers(ctx.params.id, members, apiActor(ctx))
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

const iso = (value: Date | null) => (value ? new Date(value).toISOString() : null)

export function teamJson(team: TeamRow, members: TeamMember[]) {
  return {
    ...budgetGroupJson(team, 'team'),
    organization_id: team.organization_id,
    members: members.map((m) => ({ user_id: m.user_id, email: m.email, role: m.role })),
    created_at: iso(team.created_at),
    updated_at: iso(team.updated_at),
  }
}
