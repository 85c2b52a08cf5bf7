import type { HttpContext } from '@adonisjs/core/http'
import { AdminInputError } from '#actions/admin_input_error'
import { deleteEndUser, setEndUser, type EndUserSettings } from '#actions/end_users'
import { endUsersOf } from '#services/end_user_spend'
import { apiActor } from '#services/management_api'
import { settleMetering } from '#services/settle_metering'
import { fieldError, litellmManaged } from '#services/litellm_management'
import { customerId, customerIds, customerLimits, customerOwner, litellmCustomerJson } from '#services/litellm_customers'

/**
 * LiteLLM's customer management (/customer/new, /info, /update, /delete,
 * /block, /unblock, /list) over the owner's end users: the actions the
 * management API (/api/admin/end-users), the panel and `enduser:set` use,
 * audited with source `api`. The owner: services/litellm_customers.ts.
 */
export default class LiteLLMCustomersController {
  /** POST /customer/new {user_id, blocked?, max_budget?, budget_duration?, rpm_limit?, tpm_limit?, budget_id?, owner?}: a customer not listed yet. */
  async store(ctx: HttpContext) {
    return litellmManaged(async () => {
      const body = ctx.request.body()
      const id = customerId(body.user_id)
      const owner = await customerOwner(ctx)
      const input = settingsOf(body, String(owner.id), id)
      // LiteLLM: a max_budget without a budget_duration never resets (the end user's whole life).
      if (input.monthlyLimit !== undefined && !('budget_duration' in body)) input.budgetPeriod = null
      // Checked again in setEndUser's transaction under the owner's lock: two at once make one, the other is refused.
      const listed = (await endUsersOf(owner.id, id)).find((e) => e.listed)
      if (listed) throw fieldError('user_id', `customer "${id}" already exists: change it with /customer/update`)
      return this.#saved(ctx, owner.id, { ...input, mustBeNew: true })
    })
  }

  /** POST /customer/update {user_id, blocked?, max_budget?, budget_duration?, rpm_limit?, tpm_limit?, budget_id?, owner?}: one known (listed, or sent requests this month). */
  async update(ctx: HttpContext) {
    return litellmManaged(async () => {
      const body = ctx.request.body()
      const id = customerId(body.user_id)
      const owner = await customerOwner(ctx)
      const input = settingsOf(body, String(owner.id), id)
      if ((await endUsersOf(owner.id, id)).length === 0) throw unknown(id)
      return this.#saved(ctx, owner.id, input)
    })
  }

  /** GET /customer/info?end_user_id=[&owner=]: a listed customer, or any that sent requests this month */
  async show(ctx: HttpContext) {
    return litellmManaged(async () => {
      const id = customerId(ctx.request.input('end_user_id'), 'end_user_id')
      const owner = await customerOwner(ctx)
      await settleMetering()
      const [entry] = await endUsersOf(owner.id, id)
      if (!entry) throw unknown(id)
      return litellmCustomerJson(owner.id, entry)
    })
  }

  /** GET /customer/list[?owner=]: the listed customers and this month's others (the costliest 100) */
  async index(ctx: HttpContext) {
    return litellmManaged(async () => {
      const owner = await customerOwner(ctx)
      await settleMetering()
      return (await endUsersOf(owner.id)).map((e) => litellmCustomerJson(owner.id, e))
    })
  }

  /** POST /customer/delete {user_ids}: their settings removed (usage rows stay); an unknown one deletes nothing */
  async destroy(ctx: HttpContext) {
    return litellmManaged(async () => {
      const ids = customerIds(ctx.request.body().user_ids)
      const owner = await customerOwner(ctx)
      await assertListed(owner.id, ids)
      const actor = apiActor(ctx)
      // An id given twice is one customer, deleted (and counted) once
      const unique = [...new Set(ids)]
      for (const id of unique) await deleteEndUser(String(owner.id), id, actor)
      return { deleted_customers: unique.length, message: `Deleted customers: ${unique.join(', ')}` }
    })
  }

  /** POST /customer/block {user_ids}: refused (403 end_user_blocked) from now on; an id not listed yet is listed blocked */
  async block(ctx: HttpContext) {
    return litellmManaged(async () => {
      const ids = customerIds(ctx.request.body().user_ids)
      const owner = await customerOwner(ctx)
      const actor = apiActor(ctx)
      for (const id of ids) await setEndUser({ userRef: String(owner.id), endUser: id, blocked: true }, actor)
      return { blocked_users: ids }
    })
  }

  /** POST /customer/unblock {user_ids}: served again; each must be listed (an unlisted one is not blocked: 404) */
  async unblock(ctx: HttpContext) {
    return litellmManaged(async () => {
      const ids = customerIds(ctx.request.body().user_ids)
      const owner = await customerOwner(ctx)
      await assertListed(owner.id, ids)
      const actor = apiActor(ctx)
      for (const id of ids) await setEndUser({ userRef: String(owner.id), endUser: id, blocked: false }, actor)
      return { unblocked_users: ids }
    })
  }

  async #saved(ctx: HttpContext, ownerId: number, input: EndUserSettings) {
    const { endUser } = await setEndUser(input, apiActor(ctx))
    await settleMetering()
    const [entry] = await endUsersOf(ownerId, endUser.end_user)
    return litellmCustomerJson(ownerId, entry)
  }
}

/** What a /customer/new or /update body sets: `blocked` and the limits (customerLimits); LiteLLM's other fields are not kept */
function settingsOf(body: Record<string, unknown>, userRef: string, endUser: string): EndUserSettings {
  const input: EndUserSettings = { userRef, endUser }
  if (body.blocked !== undefined && body.blocked !== null) {
    if (typeof body.blocked !== 'boolean') throw fieldError('blocked', 'true or false')
    input.blocked = body.blocked
  }
  return Object.assign(input, customerLimits(body))
}

/** Every id is one of the owner's listed customers (checked before anything changes: one unknown id changes nothing). */
async function assertListed(ownerId: number, ids: string[]) {
  const listed = new Set((await endUsersOf(ownerId)).filter((e) => e.listed).map((e) => e.end_user))
  for (const id of ids) if (!listed.has(id)) throw unknown(id)
}

function unknown(id: string) {
  return AdminInputError.notFound(`No customer "${id}" (not listed, and no request named it this month)`)
}
