import type { HttpContext } from '@adonisjs/core/http'
import {
  addOrganizationMembers,
  createOrganization,
  deleteOrganizations,
  findOrganization,
  listOrganizations,
  organizationMembers,
  removeOrganizationMember,
  updateOrganization,
  type OrganizationMember,
  type OrganizationRow,
} from '#actions/organizations'
import { teamsOfOrganizations, type TeamRow } from '#actions/teams'
import { AdminInputError } from '#actions/admin_input_error'
import { apiActor, managed, numberAsText } from '#services/management_api'
import { budgetGroupJson, budgetGroupSettingsOf } from '#services/management_budget_groups'
import { settleMetering } from '#services/settle_metering'

/**
 * Organizations over the management API (LiteLLM's /organization/* in the
 * API's own names): teams grouped under a budget, model globs, rpm/tpm and a
 * block. The same actions as LiteLLM's paths, the panel and
 * `organization:create` (app/actions/organizations.ts), audited with source
 * `api`. A team joins one with PATCH /api/admin/teams/:id {organization_id}.
 */
export default class ManagementOrganizationsController {
  /** GET /api/admin/organizations: every organization, newest first, with its teams and this period's spend */
  async index() {
    await settleMetering()
    const orgs = await listOrganizations()
    const ids = orgs.map((o) => o.id)
    const [members, teams] = await Promise.all([organizationMembers(ids), teamsOfOrganizations(ids)])
    return { object: 'list', data: orgs.map((o) => organizationJson(o, members.get(o.id) ?? [], teams.get(o.id) ?? [])) }
  }

  /** POST /api/admin/organizations {alias, max_budget?, budget_period?, models?, rpm?, tpm?, blocked?, metadata?}: 201 */
  async store(ctx: HttpContext) {
    return managed(async () => {
      const org = await createOrganization(budgetGroupSettingsOf(ctx.request.body()), apiActor(ctx))
      ctx.response.status(201)
      return organizationJson(org, [], [])
    })
  }

  /** GET /api/admin/organizations/:id */
  async show({ params }: HttpContext) {
    return managed(async () => {
      await settleMetering()
      return this.#json(await findOrganization(params.id))
    })
  }

  /** PATCH /api/admin/organizations/:id: the fields given change (null clears a budget or limit) */
  async update(ctx: HttpContext) {
    return managed(async () => {
      const org = await updateOrganization(ctx.params.id, budgetGroupSettingsOf(ctx.request.body()), apiActor(ctx))
      await settleMetering()
      return this.#json(await findOrganization(org.id))
    })
  }

  /** DELETE /api/admin/organizations/:id: refused (400) while teams are in it */
  async destroy(ctx: HttpContext) {
    return managed(async () => {
      const [org] = await deleteOrganizations([ctx.params.id], apiActor(ctx))
      return { object: 'organization', id: org.id, deleted: true }
    })
  }

  /** POST /api/admin/organizations/:id/members {user, role?: org_admin|internal_user|internal_user_viewer} (or {members: [...]}) */
  async addMembers(ctx: HttpContext) {
    return managed(async () => {
      const body = ctx.request.body()
      const list = Array.isArray(body.members) ? body.members : [body]
      const members = list.map((m: any) => ({ user: numberAsText(m?.user) as string, role: m?.role }))
      const { org } = await addOrganizationMembers(ctx.params.id, members, apiActor(ctx))
      return this.#json(org)
    })
  }

  /** DELETE /api/admin/organizations/:id/members?user=<id|email> */
  async removeMember(ctx: HttpContext) {
    return managed(async () => {
      const user = ctx.request.input('user')
      if (typeof user !== 'string' || user === '') throw new AdminInputError('user is required', 'user')
      const { org } = await removeOrganizationMember(ctx.params.id, user, apiActor(ctx))
      return this.#json(org)
    })
  }

  async #json(org: OrganizationRow) {
    const [members, teams] = await Promise.all([organizationMembers([org.id]), teamsOfOrganizations([org.id])])
    return organizationJson(org, members.get(org.id) ?? [], teams.get(org.id) ?? [])
  }
}

const iso = (value: Date | null) => (value ? new Date(value).toISOString() : null)

function organizationJson(org: OrganizationRow, members: OrganizationMember[], teams: TeamRow[]) {
  return {
    ...budgetGroupJson(org, 'organization'),
    teams: teams.map((t) => ({ id: t.id, alias: t.alias })),
    members: members.map((m) => ({ user_id: m.user_id, email: m.email, role: m.role })),
    created_at: iso(org.created_at),
    updated_at: iso(org.updated_at),
  }
}
