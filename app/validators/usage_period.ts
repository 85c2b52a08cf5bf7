import vine, { SimpleMessagesProvider, errors as vineErrors } from '@vinejs/vine'
import type { FieldContext } from '@vinejs/vine/types'
import { DateTime } from 'luxon'

/**
 * The date parameters of the management API's usage reports
 * (`/api/admin/usage`, `/spend/tags`: `from`/`to`; `/users/{id}/usage`:
 * `month`). A value that is not a real day or month is refused (400 naming
 * the parameter) instead of falling back to the default range, which a
 * script would have read as the range it asked for; so is a range the
 * report would not answer as asked: `from` later than `to`, or more than
 * a year (366 days) before it. The admin panel's Usage page refuses the
 * same ranges with the same words beside its date fields
 * (usageRangeErrors), never swapping or clamping what was typed. Absent or
 * empty: the documented default (`to` today). Compiled once.
 */

/** No usage row predates 1970; Postgres refuses year 0 (see services/usage_query.ts). */
const EARLIEST_YEAR = 1970

/** A day that exists on the calendar (2026-02-30 and 2026-13-01 do not), from 1970 on. */
function isCalendarDay(value: string): boolean {
  const day = DateTime.fromISO(value, { zone: 'utc' })
  return day.isValid && day.year >= EARLIEST_YEAR
}

const calendarDay = vine.createRule((value: unknown, _: undefined, field: FieldContext) => {
  if (typeof value !== 'string') return
  if (!isCalendarDay(value)) field.report('The {{ field }} field must be a real day from 1970-01-01 on', 'calendarDay', field)
})

const DAY = /^\d{4}-\d{2}-\d{2}$/

/** A report covers at most this many days before its `to` (services/usage_query.ts parseFilters) */
export const MAX_RANGE_DAYS = 366

/**
 * `from` against `to` (the parent's, else today, as the report defaults it):
 * not later, and not more than MAX_RANGE_DAYS before. A `to` that is no day
 * is left to its own rule.
 */
const withinRange = vine.createRule((value: unknown, _: undefined, field: FieldContext) => {
  if (typeof value !== 'string') return
  const given = (field.parent as Record<string, unknown> | undefined)?.to
  if (given !== undefined && (typeof given !== 'string' || !DAY.test(given.trim()) || !isCalendarDay(given.trim()))) return
  const to = given === undefined ? DateTime.utc().toISODate()! : given.trim()
  const toLabel = given === undefined ? `today, ${to}` : to
  if (value > to) {
    field.report('The {{ field }} field must not be later than to', 'fromAfterTo', field, { to: toLabel })
  } else if (value < DateTime.fromISO(to, { zone: 'utc' }).minus({ days: MAX_RANGE_DAYS }).toISODate()!) {
    field.report('The {{ field }} field must be at most a year before to', 'rangeTooLong', field, { to: toLabel })
  }
})

const day = () => vine.string().trim().regex(DAY).use(calendarDay()).optional()

const MESSAGES: Record<string, string> = {
  'string': 'must be one value, a UTC day as YYYY-MM-DD',
  'regex': 'must be a UTC day as YYYY-MM-DD, like 2026-12-01',
  'calendarDay': 'must be a real day from 1970-01-01 on, as YYYY-MM-DD',
  'fromAfterTo': 'must not be later than to ({{ to }}): a range runs from an earlier or the same day to a later one',
  'rangeTooLong': `must be at most ${MAX_RANGE_DAYS} days before to ({{ to }}): a report covers a year at most; ask for a longer period in several ranges`,
  'month.string': 'must be one value, a month as YYYY-MM',
  'month.regex': 'must be a month as YYYY-MM, like 2026-12',
}
const messages = new SimpleMessagesProvider(MESSAGES)

export const usageRangeValidator = vine.compile(vine.object({ from: day().use(withinRange()), to: day() }))
usageRangeValidator.messagesProvider = messages

/**
 * The same range as LiteLLM's reports take it (`start_date`/`end_date`, mapped
 * to from/to by the caller; litellmManaged renames the field in the message):
 * the message names the other end as the caller wrote it, `end_date`.
 */
export const litellmRangeValidator = vine.compile(vine.object({ from: day().use(withinRange()), to: day() }))
litellmRangeValidator.messagesProvider = new SimpleMessagesProvider({
  ...MESSAGES,
  'fromAfterTo': 'must not be later than end_date ({{ to }}): a range runs from an earlier or the same day to a later one',
  'rangeTooLong': `must be at most ${MAX_RANGE_DAYS} days before end_date ({{ to }}): a report covers a year at most; ask for a longer period in several ranges`,
})

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

/**
 * What is wrong with a query string's `from`/`to`, by parameter (empty when
 * nothing is): the validator's messages, for a page to show beside its
 * date fields with the values as typed (the API answers them as a 400).
 */
export async function usageRangeErrors(query: Record<string, unknown>): Promise<Partial<Record<'from' | 'to', string>>> {
  try {
    await usageRangeValidator.validate(datesOf(query, ['from', 'to']))
    return {}
  } catch (error) {
    if (!(error instanceof vineErrors.E_VALIDATION_ERROR)) throw error
    const found: Partial<Record<'from' | 'to', string>> = {}
    for (const { field, message } of error.messages as Array<{ field: string; message: string }>) {
      if ((field === 'from' || field === 'to') && !found[field]) found[field] = message
    }
    return found
  }
}
