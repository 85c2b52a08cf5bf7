import type { HttpContext } from '@adonisjs/core/http'
import ApiKey from '#models/api_key'
import {
  addTeamMembers,
  createTeam,
  deleteTeams,
  findTeam,
  listTeams,
  removeTeamMembers,
  setTeamBlocked,
  teamMembers,
  teamsOfUser,
  updateTeam,
  type TeamRow,
} from '#actions/teams'
import { findUser } from '#actions/post_ledger_entry'
import { apiActor } from '#services/management_api'
import { settleMetering } from '#services/settle_metering'
import { fieldError, litellmManaged } from '#services/litellm_management'
import {
  litellmMembershipJson,
  litellmMemberUpdateJson,
  litellmTeamInfo,
  litellmTeamJson,
  memberLimitsOf,
  membersOf,
  teamIdOf,
  teamSettingsOf,
} from '#services/litellm_teams'
import { updateTeamMember } from '#actions/team_member_budgets'
import { GatewayError } from '#exceptions/gateway_error'

/**
 * LiteLLM's team management (/team/new, /info, /list, /update, /delete,
 * /block, /unblock, /member_add, /member_update, /member_delete) over app/actions/teams.ts
 * (a member's budget: app/actions/team_member_budgets.ts),
 * the actions the management API (/api/admin/teams), the panel and
 * `team:create` use, audited with source `api`. Shapes: services/litellm_teams.ts.
 */
export default class LiteLLMTeamsController {
  /** POST /team/new {team_alias, max_budget?, budget_duration?, models?, tpm_limit?, rpm_limit?, blocked?, metadata?, members_with_roles?} */
  async store(ctx: HttpContext) {
    return litellmManaged(async () => {
      const body = ctx.request.body()
      const settings = teamSettingsOf(body)
      if (!settings.alias) throw fieldError('team_alias', 'required: the team\'s name')
      const members = body.members_with_roles === undefined || body.members_with_roles === null ? [] : membersOf(body.members_with_roles, 'members_with_roles')
      const actor = apiActor(ctx)
      const team = await createTeam(settings, actor)
      if (members.length > 0) await addTeamMembers(team.id, members, actor)
      return this.#json(team)
    })
  }

  /** GET /team/info?team_id= */
  async show(ctx: HttpContext) {
    return litellmManaged(async () => {
      const ref = teamIdOf(ctx.request.input('team_id'))
      await settleMetering()
      const team = await findTeam(ref)
      const [members, keys] = await Promise.all([teamMembers([team.id]), ApiKey.query().where('team_id', team.id).whereNull('revoked_at').orderBy('id', 'desc')])
      return litellmTeamInfo(team, members.get(team.id) ?? [], keys)
    })
  }

  /** GET /team/list[?user_id=]: every team, newest first; with user_id (id or e-mail) the teams it is a member of */
  async index(ctx: HttpContext) {
    return litellmManaged(async () => {
      await settleMetering()
      const userRef = ctx.request.input('user_id')
      const teams = userRef ? await teamsOfUser((await findUser(String(userRef))).id) : await listTeams()
      const members = await teamMembers(teams.map((t) => t.id))
      return teams.map((t) => litellmTeamJson(t, members.get(t.id) ?? []))
    })
  }

  /** POST /team/update {team_id, ...the fields to change}: LiteLLM's {team_id, data} */
  async update(ctx: HttpContext) {
    return litellmManaged(async () => {
      const body = ctx.request.body()
      const ref = teamIdOf(body.team_id)
      const team = await updateTeam(ref, teamSettingsOf(body), apiActor(ctx))
      return { team_id: String(team.id), data: await this.#json(team) }
    })
  }

  /** POST /team/delete {team_ids}: an unknown one deletes none; the keys stay, in no team */
  async destroy(ctx: HttpContext) {
    return litellmManaged(async () => {
      const ids = ctx.request.body().team_ids
      if (!Array.isArray(ids) || ids.length === 0 || ids.length > 100) throw fieldError('team_ids', 'a list of 1 to 100 team ids')
      const refs = ids.map((id) => teamIdOf(id, 'team_ids'))
      const deleted = await deleteTeams(refs, apiActor(ctx))
      return { deleted_teams: deleted.map((t) => String(t.id)) }
    })
  }

  /** POST /team/block {team_id}: its keys are refused (401) until unblocked */
  async block(ctx: HttpContext) {
    return this.#setBlocked(ctx, true)
  }

  /** POST /team/unblock {team_id} */
  async unblock(ctx: HttpContext) {
    return this.#setBlocked(ctx, false)
  }

  /** POST /team/member_add {team_id, member: {user_id | user_email, role} or a list, max_budget_in_team?, budget_duration?, tpm_limit?, rpm_limit?} */
  async memberAdd(ctx: HttpContext) {
    return memberManaged(async () => {
      const body = ctx.request.body()
      const ref = teamIdOf(body.team_id)
      if (body.member === undefined || body.member === null) throw fieldError('member', 'required: {user_id or user_email, role}, or a list of them')
      const members = membersOf(body.member, 'member')
      const { team, added } = await addTeamMembers(ref, members, apiActor(ctx), memberLimitsOf(body))
      return {
        ...(await this.#json(team)),
        updated_users: added.map((m) => ({ user_id: String(m.user_id), user_email: m.email })),
        updated_team_memberships: added.map((m) => litellmMembershipJson(team.id, m)),
      }
    })
  }

  /**
   * POST /team/member_update {team_id, user_id | user_email, role?, max_budget_in_team?, budget_duration?, tpm_limit?, rpm_limit?}:
   * a member's role and limits in the team (null clears one); 404 for a user who is not a member
   */
  async memberUpdate(ctx: HttpContext) {
    return memberManaged(async () => {
      const body = ctx.request.body()
      const ref = teamIdOf(body.team_id)
      const user = body.user_id ?? body.user_email
      if ((typeof user !== 'string' || user === '') && typeof user !== 'number') throw fieldError('user_id', 'required: user_id or user_email')
      let role: 'admin' | 'user' | undefined
      if (body.role !== undefined && body.role !== null) {
        if (body.role !== 'admin' && body.role !== 'user') throw fieldError('role', 'admin or user')
        role = body.role
      }
      const { team, member } = await updateTeamMember(ref, String(user), { ...memberLimitsOf(body), role }, apiActor(ctx))
      return litellmMemberUpdateJson(team.id, { ...member })
    })
  }

  /** POST /team/member_delete {team_id, user_id | user_email} */
  async memberDelete(ctx: HttpContext) {
    return litellmManaged(async () => {
      const body = ctx.request.body()
      const ref = teamIdOf(body.team_id)
      const user = body.user_id ?? body.user_email
      if ((typeof user !== 'string' || user === '') && typeof user !== 'number') throw fieldError('user_id', 'required: user_id or user_email')
      const { team } = await removeTeamMembers(ref, [String(user)], apiActor(ctx))
      return this.#json(team)
    })
  }

  async #setBlocked(ctx: HttpContext, blocked: boolean) {
    return litellmManaged(async () => {
      const ref = teamIdOf(ctx.request.body().team_id)
      return this.#json(await setTeamBlocked(ref, blocked, apiActor(ctx)))
    })
  }

  async #json(team: TeamRow) {
    await settleMetering()
    const fresh = await findTeam(team.id)
    return litellmTeamJson(fresh, (await teamMembers([team.id])).get(team.id) ?? [])
  }
}

/** litellmManaged for a member's limits: a refused budget is named as the member's field (max_budget_in_team), not the team's. */
async function memberManaged<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await litellmManaged(work)
  } catch (error) {
    if (error instanceof GatewayError && error.param === 'max_budget') {
      error.param = 'max_budget_in_team'
      error.message = error.message.replace(/(^|; )max_budget:/g, '$1max_budget_in_team:')
    }
    throw error
  }
}
