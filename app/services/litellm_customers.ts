import type { HttpContext } from '@adonisjs/core/http'
import { findUser } from '#actions/post_ledger_entry'
import { plain, type EndUserSettings } from '#actions/end_users'
import { isLimitInput } from '#validators/team'
import type { EndUserEntry } from '#services/end_user_spend'
import { BUDGET_DURATIONS, budgetIdOf, budgetPeriod, budgetText, fieldError } from '#services/litellm_management'
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
 * A /customer/new or /update body's limits as the end user's settings:
 * `max_budget` (USD, null: none) per `budget_duration` (mapped as /key/* and
 * /team/* map it: "1d"/"24h" a UTC day, "7d"/"1w" a week, "30d"/"1mo" a
 * calendar month; null: the customer's whole life), `rpm_limit`, `tpm_limit`
 * (whole numbers or null), `budget_id` (a shared budget to link: its limits
 * replace these; null unlinks). Only the fields given are returned.
 */
export function customerLimits(body: Record<string, unknown>): Omit<EndUserSettings, 'userRef' | 'endUser'> {
  const input: Omit<EndUserSettings, 'userRef' | 'endUser'> = {}
  if ('max_budget' in body) {
    const text = budgetText(body.max_budget)
    if (text !== null && typeof text !== 'string') throw fieldError('max_budget', 'an amount in USD, or null')
    input.monthlyLimit = text as string | null
  }
  if ('budget_duration' in body) input.budgetPeriod = budgetPeriod(body.budget_duration)
  for (const [field, name] of [['rpm_limit', 'rpm'], ['tpm_limit', 'tpm']] as const) {
    if (!(field in body)) continue
    if (!isLimitInput(body[field])) throw fieldError(field, 'a whole number, or null')
    input[name] = body[field] as number | null
  }
  if ('budget_id' in body) {
    input.budgetId = body.budget_id === null ? null : budgetIdOf(body.budget_id, 'budget_id')
  }
  return input
}

/**
 * An end user as LiteLLM's customer (LiteLLM_EndUserTable): `user_id` its id,
 * `spend` what its limit counts (this period's spend, or its lifetime spend
 * without a period), `blocked`, `litellm_budget_table` its limits (its shared
 * budget's when linked: `budget_id`; null without any); `alias`,
 * `allowed_model_region`, `default_model` are not kept (null). Plus ours:
 * `owner` (the user id it belongs to) and `requests_this_month`.
 */
export function litellmCustomerJson(ownerId: number, e: EndUserEntry) {
  const limited = e.monthly_limit !== null || e.rpm !== null || e.tpm !== null || e.budget_id !== null
  return {
    user_id: e.end_user,
    alias: null,
    spend: Number(e.spent_this_period),
    blocked: e.blocked,
    allowed_model_region: null,
    default_model: null,
    budget_id: e.budget_id,
    litellm_budget_table: limited
      ? {
          budget_id: e.budget_id,
          max_budget: e.monthly_limit === null ? null : Number(plain(e.monthly_limit)),
          budget_duration: e.budget_period === null ? null : BUDGET_DURATIONS[e.budget_period],
          rpm_limit: e.rpm,
          tpm_limit: e.tpm,
          budget_reset_at: e.budget_reset_at === null ? null : e.budget_reset_at.toISOString(),
        }
      : null,
    owner: String(ownerId),
    requests_this_month: e.requests_this_month,
  }
}
