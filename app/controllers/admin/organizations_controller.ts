import type { HttpContext } from '@adonisjs/core/http'
import {
  createOrganization,
  deleteOrganizations,
  findOrganization,
  listOrganizations,
  organizationMembers,
  updateOrganization,
  type OrganizationSettings,
} from '#actions/organizations'
import { budgetResetsAt, budgetSpentNow } from '#actions/budget_group'
import { teamsOfOrganizations } from '#actions/teams'
import { AdminInputError } from '#actions/admin_input_error'
import { settleMetering } from '#services/settle_metering'
import { notFound, panelActor } from '#controllers/admin/panel'
import { budgetGroupSettings } from '#controllers/admin/budget_group_form'

/** Form fields -> the organization actions' settings (empty = none). */
function organizationSettings(request: HttpContext['request']): OrganizationSettings {
  return { ...budgetGroupSettings(request), blocked: request.input('blocked') === 'on' }
}

/**
 * Organizations (LiteLLM's): teams grouped under a budget, models, rate
 * limits and a block. The same actions as the management API, LiteLLM's
 * /organization/* and `organization:create` (app/actions/organizations.ts),
 * audited as the signed-in admin. A team joins one from the team's form.
 */
export default class OrganizationsController {
  /** Every organization with its budget, what it spent this period, its teams and members. */
  async index({ view }: HttpContext) {
    await settleMetering()
    const orgs = await listOrganizations()
    const ids = orgs.map((o) => o.id)
    const [teams, members] = await Promise.all([teamsOfOrganizations(ids), organizationMembers(ids)])
    const rows = orgs.map((o) => ({
      org: o,
      spent: budgetSpentNow(o),
      resetsAt: budgetResetsAt(o),
      teams: teams.get(o.id) ?? [],
      members: (members.get(o.id) ?? []).length,
    }))
    return view.render('admin/organizations/index', { rows })
  }

  async create({ view }: HttpContext) {
    return view.render('admin/organizations/form', { org: null, teams: [] })
  }

  async store(ctx: HttpContext) {
    const org = await createOrganization(organizationSettings(ctx.request), panelActor(ctx))
    ctx.session.flash('success', `Organization ${org.alias} created. Put teams in it from their edit form.`)
    return ctx.response.redirect('/admin/organizations')
  }

  async edit(ctx: HttpContext) {
    const org = await this.#org(ctx)
    if (!org) return notFound(ctx)
    const teams = (await teamsOfOrganizations([org.id])).get(org.id) ?? []
    // Its members, changed through organization_members_controller.ts
    const members = (await organizationMembers([org.id])).get(org.id) ?? []
    return ctx.view.render('admin/organizations/form', { org, teams, members })
  }

  async update(ctx: HttpContext) {
    const org = await updateOrganization(Number(ctx.params.id), organizationSettings(ctx.request), panelActor(ctx))
    ctx.session.flash('success', `Organization ${org.alias} saved.`)
    return ctx.response.redirect('/admin/organizations')
  }

  /** Refused while teams are in it (the action says how many): move or delete them first. */
  async destroy(ctx: HttpContext) {
    const [org] = await deleteOrganizations([Number(ctx.params.id)], panelActor(ctx))
    ctx.session.flash('success', `Organization ${org.alias} deleted.`)
    return ctx.response.redirect('/admin/organizations')
  }

  async #org(ctx: HttpContext) {
    try {
      return await findOrganization(ctx.params.id)
    } catch (error) {
      if (error instanceof AdminInputError) return null
      throw error
    }
  }
}
