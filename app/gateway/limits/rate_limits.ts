import type { ServerResponse } from 'node:http'
import limiter from '@adonisjs/limiter/services/main'
import { errors } from '@adonisjs/limiter'
import type { Limiter } from '@adonisjs/limiter'
import env from '#start/env'
import { GatewayError } from '#exceptions/gateway_error'
import { MinuteWindows, secondsLeft } from '#gateway/limits/minute_windows'
import { retryAfterHeaders } from '#gateway/http/retry_after'
import type { Principal } from '#gateway/types'
import type { EndUserPolicy } from '#gateway/end_users/end_user_policies'
import type { ModelLimit } from '#gateway/limits/model_limits'

/**
 * Requests-per-minute and tokens-per-minute, per key (api_keys.rpm/tpm),
 * per plan (plans.rpm/tpm, counted per user across their keys), per team
 * (teams.rpm/tpm, counted across the team's keys), per organization
 * (organizations.rpm/tpm, across every key of its teams) and per member in a
 * team (team_members.rpm/tpm, across the team's keys they own), and per key and model
 * (api_keys.model_limits: admitModel). Requests are
 * counted on admission; tokens when the request is metered, and a new
 * request is refused while the minute's tokens are spent. A principal with
 * no limits costs nothing here.
 *
 * Two ways to count, chosen by the limiter store (LIMITER_STORE, as
 * config/limiter.ts): with `memory`, the default and one instance, the
 * counters are this process's own `MinuteWindows`, read and written
 * synchronously on the hot path; with a shared store (`database`, several
 * instances) every count goes through @adonisjs/limiter. Both give the same
 * windows, the same 429s and the same headers (tests/unit/rate_limits.spec.ts
 * runs one set of assertions against each). The memory path exists because
 * the limiter's API costs a promise, several objects and string keys per
 * count: measured interleaved, 6-12 µs of a call's latency at one connection
 * and about a tenth of the gateway's CPU per request under load.
 */
type Store = 'memory' | 'database'
type Kind = 'requests' | 'tokens'

let shared: Store | null = env.get('LIMITER_STORE') === 'database' ? 'database' : null

/** Switches between the in-memory windows and @adonisjs/limiter's store (tests; boot reads LIMITER_STORE). */
export function useLimiterStore(store: Store) {
  shared = store === 'memory' ? null : store
  limiters.clear()
}

/**
 * Forgets every count. For tests: their database resets restart the id
 * sequences, and a new key must not inherit the windows of an old key with
 * the same id.
 */
export async function resetRateLimits() {
  for (const windows of [rpmByKey, rpmByUser, tpmByKey, tpmByUser, rpmByTeam, tpmByTeam, rpmByOrg, tpmByOrg, rpmByEndUser, tpmByEndUser]) windows.clear()
  rpmByMember.clear()
  tpmByMember.clear()
  rpmByKeyModel.clear()
  tpmByKeyModel.clear()
  await limiter.clear()
}

export function hasLimits(p: Principal): boolean {
  return !!(
    p.key.rpm ||
    p.key.tpm ||
    p.plan?.rpm ||
    p.plan?.tpm ||
    (p.team !== null && (p.team.rpm || p.team.tpm || (p.org !== null && (p.org.rpm || p.org.tpm)) || (p.member !== null && (p.member.rpm || p.member.tpm))))
  )
}

/**
 * Admits a request or throws 429 rate_limit_exceeded with Retry-After; sets
 * the x-ratelimit-* headers (the tightest window of each kind) on `res`.
 * Synchronous with the memory store; a promise with a shared one.
 */
export function admit(p: Principal, res: ServerResponse): void | Promise<void> {
  return shared === null ? admitInMemory(p, res) : admitShared(p, res)
}

/** Counts a finished request's tokens against its token windows. */
export function addTokens(p: Principal, tokens: number): void | Promise<void> {
  if (tokens <= 0) return
  if (shared !== null) return addTokensShared(p, tokens)
  const now = Date.now()
  if (p.key.tpm) tpmByKey.add(p.key.id, tokens, now)
  if (p.plan?.tpm) tpmByUser.add(p.user.id, tokens, now)
  if (p.team?.tpm) tpmByTeam.add(p.team.id, tokens, now)
  if (p.org?.tpm) tpmByOrg.add(p.org.id, tokens, now)
  if (p.member?.tpm) tpmByMember.add(p.member.id, tokens, now)
}

/**
 * An end user's rpm/tpm (end_users, or its shared budget's: end_user_policies.ts),
 * counted per end user (its end_users row id) across every key of its owner.
 * Admitted once the request names its end user (the header, or the body):
 * after the key's windows, so a request the key refuses is not counted here.
 * Its headers replace the key's when tighter. Only policies with rpm or tpm reach here.
 */
export function admitEndUser(policy: EndUserPolicy, res: ServerResponse): void | Promise<void> {
  if (policy.rpm === null && policy.tpm === null) return
  return admitScope(END_USER_WINDOWS, policy.id, policy.rpm, policy.tpm, res)
}

/** Counts a finished request's tokens against its end user's token window. */
export function addEndUserTokens(policy: EndUserPolicy, tokens: number): void | Promise<void> {
  return addScopeTokens(END_USER_WINDOWS, policy.id, policy.tpm, tokens)
}

/**
 * A key's own rpm/tpm for the model asked for (model_limits.ts), counted per
 * key and model: admitted once the body names its model, after the key's
 * windows. Other models of the key are not counted here. Its headers replace
 * the key's when tighter; its 429 names the model.
 */
export function admitModel(limit: ModelLimit, res: ServerResponse): void | Promise<void> {
  return admitScope(KEY_MODEL_WINDOWS, limit.windowId, limit.rpm, limit.tpm, res, limit)
}

/** Counts a finished request's tokens against its key's window for its model. */
export function addModelTokens(limit: ModelLimit, tokens: number): void | Promise<void> {
  return addScopeTokens(KEY_MODEL_WINDOWS, limit.windowId, limit.tpm, tokens)
}

/**
 * The windows of a scope counted beside the key's (an end user, a key's
 * model): its in-memory pair and its name in the shared store's keys
 * (`rpm:<name>:<id>`, `tpm:<name>:<id>`).
 */
interface ScopeWindows<Id> {
  rpm: MinuteWindows<Id>
  tpm: MinuteWindows<Id>
  name: string
}

/** A scope's rpm/tpm (either may be null): counted, its headers set when tighter than the key's, or its 429. */
function admitScope<Id>(scope: ScopeWindows<Id>, id: Id, rpm: number | null, tpm: number | null, res: ServerResponse, model?: ModelLimit) {
  if (shared !== null) return admitScopeShared(scope, id, rpm, tpm, res, model)
  sweeper ??= setInterval(sweep, 60_000).unref()
  const now = Date.now()
  if (rpm !== null) {
    tightest.limit = -1
    countRequest(scope.rpm, id, rpm, now, model)
    if (tighterThanSet(res, 'requests', tightest.left)) setWindowHeaders(res, 'requests', tightest.limit, tightest.left, tightest.reset)
  }
  if (tpm !== null) {
    tightest.limit = -1
    checkTokens(scope.tpm, id, tpm, now, model)
    if (tighterThanSet(res, 'tokens', tightest.left)) setWindowHeaders(res, 'tokens', tightest.limit, tightest.left, tightest.reset)
  }
}

function addScopeTokens<Id>(scope: ScopeWindows<Id>, id: Id, tpm: number | null, tokens: number): void | Promise<void> {
  if (tokens <= 0 || tpm === null) return
  if (shared !== null) return perMinute(tpm).increment(`tpm:${scope.name}:${id}`, tokens).then(() => {})
  scope.tpm.add(id, tokens, Date.now())
}

async function admitScopeShared<Id>(scope: ScopeWindows<Id>, id: Id, rpm: number | null, tpm: number | null, res: ServerResponse, model?: ModelLimit) {
  if (rpm !== null) {
    try {
      const response = await perMinute(rpm).consume(`rpm:${scope.name}:${id}`)
      if (tighterThanSet(res, 'requests', response.remaining)) {
        setWindowHeaders(res, 'requests', response.limit, response.remaining, response.availableIn)
      }
    } catch (error) {
      if (error instanceof errors.E_TOO_MANY_REQUESTS) {
        throw refused('requests', rpm, Math.max(1, error.response.availableIn) * 1000, model)
      }
      throw error
    }
  }
  if (tpm !== null) {
    const response = await perMinute(tpm).get(`tpm:${scope.name}:${id}`)
    const remaining = response ? Math.max(0, response.remaining) : tpm
    const reset = response ? response.availableIn : 60
    if (remaining <= 0) throw refused('tokens', tpm, Math.max(1, reset) * 1000, model)
    if (tighterThanSet(res, 'tokens', remaining)) setWindowHeaders(res, 'tokens', tpm, remaining, reset)
  }
}

/** No window of this kind set yet, or this one leaves fewer. */
function tighterThanSet(res: ServerResponse, kind: Kind, left: number): boolean {
  const set = res.getHeader(HEADER_NAMES[kind][1])
  return set === undefined || left < Number(set)
}

// ---- in memory ----------------------------------------------------------

const rpmByKey = new MinuteWindows()
const rpmByUser = new MinuteWindows()
const tpmByKey = new MinuteWindows()
const tpmByUser = new MinuteWindows()
/** A team's windows, shared by all of its keys */
const rpmByTeam = new MinuteWindows()
const tpmByTeam = new MinuteWindows()
/** An organization's windows, shared by every key of its teams */
const rpmByOrg = new MinuteWindows()
const tpmByOrg = new MinuteWindows()
/** A member's windows in a team (MemberPolicy.id: `${teamId} ${userId}`), shared by the team's keys they own */
const rpmByMember = new MinuteWindows<string>()
const tpmByMember = new MinuteWindows<string>()
/** An end user's windows (by end_users.id), shared by all of its owner's keys */
const rpmByEndUser = new MinuteWindows()
const tpmByEndUser = new MinuteWindows()
/** A key's windows for one model (ModelLimit.windowId: `${keyId} ${model}`) */
const rpmByKeyModel = new MinuteWindows<string>()
const tpmByKeyModel = new MinuteWindows<string>()
const END_USER_WINDOWS: ScopeWindows<number> = { rpm: rpmByEndUser, tpm: tpmByEndUser, name: 'end_user' }
const KEY_MODEL_WINDOWS: ScopeWindows<string> = { rpm: rpmByKeyModel, tpm: tpmByKeyModel, name: 'key_model' }
let sweeper: NodeJS.Timeout | undefined

function admitInMemory(p: Principal, res: ServerResponse) {
  sweeper ??= setInterval(sweep, 60_000).unref()
  const now = Date.now()
  // The key's window first: a request its key refuses is not counted on the plan.
  tightest.limit = -1
  if (p.key.rpm) countRequest(rpmByKey, p.key.id, p.key.rpm, now)
  if (p.plan?.rpm) countRequest(rpmByUser, p.user.id, p.plan.rpm, now)
  if (p.team?.rpm) countRequest(rpmByTeam, p.team.id, p.team.rpm, now)
  if (p.org?.rpm) countRequest(rpmByOrg, p.org.id, p.org.rpm, now)
  if (p.member?.rpm) countRequest(rpmByMember, p.member.id, p.member.rpm, now)
  if (tightest.limit >= 0) setWindowHeaders(res, 'requests', tightest.limit, tightest.left, tightest.reset)

  tightest.limit = -1
  if (p.key.tpm) checkTokens(tpmByKey, p.key.id, p.key.tpm, now)
  if (p.plan?.tpm) checkTokens(tpmByUser, p.user.id, p.plan.tpm, now)
  if (p.team?.tpm) checkTokens(tpmByTeam, p.team.id, p.team.tpm, now)
  if (p.org?.tpm) checkTokens(tpmByOrg, p.org.id, p.org.tpm, now)
  if (p.member?.tpm) checkTokens(tpmByMember, p.member.id, p.member.tpm, now)
  if (tightest.limit >= 0) setWindowHeaders(res, 'tokens', tightest.limit, tightest.left, tightest.reset)
}

/**
 * The tightest window of one kind in the admission being made (limit -1:
 * none yet). One object for all requests: admission is synchronous, so no
 * two run interleaved, and none is allocated per request.
 */
const tightest = { limit: -1, left: 0, reset: 0 }

function consider(limit: number, left: number, reset: number) {
  if (tightest.limit < 0 || left < tightest.left) {
    tightest.limit = limit
    tightest.left = left
    tightest.reset = reset
  }
}

/** Counts the request in one window; 429 when that takes it past its limit (the hit still counts). */
function countRequest<Id>(windows: MinuteWindows<Id>, id: Id, limit: number, now: number, model?: ModelLimit) {
  const window = windows.add(id, 1, now)
  if (window.used > limit) throw refused('requests', limit, window.endsAt - now, model)
  consider(limit, limit - window.used, secondsLeft(window, now))
}

/** 429 while one window's tokens are spent (tokens are counted when a request is metered). */
function checkTokens<Id>(windows: MinuteWindows<Id>, id: Id, limit: number, now: number, model?: ModelLimit) {
  const window = windows.peek(id, now)
  const left = window ? Math.max(0, limit - window.used) : limit
  const reset = window ? secondsLeft(window, now) : 60
  if (left <= 0) throw refused('tokens', limit, window ? window.endsAt - now : 60_000, model)
  consider(limit, left, reset)
}

function sweep() {
  const now = Date.now()
  rpmByKey.sweep(now)
  rpmByUser.sweep(now)
  tpmByKey.sweep(now)
  tpmByUser.sweep(now)
  rpmByTeam.sweep(now)
  tpmByTeam.sweep(now)
  rpmByOrg.sweep(now)
  tpmByOrg.sweep(now)
  rpmByMember.sweep(now)
  tpmByMember.sweep(now)
  rpmByEndUser.sweep(now)
  tpmByEndUser.sweep(now)
  rpmByKeyModel.sweep(now)
  tpmByKeyModel.sweep(now)
}

// ---- through @adonisjs/limiter (a store several instances share) ----------

interface Window {
  key: string
  limit: number
}

const limiters = new Map<number, Limiter>()

function perMinute(limit: number): Limiter {
  let instance = limiters.get(limit)
  if (!instance) {
    instance = limiter.use(shared ?? 'memory', { requests: limit, duration: '1 minute' })
    limiters.set(limit, instance)
  }
  return instance
}

function requestWindows(p: Principal): Window[] {
  const windows: Window[] = []
  if (p.key.rpm) windows.push({ key: `rpm:key:${p.key.id}`, limit: p.key.rpm })
  if (p.plan?.rpm) windows.push({ key: `rpm:user:${p.user.id}`, limit: p.plan.rpm })
  if (p.team?.rpm) windows.push({ key: `rpm:team:${p.team.id}`, limit: p.team.rpm })
  if (p.org?.rpm) windows.push({ key: `rpm:org:${p.org.id}`, limit: p.org.rpm })
  if (p.member?.rpm) windows.push({ key: `rpm:member:${p.member.teamId}:${p.member.userId}`, limit: p.member.rpm })
  return windows
}

function tokenWindows(p: Principal): Window[] {
  const windows: Window[] = []
  if (p.key.tpm) windows.push({ key: `tpm:key:${p.key.id}`, limit: p.key.tpm })
  if (p.plan?.tpm) windows.push({ key: `tpm:user:${p.user.id}`, limit: p.plan.tpm })
  if (p.team?.tpm) windows.push({ key: `tpm:team:${p.team.id}`, limit: p.team.tpm })
  if (p.org?.tpm) windows.push({ key: `tpm:org:${p.org.id}`, limit: p.org.tpm })
  if (p.member?.tpm) windows.push({ key: `tpm:member:${p.member.teamId}:${p.member.userId}`, limit: p.member.tpm })
  return windows
}

async function admitShared(p: Principal, res: ServerResponse) {
  let tightest: { limit: number; remaining: number; reset: number } | null = null
  for (const window of requestWindows(p)) {
    try {
      const response = await perMinute(window.limit).consume(window.key)
      if (!tightest || response.remaining < tightest.remaining) {
        tightest = { limit: response.limit, remaining: response.remaining, reset: response.availableIn }
      }
    } catch (error) {
      if (error instanceof errors.E_TOO_MANY_REQUESTS) {
        // The shared store counts in whole seconds: that is as exact as its wait gets.
        throw refused('requests', window.limit, Math.max(1, error.response.availableIn) * 1000)
      }
      throw error
    }
  }
  let tokens: { limit: number; remaining: number; reset: number } | null = null
  for (const window of tokenWindows(p)) {
    const response = await perMinute(window.limit).get(window.key)
    const remaining = response ? Math.max(0, response.remaining) : window.limit
    const reset = response ? response.availableIn : 60
    if (remaining <= 0) throw refused('tokens', window.limit, Math.max(1, reset) * 1000)
    if (!tokens || remaining < tokens.remaining) tokens = { limit: window.limit, remaining, reset }
  }
  if (tightest) setWindowHeaders(res, 'requests', tightest.limit, tightest.remaining, tightest.reset)
  if (tokens) setWindowHeaders(res, 'tokens', tokens.limit, tokens.remaining, tokens.reset)
}

async function addTokensShared(p: Principal, tokens: number) {
  for (const window of tokenWindows(p)) {
    await perMinute(window.limit).increment(window.key, tokens)
  }
}

// ---- headers and 429 ------------------------------------------------------

/** OpenAI's x-ratelimit-* header names per kind: limit, remaining, reset (constants: no string built per call). */
const HEADER_NAMES = {
  requests: ['x-ratelimit-limit-requests', 'x-ratelimit-remaining-requests', 'x-ratelimit-reset-requests'],
  tokens: ['x-ratelimit-limit-tokens', 'x-ratelimit-remaining-tokens', 'x-ratelimit-reset-tokens'],
} as const

/** The tightest window of a kind, as headers (both stores write them here). */
function setWindowHeaders(res: ServerResponse, kind: Kind, limit: number, remaining: number, resetSeconds: number) {
  const [limitName, remainingName, resetName] = HEADER_NAMES[kind]
  res.setHeader(limitName, String(limit))
  res.setHeader(remainingName, String(remaining))
  res.setHeader(resetName, `${resetSeconds}s`)
}

/**
 * 429 for a spent window (`waitMs`: until it ends), with Retry-After and
 * retry-after-ms (retry_after.ts) and that window's headers at zero.
 */
function refused(kind: Kind, limit: number, waitMs: number, model?: ModelLimit) {
  const [limitName, remainingName, resetName] = HEADER_NAMES[kind]
  const wait = retryAfterHeaders(waitMs)
  const scope = model === undefined ? '' : ` for model ${model.model}`
  const error = new GatewayError(
    429,
    'rate_limit_exceeded',
    `Rate limit exceeded${scope}: ${limit} ${kind} per minute. Retry after ${wait['retry-after']}s.`,
    'rate_limit_error'
  )
  error.headers = { ...wait, [limitName]: String(limit), [remainingName]: '0', [resetName]: `${wait['retry-after']}s` }
  return error
}
