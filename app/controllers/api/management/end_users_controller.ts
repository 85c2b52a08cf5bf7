import type { HttpContext } from '@adonisjs/core/http'
import { AdminInputError } from '#actions/admin_input_error'
import { deleteEndUser, setEndUser, type EndUserSettings } from '#actions/end_users'
import { findUser } from '#actions/post_ledger_entry'
import { endUsersOf, type EndUserEntry } from '#services/end_user_spend'
import { apiActor, managed, money, numberAsText } from '#services/management_api'
import { settleMetering } from '#services/settle_metering'

/**
 * End users over the management API (LiteLLM's /customer/new, /update,
 * /info, /list, /delete): an owner's end users with this month's spend, and
 * their settings (blocked, monthly_limit). The same actions as the panel and
 * `enduser:set`, audited with source `api`. An end user is named in the
 * query string or the body, never in the path: it is the client's text
 * (slashes, spaces, any script).
 */
export default class ManagementEndUsersController {
  /** GET /api/admin/end-users?user=<id|email>: listed end users and this month's others, with spend */
  async index({ request }: HttpContext) {
    return managed(async () => {
      const owner = await findUser(requiredText(request.input('user'), 'user'))
      await settleMetering()
      const data = await endUsersOf(owner.id)
      return { object: 'list', user_id: owner.id, data: data.map((e) => endUserJson(owner.id, e)) }
    })
  }

  /**
   * POST /api/admin/end-users {user, end_user, blocked?, monthly_limit?,
   * budget_period?, rpm?, tpm?, budget_id?}: creates or changes the owner's
   * settings for the end user (given fields only; `monthly_limit: null`
   * removes the limit, the limit per `budget_period` day/week/month, null: its
   * whole life; `budget_id` links a shared budget, whose limits then apply,
   * null unlinks). 201 when created.
   */
  async store(ctx: HttpContext) {
    return managed(async () => {
      const body = ctx.request.body()
      const input: EndUserSettings = {
        userRef: requiredText(numberAsText(body.user), 'user'),
        endUser: requiredText(body.end_user, 'end_user'),
      }
      if (body.blocked !== undefined) {
        if (typeof body.blocked !== 'boolean') throw new AdminInputError('blocked: true or false', 'blocked')
        input.blocked = body.blocked
      }
      if (body.monthly_limit !== undefined) {
        const limit = numberAsText(body.monthly_limit)
        if (limit !== null && typeof limit !== 'string') throw new AdminInputError('monthly_limit: an amount in USD, or null', 'monthly_limit')
        input.monthlyLimit = limit
      }
      // Checked by setEndUser's validator (whole numbers as whole_number_field.ts reads them; a budget that exists).
      if (body.budget_period !== undefined) input.budgetPeriod = body.budget_period
      if (body.rpm !== undefined) input.rpm = body.rpm
      if (body.tpm !== undefined) input.tpm = body.tpm
      if (body.budget_id !== undefined) input.budgetId = body.budget_id
      const { owner, endUser, created } = await setEndUser(input, apiActor(ctx))
      await settleMetering()
      const [entry] = await endUsersOf(owner.id, endUser.end_user)
      ctx.response.status(created ? 201 : 200)
      return endUserJson(owner.id, entry)
    })
  }

  /** DELETE /api/admin/end-users?user=&end_user=: removes the settings (the usage rows stay) */
  async destroy(ctx: HttpContext) {
    return managed(async () => {
      const user = requiredText(ctx.request.input('user'), 'user')
      const endUser = requiredText(ctx.request.input('end_user'), 'end_user')
      await deleteEndUser(user, endUser, apiActor(ctx))
      return { object: 'end_user', end_user: endUser, deleted: true }
    })
  }
}

function requiredText(value: unknown, field: string): string {
  if (typeof value !== 'string' || value === '') throw new AdminInputError(`${field} is required`, field)
  return value
}

function endUserJson(userId: number, e: EndUserEntry) {
  return {
    object: 'end_user',
    user_id: userId,
    end_user: e.end_user,
    listed: e.listed,
    blocked: e.blocked,
    monthly_limit: e.monthly_limit === null ? null : money(e.monthly_limit),
    budget_period: e.budget_period,
    rpm: e.rpm,
    tpm: e.tpm,
    budget_id: e.budget_id,
    spent_this_period: money(e.spent_this_period),
    budget_reset_at: e.budget_reset_at,
    spent_this_month: money(e.spent_this_month),
    requests_this_month: e.requests_this_month,
  }
}
