import { DateTime } from 'luxon'
import db from '@adonisjs/lucid/services/db'
import type { TransactionClientContract } from '@adonisjs/lucid/types/database'

/** A past day is final once rolled up this long after it ended (late metering batches land first). */
const SETTLE_MS = 10 * 60_000

/**
 * Dimensions a day is rolled up by. `requested` holds fallback rows only, by
 * the model the client asked for (rows without requested_model are not in
 * it): disjoint from `model` = X, so the two add up to "X answered or was
 * asked for", what the usage pages' model filter matches.
 */
export type Dimension = 'model' | 'user' | 'channel' | 'requested'
/**
 * A request tag (`usage_records.tags`): one rollup row per day and tag (a
 * request with two tags counts under both), and per day one `tagged` row
 * (key '') counting the tagged requests once, so a day's untagged requests
 * are its `model` totals minus its `tagged` ones (days rolled up before
 * tags existed have none: all their requests are untagged, as they were).
 */
export type TagDimension = 'tag'

/** Upper bounds (ms) of the latency histogram's buckets; bucket i holds [bound[i-1], bound[i]). */
export const LATENCY_BOUNDS_MS = [
  25, 50, 75, 100, 150, 200, 300, 400, 500, 750, 1000, 1500, 2000, 3000, 4000, 5000, 7500, 10000, 15000, 20000, 30000,
  60000, 120000,
]
export const BOUNDS_SQL = `ARRAY[${LATENCY_BOUNDS_MS.join(',')}]::int[]`

/**
 * A key and the model it was billed for (LiteLLM's spend per key, and per key
 * and model): `<key id> <model>`, cut to the key column's 200 characters (a
 * model name over ~180 characters may share its row with a longer one). Rows
 * without a key (none today) are not in it.
 */
export type KeyModelDimension = 'key_model'
const KEY_MODEL_SQL = `CASE WHEN api_key_id IS NULL THEN NULL ELSE left(api_key_id::text || ' ' || model, 200) END`

/**
 * The team a row's request was admitted under and its model (LiteLLM's spend
 * report by team): `<team id> <model>`, cut as key_model's. Rows of no team
 * (the usual ones) are not in it. Days rolled up before migration 1011 got
 * theirs there, from the rows' backfilled team.
 */
export type TeamModelDimension = 'team_model'
const TEAM_MODEL_SQL = `CASE WHEN team_id IS NULL THEN NULL ELSE left(team_id::text || ' ' || model, 200) END`

/**
 * The organization a row's request was admitted under and its model
 * (LiteLLM's /organization/daily/activity): `<organization id> <model>`, cut
 * as key_model's; from `usage_records.organization_id` (migration 1024), so a
 * team moved to another organization leaves its past spend with the first.
 * Rows of no organization are not in it. Days rolled up before migration
 * 1027 that hold such rows were marked stale there.
 */
/** (usage_daily.dim is varchar(16): 'org_model', not 'organization_model') */
export type OrganizationModelDimension = 'org_model'
const ORGANIZATION_MODEL_SQL = `CASE WHEN organization_id IS NULL THEN NULL ELSE left(organization_id::text || ' ' || model, 200) END`

/**
 * The HTTP status a row answered with and its model (the usage pages' status
 * filter, alone or with a model): `model_status` is `<status> <model>`,
 * `requested_status` `<status> <model asked for>` on fallback rows only (as
 * `requested` is to `model`), cut as key_model's. A status filter then reads
 * ~15 rollup rows a day instead of every row of the range (`status=error`
 * over 30 days at 1M rows aggregated the whole million: ~500 ms on a loaded
 * machine). Days rolled up before migration 1032 were given theirs there,
 * from their rows.
 */
export type StatusDimension = 'model_status' | 'requested_status'
const MODEL_STATUS_SQL = `left(status::text || ' ' || model, 200)`
const REQUESTED_STATUS_SQL = `CASE WHEN requested_model IS NULL THEN NULL ELSE left(status::text || ' ' || requested_model, 200) END`

/**
 * The dimensions of a usage row as (dim, key) pairs, for `CROSS JOIN LATERAL`
 * over rows with model, requested_model, user_id, channel_id, api_key_id, team_id, organization_id and tags (a NULL
 * key: not in that dimension; a row has one `tag` pair per tag). The rollup and the prune's totals both use it.
 */
export const DIMENSIONS_SQL = `(SELECT * FROM (VALUES ('model', model), ('user', user_id::text), ('channel', coalesce(channel_id::text, '')),
                                   ('requested', requested_model), ('tagged', CASE WHEN tags IS NULL THEN NULL ELSE '' END),
                                   ('key_model', ${KEY_MODEL_SQL}), ('team_model', ${TEAM_MODEL_SQL}),
                                   ('org_model', ${ORGANIZATION_MODEL_SQL}),
                                   ('model_status', ${MODEL_STATUS_SQL}), ('requested_status', ${REQUESTED_STATUS_SQL})) v(dim, key)
                                 UNION ALL SELECT 'tag', tag FROM unnest(tags) tag) d(dim, key)`

const COLUMN: Record<Dimension, string> = {
  model: 'model',
  user: 'user_id::text',
  channel: "coalesce(channel_id::text, '')",
  requested: 'requested_model',
}

/**
 * Makes sure usage_daily holds every finished day of [from, before): one
 * row per day and model, user and channel, and per model asked for on
 * fallback rows. A day is rolled up once it has
 * settled (and again if it was rolled up too early). Today is never rolled
 * up: readers add it live from usage_records, so figures are exact.
 * Each day is replaced in one transaction under an advisory lock.
 * A day whose rows were pruned (app/actions/prune_usage.ts) is the totals
 * of its rows left plus those of its deleted rows (usage_daily_pruned).
 */
export async function ensureRollups(from: DateTime, before: DateTime) {
  const [done, stale] = await Promise.all([
    db.from('usage_daily_days').where('day', '>=', from.toISODate()!).select('day', 'computed_at'),
    db.from('usage_daily_stale').where('day', '>=', from.toISODate()!).select('day'),
  ])
  const computed = new Map(done.map((r) => [toDay(r.day), new Date(r.computed_at).getTime()]))
  const late = new Set(stale.map((r) => toDay(r.day)))
  const due: DateTime[] = []
  for (let day = from.startOf('day'); day < before.startOf('day'); day = day.plus({ days: 1 })) {
    if (needsRollup(day, computed.get(day.toISODate()!), late.has(day.toISODate()!))) due.push(day)
  }
  for (let i = 0; i < due.length; i += EMPTY_DAYS_PER_TRANSACTION) {
    const days = due.slice(i, i + EMPTY_DAYS_PER_TRANSACTION)
    for (const day of days.length > 1 ? await rollUpEmptyDays(days) : days) await rollUpDay(day)
  }
}

/**
 * Rolls up days marked stale before today, newest first, at most `limit` a
 * run, one at a time with a pause between (serving first), in the background
 * (the retention timer): a late row's day, or every rolled-up day after an
 * upgrade that adds a dimension (migration 1001 marked them all). Without it
 * the first reader of a long range paid for them inside its request (a year
 * at 1M rows: ~12 s). Returns the days rolled up.
 */
export async function rollUpStaleDays(limit = 400, signal?: AbortSignal, pauseMs = 20): Promise<number> {
  const today = DateTime.utc().startOf('day')
  const rows = await db.from('usage_daily_stale').where('day', '<', today.toISODate()!).orderBy('day', 'desc').limit(limit).select('day')
  let rolled = 0
  for (const row of rows) {
    if (signal?.aborted) break
    const day = DateTime.fromISO(toDay(row.day), { zone: 'utc' })
    await ensureRollups(day, day.plus({ days: 1 }))
    rolled++
    if (pauseMs > 0) await new Promise((resolve) => setTimeout(resolve, pauseMs))
  }
  return rolled
}

/** Days settled as empty in one transaction (each holds its advisory lock until the commit). */
const EMPTY_DAYS_PER_TRANSACTION = 366

/**
 * Rolls up, in one transaction, those of `days` that have no usage and no
 * pruned totals (nothing to add up: their rollup is the mark alone), and
 * returns the others for rollUpDay. A year's range on a database that is a
 * few weeks old is mostly such days: one transaction each made the first
 * read of that range take seconds. Same order as rollUpDay: each day's lock,
 * then its stale mark goes, then its rows are looked for, so a late row
 * committed from then on marks the day again.
 */
async function rollUpEmptyDays(days: DateTime[]): Promise<DateTime[]> {
  const keys = days.map((day) => day.toISODate()!)
  const busy = await db.transaction(async (trx) => {
    await trx.rawQuery(
      `SELECT pg_advisory_xact_lock(hashtext('usage_daily:' || d)) FROM unnest(?::text[]) WITH ORDINALITY AS t(d, n) ORDER BY n`,
      [keys]
    )
    const unmarked = await trx.from('usage_daily_stale').whereIn('day', keys).delete().returning('day')
    // A day has something to add up when it has rows or pruned totals; BRIN answers an empty day without the heap.
    const found = await trx.rawQuery(
      `SELECT d::text AS day FROM unnest(?::date[]) AS d
        WHERE EXISTS (SELECT 1 FROM usage_records
                       WHERE created_at >= d::timestamp AT TIME ZONE 'UTC' AND created_at < (d + 1)::timestamp AT TIME ZONE 'UTC')
           OR EXISTS (SELECT 1 FROM usage_daily_pruned p WHERE p.day = d)
           OR EXISTS (SELECT 1 FROM usage_daily_latency_pruned p WHERE p.day = d)`,
      [keys]
    )
    const withUsage = new Set<string>(found.rows.map((r: { day: string }) => r.day))
    const empty = keys.filter((key) => !withUsage.has(key))
    if (empty.length > 0) {
      await trx.from('usage_daily').whereIn('day', empty).delete()
      await trx.from('usage_daily_latency').whereIn('day', empty).delete()
      await trx.from('usage_daily_end_users').whereIn('day', empty).delete()
      await trx.rawQuery(
        `INSERT INTO usage_daily_days (day, computed_at) SELECT d, now() FROM unnest(?::date[]) AS d
         ON CONFLICT (day) DO UPDATE SET computed_at = excluded.computed_at`,
        [empty]
      )
    }
    // A busy day keeps its mark until rollUpDay has counted it (a stop in between must not forget the late row).
    const remark = unmarked.map((r) => toDay(r.day)).filter((key) => withUsage.has(key))
    if (remark.length > 0) await trx.table('usage_daily_stale').multiInsert(remark.map((day) => ({ day })))
    return withUsage
  })
  return days.filter((day) => busy.has(day.toISODate()!))
}

/** Never rolled up, marked stale, or rolled up before it settled and settled since. */
function needsRollup(day: DateTime, computedAt: number | undefined, stale: boolean) {
  const settled = day.plus({ days: 1 }).toMillis() + SETTLE_MS
  return computedAt === undefined || stale || (computedAt < settled && Date.now() >= settled)
}

/**
 * Whether a finished day's rollup holds all its rows, read in the caller's
 * transaction (the prune's, under the day's lock: a rollup of the day waits
 * for it, and it for a rollup).
 */
export async function rollupComplete(trx: TransactionClientContract, day: DateTime) {
  const key = day.toISODate()!
  const [done, stale] = await Promise.all([
    trx.from('usage_daily_days').where('day', key).select('computed_at').first(),
    trx.from('usage_daily_stale').where('day', key).select('day').first(),
  ])
  return !needsRollup(day, done ? new Date(done.computed_at).getTime() : undefined, Boolean(stale))
}

/** The day's advisory lock: its rollup and the prune of its rows take it, one at a time. */
export async function lockDay(trx: TransactionClientContract, day: DateTime) {
  await trx.rawQuery('SELECT pg_advisory_xact_lock(hashtext(?))', [`usage_daily:${day.toISODate()}`])
}

export async function rollUpDay(day: DateTime) {
  const start = day.startOf('day').toJSDate()
  const end = day.startOf('day').plus({ days: 1 }).toJSDate()
  const key = day.toISODate()!
  await db.transaction(async (trx) => {
    await lockDay(trx, day)
    // The mark goes before the rows are read: a late batch committing from here on marks the day
    // again (its insert waits for this delete to commit), so no late row is ever left out.
    await trx.from('usage_daily_stale').where('day', key).delete()
    await trx.from('usage_daily').where('day', key).delete()
    // The rows there are, plus what the day's pruned rows added up to (nothing, unless pruned).
    await trx.rawQuery(
      `WITH rows AS (
         SELECT model, requested_model, user_id, channel_id, api_key_id, team_id, organization_id, tags, status, prompt_tokens, completion_tokens, cost
           FROM usage_records WHERE created_at >= ? AND created_at < ?
       ),
       totals AS (
         SELECT d.dim, d.key, count(*) AS requests, count(*) FILTER (WHERE status >= 400) AS errors,
                coalesce(sum(prompt_tokens), 0) AS input_tokens, coalesce(sum(completion_tokens), 0) AS output_tokens,
                coalesce(sum(cost), 0) AS cost
           FROM rows
          CROSS JOIN LATERAL ${DIMENSIONS_SQL}
          WHERE d.key IS NOT NULL
          GROUP BY d.dim, d.key
         UNION ALL
         SELECT dim, key, requests, errors, input_tokens, output_tokens, cost FROM usage_daily_pruned WHERE day = ?
       )
       INSERT INTO usage_daily (day, dim, key, requests, errors, input_tokens, output_tokens, cost)
       SELECT ?::date, dim, key, sum(requests), sum(errors), sum(input_tokens), sum(output_tokens), sum(cost)
         FROM totals
        GROUP BY dim, key`,
      [start, end, key, key]
    )
    await rollUpEndUsers(trx, key, start, end)
    await trx.from('usage_daily_latency').where('day', key).delete()
    await trx.rawQuery(
      `INSERT INTO usage_daily_latency (day, bucket, requests)
       SELECT ?::date, bucket, sum(requests)
         FROM (SELECT width_bucket(latency_ms, ${BOUNDS_SQL}) AS bucket, count(*) AS requests
                 FROM usage_records WHERE created_at >= ? AND created_at < ?
                GROUP BY 1
               UNION ALL
               SELECT bucket, requests FROM usage_daily_latency_pruned WHERE day = ?) buckets
        GROUP BY bucket`,
      [key, start, end, key]
    )
    await trx.rawQuery(
      `INSERT INTO usage_daily_days (day, computed_at) VALUES (?, now())
       ON CONFLICT (day) DO UPDATE SET computed_at = excluded.computed_at`,
      [key]
    )
  })
}

/** The columns an end-user rollup row is keyed by (migration 1008), in usage_daily_end_users and its _pruned twin */
export const END_USER_KEY_COLUMNS = 'user_id, end_user, model, requested_model, api_key_id'

/**
 * The day's end-user dimension (usage_daily_end_users): its rows that named
 * an end user, per owner, end user, model, model asked for ('' without a
 * fallback) and key (0: none), plus what its pruned ones added up to. In
 * rollUpDay's transaction, under the day's lock.
 */
async function rollUpEndUsers(trx: TransactionClientContract, key: string, start: Date, end: Date) {
  await trx.from('usage_daily_end_users').where('day', key).delete()
  await trx.rawQuery(
    `INSERT INTO usage_daily_end_users (day, ${END_USER_KEY_COLUMNS}, requests, errors, input_tokens, output_tokens, cost)
     SELECT ?::date, ${END_USER_KEY_COLUMNS}, sum(requests), sum(errors), sum(input_tokens), sum(output_tokens), sum(cost)
       FROM (SELECT user_id, end_user, model, coalesce(requested_model, '') AS requested_model, coalesce(api_key_id, 0) AS api_key_id,
                    count(*) AS requests, count(*) FILTER (WHERE status >= 400) AS errors,
                    coalesce(sum(prompt_tokens), 0) AS input_tokens, coalesce(sum(completion_tokens), 0) AS output_tokens,
                    coalesce(sum(cost), 0) AS cost
               FROM usage_records WHERE created_at >= ? AND created_at < ? AND end_user IS NOT NULL
              GROUP BY 1, 2, 3, 4, 5
             UNION ALL
             SELECT ${END_USER_KEY_COLUMNS}, requests, errors, input_tokens, output_tokens, cost
               FROM usage_daily_end_users_pruned WHERE day = ?) totals
      GROUP BY ${END_USER_KEY_COLUMNS}`,
    [key, start, end, key]
  )
}

export interface DayTotals {
  day: string
  requests: number
  errors: number
  input: number
  output: number
  cost: number
}

const TOTALS = [
  db.raw('count(*)::bigint AS requests'),
  db.raw('count(*) FILTER (WHERE status >= 400)::bigint AS errors'),
  db.raw('coalesce(sum(prompt_tokens), 0)::bigint AS input'),
  db.raw('coalesce(sum(completion_tokens), 0)::bigint AS output'),
  db.raw('coalesce(sum(cost), 0)::text AS cost'),
]

/**
 * Per-day totals for [from, to] (whole days, UTC), zero-filled: finished
 * days from the rollups, today live. `only` restricts to one model, user,
 * channel or tag; a model's are the rows it answered and the fallback rows that
 * asked for it (the usage filter's match).
 */
export async function dailyTotals(
  from: DateTime,
  to: DateTime,
  only?: { dim: Dimension | TagDimension; key: string }
): Promise<DayTotals[]> {
  const today = DateTime.utc().startOf('day')
  await ensureRollups(from, to < today ? to.plus({ days: 1 }) : today)
  const past = db
    .from('usage_daily')
    .whereIn('dim', only?.dim === 'model' ? ['model', 'requested'] : [only?.dim ?? 'model'])
    .whereBetween('day', [from.toISODate()!, to.toISODate()!])
    .groupBy('day')
    .select('day')
    .select(db.raw('sum(requests)::bigint AS requests'))
    .select(db.raw('sum(errors)::bigint AS errors'))
    .select(db.raw('sum(input_tokens)::bigint AS input'))
    .select(db.raw('sum(output_tokens)::bigint AS output'))
    .select(db.raw('sum(cost)::text AS cost'))
  if (only) past.where('key', only.key)
  const rows = await past
  const byDay = new Map<string, any>(rows.map((r) => [toDay(r.day), r]))
  if (to >= today && from <= today) {
    const live = db
      .from('usage_records')
      .where('created_at', '>=', today.toJSDate())
      .select(...TOTALS)
    if (only?.dim === 'model') live.where((q) => q.where('model', only.key).orWhere('requested_model', only.key))
    else if (only?.dim === 'tag') live.whereRaw('tags @> ARRAY[?]::text[]', [only.key])
    else if (only) live.whereRaw(`${COLUMN[only.dim]} = ?`, [only.key])
    byDay.set(today.toISODate()!, await live.first())
  }
  return fillDays(byDay, from.startOf('day'), to)
}

/**
 * The usage filters' status values the status rollup answers: `ok` (< 400),
 * `error` (>= 400) or one HTTP status; null for an error code (`rate_limited`...),
 * which only the rows hold.
 */
export function statusCondition(status: string): { sql: string; bindings: number[] } | null {
  if (status === 'ok') return { sql: '< ?', bindings: [400] }
  if (status === 'error') return { sql: '>= ?', bindings: [400] }
  if (/^\d{3}$/.test(status)) return { sql: '= ?', bindings: [Number(status)] }
  return null
}

/**
 * Per-day totals of the rows with a status (statusCondition), of one model
 * or all, for [from, to] (whole UTC days), zero-filled: finished days from
 * the `model_status` rollup rows (and `requested_status` for a model: the
 * fallback rows that asked for it, as the usage filter matches), today live.
 * Null for a status the rollup does not hold (an error code).
 */
export async function dailyStatusTotals(from: DateTime, to: DateTime, status: string, model?: string): Promise<DayTotals[] | null> {
  const condition = statusCondition(status)
  if (!condition) return null
  const today = DateTime.utc().startOf('day')
  await ensureRollups(from, to < today ? to.plus({ days: 1 }) : today)
  const past = db
    .from('usage_daily')
    .whereIn('dim', model ? ['model_status', 'requested_status'] : ['model_status'])
    .whereBetween('day', [from.toISODate()!, to.toISODate()!])
    .whereRaw(`split_part(key, ' ', 1)::int ${condition.sql}`, condition.bindings)
    .groupBy('day')
    .select('day')
    .select(db.raw('sum(requests)::bigint AS requests'))
    .select(db.raw('sum(errors)::bigint AS errors'))
    .select(db.raw('sum(input_tokens)::bigint AS input'))
    .select(db.raw('sum(output_tokens)::bigint AS output'))
    .select(db.raw('sum(cost)::text AS cost'))
  // The model as the key holds it: cut to what fits after the status (key_model's caveat).
  if (model) past.whereRaw(`substr(key, strpos(key, ' ') + 1) = left(?, 200 - strpos(key, ' '))`, [model])
  const rows = await past
  const byDay = new Map<string, any>(rows.map((r) => [toDay(r.day), r]))
  if (to >= today && from <= today) {
    const live = db
      .from('usage_records')
      .where('created_at', '>=', today.toJSDate())
      .whereRaw(`status ${condition.sql}`, condition.bindings)
      .select(...TOTALS)
    if (model) live.where((q) => q.where('model', model).orWhere('requested_model', model))
    byDay.set(today.toISODate()!, await live.first())
  }
  return fillDays(byDay, from.startOf('day'), to)
}

/**
 * Does [from, to] hold a day whose pruned rows are not all in the status
 * rollup (pruned before migration 1032 added it: their statuses are lost)?
 * Then a status filter's totals for it count the kept rows only, and the
 * Usage page says so. Compares the pruned requests by model and by status.
 */
export async function statusTotalsPartial(from: DateTime, to: DateTime): Promise<boolean> {
  const row = await db
    .from('usage_daily_pruned')
    .whereIn('dim', ['model', 'model_status'])
    .whereBetween('day', [from.toISODate()!, to.toISODate()!])
    .groupBy('day')
    .havingRaw(`sum(requests) FILTER (WHERE dim = 'model') <> coalesce(sum(requests) FILTER (WHERE dim = 'model_status'), 0)`)
    .select('day')
    .first()
  return Boolean(row)
}

/** One DayTotals per day from `from` to `to` (at most 400), zeros for days without rows: charts need every day. */
export function fillDays(byDay: Map<string, any>, from: DateTime, to: DateTime): DayTotals[] {
  const out: DayTotals[] = []
  for (let day = from; day <= to && out.length < 400; day = day.plus({ days: 1 })) {
    const r = byDay.get(day.toISODate()!)
    out.push({
      day: day.toISODate()!,
      requests: Number(r?.requests ?? 0),
      errors: Number(r?.errors ?? 0),
      input: Number(r?.input ?? 0),
      output: Number(r?.output ?? 0),
      cost: Number(r?.cost ?? 0),
    })
  }
  return out
}

/** Top `limit` values of a dimension since a day, by spend: rollups plus today live. */
export async function topBy(dim: Dimension, since: DateTime, limit = 5) {
  const today = DateTime.utc().startOf('day')
  await ensureRollups(since, today)
  const totals = new Map<string, { key: string; requests: number; tokens: number; cost: number }>()
  const add = (key: string, requests: number, tokens: number, cost: number) => {
    const t = totals.get(key) ?? { key, requests: 0, tokens: 0, cost: 0 }
    t.requests += requests
    t.tokens += tokens
    t.cost += cost
    totals.set(key, t)
  }
  const [past, live] = await Promise.all([
    db
      .from('usage_daily')
      .where('dim', dim)
      .where('day', '>=', since.toISODate()!)
      .groupBy('key')
      .select('key')
      .select(db.raw('sum(requests)::bigint AS requests'))
      .select(db.raw('sum(input_tokens + output_tokens)::bigint AS tokens'))
      .select(db.raw('sum(cost)::text AS cost')),
    db
      .from('usage_records')
      .where('created_at', '>=', today.toJSDate())
      .groupByRaw('1')
      .select(db.raw(`${COLUMN[dim]} AS key`))
      .select(db.raw('count(*)::bigint AS requests'))
      .select(db.raw('coalesce(sum(prompt_tokens + completion_tokens), 0)::bigint AS tokens'))
      .select(db.raw('coalesce(sum(cost), 0)::text AS cost')),
  ])
  for (const r of [...past, ...live]) add(String(r.key), Number(r.requests), Number(r.tokens), Number(r.cost))
  return [...totals.values()]
    .filter((t) => t.key !== '')
    .sort((a, b) => b.cost - a.cost || b.requests - a.requests)
    .slice(0, limit)
}

/**
 * Median latency since a day, from the daily histograms plus today live,
 * interpolated inside its bucket (an estimate within the bucket's width).
 */
export async function medianLatencySince(since: DateTime): Promise<number | null> {
  const today = DateTime.utc().startOf('day')
  await ensureRollups(since, today)
  const [past, live] = await Promise.all([
    db
      .from('usage_daily_latency')
      .where('day', '>=', since.toISODate()!)
      .groupBy('bucket')
      .select('bucket')
      .select(db.raw('sum(requests)::bigint AS requests')),
    db
      .from('usage_records')
      .where('created_at', '>=', today.toJSDate())
      .groupByRaw('1')
      .select(db.raw(`width_bucket(latency_ms, ${BOUNDS_SQL}) AS bucket`))
      .select(db.raw('count(*)::bigint AS requests')),
  ])
  const counts = new Array(LATENCY_BOUNDS_MS.length + 1).fill(0)
  for (const r of [...past, ...live]) counts[Number(r.bucket)] += Number(r.requests)
  return medianOfHistogram(counts)
}

/** The median of a bucketed histogram (counts per width_bucket index), linearly interpolated. */
export function medianOfHistogram(counts: number[]): number | null {
  const total = counts.reduce((a, b) => a + b, 0)
  if (total === 0) return null
  let seen = 0
  for (const [bucket, count] of counts.entries()) {
    if (count > 0 && seen + count >= total / 2) {
      const low = bucket === 0 ? 0 : LATENCY_BOUNDS_MS[bucket - 1]
      const high = LATENCY_BOUNDS_MS[bucket] ?? low * 2
      return Math.round(low + ((total / 2 - seen) / count) * (high - low))
    }
    seen += count
  }
  return null
}

function toDay(value: unknown): string {
  if (value instanceof Date) return DateTime.fromJSDate(value, { zone: 'utc' }).toISODate()!
  return String(value).slice(0, 10)
}

/**
 * The bounds of a range read from the rollups' finished days and today's
 * rows: the first and last rolled-up day, then the live rows' [start, end)
 * (an empty range unless the range reaches today).
 */
function rolledAndLiveBounds(from: DateTime, to: DateTime, today: DateTime): [string, string, Date, Date] {
  return [
    from.toISODate()!,
    (to < today ? to : today.minus({ days: 1 })).toISODate()!,
    (to >= today ? today : to.plus({ days: 1 })).toJSDate(),
    to.plus({ days: 1 }).startOf('day').toJSDate(),
  ]
}

export interface KeyModelSpend {
  keyId: number
  model: string
  input_tokens: number
  output_tokens: number
  /** Exact decimal (numeric as Postgres adds it) */
  cost: string
}

/**
 * Spend per key and model over the UTC days [from, to] (LiteLLM's
 * /global/spend/keys and its report by api_key): finished days from the
 * rollups' `key_model` rows, today live from its rows. A day rolled up
 * before the dimension existed is rolled up again (migration 1001 marked it).
 */
export async function spendByKeyModel(from: DateTime, to: DateTime): Promise<KeyModelSpend[]> {
  const today = DateTime.utc().startOf('day')
  await ensureRollups(from, to < today ? to.plus({ days: 1 }) : today)
  const result = await db.rawQuery(
    `WITH parts AS (
       SELECT split_part(key, ' ', 1) AS key_id, substr(key, strpos(key, ' ') + 1) AS model, input_tokens, output_tokens, cost
         FROM usage_daily WHERE dim = 'key_model' AND day >= ? AND day <= ?
       UNION ALL
       SELECT api_key_id::text, model, prompt_tokens, completion_tokens, cost
         FROM usage_records WHERE api_key_id IS NOT NULL AND created_at >= ? AND created_at < ?
     )
     SELECT key_id, model, coalesce(sum(input_tokens), 0)::bigint AS input_tokens,
            coalesce(sum(output_tokens), 0)::bigint AS output_tokens, coalesce(sum(cost), 0)::text AS cost
       FROM parts GROUP BY key_id, model ORDER BY sum(cost) DESC, key_id, model`,
    rolledAndLiveBounds(from, to, today)
  )
  return result.rows.map((r: any) => ({
    keyId: Number(r.key_id),
    model: r.model,
    input_tokens: Number(r.input_tokens),
    output_tokens: Number(r.output_tokens),
    cost: r.cost,
  }))
}

export interface TeamDaySpend {
  day: string
  teamId: number
  alias: string
  model: string
  tokens: number
  /** Exact decimal */
  cost: string
}

/**
 * Spend per UTC day, team and model over [from, to] (LiteLLM's
 * /global/spend/report?group_by=team): finished days from the rollups'
 * `team_model` rows, today live from its rows, each row counted for the team
 * its request was admitted under (`usage_records.team_id`: a key moved to
 * another team leaves its past spend with the first). Rows of no team, and of
 * a team since deleted, are left out.
 */
export async function spendByTeamDay(from: DateTime, to: DateTime): Promise<TeamDaySpend[]> {
  const today = DateTime.utc().startOf('day')
  await ensureRollups(from, to < today ? to.plus({ days: 1 }) : today)
  const result = await db.rawQuery(
    `WITH parts AS (
       SELECT day, split_part(key, ' ', 1) AS team_id, substr(key, strpos(key, ' ') + 1) AS model, input_tokens + output_tokens AS tokens, cost
         FROM usage_daily WHERE dim = 'team_model' AND day >= ? AND day <= ?
       UNION ALL
       SELECT (created_at AT TIME ZONE 'UTC')::date, team_id::text, model, prompt_tokens + completion_tokens, cost
         FROM usage_records WHERE team_id IS NOT NULL AND created_at >= ? AND created_at < ?
     )
     SELECT p.day::text AS day, t.id AS team_id, t.alias, p.model, coalesce(sum(p.tokens), 0)::bigint AS tokens, coalesce(sum(p.cost), 0)::text AS cost
       FROM parts p JOIN teams t ON t.id = p.team_id::bigint
      GROUP BY p.day, t.id, t.alias, p.model ORDER BY p.day, sum(p.cost) DESC, t.id, p.model`,
    rolledAndLiveBounds(from, to, today)
  )
  return result.rows.map((r: any) => ({
    day: toDay(r.day),
    teamId: Number(r.team_id),
    alias: r.alias,
    model: r.model,
    tokens: Number(r.tokens),
    cost: r.cost,
  }))
}

export interface OrganizationDaySpend {
  day: string
  organizationId: number
  alias: string
  model: string
  requests: number
  errors: number
  inputTokens: number
  outputTokens: number
  /** Exact decimal */
  cost: string
}

/**
 * Requests, tokens and spend per UTC day, organization and model over
 * [from, to] (LiteLLM's /organization/daily/activity): finished days from the
 * rollups' `org_model` rows, today live from its rows (by
 * created_at, as the team report), each row counted for the organization its
 * request was admitted under. `only`: these organizations (null: all). Rows
 * of an organization since deleted are left out.
 */
export async function spendByOrganizationDay(from: DateTime, to: DateTime, only: number[] | null): Promise<OrganizationDaySpend[]> {
  const today = DateTime.utc().startOf('day')
  await ensureRollups(from, to < today ? to.plus({ days: 1 }) : today)
  const [rolledFrom, rolledTo, liveFrom, liveTo] = rolledAndLiveBounds(from, to, today)
  const result = await db.rawQuery(
    `WITH parts AS (
       SELECT day, split_part(key, ' ', 1) AS organization_id, substr(key, strpos(key, ' ') + 1) AS model,
              requests, errors, input_tokens, output_tokens, cost
         FROM usage_daily WHERE dim = 'org_model' AND day >= ? AND day <= ?
       UNION ALL
       SELECT (created_at AT TIME ZONE 'UTC')::date, organization_id::text, model,
              1, CASE WHEN status >= 400 THEN 1 ELSE 0 END, coalesce(prompt_tokens, 0), coalesce(completion_tokens, 0), cost
         FROM usage_records WHERE organization_id IS NOT NULL AND created_at >= ? AND created_at < ?
     )
     SELECT p.day::text AS day, o.id AS organization_id, o.alias, p.model, sum(p.requests)::bigint AS requests, sum(p.errors)::bigint AS errors,
            coalesce(sum(p.input_tokens), 0)::bigint AS input_tokens, coalesce(sum(p.output_tokens), 0)::bigint AS output_tokens,
            coalesce(sum(p.cost), 0)::text AS cost
       FROM parts p JOIN organizations o ON o.id = p.organization_id::bigint
      WHERE ?::bigint[] IS NULL OR o.id = ANY(?::bigint[])
      GROUP BY p.day, o.id, o.alias, p.model ORDER BY p.day, sum(p.cost) DESC, o.id, p.model`,
    [rolledFrom, rolledTo, liveFrom, liveTo, only as any, only as any]
  )
  return result.rows.map((r: any) => ({
    day: toDay(r.day),
    organizationId: Number(r.organization_id),
    alias: r.alias,
    model: r.model,
    requests: Number(r.requests),
    errors: Number(r.errors),
    inputTokens: Number(r.input_tokens),
    outputTokens: Number(r.output_tokens),
    cost: r.cost,
  }))
}
