import type { HttpContext } from '@adonisjs/core/http'
import db from '@adonisjs/lucid/services/db'
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
  updateTeam,
  type TeamSettings,
} from '#actions/teams'
import { AdminInputError } from '#actions/admin_input_error'
import { budgetResetsAt, budgetSpentNow } from '#actions/budget_group'
import { findOrganization, listOrganizations } from '#actions/organizations'
import { recordId } from '#services/record_id'
import { settleMetering } from '#services/settle_metering'
import { notFound, optionalNumber, panelActor } from '#controllers/admin/panel'
import { budgetGroupSettings } from '#controllers/admin/budget_group_form'
import { updateTeamMember } from '#actions/team_member_budgets'

/** Form fields -> the team actions' settings (empty = none). */
function teamSettings(request: HttpContext['request']): TeamSettings {
  return {
    ...budgetGroupSettings(request),
    // The select's value: an organization id, or '' for none (the action reads both); absent: unchanged.
    organization: request.input('organization'),
  }
}

/**
 * Teams (LiteLLM's): a shared budget, models, rate limits and a block over
 * the keys put in them; members are users. The same actions as the
 * management API, LiteLLM's /team/* and `team:create` (app/actions/teams.ts),
 * audited as the signed-in admin.
 */
export default class TeamsController {
  /** Every team with its budget and what it spent this period, its keys and members. */
  async index({ view }: HttpContext) {
    await settleMetering()
    const teams = await listTeams()
    const ids = teams.map((t) => t.id)
    const keyCounts = new Map<number, number>()
    const memberCounts = new Map<number, number>()
    if (ids.length > 0) {
      for (const row of await db.from('api_keys').whereIn('team_id', ids).whereNull('revoked_at').groupBy('team_id').select('team_id').count('* as n')) {
        keyCounts.set(Number(row.team_id), Number(row.n))
      }
      for (const row of await db.from('team_members').whereIn('team_id', ids).groupBy('team_id').select('team_id').count('* as n')) {
        memberCounts.set(Number(row.team_id), Number(row.n))
      }
    }
    const rows = teams.map((t) => ({ team: t, spent: budgetSpentNow(t), keys: keyCounts.get(t.id) ?? 0, members: memberCounts.get(t.id) ?? 0 }))
    return view.render('admin/teams/index', { rows })
  }

  async create({ view }: HttpContext) {
    return view.render('admin/teams/form', { team: null, organizations: await listOrganizations() })
  }

  async store(ctx: HttpContext) {
    const team = await createTeam(teamSettings(ctx.request), panelActor(ctx))
    ctx.session.flash('success', `Team ${team.alias} created. Put keys in it from their edit form.`)
    return ctx.response.redirect(`/admin/teams/${team.id}`)
  }

  /** A team: its settings, spend this period, members (add, remove) and keys. */
  async show(ctx: HttpContext) {
    const team = await this.#team(ctx)
    if (!team) return notFound(ctx)
    await settleMetering()
    const fresh = await findTeam(team.id)
    const [members, keys] = await Promise.all([
      teamMembers([team.id]),
      ApiKey.query().where('team_id', team.id).whereNull('revoked_at').preload('user').orderBy('id', 'desc').limit(200),
    ])
    return ctx.view.render('admin/teams/show', {
      team: fresh,
      organization: fresh.organization_id === null ? null : await findOrganization(fresh.organization_id),
      spent: budgetSpentNow(fresh),
      resetsAt: budgetResetsAt(fresh),
      members: members.get(team.id) ?? [],
      // What each member's budget counts now (this period's spend, or the whole), by user id.
      memberSpent: Object.fromEntries((members.get(team.id) ?? []).map((m) => [m.user_id, budgetSpentNow(m)])),
      keys,
    })
  }

  async edit(ctx: HttpContext) {
    const team = await this.#team(ctx)
    if (!team) return notFound(ctx)
    return ctx.view.render('admin/teams/form', { team, organizations: await listOrganizations() })
  }

  async update(ctx: HttpContext) {
    const team = await updateTeam(Number(ctx.params.id), teamSettings(ctx.request), panelActor(ctx))
    ctx.session.flash('success', `Team ${team.alias} saved.`)
    return ctx.response.redirect(`/admin/teams/${team.id}`)
  }

  async block(ctx: HttpContext) {
    const team = await setTeamBlocked(Number(ctx.params.id), true, panelActor(ctx))
    ctx.session.flash('success', `Team ${team.alias} blocked: its keys are refused until it is unblocked.`)
    return ctx.response.redirect(`/admin/teams/${team.id}`)
  }

  async unblock(ctx: HttpContext) {
    const team = await setTeamBlocked(Number(ctx.params.id), false, panelActor(ctx))
    ctx.session.flash('success', `Team ${team.alias} unblocked.`)
    return ctx.response.redirect(`/admin/teams/${team.id}`)
  }

  async destroy(ctx: HttpContext) {
    const [team] = await deleteTeams([Number(ctx.params.id)], panelActor(ctx))
    ctx.session.flash('success', `Team ${team.alias} deleted; its keys are in no team now.`)
    return ctx.response.redirect('/admin/teams')
  }

  async addMember(ctx: HttpContext) {
    const user = String(ctx.request.input('user') ?? '').trim()
    if (user === '') throw new AdminInputError('Give a user\'s e-mail or id', 'user')
    const role = ctx.request.input('role') === 'admin' ? 'admin' : 'user'
    const { team, added } = await addTeamMembers(Number(ctx.params.id), [{ user, role }], panelActor(ctx))
    ctx.session.flash('success', `${added[0].email} is in team ${team.alias} (${role}).`)
    return ctx.response.redirect(`/admin/teams/${team.id}`)
  }

  async removeMember(ctx: HttpContext) {
    const userId = recordId(ctx.request.input('user'))
    const { team, removed } = await removeTeamMembers(Number(ctx.params.id), [String(userId ?? '')], panelActor(ctx))
    ctx.session.flash('success', `${removed[0].email} left team ${team.alias}.`)
    return ctx.response.redirect(`/admin/teams/${team.id}`)
  }

  /** A member's role and limits in the team (budget, its period, rpm, tpm): the form. */
  async editMember(ctx: HttpContext) {
    const team = await this.#team(ctx)
    if (!team) return notFound(ctx)
    await settleMetering()
    const member = ((await teamMembers([team.id])).get(team.id) ?? []).find((m) => m.user_id === Number(ctx.params.user))
    if (!member) return notFound(ctx)
    return ctx.view.render('admin/teams/member_form', { team, member, spent: budgetSpentNow(member), resetsAt: budgetResetsAt(member) })
  }

  /** POST /admin/teams/:id/members/:user {role, maxBudget, budgetPeriod, rpm, tpm}: empty = none */
  async updateMember(ctx: HttpContext) {
    const budget = String(ctx.request.input('maxBudget') ?? '').trim()
    const { team, member } = await updateTeamMember(
      Number(ctx.params.id),
      String(Number(ctx.params.user)),
      {
        role: ctx.request.input('role') === 'admin' ? 'admin' : 'user',
        maxBudget: budget === '' ? null : budget,
        budgetPeriod: ctx.request.input('budgetPeriod') || null,
        rpm: optionalNumber(ctx.request.input('rpm')) ?? null,
        tpm: optionalNumber(ctx.request.input('tpm')) ?? null,
      },
      panelActor(ctx)
    )
    ctx.session.flash('success', `${member.email}'s limits in team ${team.alias} saved.`)
    return ctx.response.redirect(`/admin/teams/${team.id}#members`)
  }

  async #team(ctx: HttpContext) {
    try {
      return await findTeam(ctx.params.id)
    } catch (error) {
      if (error instanceof AdminInputError) return null
      throw error
    }
  }
}
