import type { HttpContext } from '@adonisjs/core/http'
import {
  addOrganizationMembers,
  createOrganization,
  deleteOrganizations,
  findOrganization,
  listOrganizations,
  organizationMembers,
  organizationsOfUser,
  removeOrganizationMember,
  updateOrganization,
  updateOrganizationMember,
  type OrganizationRow,
} from '#actions/organizations'
import { teamsOfOrganizations } from '#actions/teams'
import vine from '@vinejs/vine'
import { DateTime } from 'luxon'
import { wholeNumberField } from '#validators/whole_number_field'
import { datesOf, litellmRangeValidator } from '#validators/usage_period'
import { parseFilters } from '#services/usage_query'
import { spendByOrganizationDay } from '#services/usage_rollup'
import { organizationDailyActivityJson } from '#services/litellm_daily_activity'
import { findUser } from '#actions/post_ledger_entry'
import { apiActor } from '#services/management_api'
import { recordId } from '#services/record_id'
import { GatewayError } from '#exceptions/gateway_error'
import { settleMetering } from '#services/settle_metering'
import { fieldError, litellmManaged } from '#services/litellm_management'
import {
  litellmMembershipJson,
  litellmOrganizationJson,
  organizationIdOf,
  organizationMembersOf,
  organizationSettingsOf,
  roleOf,
} from '#services/litellm_organizations'

/**
 * LiteLLM's organization management (/organization/new, /info, /list,
 * /update, /delete, /member_add, /member_update, /member_delete) over
 * app/actions/organizations.ts, the actions the management API
 * (/api/admin/organizations), the panel and `organization:create` use,
 * audited with source `api`. Shapes: services/litellm_organizations.ts.
 */
/** /organization/daily/activity's paging: LiteLLM's page_size is 10 by default, at most 1000 (days a page here) */
const activityPageValidator = vine.compile(
  vine.object({ page: wholeNumberField().min(1).max(100_000).optional(), page_size: wholeNumberField().min(1).max(1000).optional() })
)

/** `organization_ids` (comma-separated, as LiteLLM's dashboard sends them; repeated works too): ids, or null for all */
function organizationIdsFilter(value: unknown): number[] | null {
  if (value === undefined || value === null || value === '') return null
  const parts = (Array.isArray(value) ? value : [value]).flatMap((v) => (typeof v === 'string' ? v.split(',') : [v]))
  if (parts.length > 100) throw fieldError('organization_ids', 'at most 100 organization ids')
  return parts.map((part) => {
    const id = typeof part === 'string' && /^\s*\d{1,15}\s*$/.test(part) ? recordId(part.trim()) : null
    if (id === null) throw fieldError('organization_ids', `organization ids (digits), comma-separated, not ${JSON.stringify(part)?.slice(0, 60)}`)
    return id
  })
}

export default class LiteLLMOrganizationsController {
  /**
   * GET /organization/daily/activity?start_date=&end_date=&organization_ids=&page=&page_size=:
   * LiteLLM's spend per organization, per UTC day (the last 7 by default, at
   * most a year), with its models and organizations, from each request's own
   * organization (usage_records.organization_id: a team moved later leaves
   * its past spend with the first). Finished days from the rollups, today live.
   */
  async dailyActivity(ctx: HttpContext) {
    return orgManaged(async () => {
      const qs = ctx.request.qs()
      const dates = { from: qs.start_date, to: qs.end_date }
      await litellmRangeValidator.validate(datesOf(dates, ['from', 'to']))
      const paging = await activityPageValidator.validate({ page: qs.page, page_size: qs.page_size })
      const only = organizationIdsFilter(qs.organization_ids)
      const filters = parseFilters(dates)
      await settleMetering()
      const rows = await spendByOrganizationDay(DateTime.fromISO(filters.from, { zone: 'utc' }), DateTime.fromISO(filters.to, { zone: 'utc' }), only)
      return organizationDailyActivityJson(rows, paging.page ?? 1, paging.page_size ?? 10)
    })
  }

  /** POST /organization/new {organization_alias, models?, max_budget?, budget_duration?, tpm_limit?, rpm_limit?, blocked?, metadata?} */
  async store(ctx: HttpContext) {
    return orgManaged(async () => {
      const body = ctx.request.body()
      const settings = organizationSettingsOf(body)
      if (!settings.alias) throw fieldError('organization_alias', 'required: the organization\'s name')
      return this.#json(await createOrganization(settings, apiActor(ctx)))
    })
  }

  /** GET /organization/info?organization_id= (POST {organizations: [...]}: LiteLLM's older form, a list) */
  async show(ctx: HttpContext) {
    return orgManaged(async () => {
      await settleMetering()
      if (ctx.request.method() === 'POST') {
        const ids = ctx.request.body().organizations
        if (!Array.isArray(ids) || ids.length === 0 || ids.length > 100) throw fieldError('organizations', 'a list of 1 to 100 organization ids')
        const orgs: OrganizationRow[] = []
        for (const id of ids) orgs.push(await findOrganization(organizationIdOf(id, 'organizations')))
        return this.#list(orgs)
      }
      return this.#json(await findOrganization(organizationIdOf(ctx.request.input('organization_id'))))
    })
  }

  /** GET /organization/list[?user_id=]: every organization, newest first; with user_id those it is a member of */
  async index(ctx: HttpContext) {
    return orgManaged(async () => {
      await settleMetering()
      const userRef = ctx.request.input('user_id')
      const orgs = userRef ? await organizationsOfUser((await findUser(String(userRef))).id) : await listOrganizations()
      return this.#list(orgs)
    })
  }

  /** PATCH (or POST) /organization/update {organization_id, ...the fields to change}: the organization */
  async update(ctx: HttpContext) {
    return orgManaged(async () => {
      const body = ctx.request.body()
      const ref = organizationIdOf(body.organization_id)
      return this.#json(await updateOrganization(ref, organizationSettingsOf(body), apiActor(ctx)))
    })
  }

  /** DELETE (or POST) /organization/delete {organization_ids}: the deleted organizations; refused while one has teams */
  async destroy(ctx: HttpContext) {
    return orgManaged(async () => {
      const ids = ctx.request.body().organization_ids
      if (!Array.isArray(ids) || ids.length === 0 || ids.length > 100) throw fieldError('organization_ids', 'a list of 1 to 100 organization ids')
      const refs = ids.map((id) => organizationIdOf(id, 'organization_ids'))
      // Their members, as they were (the rows go with the organization); no teams: one with teams is not deleted.
      const before = await organizationMembers(refs.map(recordId).filter((id): id is number => id !== null))
      const deleted = await deleteOrganizations(refs, apiActor(ctx))
      return deleted.map((org) => litellmOrganizationJson(org, before.get(org.id) ?? [], []))
    })
  }

  /** POST /organization/member_add {organization_id, member: {user_id | user_email, role} or a list} */
  async memberAdd(ctx: HttpContext) {
    return orgManaged(async () => {
      const body = ctx.request.body()
      const ref = organizationIdOf(body.organization_id)
      if (body.member === undefined || body.member === null) throw fieldError('member', 'required: {user_id or user_email, role}, or a list of them')
      const { org, added } = await addOrganizationMembers(ref, organizationMembersOf(body.member, 'member'), apiActor(ctx))
      return {
        organization_id: String(org.id),
        updated_users: added.map((m) => ({ user_id: String(m.user_id), user_email: m.email })),
        updated_organization_memberships: added.map((m) => litellmMembershipJson(org.id, m)),
      }
    })
  }

  /** PATCH (or POST) /organization/member_update {organization_id, user_id | user_email, role}: the membership */
  async memberUpdate(ctx: HttpContext) {
    return orgManaged(async () => {
      const body = ctx.request.body()
      const ref = organizationIdOf(body.organization_id)
      const { org, member } = await updateOrganizationMember(ref, userOf(body), body.role === undefined || body.role === null ? undefined : roleOf(body.role), apiActor(ctx))
      return litellmMembershipJson(org.id, member)
    })
  }

  /** DELETE (or POST) /organization/member_delete {organization_id, user_id | user_email}: the deleted membership */
  async memberDelete(ctx: HttpContext) {
    return orgManaged(async () => {
      const body = ctx.request.body()
      const ref = organizationIdOf(body.organization_id)
      const { org, member } = await removeOrganizationMember(ref, userOf(body), apiActor(ctx))
      return litellmMembershipJson(org.id, member)
    })
  }

  async #json(org: OrganizationRow) {
    return (await this.#list([org]))[0]
  }

  async #list(orgs: OrganizationRow[]) {
    await settleMetering()
    const ids = orgs.map((o) => o.id)
    const fresh = ids.length === 0 ? [] : await Promise.all(orgs.map((o) => findOrganization(o.id)))
    const [members, teams] = await Promise.all([organizationMembers(ids), teamsOfOrganizations(ids)])
    return fresh.map((o) => litellmOrganizationJson(o, members.get(o.id) ?? [], teams.get(o.id) ?? []))
  }
}

/** Our field names as LiteLLM's organization paths name them (litellmManaged's are the team's and the user's) */
const ORGANIZATION_FIELDS: Record<string, string> = { team_alias: 'organization_alias', user_role: 'role' }

/** litellmManaged, naming the fields as LiteLLM's organization paths do */
async function orgManaged<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await litellmManaged(work)
  } catch (error) {
    if (error instanceof GatewayError && error.param && ORGANIZATION_FIELDS[error.param]) {
      const from = error.param
      error.param = ORGANIZATION_FIELDS[from]
      error.message = error.message.replace(new RegExp(`(^|; )${from}:`, 'g'), `$1${error.param}:`)
    }
    throw error
  }
}

function userOf(body: Record<string, any>): string {
  const user = body.user_id ?? body.user_email
  if ((typeof user !== 'string' || user === '') && typeof user !== 'number') throw fieldError('user_id', 'required: user_id or user_email')
  return String(user)
}
