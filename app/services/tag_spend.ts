import { DateTime } from 'luxon'
import db from '@adonisjs/lucid/services/db'
import { applyFilters, rangeOf, type UsageFilters } from '#services/usage_query'
import { ensureRollups } from '#services/usage_rollup'

export interface TagSpend {
  /** null: the requests that carried no tag */
  tag: string | null
  requests: number
  input_tokens: number
  output_tokens: number
  /** Exact decimal (numeric as Postgres adds it) */
  cost: string
}

const SUMS = `sum(requests)::bigint AS requests, sum(input_tokens)::bigint AS input_tokens,
  sum(output_tokens)::bigint AS output_tokens, sum(cost)::text AS cost`

/**
 * Spend per request tag over the filters' range (GET /api/admin/spend/tags,
 * LiteLLM's /spend/tags): a request with several tags counts under each;
 * untagged requests are one entry with `tag: null`, last. The costliest tags
 * first. A plain date range reads the daily rollups' `tag` rows for finished
 * days (the untagged: the days' `model` totals minus their `tagged` ones)
 * and today's rows live; any other filter unnests the matching rows.
 */
export async function spendByTag(filters: UsageFilters, userId: number | null): Promise<TagSpend[]> {
  const plain = userId === null && !filters.key && !filters.model && !filters.channel && !filters.status && !filters.tag
  const rows: any[] = plain ? await fromRollups(filters) : await fromRows(filters, userId)
  return rows
    .map((r: any) => ({
      tag: r.tag,
      requests: Number(r.requests),
      input_tokens: Number(r.input_tokens),
      output_tokens: Number(r.output_tokens),
      cost: r.cost,
    }))
    .filter((r: TagSpend) => r.requests > 0)
}

function fromRows(filters: UsageFilters, userId: number | null) {
  return applyFilters(
    db
      .from('usage_records as u')
      // One row per (request, tag); an untagged request once, as NULL.
      .joinRaw('CROSS JOIN LATERAL unnest(COALESCE(u.tags, ARRAY[NULL]::text[])) AS t(tag)')
      .select('t.tag')
      .select(db.raw('count(*)::bigint AS requests'))
      .select(db.raw('coalesce(sum(u.prompt_tokens), 0)::bigint AS input_tokens'))
      .select(db.raw('coalesce(sum(u.completion_tokens), 0)::bigint AS output_tokens'))
      .select(db.raw('coalesce(sum(u.cost), 0)::text AS cost'))
      .groupBy('t.tag')
      .orderByRaw('t.tag IS NULL, sum(u.cost) DESC, t.tag'),
    filters,
    userId
  )
}

async function fromRollups(filters: UsageFilters) {
  const { start, end } = rangeOf(filters)
  const today = DateTime.utc().startOf('day')
  const from = DateTime.fromJSDate(start, { zone: 'utc' })
  // Finished days of the range from the rollups (rolled up here when missing), today from its rows.
  const pastEnd = end < today.toJSDate() ? end : today.toJSDate()
  await ensureRollups(from, DateTime.fromJSDate(pastEnd, { zone: 'utc' }))
  const lastPast = DateTime.fromJSDate(pastEnd, { zone: 'utc' }).minus({ days: 1 }).toISODate()!
  const liveStart = start > today.toJSDate() ? start : today.toJSDate()
  const result = await db.rawQuery(
    `WITH parts AS (
       SELECT key AS tag, requests, input_tokens, output_tokens, cost
         FROM usage_daily WHERE dim = 'tag' AND day >= ? AND day <= ?
       UNION ALL
       SELECT NULL, sum(CASE WHEN dim = 'model' THEN requests ELSE -requests END),
              sum(CASE WHEN dim = 'model' THEN input_tokens ELSE -input_tokens END),
              sum(CASE WHEN dim = 'model' THEN output_tokens ELSE -output_tokens END),
              sum(CASE WHEN dim = 'model' THEN cost ELSE -cost END)
         FROM usage_daily WHERE dim IN ('model', 'tagged') AND day >= ? AND day <= ?
       UNION ALL
       SELECT t.tag, 1, u.prompt_tokens, u.completion_tokens, u.cost
         FROM usage_records u
        CROSS JOIN LATERAL unnest(COALESCE(u.tags, ARRAY[NULL]::text[])) AS t(tag)
        WHERE u.created_at >= ? AND u.created_at < ?
     )
     SELECT tag, ${SUMS} FROM parts
      GROUP BY tag
     HAVING coalesce(sum(requests), 0) > 0
      ORDER BY tag IS NULL, sum(cost) DESC, tag`,
    [from.toISODate(), lastPast, from.toISODate(), lastPast, liveStart, end]
  )
  return result.rows
}
