import type { DatabaseQueryBuilderContract } from '@adonisjs/lucid/types/querybuilder'
import db from '@adonisjs/lucid/services/db'
import { DateTime } from 'luxon'
import { applyFilters, type UsageFilters } from '#services/usage_query'
import { recordId } from '#services/record_id'
import { ensureRollups } from '#services/usage_rollup'
import { periodBounds, type SpendPeriod } from '#gateway/metering/spend_period'

export interface EndUserSpend {
  user_id: number
  /** The owner's e-mail (the admin reports; absent in the portal's, which is one user's) */
  user_email?: string | null
  end_user: string
  requests: number
  input_tokens: number
  output_tokens: number
  /** Exact decimal (numeric as Postgres adds it) */
  cost: string
}

/** End users a report lists at most (the costliest): a reseller may have thousands. */
export const END_USER_REPORT_LIMIT = 100

/**
 * Spend per end user of a filtered query over `usage_records as u`
 * (LiteLLM's spend per customer): rows that named one, grouped by owner and
 * end user (two owners' `alice` are two end users), the costliest first.
 * The rows are read, not rollups: the caller's filters bound them (a date
 * range on the admin side; one user's rows in the portal), and a filtered
 * end user reads its partial index (migration 998).
 */
export async function endUserTotals(
  query: DatabaseQueryBuilderContract<any>,
  limit = END_USER_REPORT_LIMIT
): Promise<EndUserSpend[]> {
  const rows = await query
    .clearSelect()
    .whereNotNull('u.end_user')
    .groupBy('u.user_id', 'u.end_user')
    .select('u.user_id', 'u.end_user')
    .select(db.raw('count(*)::bigint AS requests'))
    .select(db.raw('coalesce(sum(u.prompt_tokens), 0)::bigint AS input_tokens'))
    .select(db.raw('coalesce(sum(u.completion_tokens), 0)::bigint AS output_tokens'))
    .select(db.raw('coalesce(sum(u.cost), 0)::text AS cost'))
    .orderByRaw('sum(u.cost) DESC, u.end_user')
    .limit(limit)
  return rows.map((r: any) => ({
    user_id: Number(r.user_id),
    end_user: r.end_user,
    requests: Number(r.requests),
    input_tokens: Number(r.input_tokens),
    output_tokens: Number(r.output_tokens),
    cost: r.cost,
  }))
}

/**
 * What the end-user rollup can answer of the usage filters: owner, key,
 * model (answered or asked for, as the usage filter matches), end user.
 * Null when a filter needs the rows (channel, status, tag: not in that
 * rollup's key).
 */
export interface EndUserScope {
  userId?: number | null
  endUser?: string
  keyId?: number
  model?: string
}

function scopeOf(filters: UsageFilters, userId: number | null): EndUserScope | null {
  if (/^\d+$/.test(filters.channel) || filters.status || filters.tag) return null
  return {
    userId,
    endUser: filters.end_user || undefined,
    // A key id past the column's range matches no key (-1: 0 is the rollup's "no key").
    keyId: /^\d+$/.test(filters.key) ? (recordId(filters.key) ?? -1) : undefined,
    model: filters.model || undefined,
  }
}

/**
 * The rows named by an end user over the UTC days [from, to], as
 * `(day, user_id, end_user, model, api_key_id, requests, errors,
 * input_tokens, output_tokens, cost)` parts to group: finished days from the end-user
 * rollup (usage_daily_end_users, rolled up first when due, as every rollup
 * reader), today from its rows (the partial end-user index), so the sums are
 * exact. `api_key_id` 0: no key.
 */
async function endUserParts(from: DateTime, to: DateTime, scope: EndUserScope) {
  const today = DateTime.utc().startOf('day')
  await ensureRollups(from, to < today ? to.plus({ days: 1 }) : today)
  const past: unknown[] = [from.toISODate()!, (to < today ? to : today.minus({ days: 1 })).toISODate()!]
  let pastWhere = 'day >= ? AND day <= ?'
  let liveWhere = 'end_user IS NOT NULL AND created_at >= ? AND created_at < ?'
  const live: unknown[] = [today.toJSDate(), today.plus({ days: 1 }).toJSDate()]
  const both = (sql: string, liveSql: string, ...values: unknown[]) => {
    pastWhere += ` AND ${sql}`
    liveWhere += ` AND ${liveSql}`
    past.push(...values)
    live.push(...values)
  }
  if (scope.userId !== null && scope.userId !== undefined) both('user_id = ?', 'user_id = ?', scope.userId)
  if (scope.endUser !== undefined) both('end_user = ?', 'end_user = ?', scope.endUser)
  if (scope.keyId !== undefined) both('api_key_id = ?', 'api_key_id = ?', scope.keyId)
  if (scope.model !== undefined) both('(model = ? OR requested_model = ?)', '(model = ? OR requested_model = ?)', scope.model, scope.model)
  const sql = `SELECT to_char(day, 'YYYY-MM-DD') AS day, user_id, end_user, model, api_key_id, requests, errors, input_tokens, output_tokens, cost
                 FROM usage_daily_end_users WHERE ${pastWhere}`
  // Today's rows only when the range reaches today.
  if (to < today || from > today) return { sql, bindings: past }
  return {
    sql: `${sql}
          UNION ALL
          SELECT ?, user_id, end_user, model, coalesce(api_key_id, 0), 1, CASE WHEN status >= 400 THEN 1 ELSE 0 END, prompt_tokens, completion_tokens, cost
            FROM usage_records WHERE ${liveWhere}`,
    bindings: [...past, today.toISODate()!, ...live],
  }
}

/** Spend per owner and end user over [from, to] within `scope`, the costliest `limit` first (rollups + today). */
export async function endUserRangeTotals(from: DateTime, to: DateTime, scope: EndUserScope, limit = END_USER_REPORT_LIMIT): Promise<EndUserSpend[]> {
  const parts = await endUserParts(from, to, scope)
  const result = await db.rawQuery(
    `SELECT user_id, end_user, sum(requests)::bigint AS requests, coalesce(sum(input_tokens), 0)::bigint AS input_tokens,
            coalesce(sum(output_tokens), 0)::bigint AS output_tokens, coalesce(sum(cost), 0)::text AS cost
       FROM (${parts.sql}) parts
      GROUP BY user_id, end_user
      ORDER BY sum(cost) DESC, end_user, user_id
      LIMIT ?`,
    [...parts.bindings, limit]
  )
  return result.rows.map((r: any) => ({
    user_id: Number(r.user_id),
    end_user: r.end_user,
    requests: Number(r.requests),
    input_tokens: Number(r.input_tokens),
    output_tokens: Number(r.output_tokens),
    cost: r.cost,
  }))
}

/**
 * Per-day totals (the Usage page's totals and chart) of the usage filters
 * when they name an end user and the end-user rollup answers the rest
 * (owner, key, model); null otherwise (the caller reads the rows).
 */
export async function endUserDailyTotals(filters: UsageFilters, userId: number | null): Promise<Map<string, any> | null> {
  const scope = scopeOf(filters, userId)
  if (!scope || scope.endUser === undefined) return null
  const parts = await endUserParts(DateTime.fromISO(filters.from, { zone: 'utc' }), DateTime.fromISO(filters.to, { zone: 'utc' }), scope)
  const result = await db.rawQuery(
    `SELECT day, sum(requests)::bigint AS requests, sum(errors)::bigint AS errors, coalesce(sum(input_tokens), 0)::bigint AS input,
            coalesce(sum(output_tokens), 0)::bigint AS output, coalesce(sum(cost), 0)::text AS cost
       FROM (${parts.sql}) parts GROUP BY day`,
    parts.bindings
  )
  return new Map(result.rows.map((r: any) => [r.day, r]))
}

/** The admin side: the usage filters (`user`, `key`, `model`, ..., `from`/`to`), with each owner's e-mail. */
export async function spendByEndUser(filters: UsageFilters, userId: number | null, limit = END_USER_REPORT_LIMIT): Promise<EndUserSpend[]> {
  // The end-user rollup for what it can answer; a channel, status or tag filter reads the rows of the range.
  const scope = scopeOf(filters, userId)
  const totals = scope
    ? await endUserRangeTotals(DateTime.fromISO(filters.from, { zone: 'utc' }), DateTime.fromISO(filters.to, { zone: 'utc' }), scope, limit)
    : await endUserTotals(applyFilters(db.from('usage_records as u'), filters, userId), limit)
  if (totals.length === 0) return totals
  const owners = await db.from('users').whereIn('id', [...new Set(totals.map((t) => t.user_id))]).select('id', 'email')
  const emails = new Map(owners.map((o: any) => [Number(o.id), o.email as string]))
  return totals.map((t) => ({ ...t, user_email: emails.get(t.user_id) ?? null }))
}

/** One end user of an owner as the panel and the management API show it. */
export interface EndUserEntry {
  end_user: string
  /** Listed in end_users (blocked or limited: settings the owner or an admin made) */
  listed: boolean
  blocked: boolean
  /** USD a month, exact decimal; null: no limit */
  monthly_limit: string | null
  /** Spent this UTC month: the meter's count for a listed monthly end user, the usage rows' sum for the others */
  spent_this_month: string
  /** The limit's period (its budget's when linked); null: whole life */
  budget_period: SpendPeriod | null
  rpm: number | null
  tpm: number | null
  /** The linked shared budget's budget_id (its limit, period, rpm, tpm apply) */
  budget_id: string | null
  /** What the limit counts now: this period's spend, or the lifetime spend without a period */
  spent_this_period: string
  /** When the period's spend restarts (null: never) */
  budget_reset_at: Date | null
  /** Requests this UTC month (usage rows) */
  requests_this_month: number
  updated_at: Date | null
}

/**
 * An owner's end users: every listed one, and the others that sent requests
 * this UTC month (the costliest END_USER_REPORT_LIMIT), listed ones first,
 * then by spend; with `only`, that end user alone (listed, or any that sent
 * requests this month, however many others spent more). The month's
 * requests and spend: the end-user rollup's finished days plus today's rows.
 */
export async function endUsersOf(userId: number, only?: string): Promise<EndUserEntry[]> {
  const monthStart = new Date(periodBounds('month', Date.now()).start)
  const listedQuery = db
    .from('end_users as e')
    .leftJoin('budgets as b', 'b.id', 'e.budget_id')
    .where('e.user_id', userId)
    .orderBy('e.end_user')
    .select('e.*', 'b.budget_id as b_name', 'b.max_budget as b_max_budget', 'b.budget_period as b_budget_period', 'b.rpm as b_rpm', 'b.tpm as b_tpm')
  if (only !== undefined) listedQuery.where('e.end_user', only)
  const [listed, month] = await Promise.all([
    listedQuery,
    endUserRangeTotals(DateTime.fromJSDate(monthStart, { zone: 'utc' }), DateTime.utc().startOf('day'), { userId, endUser: only }),
  ])
  const byName = new Map(month.map((m) => [m.end_user, m]))
  const monthDay = monthStart.toISOString().slice(0, 10)
  const entries: EndUserEntry[] = listed.map((row: any) => {
    const rows = byName.get(row.end_user)
    byName.delete(row.end_user)
    // Linked to a shared budget: its limits are the ones that apply.
    const linked = row.budget_id !== null
    const period: SpendPeriod | null = linked ? row.b_budget_period : row.budget_period
    const bounds = period === null ? null : periodBounds(period, Date.now())
    const inPeriod = bounds !== null && row.period_start !== null && dayOf(row.period_start) === new Date(bounds.start).toISOString().slice(0, 10)
    const current = period === 'month' && row.period_start !== null && dayOf(row.period_start) === monthDay
    return {
      end_user: row.end_user,
      listed: true,
      blocked: row.blocked,
      monthly_limit: linked ? row.b_max_budget : row.monthly_limit,
      spent_this_month: period === 'month' ? (current ? row.period_spent : '0') : (rows?.cost ?? '0'),
      budget_period: period,
      rpm: linked ? row.b_rpm : row.rpm,
      tpm: linked ? row.b_tpm : row.tpm,
      budget_id: linked ? row.b_name : null,
      spent_this_period: bounds === null ? row.spent : inPeriod ? row.period_spent : '0',
      budget_reset_at: bounds === null ? null : new Date(bounds.end),
      requests_this_month: rows?.requests ?? 0,
      updated_at: row.updated_at,
    }
  })
  for (const rows of byName.values()) {
    entries.push({
      end_user: rows.end_user,
      listed: false,
      blocked: false,
      monthly_limit: null,
      spent_this_month: rows.cost,
      budget_period: null,
      rpm: null,
      tpm: null,
      budget_id: null,
      spent_this_period: rows.cost,
      budget_reset_at: null,
      requests_this_month: rows.requests,
      updated_at: null,
    })
  }
  return entries
}

/** A `date` column (a Date at local midnight, or a string) as YYYY-MM-DD. */
function dayOf(value: Date | string): string {
  if (typeof value === 'string') return value.slice(0, 10)
  return `${value.getFullYear()}-${String(value.getMonth() + 1).padStart(2, '0')}-${String(value.getDate()).padStart(2, '0')}`
}

/** Rows of (day, owner, end user, model, key) a daily report reads at most */
export const END_USER_DAILY_LIMIT = 10_000

export interface EndUserDaySpend {
  day: string
  user_id: number
  end_user: string
  model: string
  api_key_id: number | null
  tokens: number
  cost: string
}

/**
 * Spend per UTC day, owner, end user, model and key over the filters' range
 * (LiteLLM's /global/spend/report?group_by=customer): finished days from the
 * end-user rollup, today from its rows (a channel, status or tag filter:
 * the rows of the range, on the partial index (end_user, created_at) of
 * migration 998); at most `limit` groups, oldest days first.
 */
export async function endUserDailySpend(filters: UsageFilters, limit = END_USER_DAILY_LIMIT): Promise<EndUserDaySpend[]> {
  const scope = scopeOf(filters, null)
  if (scope) {
    const parts = await endUserParts(DateTime.fromISO(filters.from, { zone: 'utc' }), DateTime.fromISO(filters.to, { zone: 'utc' }), scope)
    const result = await db.rawQuery(
      `SELECT day, user_id, end_user, model, api_key_id,
              coalesce(sum(input_tokens + output_tokens), 0)::bigint AS tokens, coalesce(sum(cost), 0)::text AS cost
         FROM (${parts.sql}) parts
        GROUP BY day, user_id, end_user, model, api_key_id
        ORDER BY day, sum(cost) DESC
        LIMIT ?`,
      [...parts.bindings, limit]
    )
    return result.rows.map((r: any) => ({
      day: r.day,
      user_id: Number(r.user_id),
      end_user: r.end_user,
      model: r.model,
      api_key_id: Number(r.api_key_id) === 0 ? null : Number(r.api_key_id),
      tokens: Number(r.tokens),
      cost: r.cost,
    }))
  }
  const rows = await applyFilters(db.from('usage_records as u'), filters, null)
    .whereNotNull('u.end_user')
    .groupByRaw('1, u.user_id, u.end_user, u.model, u.api_key_id')
    .select(db.raw(`to_char(u.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day`))
    .select('u.user_id', 'u.end_user', 'u.model', 'u.api_key_id')
    .select(db.raw('coalesce(sum(u.prompt_tokens + u.completion_tokens), 0)::bigint AS tokens'))
    .select(db.raw('coalesce(sum(u.cost), 0)::text AS cost'))
    .orderByRaw('1, sum(u.cost) DESC')
    .limit(limit)
  return rows.map((r: any) => ({
    day: r.day,
    user_id: Number(r.user_id),
    end_user: r.end_user,
    model: r.model,
    api_key_id: r.api_key_id === null ? null : Number(r.api_key_id),
    tokens: Number(r.tokens),
    cost: r.cost,
  }))
}
