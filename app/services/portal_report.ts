import db from '@adonisjs/lucid/services/db'
import { currentPeriod } from '#gateway/types'
import { whereTagged } from '#services/usage_query'
import { csvCell } from '#services/usage_csv'
import { endUserTotals, type EndUserSpend } from '#services/end_user_spend'
import { periodBounds } from '#gateway/metering/spend_period'

/**
 * Read-side queries behind the user portal. Every query is scoped by the
 * user id given by the caller (the session's user): nothing here takes an id
 * of another user's row without the user_id condition.
 */

export interface UsageFilters {
  model?: string
  keyId?: number
  /** 'ok' (< 400) or 'error' (>= 400) */
  status?: 'ok' | 'error'
  /** A request tag (x-gateway-tags): rows carrying it */
  tag?: string
  /** An end user (the request's `user`): its rows */
  end_user?: string
  /** ISO dates (YYYY-MM-DD), inclusive, UTC */
  from?: string
  to?: string
}

export const USAGE_PAGE_SIZE = 50
/** CSV export bound: a browser download, not a data warehouse dump */
export const USAGE_CSV_MAX_ROWS = 100_000

function usageQuery(userId: number, filters: UsageFilters) {
  const query = db
    .from('usage_records as u')
    .leftJoin('api_keys as k', 'k.id', 'u.api_key_id')
    .where('u.user_id', userId)
  // Rows the model answered, and rows that asked for it and a fallback model answered.
  if (filters.model) query.where((q) => q.where('u.model', filters.model!).orWhere('u.requested_model', filters.model!))
  if (filters.keyId) query.where('u.api_key_id', filters.keyId)
  if (filters.status === 'ok') query.where('u.status', '<', 400)
  if (filters.status === 'error') query.where('u.status', '>=', 400)
  if (filters.tag) whereTagged(query, filters.tag)
  if (filters.end_user) query.where('u.end_user', filters.end_user)
  if (filters.from) query.where('u.created_at', '>=', `${filters.from}T00:00:00Z`)
  // The day after, at midnight UTC: a bare date would be midnight in the database session's time zone.
  if (filters.to) query.whereRaw(`u.created_at < ((?::date + 1)::timestamp AT TIME ZONE 'UTC')`, [filters.to])
  return query
}

const USAGE_COLUMNS = [
  'u.id',
  'u.created_at',
  'u.model',
  'u.requested_model',
  'u.cache_hit',
  'u.endpoint',
  'u.stream',
  'u.status',
  'u.error_code',
  'u.prompt_tokens',
  'u.completion_tokens',
  'u.cached_tokens',
  'u.cost',
  'u.latency_ms',
  'u.estimated',
  'u.api_key_id',
  'u.tags',
  'u.end_user',
  'k.name as key_name',
  'k.prefix as key_prefix',
]

/** One page of the user's requests, newest first, and the total matching the filters. */
export async function usagePage(userId: number, filters: UsageFilters, page: number) {
  const [{ total }] = await usageQuery(userId, filters).count('* as total')
  const rows = await usageQuery(userId, filters)
    .select(USAGE_COLUMNS)
    .orderBy('u.id', 'desc')
    .limit(USAGE_PAGE_SIZE)
    .offset((page - 1) * USAGE_PAGE_SIZE)
  const count = Number(total)
  return { rows, total: count, page, pages: Math.max(1, Math.ceil(count / USAGE_PAGE_SIZE)) }
}

/**
 * Spend per end user of the filtered rows (the user's own), the costliest
 * first. Without a `from` date it covers this UTC month: the log itself has
 * no default range, and a reseller's whole history grouped on every view of
 * the page would grow with it.
 */
export function endUserSpendOf(userId: number, filters: UsageFilters): Promise<EndUserSpend[]> {
  const from = filters.from ?? new Date(periodBounds('month', Date.now()).start).toISOString().slice(0, 10)
  return endUserTotals(usageQuery(userId, { ...filters, from }))
}

/** The same rows as CSV (header + one line per request), newest first. */
export async function usageCsv(userId: number, filters: UsageFilters): Promise<string> {
  const rows = await usageQuery(userId, filters)
    .select(USAGE_COLUMNS)
    .orderBy('u.id', 'desc')
    .limit(USAGE_CSV_MAX_ROWS)
  const header = [
    'time',
    'model',
    'endpoint',
    'stream',
    'key',
    'status',
    'error_code',
    'input_tokens',
    'output_tokens',
    'cached_tokens',
    'cost_usd',
    'latency_ms',
    'estimated',
    'requested_model',
    'cache_hit',
    'tags',
    'end_user',
  ]
  const lines = rows.map((r) =>
    [
      r.created_at,
      r.model,
      r.endpoint,
      r.stream,
      r.key_prefix ? `${r.key_name} (${r.key_prefix})` : '',
      r.status,
      r.error_code,
      r.prompt_tokens,
      r.completion_tokens,
      r.cached_tokens,
      r.cost,
      r.latency_ms,
      r.estimated,
      r.requested_model,
      r.cache_hit,
      r.tags === null ? null : r.tags.join(','),
      r.end_user,
    ]
      .map(csvCell)
      .join(',')
  )
  return [header.join(','), ...lines].join('\r\n') + '\r\n'
}

/** Distinct models and the user's keys, for the usage filters. */
export async function usageFilterChoices(userId: number) {
  const models = await db
    .from('monthly_usage')
    .where('user_id', userId)
    .distinct('model')
    .orderBy('model')
  const keys = await db.from('api_keys').where('user_id', userId).select('id', 'name', 'prefix').orderBy('id')
  return { models: models.map((m) => m.model as string), keys }
}

/**
 * The ledger as the Billing page shows it: top-ups, refunds and adjustments
 * one by one, per-request charges summed per UTC day (a day of traffic is
 * one line, not thousands). Newest first.
 */
export async function ledgerSummary(userId: number, limit = 200) {
  const result = await db.rawQuery(
    `SELECT * FROM (
        SELECT kind, amount::text AS amount, note, created_at AS at, 1 AS entries
          FROM balance_ledger WHERE user_id = ? AND kind <> 'charge'
        UNION ALL
        SELECT 'charge' AS kind, SUM(amount)::text AS amount, NULL AS note,
               date_trunc('day', created_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS at, COUNT(*) AS entries
          FROM balance_ledger WHERE user_id = ? AND kind = 'charge'
         GROUP BY date_trunc('day', created_at AT TIME ZONE 'UTC')
      ) entries ORDER BY at DESC LIMIT ?`,
    [userId, userId, limit]
  )
  return result.rows.map((r: any) => ({
    kind: r.kind as string,
    amount: r.amount as string,
    note: r.note as string | null,
    at: new Date(r.at),
    entries: Number(r.entries),
  }))
}

/**
 * The whole ledger as CSV, newest first, as the billing page shows it (usage
 * charges summed per UTC day, every other entry on its own line), with exact
 * amounts: what a user reconciles an invoice or a top-up against.
 */
export async function ledgerCsv(userId: number): Promise<string> {
  const entries = await ledgerSummary(userId, 1_000_000)
  const lines = ['date,kind,requests,note,amount_usd']
  for (const e of entries) {
    const date = e.kind === 'charge' ? e.at.toISOString().slice(0, 10) : e.at.toISOString()
    lines.push([date, e.kind, e.kind === 'charge' ? e.entries : '', e.note, e.amount].map(csvCell).join(','))
  }
  return lines.join('\r\n') + '\r\n'
}

/** Balance (exact decimal string) and lifetime charges, as /v1/balance computes them. */
export async function balanceFigures(userId: number) {
  const result = await db.rawQuery(
    `SELECT u.balance::text AS balance,
            COALESCE((SELECT -SUM(amount) FROM balance_ledger WHERE user_id = u.id AND kind IN ('charge','refund')), 0)::text AS spent
       FROM users u WHERE u.id = ?`,
    [userId]
  )
  const row = result.rows[0]
  return { balance: (row?.balance ?? '0') as string, spent: (row?.spent ?? '0') as string }
}

/**
 * The overview: this month's tokens and spend, requests and errors per UTC
 * day for the last 30 days (days without traffic included), the last errors.
 */
export async function overview(userId: number, now = new Date()) {
  const period = currentPeriod(now)
  const month = await db.rawQuery(
    `SELECT COALESCE(SUM(input_tokens), 0)::bigint AS input, COALESCE(SUM(output_tokens), 0)::bigint AS output
       FROM monthly_usage WHERE user_id = ? AND period = ?`,
    [userId, period]
  )
  const spend = await db.rawQuery(
    `SELECT COALESCE(-SUM(amount), 0)::text AS spend FROM balance_ledger
      WHERE user_id = ? AND kind = 'charge' AND created_at >= (?::date::timestamp AT TIME ZONE 'UTC')`,
    [userId, period]
  )
  const days = await db.rawQuery(
    `SELECT d::date::text AS day, COUNT(u.id)::int AS requests, COUNT(u.id) FILTER (WHERE u.status >= 400)::int AS errors
       FROM generate_series(date_trunc('day', ?::timestamptz AT TIME ZONE 'UTC') - interval '29 days',
                            date_trunc('day', ?::timestamptz AT TIME ZONE 'UTC'), interval '1 day') AS d
       LEFT JOIN usage_records u
         ON u.user_id = ? AND u.created_at >= (d AT TIME ZONE 'UTC') AND u.created_at < ((d + interval '1 day') AT TIME ZONE 'UTC')
      GROUP BY d ORDER BY d`,
    [now.toISOString(), now.toISOString(), userId]
  )
  const lastErrors = await db
    .from('usage_records')
    .where('user_id', userId)
    .where('status', '>=', 400)
    .orderBy('id', 'desc')
    .limit(5)
    .select('created_at', 'model', 'status', 'error_code', 'endpoint')
  return {
    period,
    inputTokens: Number(month.rows[0].input),
    outputTokens: Number(month.rows[0].output),
    spend: spend.rows[0].spend as string,
    days: days.rows as Array<{ day: string; requests: number; errors: number }>,
    lastErrors,
  }
}
