import { litellmModelLimits } from '#gateway/limits/model_limits'
import { DateTime } from 'luxon'
import type ApiKey from '#models/api_key'
import type User from '#models/user'
import { GatewayError } from '#exceptions/gateway_error'
import { periodBounds, type SpendPeriod } from '#gateway/metering/spend_period'
import { managed, numberAsText } from '#services/management_api'

/**
 * LiteLLM's key, spend and user management API (/key/*, /spend/logs, /user/*)
 * over the gateway's own: field names and shapes only. The controllers in
 * app/controllers/api/litellm/ call the same actions as the management API
 * (/api/admin), the panel and ace; this module maps LiteLLM's fields onto
 * ours and back, and words refusals with LiteLLM's field names.
 */

/** Our field names (validators, actions) -> LiteLLM's, for the `param` and message of a refusal */
const LITELLM_FIELDS: Record<string, string> = {
  user: 'user_id',
  userRef: 'user_id',
  name: 'key_alias',
  expiresInDays: 'duration',
  expiresOn: 'duration',
  rpm: 'rpm_limit',
  tpm: 'tpm_limit',
  maxParallel: 'max_parallel_requests',
  spendLimit: 'max_budget',
  spend_limit: 'max_budget',
  spendPeriod: 'budget_duration',
  spend_period: 'budget_duration',
  allowedIps: 'allowed_ips',
  email: 'user_email',
  role: 'user_role',
  planId: 'plan',
  from: 'start_date',
  to: 'end_date',
  page_size: 'page_size',
  end_user: 'user_id',
  monthly_limit: 'max_budget',
  alias: 'team_alias',
  maxBudget: 'max_budget',
  budgetPeriod: 'budget_duration',
  budgetId: 'budget_id',
  softBudget: 'soft_budget',
}

/**
 * Runs an action as the management API does (validation and refused input
 * become 400 / 404 / 409), naming LiteLLM's fields in `param` and the message.
 */
export async function litellmManaged<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await managed(work)
  } catch (error) {
    if (error instanceof GatewayError) {
      if (error.param && LITELLM_FIELDS[error.param]) error.param = LITELLM_FIELDS[error.param]
      error.message = error.message.replace(/(^|; )([A-Za-z_]+):/g, (all, lead, field) =>
        LITELLM_FIELDS[field] ? `${lead}${LITELLM_FIELDS[field]}:` : all
      )
    }
    throw error
  }
}

/** A 400 naming a LiteLLM field */
export function fieldError(field: string, message: string) {
  return GatewayError.invalidRequest(`${field}: ${message}`, 'invalid_field', field)
}

/**
 * LiteLLM's Member ({user_id | user_email, role}), one or a list (a team's
 * `member`, `members_with_roles`, an organization's `member`), as our user
 * refs; `roleOf` reads each member's role (absent or null included) or
 * refuses it naming the field.
 */
export function litellmMembersOf<R>(value: unknown, field: string, roleOf: (role: unknown) => R): Array<{ user: string; role: R }> {
  const list = Array.isArray(value) ? value : [value]
  if (list.length === 0 || list.length > 100) throw fieldError(field, 'one member, or a list of 1 to 100')
  return list.map((member) => {
    if (typeof member !== 'object' || member === null) throw fieldError(field, 'a member is {user_id or user_email, role}')
    const m = member as Record<string, unknown>
    const ref = m.user_id ?? m.user_email
    if ((typeof ref !== 'string' || ref === '') && typeof ref !== 'number') throw fieldError(field, 'each member needs user_id or user_email')
    return { user: String(ref), role: roleOf(m.role) }
  })
}

const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400, w: 604_800 }
const DURATION = /^(\d{1,6})(s|m|h|d|w|mo)$/

/**
 * LiteLLM's key `duration` ("30d", "24h", "1w", "1mo") as whole days of life
 * (our keys expire at a day's granularity); null: no expiry (absent, null,
 * "permanent"). A length that is no whole number of days is refused.
 */
export function durationDays(value: unknown, field = 'duration'): number | null {
  if (value === undefined || value === null || value === '' || value === 'permanent') return null
  const match = typeof value === 'string' ? DURATION.exec(value.trim()) : null
  if (!match) throw fieldError(field, 'give a length such as "30d", "24h", "1w" or "1mo" (or null for no expiry)')
  const count = Number(match[1])
  let days: number
  if (match[2] === 'mo') {
    const now = DateTime.utc()
    days = Math.round(now.plus({ months: count }).diff(now, 'days').days)
  } else {
    days = (count * UNIT_SECONDS[match[2]]) / 86_400
  }
  if (!Number.isInteger(days) || days < 1 || days > 36_500) {
    throw fieldError(field, `keys here expire by whole days (1 to 36500): "${value}" is not`)
  }
  return days
}

/**
 * LiteLLM's `budget_duration` as our spend period: a cap that resets each
 * UTC day ("1d", "24h"), week ("7d", "1w") or calendar month ("30d", "1mo").
 * null: the cap covers the key's whole life. Any other length is refused.
 */
export function budgetPeriod(value: unknown): SpendPeriod | null {
  if (value === undefined || value === null || value === '') return null
  const match = typeof value === 'string' ? DURATION.exec(value.trim()) : null
  if (match) {
    if (match[2] === 'mo') {
      if (match[1] === '1') return 'month'
    } else {
      const seconds = Number(match[1]) * UNIT_SECONDS[match[2]]
      if (seconds === 86_400) return 'day'
      if (seconds === 604_800) return 'week'
      if (seconds === 30 * 86_400) return 'month'
    }
  }
  throw fieldError(
    'budget_duration',
    `the gateway resets a key's budget each UTC day, week or calendar month: give "1d" (or "24h"), "7d" (or "1w") or "30d" (or "1mo"), not "${String(value)}"`
  )
}

/**
 * A LiteLLM budget_id as text (/budget/* and a customer's `budget_id`): a
 * JSON whole number is its digits, as /budget/new stores it, so a script that
 * made budget 5 links customers to 5 too; the validator refuses control
 * characters and surrounding spaces.
 */
export function budgetIdOf(value: unknown, field: string): string {
  if (typeof value === 'number' && Number.isSafeInteger(value)) return String(value)
  if (typeof value !== 'string' || value === '') throw fieldError(field, 'required: a budget id')
  return value
}

export const BUDGET_DURATIONS: Record<SpendPeriod, string> = { day: '1d', week: '7d', month: '1mo' }

/**
 * A JSON number or numeric text as our decimal text (max_budget); null stays
 * null, absent undefined. A number is kept to the micro-dollar (the cap's
 * precision): a client's float sum (0.1 + 0.2) is 0.3, not refused for its
 * seventeen decimals.
 */
export function budgetText(value: unknown): unknown {
  if (value === undefined || value === null) return value
  if (typeof value === 'number' && Number.isFinite(value) && value >= 0 && value < 1e12) {
    const rounded = Number(value.toFixed(6))
    // A positive amount below half a micro-dollar is no budget of 0 (which refuses every call): its own text, refused as the string would be.
    return value > 0 && rounded === 0 ? String(value) : String(rounded)
  }
  return numberAsText(value)
}

/** LiteLLM's `models`: `all-proxy-models` in the list (or an empty list) means every model the plan allows */
export function modelGlobs(value: unknown): unknown {
  if (Array.isArray(value) && value.includes('all-proxy-models')) return []
  return value
}

const iso = (value: DateTime | null | undefined) => value?.toISO() ?? null
const amount = (value: string | null) => (value === null ? null : Number(value))

/**
 * A key as LiteLLM answers it (LiteLLM_VerificationToken): `token`, LiteLLM's
 * id for a key, is our key id (as text: /key/info, /key/update, /key/delete
 * take it back); `key_name` the display form (prefix and last four); `spend`
 * what the budget counts (this period's with a `budget_duration`, else the
 * key's whole spend, as LiteLLM resets a key's spend with its budget).
 */
export function litellmKeyJson(key: ApiKey) {
  const period = key.spendPeriod
  const modelLimits = litellmModelLimits(key.modelLimits)
  return {
    token: String(key.id),
    key_alias: key.name,
    key_name: key.masked,
    user_id: String(key.userId),
    team_id: key.teamId === null || key.teamId === undefined ? null : String(key.teamId),
    models: key.allowedModels ?? [],
    spend: Number(period ? key.capSpent : key.spent),
    max_budget: amount(key.spendLimit),
    soft_budget: amount(key.softBudget),
    budget_duration: period ? BUDGET_DURATIONS[period] : null,
    budget_reset_at: period ? new Date(periodBounds(period, Date.now()).end).toISOString() : null,
    tpm_limit: key.tpm,
    rpm_limit: key.rpm,
    max_parallel_requests: key.maxParallel,
    ...modelLimits,
    allowed_ips: key.allowedIps,
    expires: iso(key.expiresAt),
    blocked: key.blockedAt !== null,
    /** Keys keep no metadata of their own (what a client sends is not stored); LiteLLM keeps its per-model limits there */
    metadata: modelLimitsMetadata(modelLimits),
    created_at: iso(key.createdAt),
    updated_at: iso(key.updatedAt),
    last_active: iso(key.lastUsedAt),
  }
}

/**
 * A user as LiteLLM answers it: `user_id` our id (as text), `user_role`
 * proxy_admin or internal_user, `spend` what the user's keys spent,
 * `max_budget` always null (a user here has a prepaid balance, no spend cap),
 * plus our own `balance`, `plan` and `disabled`.
 */
export function litellmUserJson(user: User, extra: { plan: string | null; spend: string | number | null }) {
  return {
    user_id: String(user.id),
    user_email: user.email,
    user_role: user.role === 'admin' ? 'proxy_admin' : 'internal_user',
    spend: Number(extra.spend ?? 0),
    max_budget: null,
    models: [],
    teams: [],
    balance: Number(user.balance),
    plan: extra.plan,
    disabled: user.disabledAt !== null,
    created_at: iso(user.createdAt),
    updated_at: iso(user.updatedAt),
  }
}

/** LiteLLM's user roles -> ours: proxy_admin is an administrator, every other role a user */
export function roleOf(value: unknown): 'admin' | 'user' | undefined {
  if (value === undefined || value === null) return undefined
  if (value === 'proxy_admin') return 'admin'
  if (typeof value === 'string' && ['internal_user', 'internal_user_viewer', 'proxy_admin_viewer', 'user', 'customer'].includes(value)) return 'user'
  throw fieldError('user_role', 'give proxy_admin (an administrator) or internal_user')
}

/** LiteLLM keeps model_rpm_limit / model_tpm_limit (and model_max_budget) in a key's metadata: shown there too, when set. */
function modelLimitsMetadata(limits: ReturnType<typeof litellmModelLimits>): Record<string, unknown> {
  const metadata: Record<string, unknown> = {}
  if (Object.keys(limits.model_rpm_limit).length > 0) metadata.model_rpm_limit = limits.model_rpm_limit
  if (Object.keys(limits.model_tpm_limit).length > 0) metadata.model_tpm_limit = limits.model_tpm_limit
  if (Object.keys(limits.model_max_budget).length > 0) metadata.model_max_budget = limits.model_max_budget
  return metadata
}
