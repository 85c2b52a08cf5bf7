import { DateTime } from 'luxon'
import env from '#start/env'

/**
 * Usage log retention: USAGE_RETENTION_DAYS (unset or 0: keep every row).
 * Read when needed (pages, the hourly prune), never on /v1.
 *
 * At least 31 days: a key's spend cap that starts to reset each month counts
 * the key's usage rows of the current month (app/actions/update_api_key.ts),
 * and the portal's overview charts the user's rows of the last 30 days.
 */
export const MIN_RETENTION_DAYS = 31

/** Days of request rows kept; 0 = forever. */
export function retentionDays(): number {
  return env.get('USAGE_RETENTION_DAYS') ?? 0
}

/** The first UTC day whose rows are kept with `days` of retention: rows before it are pruned. */
export function oldestKeptDay(days: number, now: Date = new Date()): DateTime {
  return DateTime.fromJSDate(now, { zone: 'utc' }).startOf('day').minus({ days })
}

/** What the pages say about retention: null when rows are kept forever. */
export function retentionNotice(now: Date = new Date()) {
  const days = retentionDays()
  if (days <= 0) return null
  return { days, since: oldestKeptDay(days, now).toISODate()! }
}
