import { litellmModelLimits } from '#gateway/limits/model_limits'
import type { HttpContext } from '@adonisjs/core/http'
import { errors as vineErrors } from '@vinejs/vine'
import type ApiKey from '#models/api_key'
import type User from '#models/user'
import type RedemptionCode from '#models/redemption_code'
import type Channel from '#models/channel'
import type ModelPrice from '#models/model_price'
import { AdminInputError } from '#actions/admin_input_error'
import type { Actor } from '#actions/audit'
import { GatewayError } from '#exceptions/gateway_error'
import { recordId } from '#services/record_id'

/**
 * Shared pieces of the management API (/api/admin, app/controllers/api/management):
 * who acts (the admin who owns the key, audit source "api"), refusals in the
 * OpenAI error shape, and the JSON shapes of users, keys and codes. Money is
 * an exact decimal string ("12.5"), as the ledger keeps it.
 */
export function apiActor(ctx: HttpContext): Actor {
  const user = ctx.principal.user
  return { id: user.id, label: `api:${ctx.principal.key.name}`, source: 'api', ip: ctx.request.ip() }
}

/** Runs an action; validation errors and refused input become 400 (or 404, 409) in the API's error shape. */
export async function managed<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work()
  } catch (error) {
    if (error instanceof vineErrors.E_VALIDATION_ERROR) {
      const messages = error.messages as Array<{ field: string; message: string }>
      throw GatewayError.invalidRequest(messages.map((m) => `${m.field}: ${m.message}`).join('; '), 'invalid_field', messages[0]?.field)
    }
    if (error instanceof AdminInputError) {
      if (error.kind === 'not_found') throw new GatewayError(404, 'not_found', error.message, 'not_found_error')
      if (error.kind === 'conflict') throw new GatewayError(409, 'conflict', error.message, 'invalid_request_error')
      throw GatewayError.invalidRequest(error.message, 'invalid_field', error.field)
    }
    throw error
  }
}

/**
 * A list's id filter or cursor (`?user=`, `?user_id=`, `?before=`), or a
 * body's record id: absent or empty is none; anything but an id (recordId:
 * digits) is a 400 naming it. Number() read `0x10` as 16 and `true` as 1,
 * and made `abc` or an e-mail "no filter": every user's keys instead of one's.
 */
export function filterId(value: unknown, name: string): number | null {
  if (value === undefined || value === null || value === '') return null
  // recordId trims (a route's segment); a filter is read as written: " 5" is no id.
  const id = typeof value === 'string' && value.trim() !== value ? null : recordId(value)
  if (id === null) throw GatewayError.invalidRequest(`${name} must be an id (digits), not ${JSON.stringify(value)?.slice(0, 60)}`, 'invalid_field', name)
  return id
}

/** Rows a list answers at most; `next_before` asks for the next ones. */
const PAGE = 100

/**
 * One keyset page of a list, newest first: `query(limit)` reads the rows
 * (ordered by id, descending, after the caller's filters and `before`).
 */
export async function keysetPage<T extends { id: number }>(query: (limit: number) => PromiseLike<T[]>, toJson: (row: T) => unknown) {
  const rows = await query(PAGE + 1)
  const page = rows.slice(0, PAGE)
  return { object: 'list', data: page.map(toJson), next_before: rows.length > PAGE ? page[page.length - 1].id : null }
}

/**
 * A JSON value a validator reads as text (a user id or e-mail, an amount):
 * a number becomes its digits; anything else is handed over as it is, so an
 * object or a list is refused as "must be a string" (String() made it
 * "[object Object]", then a 404 for a user of that name).
 */
export function numberAsText(value: unknown): unknown {
  return typeof value === 'number' ? String(value) : value
}

/** "12.500000000000" -> "12.5"; null stays null */
export function money(value: string | null | undefined): string | null {
  if (value === null || value === undefined) return null
  const text = String(value)
  return text.includes('.') ? text.replace(/\.?0+$/, '') || '0' : text
}

const iso = (value: { toISO(): string | null } | null | undefined) => value?.toISO() ?? null

export function userJson(user: User, planName: string | null) {
  return {
    id: user.id,
    object: 'user',
    email: user.email,
    role: user.role,
    plan: planName,
    balance: money(user.balance),
    disabled: !!user.disabledAt,
    /** false while the account waits for its sign-up confirmation link (it cannot sign in) */
    email_verified: !!user.emailVerifiedAt,
    created_at: iso(user.createdAt),
  }
}

export function keyJson(key: ApiKey) {
  return {
    id: key.id,
    object: 'api_key',
    user_id: key.userId,
    name: key.name,
    display: key.masked,
    models: key.allowedModels,
    rpm: key.rpm,
    tpm: key.tpm,
    max_parallel_requests: key.maxParallel,
    ...litellmModelLimits(key.modelLimits),
    spend_limit: money(key.spendLimit),
    spend_period: key.spendPeriod,
    soft_budget: money(key.softBudget),
    manage: key.manage,
    allowed_ips: key.allowedIps,
    spent: money(key.spent),
    cap_spent: key.spendLimit ? money(key.capSpent) : null,
    expires_at: iso(key.expiresAt),
    revoked_at: iso(key.revokedAt),
    blocked_at: iso(key.blockedAt),
    team_id: key.teamId ?? null,
    last_used_at: iso(key.lastUsedAt),
    created_at: iso(key.createdAt),
  }
}

export function codeJson(code: RedemptionCode) {
  return {
    id: code.id,
    object: 'redemption_code',
    batch: code.batch,
    hint: code.hint,
    amount: money(code.amount),
    status: code.status,
    expires_at: iso(code.expiresAt),
    redeemed_by: code.redeemedBy,
    redeemed_at: iso(code.redeemedAt),
    created_at: iso(code.createdAt),
  }
}

export function channelJson(channel: Channel) {
  return {
    id: channel.id,
    object: 'channel',
    name: channel.name,
    provider: channel.provider,
    base_url: channel.baseUrl,
    has_key: channel.apiKeyEncrypted !== null,
    /** false: stored, but saved with another APP_KEY (the channel is out of rotation: app_key_check.ts) */
    key_readable: !channel.keyUnreadable,
    models: channel.models,
    model_mapping: channel.modelMapping,
    extra_headers: Object.keys(channel.extraHeaders ?? {}),
    priority: channel.priority,
    weight: channel.weight,
    enabled: channel.enabled,
    disabled_reason: channel.disabledReason,
    auto_disabled_at: iso(channel.autoDisabledAt),
    health: channel.health,
    cooldown_until: iso(channel.cooldownUntil),
    model_cooldowns: channel.modelCooldowns ?? {},
    last_error: channel.lastError,
    last_error_at: iso(channel.lastErrorAt),
    connect_timeout_ms: channel.connectTimeoutMs,
    first_byte_timeout_ms: channel.firstByteTimeoutMs,
    idle_timeout_ms: channel.idleTimeoutMs,
    total_timeout_ms: channel.totalTimeoutMs,
    /** Channel groups: the plans it is open to; null = every plan */
    plan_ids: channel.planIds,
    created_at: iso(channel.createdAt),
  }
}

export function priceJson(price: ModelPrice) {
  return {
    id: price.id,
    object: 'model_price',
    model: price.modelPattern,
    input: money(price.inputPerMillion),
    output: money(price.outputPerMillion),
    cache_read: money(price.cacheReadPerMillion),
    cache_write: money(price.cacheWritePerMillion),
    cache_write_1h: money(price.cacheWrite1hPerMillion),
    per_image: money(price.perImage),
    per_second: money(price.perSecond),
    per_character: money(price.perCharacter),
    per_request: money(price.perRequest),
    per_web_search: money(price.perWebSearch),
    per_video_second: money(price.perVideoSecond),
    audio_input: money(price.audioInputPerMillion),
    audio_output: money(price.audioOutputPerMillion),
    image_output: money(price.imageOutputPerMillion),
    updated_at: iso(price.updatedAt),
  }
}
