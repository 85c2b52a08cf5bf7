import type { DatabaseQueryBuilderContract } from '@adonisjs/lucid/types/querybuilder'
import db from '@adonisjs/lucid/services/db'
import { applyFilters, type UsageFilters } from '#services/usage_query'
import { periodBounds } from '#gateway/metering/spend_period'

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

/** The admin side: the usage filters (`user`, `key`, `model`, ..., `from`/`to`), with each owner's e-mail. */
export async function spendByEndUser(filters: UsageFilters, userId: number | null, limit = END_USER_REPORT_LIMIT): Promise<EndUserSpend[]> {
  const totals = await endUserTotals(applyFilters(db.from('usage_records as u'), filters, userId), limit)
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
  /** Spent this UTC month: what the limit counts for a listed end user, the usage rows' sum for the others */
  spent_this_month: string
  /** Requests this UTC month (usage rows) */
  requests_this_month: number
  updated_at: Date | null
}

/**
 * An owner's end users: every listed one, and the others that sent requests
 * this UTC month (the costliest END_USER_REPORT_LIMIT), listed ones first,
 * then by spend. One query over the owner's month of rows that named an end
 * user, one over their end_users rows.
 */
export async function endUsersOf(userId: number): Promise<EndUserEntry[]> {
  const monthStart = new Date(periodBounds('month', Date.now()).start)
  const [listed, month] = await Promise.all([
    db.from('end_users').where('user_id', userId).orderBy('end_user'),
    endUserTotals(db.from('usage_records as u').where('u.user_id', userId).where('u.created_at', '>=', monthStart)),
  ])
  const byName = new Map(month.map((m) => [m.end_user, m]))
  const monthDay = monthStart.toISOString().slice(0, 10)
  const entries: EndUserEntry[] = listed.map((row: any) => {
    const rows = byName.get(row.end_user)
    byName.delete(row.end_user)
    const current = row.period_start !== null && dayOf(row.period_start) === monthDay
    return {
      end_user: row.end_user,
      listed: true,
      blocked: row.blocked,
      monthly_limit: row.monthly_limit,
      spent_this_month: current ? row.period_spent : '0',
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
 * (LiteLLM's /global/spend/report?group_by=customer): rows that named an end
 * user, on the partial index (end_user, created_at) of migration 998, as the
 * other end-user reports; at most END_USER_DAILY_LIMIT groups, oldest days first.
 */
export async function endUserDailySpend(filters: UsageFilters, limit = END_USER_DAILY_LIMIT): Promise<EndUserDaySpend[]> {
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
