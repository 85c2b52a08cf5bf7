import type { HttpContext } from '@adonisjs/core/http'
import { findUser } from '#actions/post_ledger_entry'
import { plain } from '#actions/end_users'
import type { EndUserEntry } from '#services/end_user_spend'
import { budgetText, fieldError } from '#services/litellm_management'
import { isEndUser, MAX_END_USER_LENGTH } from '#gateway/end_users/end_user_id'

/**
 * LiteLLM's customers (/customer/*) over the gateway's end users
 * (app/actions/end_users.ts): field names and shapes only.
 *
 * An end user here belongs to an owner (a gateway user: the one whose keys
 * send its requests; two owners' `alice` are two end users). LiteLLM's
 * customers have no owner, so each call names one in `owner` (our user id or
 * e-mail, in the body or the query string) and, without it, acts in the
 * management key's own account: a deployment whose apps call with the
 * admin's keys, as a LiteLLM proxy with one master key, needs no `owner`.
 */

/** The owner a /customer call acts for: `owner` (id or e-mail), else the management key's own user. */
export async function customerOwner(ctx: HttpContext) {
  const ref = ctx.request.input('owner')
  if (ref === undefined || ref === null || ref === '') return findUser(String(ctx.principal.user.id))
  if (typeof ref !== 'string' && typeof ref !== 'number') throw fieldError('owner', 'the owner\'s user id or e-mail')
  return findUser(String(ref))
}

/** A LiteLLM customer id (`user_id`, `end_user_id`): required text */
export function customerId(value: unknown, field = 'user_id'): string {
  if (typeof value === 'number' && Number.isFinite(value)) return String(value)
  if (typeof value !== 'string' || value === '') throw fieldError(field, 'required: the customer\'s id (the `user` its requests send)')
  // Checked before anything changes: a bad id in a list blocks or deletes none of the others.
  if (!isEndUser(value)) throw fieldError(field, `a customer id is 1 to ${MAX_END_USER_LENGTH} characters without control characters`)
  return value
}

/** `user_ids` of /customer/block, /unblock, /delete: 1 to 100 ids */
export function customerIds(value: unknown): string[] {
  if (!Array.isArray(value) || value.length === 0 || value.length > 100) throw fieldError('user_ids', 'a list of 1 to 100 customer ids')
  return value.map((v) => customerId(v, 'user_ids'))
}

/**
 * LiteLLM's `max_budget` + `budget_duration` as the end user's monthly limit:
 * end users' limits reset each UTC calendar month, so a budget maps when its
 * duration is a month ("30d", "1mo"); `max_budget: null` removes the limit.
 * Returns undefined when neither field is given (the limit stays).
 */
export function customerMonthlyLimit(body: Record<string, unknown>): string | null | undefined {
  if (!('max_budget' in body) && !('budget_duration' in body)) return undefined
  const duration = body.budget_duration
  if (duration !== undefined && duration !== null && duration !== '30d' && duration !== '1mo') {
    throw fieldError('budget_duration', `a customer's budget here resets each UTC calendar month: give "30d" or "1mo", not "${String(duration)}"`)
  }
  if (body.max_budget === undefined) throw fieldError('max_budget', 'give the monthly budget in USD (or null for none) with budget_duration')
  if (body.max_budget === null) return null
  if (duration === undefined || duration === null) {
    throw fieldError('budget_duration', 'required with max_budget: a customer\'s budget here resets each UTC calendar month ("30d" or "1mo")')
  }
  const text = budgetText(body.max_budget)
  if (typeof text !== 'string') throw fieldError('max_budget', 'an amount in USD, or null')
  return text
}

/**
 * An end user as LiteLLM's customer (LiteLLM_EndUserTable): `user_id` its id,
 * `spend` what it spent this UTC month (what the limit counts), `blocked`,
 * `litellm_budget_table` the monthly limit (null without); `alias`,
 * `allowed_model_region`, `default_model` are not kept (null). Plus ours:
 * `owner` (the user id it belongs to) and `requests_this_month`.
 */
export function litellmCustomerJson(ownerId: number, e: EndUserEntry) {
  return {
    user_id: e.end_user,
    alias: null,
    spend: Number(e.spent_this_month),
    blocked: e.blocked,
    allowed_model_region: null,
    default_model: null,
    litellm_budget_table: e.monthly_limit === null ? null : { max_budget: Number(plain(e.monthly_limit)), budget_duration: '1mo' },
    owner: String(ownerId),
    requests_this_month: e.requests_this_month,
  }
}
