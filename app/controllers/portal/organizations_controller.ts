import type { HttpContext } from '@adonisjs/core/http'
import { errors as vineErrors } from '@vinejs/vine'
import type { VineValidator } from '@vinejs/vine'
import { organizationMembers } from '#actions/organizations'
import {
  addPortalOrganizationMember,
  changePortalOrganizationMemberRole,
  createPortalOrganizationTeam,
  removePortalOrganizationMember,
} from '#actions/portal_organizations'
import { PortalInputError } from '#actions/portal_input_error'
import { teamsOfOrganizations } from '#actions/teams'
import { flashInputError } from '#services/form_errors'
import { portalActor } from '#services/portal_actor'
import { budgetFigures, organizationSpend, portalOrganizations, SPEND_DAYS, type PortalOrganization } from '#services/portal_organizations'
import { recordId } from '#services/record_id'
import { settleMetering } from '#services/settle_metering'
import { addOrganizationMemberValidator, organizationMemberRoleValidator, organizationTeamValidator } from '#validators/portal_organization'

/** What a validator answers. */
type Output<V extends VineValidator<any, any>> = Awaited<ReturnType<V['validate']>>

/**
 * The organizations a user is a member of (README "User portal",
 * Organizations): every member sees the organization's budget, spend,
 * limits, models, block, its teams and 30 days of spend; members and admins
 * see the member list with e-mails, an internal_user_viewer only how many
 * members there are by role and themselves (LiteLLM gives a viewer spend
 * views, not the user list). An org_admin adds, re-roles and removes members
 * and creates teams (app/actions/portal_organizations.ts). Any organization
 * the user is not in now is 404, whatever is asked of it; a member who is not
 * an org_admin gets 403 on the changes.
 */
export default class OrganizationsController {
  /** GET /dashboard/organizations */
  async index({ view, auth }: HttpContext) {
    const user = auth.use('web').getUserOrFail()
    await settleMetering()
    const entries = await portalOrganizations(user.id)
    const teams = await teamsOfOrganizations(entries.map((e) => e.org.id))
    return view.render('pages/portal/organizations', {
      entries: entries.map((entry) => ({ ...entry, teamCount: (teams.get(entry.org.id) ?? []).length })),
    })
  }

  /** GET /dashboard/organizations/:id */
  async show(ctx: HttpContext) {
    // This process's queued usage rows first: the budget shown counts every call so far.
    await settleMetering()
    const fresh = await this.#membership(ctx)
    if (!fresh) return this.#notFound(ctx)
    const teams = ((await teamsOfOrganizations([fresh.org.id])).get(fresh.org.id) ?? []).map((team) => ({ team, ...budgetFigures(team) }))
    const [members, spend] = await Promise.all([
      organizationMembers([fresh.org.id]).then((byOrg) => byOrg.get(fresh.org.id) ?? []),
      organizationSpend(fresh.org.id, teams.map((t) => t.team.id)),
    ])
    const viewer = fresh.role === 'internal_user_viewer'
    const roleCounts = { org_admin: 0, internal_user: 0, internal_user_viewer: 0 }
    for (const member of members) roleCounts[member.role]++
    const userId = ctx.auth.use('web').getUserOrFail().id
    return ctx.view.render('pages/portal/organization_show', {
      entry: fresh,
      teams,
      teamSpend: spend.teams,
      spend,
      spendDays: SPEND_DAYS,
      // A viewer's list is themselves only (the counts say how many others there are).
      members: viewer ? members.filter((m) => m.user_id === userId) : members,
      memberCount: members.length,
      roleCounts,
      isAdmin: fresh.role === 'org_admin',
      userId,
      chart: { days: spend.days.map((d) => d.day), cost: spend.days.map((d) => Number(d.cost)) },
    })
  }

  /** POST /dashboard/organizations/:id/members {email, new_role} */
  async addMember(ctx: HttpContext) {
    return this.#change(ctx, addOrganizationMemberValidator, 'members', async (orgId, input) => {
      const member = await addPortalOrganizationMember(orgId, input.email, input.new_role, portalActor(ctx))
      return ctx.i18n.t('portal.organizations.member_added', { email: member.email, role: ctx.i18n.t(`portal.organizations.roles.${member.role}`) })
    })
  }

  /** POST /dashboard/organizations/:id/members/:user/role {role} */
  async changeRole(ctx: HttpContext) {
    return this.#change(ctx, organizationMemberRoleValidator, 'members', async (orgId, input) => {
      const member = await changePortalOrganizationMemberRole(orgId, this.#memberId(ctx), input.role, portalActor(ctx))
      return ctx.i18n.t('portal.organizations.role_changed', { email: member.email, role: ctx.i18n.t(`portal.organizations.roles.${member.role}`) })
    })
  }

  /** POST /dashboard/organizations/:id/members/:user/remove */
  async removeMember(ctx: HttpContext) {
    return this.#change(ctx, null, 'members', async (orgId) => {
      const member = await removePortalOrganizationMember(orgId, this.#memberId(ctx), portalActor(ctx))
      return ctx.i18n.t('portal.organizations.member_removed', { email: member.email })
    })
  }

  /** POST /dashboard/organizations/:id/teams {team_name, team_budget?, team_period?}: the creator becomes its admin. */
  async createTeam(ctx: HttpContext) {
    return this.#change(ctx, organizationTeamValidator, 'teams', async (orgId, input) => {
      const team = await createPortalOrganizationTeam(
        orgId,
        { name: input.team_name, maxBudget: input.team_budget ?? null, budgetPeriod: input.team_period ?? null },
        portalActor(ctx)
      )
      return ctx.i18n.t('portal.organizations.team_created', { team: team.alias })
    })
  }

  /**
   * A change asked by a member: the organization must be one of the user's
   * (404 first, whatever the input), then the input is validated, then the
   * action decides (an org_admin only: 403 otherwise). A refusal goes back
   * to the organization's page, beside its field; success is said at the top.
   * A user who took themselves out goes back to the list.
   */
  async #change<V extends VineValidator<any, any>>(
    ctx: HttpContext,
    validator: V | null,
    anchor: 'members' | 'teams',
    run: (orgId: number, input: Output<V>) => Promise<string>
  ) {
    const entry = await this.#membership(ctx)
    if (!entry) return this.#notFound(ctx)
    const page = `/dashboard/organizations/${entry.org.id}#${anchor}`
    let input = {} as Output<V>
    if (validator) {
      try {
        input = await validator.validate(ctx.request.all(), { messagesProvider: ctx.i18n.createMessagesProvider() })
      } catch (error) {
        if (!(error instanceof vineErrors.E_VALIDATION_ERROR)) throw error
        ctx.session.flashValidationErrors(error)
        return ctx.response.redirect(page)
      }
    }
    try {
      ctx.session.flash('success', await run(entry.org.id, input))
    } catch (error) {
      if (!(error instanceof PortalInputError)) throw error
      if (error.code === 'org_not_found') return this.#notFound(ctx)
      if (error.code === 'org_admin_only') return ctx.response.forbidden(ctx.i18n.t('errors.form.org_admin_only'))
      flashInputError(ctx, error)
    }
    // Still a member (a removal or a role change may have been their own)?
    const [still] = await portalOrganizations(ctx.auth.use('web').getUserOrFail().id, entry.org.id)
    return ctx.response.redirect(still ? page : '/dashboard/organizations')
  }

  /** The user's membership of the organization in the URL (null: not a member, or no such organization). */
  async #membership(ctx: HttpContext): Promise<PortalOrganization | null> {
    const id = recordId(ctx.params.id)
    if (id === null) return null
    const [entry] = await portalOrganizations(ctx.auth.use('web').getUserOrFail().id, id)
    return entry ?? null
  }

  #memberId(ctx: HttpContext) {
    return recordId(ctx.params.user) ?? 0
  }

  #notFound(ctx: HttpContext) {
    return ctx.response.notFound(ctx.i18n.t('portal.organizations.not_found'))
  }
}
