import limiter from '@adonisjs/limiter/services/main'
import { errors } from '@adonisjs/limiter'
import type { Limiter } from '@adonisjs/limiter'
import { GatewayError } from '#exceptions/gateway_error'
import type { Principal } from '#gateway/types'

/**
 * Requests-per-minute and tokens-per-minute, per key (api_keys.rpm/tpm) and
 * per plan (plans.rpm/tpm, counted per user across their keys), on
 * @adonisjs/limiter. Requests are counted on admission; tokens when the
 * request is metered, and a new request is refused while the minute's
 * tokens are spent. A principal with no limits costs nothing here.
 */
interface Window {
  key: string
  limit: number
}

const limiters = new Map<number, Limiter>()

function perMinute(limit: number): Limiter {
  let instance = limiters.get(limit)
  if (!instance) {
    instance = limiter.use({ requests: limit, duration: '1 minute' })
    limiters.set(limit, instance)
  }
  return instance
}

function requestWindows(p: Principal): Window[] {
  const windows: Window[] = []
  if (p.key.rpm) windows.push({ key: `rpm:key:${p.key.id}`, limit: p.key.rpm })
  if (p.plan?.rpm) windows.push({ key: `rpm:user:${p.user.id}`, limit: p.plan.rpm })
  return windows
}

function tokenWindows(p: Principal): Window[] {
  const windows: Window[] = []
  if (p.key.tpm) windows.push({ key: `tpm:key:${p.key.id}`, limit: p.key.tpm })
  if (p.plan?.tpm) windows.push({ key: `tpm:user:${p.user.id}`, limit: p.plan.tpm })
  return windows
}

export function hasLimits(p: Principal): boolean {
  return !!(p.key.rpm || p.key.tpm || p.plan?.rpm || p.plan?.tpm)
}

/**
 * Admits a request or throws 429 rate_limit_exceeded with Retry-After.
 * Returns the x-ratelimit-* headers (the tightest window of each kind).
 */
export async function admit(p: Principal): Promise<Record<string, string>> {
  const headers: Record<string, string> = {}
  let tightest: { limit: number; remaining: number; reset: number } | null = null
  for (const window of requestWindows(p)) {
    try {
      const response = await perMinute(window.limit).consume(window.key)
      if (!tightest || response.remaining < tightest.remaining) {
        tightest = { limit: response.limit, remaining: response.remaining, reset: response.availableIn }
      }
    } catch (error) {
      if (error instanceof errors.E_TOO_MANY_REQUESTS) {
        const r = error.response
        throw tooMany('requests', window.limit, Math.max(1, r.availableIn), {
          'x-ratelimit-limit-requests': String(r.limit),
          'x-ratelimit-remaining-requests': '0',
          'x-ratelimit-reset-requests': `${Math.max(1, r.availableIn)}s`,
        })
      }
      throw error
    }
  }
  if (tightest) {
    headers['x-ratelimit-limit-requests'] = String(tightest.limit)
    headers['x-ratelimit-remaining-requests'] = String(tightest.remaining)
    headers['x-ratelimit-reset-requests'] = `${tightest.reset}s`
  }

  let tokens: { limit: number; remaining: number; reset: number } | null = null
  for (const window of tokenWindows(p)) {
    const response = await perMinute(window.limit).get(window.key)
    const remaining = response ? Math.max(0, response.remaining) : window.limit
    const reset = response ? response.availableIn : 60
    if (remaining <= 0) {
      throw tooMany('tokens', window.limit, Math.max(1, reset), {
        'x-ratelimit-limit-tokens': String(window.limit),
        'x-ratelimit-remaining-tokens': '0',
        'x-ratelimit-reset-tokens': `${Math.max(1, reset)}s`,
      })
    }
    if (!tokens || remaining < tokens.remaining) tokens = { limit: window.limit, remaining, reset }
  }
  if (tokens) {
    headers['x-ratelimit-limit-tokens'] = String(tokens.limit)
    headers['x-ratelimit-remaining-tokens'] = String(tokens.remaining)
    headers['x-ratelimit-reset-tokens'] = `${tokens.reset}s`
  }
  return headers
}

/** Counts a finished request's tokens against its token windows. */
export async function addTokens(p: Principal, tokens: number) {
  if (tokens <= 0) return
  for (const window of tokenWindows(p)) {
    await perMinute(window.limit).increment(window.key, tokens)
  }
}

function tooMany(kind: 'requests' | 'tokens', limit: number, retryAfter: number, headers: Record<string, string>) {
  const error = new GatewayError(
    429,
    'rate_limit_exceeded',
    `Rate limit exceeded: ${limit} ${kind} per minute. Retry after ${retryAfter}s.`,
    'rate_limit_error'
  )
  error.headers = { 'retry-after': String(retryAfter), ...headers }
  return error
}
