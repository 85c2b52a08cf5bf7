/**
 * When a collector that did not take a batch is tried again (log_exporter.ts):
 * backoff steps with jitter, which answers are worth retrying, and a 429's
 * or 503's Retry-After.
 */

/** The backoff steps (LOG_EXPORT_RETRY_DELAYS_MS); after the last, the last again until the rows' age bound */
export const DEFAULT_RETRY_DELAYS_MS = [1_000, 5_000, 30_000, 120_000]

/** A collector's answer that was not a 2xx: its status and, when it sent one, its Retry-After in ms. */
export class ExportHttpError extends Error {
  constructor(
    readonly status: number,
    readonly retryAfterMs: number | null
  ) {
    super(`HTTP ${status}`)
  }
}

/**
 * Whether a failed POST is worth sending again: a network error, a timeout,
 * a 5xx, 408 or 429 are (the collector is down, restarting or busy); any
 * other 4xx is not (bad credentials, a body it refuses: sent again it would
 * be refused again, and hold the rows behind it), nor a 3xx (a redirect is
 * not followed: the URL is wrong, and stays wrong).
 */
export function retryable(error: unknown): boolean {
  if (!(error instanceof ExportHttpError)) return true
  const status = error.status
  return status >= 500 || status === 408 || status === 429
}

/**
 * The wait before attempt `failures + 1`: the step for this many
 * consecutive failures, ±20% jitter (instances that lost the same collector
 * do not all come back at the same millisecond), or the collector's
 * Retry-After when it sent one, never longer than the longest step.
 */
export function retryDelay(failures: number, delays: readonly number[], error: unknown, random = Math.random): number {
  const longest = delays[delays.length - 1]
  if (error instanceof ExportHttpError && error.retryAfterMs !== null) return Math.min(Math.max(0, error.retryAfterMs), longest)
  const step = delays[Math.min(failures, delays.length) - 1] ?? longest
  return Math.round(step * (0.8 + 0.4 * random()))
}

/** A Retry-After header (seconds, or an HTTP date) in ms from now; null when absent or unreadable. */
export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number | null {
  const text = Array.isArray(value) ? value[0] : value
  if (!text) return null
  if (/^\d+$/.test(text.trim())) return Number(text.trim()) * 1000
  const at = Date.parse(text)
  return Number.isNaN(at) ? null : Math.max(0, at - now)
}
