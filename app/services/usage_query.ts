import { DateTime } from 'luxon'
import db from '@adonisjs/lucid/services/db'
import type { DatabaseQueryBuilderContract } from '@adonisjs/lucid/types/querybuilder'
import { recordId } from '#services/record_id'
import { MAX_RANGE_DAYS } from '#validators/usage_period'

/**
 * The usage log's filters, parsed once from a query string and applied to
 * any query over usage_records. Every view is bounded by a date range
 * (default: the last 7 days) so totals and charts never scan the whole
 * table; pages are keyset pages on the primary key (?before=<id>).
 */
export interface UsageFilters {
  user: string
  key: string
  model: string
  channel: string
  /** ok | error | an HTTP status | an error code */
  status: string
  /** A request tag (usage_records.tags contains it) */
  tag: string
  /** An end user (usage_records.end_user: the request's `user`, end_users/end_user_id.ts) */
  end_user: string
  from: string
  to: string
}

export const FILTER_NAMES = ['user', 'key', 'model', 'channel', 'status', 'tag', 'end_user', 'from', 'to'] as const

export function parseFilters(input: Record<string, unknown>): UsageFilters {
  // Postgres text holds no NUL, so no row has one, and a bound value with one fails the query (the Usage
  // page's end-user, model, tag or status filter was a 500): as U+FFFD, what an unstorable character
  // becomes, the filter matches no row.
  const text = (name: string) => String(input[name] ?? '').trim().replaceAll('\u0000', '\uFFFD')
  const today = DateTime.utc().startOf('day')
  let to = isDate(text('to')) ? text('to') : today.toISODate()!
  let from = isDate(text('from')) ? text('from') : DateTime.fromISO(to, { zone: 'utc' }).minus({ days: 6 }).toISODate()!
  // The panel and the API refuse both cases before they get here (validators/usage_period.ts usageRangeErrors):
  // what remains is a guard for a caller that did not ask, keeping every view bounded.
  if (from > to) [from, to] = [to, from]
  // At most a year per view: totals and the chart stay bounded.
  const earliest = DateTime.fromISO(to, { zone: 'utc' }).minus({ days: MAX_RANGE_DAYS }).toISODate()!
  if (from < earliest) from = earliest
  return { user: text('user'), key: text('key'), model: text('model'), channel: text('channel'), status: text('status'), tag: text('tag'), end_user: text('end_user'), from, to }
}

/** No usage row predates 1970; Postgres refuses year 0 (`0000-01-01` would be a 500). */
const EARLIEST_DAY = '1970-01-01'

function isDate(value: string) {
  return /^\d{4}-\d{2}-\d{2}$/.test(value) && value >= EARLIEST_DAY && DateTime.fromISO(value, { zone: 'utc' }).isValid
}

/** [from 00:00, day after `to` 00:00) in UTC */
export function rangeOf(filters: UsageFilters) {
  const start = DateTime.fromISO(filters.from, { zone: 'utc' }).startOf('day')
  const end = DateTime.fromISO(filters.to, { zone: 'utc' }).startOf('day').plus({ days: 1 })
  return { start: start.toJSDate(), end: end.toJSDate() }
}

/** Resolves a user filter given as email or id to an id (null: matches nobody). */
export async function userIdOf(value: string): Promise<number | null> {
  if (!value) return null
  // Digits that are no id (too many of them) match nobody, as an unknown email does.
  if (/^\d+$/.test(value)) return recordId(value) ?? -1
  // No address holds a NUL (and Postgres cannot compare one): nobody.
  if (value.includes('\u0000')) return -1
  const row = await db.from('users').where('email', value).select('id').first()
  return row ? Number(row.id) : -1
}

export function applyFilters(query: DatabaseQueryBuilderContract<any>, filters: UsageFilters, userId: number | null, alias = 'u') {
  const column = (name: string) => `${alias}.${name}`
  const { start, end } = rangeOf(filters)
  query.where(column('created_at'), '>=', start).where(column('created_at'), '<', end)
  if (userId !== null) query.where(column('user_id'), userId)
  if (/^\d+$/.test(filters.key)) query.where(column('api_key_id'), recordId(filters.key) ?? 0)
  // The model that answered, or the one asked for when a fallback answered (a bitmap OR of two indexes).
  if (filters.model) query.where((q) => q.where(column('model'), filters.model).orWhere(column('requested_model'), filters.model))
  if (/^\d+$/.test(filters.channel)) query.where(column('channel_id'), recordId(filters.channel) ?? 0)
  if (filters.status === 'ok') query.where(column('status'), '<', 400)
  else if (filters.status === 'error') query.where(column('status'), '>=', 400)
  else if (/^\d{3}$/.test(filters.status)) query.where(column('status'), Number(filters.status))
  else if (filters.status) query.where(column('error_code'), filters.status)
  if (filters.tag) whereTagged(query, filters.tag, alias)
  // The partial index (end_user, created_at) WHERE end_user IS NOT NULL answers it (migration 998).
  if (filters.end_user) query.where(column('end_user'), filters.end_user)
  return query
}

/**
 * Rows carrying the tag: `tags @> ARRAY[tag]`, the form the GIN index on
 * usage_records.tags answers (migration 981). Shared with the portal's queries.
 */
export function whereTagged(query: DatabaseQueryBuilderContract<any>, tag: string, alias = 'u') {
  return query.whereRaw(`${alias}.tags @> ARRAY[?]::text[]`, [tag])
}
