import vine, { SimpleMessagesProvider } from '@vinejs/vine'
import type { FieldContext } from '@vinejs/vine/types'
import { DateTime } from 'luxon'

/**
 * The date parameters of the management API's usage reports
 * (`/api/admin/usage`, `/spend/tags`: `from`/`to`; `/users/{id}/usage`:
 * `month`). A value that is not a real day or month is refused (400 naming
 * the parameter) instead of falling back to the default range, which a
 * script would have read as the range it asked for. Absent or empty: the
 * documented default. Compiled once.
 */

/** No usage row predates 1970; Postgres refuses year 0 (see services/usage_query.ts). */
const EARLIEST_YEAR = 1970

/** A day that exists on the calendar (2026-02-30 and 2026-13-01 do not), from 1970 on. */
const calendarDay = vine.createRule((value: unknown, _: undefined, field: FieldContext) => {
  if (typeof value !== 'string') return
  const day = DateTime.fromISO(value, { zone: 'utc' })
  if (!day.isValid || day.year < EARLIEST_YEAR) field.report('The {{ field }} field must be a real day from 1970-01-01 on', 'calendarDay', field)
})

const day = () =>
  vine
    .string()
    .trim()
    .regex(/^\d{4}-\d{2}-\d{2}$/)
    .use(calendarDay())
    .optional()

const messages = new SimpleMessagesProvider({
  'string': 'must be one value, a UTC day as YYYY-MM-DD',
  'regex': 'must be a UTC day as YYYY-MM-DD, like 2026-12-01',
  'calendarDay': 'must be a real day from 1970-01-01 on, as YYYY-MM-DD',
  'month.string': 'must be one value, a month as YYYY-MM',
  'month.regex': 'must be a month as YYYY-MM, like 2026-12',
})

export const usageRangeValidator = vine.compile(vine.object({ from: day(), to: day() }))
usageRangeValidator.messagesProvider = messages

export const usageMonthValidator = vine.compile(
  vine.object({
    month: vine
      .string()
      .trim()
      .regex(/^(19[7-9]\d|[2-9]\d{3})-(0[1-9]|1[0-2])$/)
      .optional(),
  })
)
usageMonthValidator.messagesProvider = messages

/**
 * The date parameters of a query string as the validators read them: an
 * empty or blank value (`?from=`, what a filter form sends) is absent, so the default
 * applies; anything else, including a repeated parameter, is checked.
 */
export function datesOf<const K extends string>(query: Record<string, unknown>, names: readonly K[]) {
  const picked: Partial<Record<K, unknown>> = {}
  for (const name of names) {
    const value = query[name]
    if (value !== undefined && !(typeof value === 'string' && value.trim() === '')) picked[name] = value
  }
  return picked
}
