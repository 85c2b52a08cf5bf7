import { DateTime } from 'luxon'

/**
 * Usage log retention: how many whole UTC days of request rows are kept.
 *
 * At least 31 days: a key's spend cap that starts to reset each month counts
 * the key's usage rows of the current month (app/actions/update_api_key.ts),
 * and the portal's overview charts the user's rows of the last 30 days.
 */
export const MIN_RETENTION_DAYS = 31

/** The first UTC day whose rows are kept with `days` of retention: rows before it are pruned. */
export function oldestKeptDay(days: number, now: Date = new Date()): DateTime {
  return DateTime.fromJSDate(now, { zone: 'utc' }).startOf('day').minus({ days })
}
