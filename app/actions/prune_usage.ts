import { DateTime } from 'luxon'
import pg from 'pg'
import db from '@adonisjs/lucid/services/db'
import env from '#start/env'
import { AdminInputError } from '#actions/admin_input_error'
import { cliActor, writeAudit, type Actor } from '#actions/audit'
import { BOUNDS_SQL, DIMENSIONS_SQL, END_USER_KEY_COLUMNS, lockDay, rollUpDay, rollupComplete } from '#services/usage_rollup'
import { MIN_RETENTION_DAYS, oldestKeptDay } from '#services/usage_retention'

export interface PruneOptions {
  /** Whole UTC days of rows kept: today and the N days before it (at least MIN_RETENTION_DAYS) */
  keepDays: number
  /** Count what would go, change nothing */
  dryRun?: boolean
  /** Rows deleted per transaction (default 10,000) */
  batchSize?: number
  /** Pause between two batches, leaving the database to the meter and the pages a moment (default 0) */
  pauseMs?: number
  actor?: Actor
  /** Stops between two batches (a shutdown); what was deleted stays deleted, and is audited */
  signal?: AbortSignal
  now?: Date
}

export interface PrunedDay {
  day: string
  rows: number
  attempts: number
}

export interface PruneResult {
  keepDays: number
  /** The first UTC day whose rows are kept (YYYY-MM-DD) */
  oldestKept: string
  dryRun: boolean
  /** Another prune (another instance, an ace command) holds the lock: this one did nothing */
  skipped: boolean
  /** Usage rows deleted (or that would be) */
  rows: number
  /** Their attempt rows, and attempts older than the cutoff whose usage row was already gone */
  attempts: number
  /** Logged request and response bodies (LOG_BODIES) older than the cutoff */
  bodies: number
  /** Per day with rows before the cutoff, oldest first */
  days: PrunedDay[]
  /** Days rolled up (never before, or again: marked stale) before their rows went */
  rolledUp: number
  batches: number
  /** Stopped by the signal before the end */
  stopped: boolean
  /** The tables were vacuumed after the delete (see tidyUp); false when nothing went, or it failed */
  vacuumed: boolean
}

const DEFAULT_BATCH = 10_000
/** pg_try_advisory_lock(int, int) key of the prune (the two-key space: apart from the rollups' one-key locks) */
const LOCK = `hashtext('usage_prune'), 0`

/**
 * One batch of a day's rows, oldest ids first: deleted with their attempts,
 * and what they added up to moved to usage_daily_pruned (and per end user
 * to usage_daily_end_users_pruned) /
 * usage_daily_latency_pruned, so the day's rollup (its rows left plus
 * those) is unchanged, now and whenever it is redone. The ledger is not
 * touched: its charges keep their usage_record_id (the transaction sets
 * gateway.usage_prune, which the delete trigger reads). Returns the heap
 * blocks the rows and attempts were in (see tidyUp).
 */
const DELETE_BATCH_SQL = `
WITH doomed AS (
  SELECT id FROM usage_records
   WHERE id >= ? AND id <= ? AND created_at >= ? AND created_at < ?
   ORDER BY id LIMIT ?
),
gone AS (
  DELETE FROM usage_records u USING doomed WHERE u.id = doomed.id
  RETURNING u.id, u.request_id, u.model, u.requested_model, u.user_id, u.channel_id, u.api_key_id, u.team_id, u.organization_id, u.tags, u.end_user, u.status,
            u.prompt_tokens, u.completion_tokens, u.cost, u.latency_ms, u.ctid
),
attempts AS (
  DELETE FROM request_attempts a USING gone WHERE a.request_id = gone.request_id RETURNING a.ctid
),
totals AS (
  INSERT INTO usage_daily_pruned AS p (day, dim, key, requests, errors, input_tokens, output_tokens, cost)
  SELECT ?::date, d.dim, d.key, count(*), count(*) FILTER (WHERE status >= 400),
         coalesce(sum(prompt_tokens), 0), coalesce(sum(completion_tokens), 0), coalesce(sum(cost), 0)
    FROM gone
   CROSS JOIN LATERAL ${DIMENSIONS_SQL}
   WHERE d.key IS NOT NULL
   GROUP BY d.dim, d.key
  ON CONFLICT (day, dim, key) DO UPDATE SET
    requests = p.requests + excluded.requests, errors = p.errors + excluded.errors,
    input_tokens = p.input_tokens + excluded.input_tokens, output_tokens = p.output_tokens + excluded.output_tokens,
    cost = p.cost + excluded.cost
),
end_users AS (
  INSERT INTO usage_daily_end_users_pruned AS p (day, ${END_USER_KEY_COLUMNS}, requests, errors, input_tokens, output_tokens, cost)
  SELECT ?::date, user_id, end_user, model, coalesce(requested_model, ''), coalesce(api_key_id, 0),
         count(*), count(*) FILTER (WHERE status >= 400),
         coalesce(sum(prompt_tokens), 0), coalesce(sum(completion_tokens), 0), coalesce(sum(cost), 0)
    FROM gone
   WHERE end_user IS NOT NULL
   GROUP BY 2, 3, 4, 5, 6
  ON CONFLICT (day, ${END_USER_KEY_COLUMNS}) DO UPDATE SET
    requests = p.requests + excluded.requests, errors = p.errors + excluded.errors,
    input_tokens = p.input_tokens + excluded.input_tokens, output_tokens = p.output_tokens + excluded.output_tokens,
    cost = p.cost + excluded.cost
),
latency AS (
  INSERT INTO usage_daily_latency_pruned AS p (day, bucket, requests)
  SELECT ?::date, width_bucket(latency_ms, ${BOUNDS_SQL}), count(*) FROM gone GROUP BY 2
  ON CONFLICT (day, bucket) DO UPDATE SET requests = p.requests + excluded.requests
),
logged AS (
  INSERT INTO usage_pruned_days AS p (day, rows, attempts, first_id, last_id, pruned_at)
  SELECT ?::date, count(*), (SELECT count(*) FROM attempts), min(id), max(id), now() FROM gone HAVING count(*) > 0
  ON CONFLICT (day) DO UPDATE SET
    rows = p.rows + excluded.rows, attempts = p.attempts + excluded.attempts,
    first_id = least(p.first_id, excluded.first_id), last_id = greatest(p.last_id, excluded.last_id), pruned_at = excluded.pruned_at
)
SELECT (SELECT count(*) FROM gone)::int AS rows, (SELECT count(*) FROM attempts)::int AS attempts,
       (SELECT max(id) FROM gone) AS last_id,
       (SELECT array_agg(DISTINCT (ctid::text::point)[0]::bigint) FROM gone) AS blocks,
       (SELECT array_agg(DISTINCT (ctid::text::point)[0]::bigint) FROM attempts) AS attempt_blocks`

/** Attempts older than the cutoff whose usage row is gone (a deleted user's: its rows went, its attempts stayed). */
const ORPHANS = `request_attempts a WHERE a.created_at < ?
  AND NOT EXISTS (SELECT 1 FROM usage_records u WHERE u.request_id = a.request_id)`

/** Heap blocks rows were deleted from, per table (their BRIN ranges are summarized again). */
interface Touched {
  usage: Set<number>
  attempts: Set<number>
}

/**
 * Usage log retention: deletes the usage rows (and their request_attempts)
 * of the UTC days before the last `keepDays`, in batches of `batchSize` rows
 * per transaction, so the meter's inserts and the pages never wait long on
 * it. Totals are kept: a day's rows go only once its daily rollup is
 * complete (a day never rolled up, or marked stale by a late row, is rolled
 * up first, under the day's lock that each batch takes too), and each
 * batch's totals are kept beside the rollup (see DELETE_BATCH_SQL). Monthly
 * counters and the ledger are never touched but for the charges' link to
 * their row.
 *
 * Then the tables are vacuumed, with the BRIN ranges of the emptied pages
 * summarized afresh (tidyUp), so the time-range scans stay as narrow as
 * before when new rows fill the freed space.
 *
 * One prune at a time across instances and commands: a Postgres advisory
 * lock (pg_try_advisory_lock) on a connection of its own; a prune that does
 * not get it returns `skipped`. One audit entry sums up what went.
 */
export async function pruneUsage(options: PruneOptions): Promise<PruneResult> {
  const { keepDays, dryRun = false } = options
  if (!Number.isInteger(keepDays) || keepDays < MIN_RETENTION_DAYS) {
    throw new AdminInputError(
      `Days kept must be a whole number, at least ${MIN_RETENTION_DAYS} (a key's monthly spend cap and the portal's 30-day chart read the rows)`,
      'keepDays'
    )
  }
  const batchSize = options.batchSize ?? DEFAULT_BATCH
  const cutoff = oldestKeptDay(keepDays, options.now)
  const result: PruneResult = {
    keepDays,
    oldestKept: cutoff.toISODate()!,
    dryRun,
    skipped: false,
    rows: 0,
    attempts: 0,
    bodies: 0,
    days: [],
    rolledUp: 0,
    batches: 0,
    stopped: false,
    vacuumed: false,
  }

  const lock = new pg.Client({ connectionString: env.get('DATABASE_URL'), connectionTimeoutMillis: 10_000 })
  await lock.connect()
  try {
    const { rows } = await lock.query(`SELECT pg_try_advisory_lock(${LOCK}) AS ok`)
    if (!rows[0].ok) {
      result.skipped = true
      return result
    }
    try {
      const days = await daysBefore(cutoff)
      if (dryRun) {
        await countWhatWouldGo(cutoff, days, result)
      } else {
        const touched: Touched = { usage: new Set(), attempts: new Set() }
        try {
          await prune(cutoff, days, batchSize, options, result, touched)
        } finally {
          await audit(result, options.actor ?? cliActor())
          // Stopped by a shutdown: the ranges are desummarized, the vacuum is left to autovacuum.
          if (result.rows || result.attempts) result.vacuumed = await tidyUp(touched, !result.stopped)
        }
      }
    } finally {
      await lock.query(`SELECT pg_advisory_unlock(${LOCK})`).catch(() => {})
    }
  } finally {
    await lock.end().catch(() => {})
  }
  return result
}

interface DayRange {
  day: DateTime
  rows: number
  firstId: number
  lastId: number
}

/** The days with rows before the cutoff, with their id range (ids follow time, bar late rows). */
async function daysBefore(cutoff: DateTime): Promise<DayRange[]> {
  const found = await db.rawQuery(
    `SELECT to_char((created_at AT TIME ZONE 'UTC')::date, 'YYYY-MM-DD') AS day, count(*)::bigint AS rows,
            min(id) AS first_id, max(id) AS last_id
       FROM usage_records WHERE created_at < ? GROUP BY 1 ORDER BY 1`,
    [cutoff.toJSDate()]
  )
  return found.rows.map((r: any) => ({
    day: DateTime.fromISO(r.day, { zone: 'utc' }),
    rows: Number(r.rows),
    firstId: Number(r.first_id),
    lastId: Number(r.last_id),
  }))
}

async function countWhatWouldGo(cutoff: DateTime, days: DayRange[], result: PruneResult) {
  const [linked, orphans, bodies] = await Promise.all([
    db.rawQuery(
      `SELECT to_char((u.created_at AT TIME ZONE 'UTC')::date, 'YYYY-MM-DD') AS day, count(*)::bigint AS attempts
         FROM request_attempts a JOIN usage_records u ON u.request_id = a.request_id
        WHERE u.created_at < ? GROUP BY 1`,
      [cutoff.toJSDate()]
    ),
    db.rawQuery(`SELECT count(*)::bigint AS attempts FROM ${ORPHANS}`, [cutoff.toJSDate()]),
    db.rawQuery(`SELECT count(*)::bigint AS bodies FROM request_logs WHERE created_at < ?`, [cutoff.toJSDate()]),
  ])
  result.bodies = Number(bodies.rows[0].bodies)
  const attempts = new Map<string, number>(linked.rows.map((r: any) => [r.day, Number(r.attempts)]))
  for (const d of days) {
    const day = { day: d.day.toISODate()!, rows: d.rows, attempts: attempts.get(d.day.toISODate()!) ?? 0 }
    result.days.push(day)
    result.rows += day.rows
    result.attempts += day.attempts
  }
  result.attempts += Number(orphans.rows[0].attempts)
}

async function prune(cutoff: DateTime, days: DayRange[], batchSize: number, options: PruneOptions, result: PruneResult, touched: Touched) {
  for (const range of days) {
    const day = { day: range.day.toISODate()!, rows: 0, attempts: 0 }
    result.days.push(day)
    const start = range.day.toJSDate()
    const end = range.day.plus({ days: 1 }).toJSDate()
    let fromId = range.firstId
    let rollups = 0
    while (true) {
      if (options.signal?.aborted) {
        result.stopped = true
        return
      }
      const batch = await db.transaction(async (trx) => {
        await lockDay(trx, range.day)
        // Under the lock a rollup of the day waits for this batch, and this batch for it.
        if (!(await rollupComplete(trx, range.day))) return null
        await trx.rawQuery(`SELECT set_config('gateway.usage_prune', 'on', true)`)
        const deleted = await trx.rawQuery(DELETE_BATCH_SQL, [fromId, range.lastId, start, end, batchSize, day.day, day.day, day.day, day.day])
        return deleted.rows[0] as BatchResult
      })
      if (batch === null) {
        // Never rolled up, or a late row marked it: its totals first. (A day that keeps being
        // marked, rows arriving for it all the time, is left to the next run.)
        if (++rollups > 3) break
        await rollUpDay(range.day)
        result.rolledUp++
        continue
      }
      result.batches++
      for (const block of batch.blocks ?? []) touched.usage.add(Number(block))
      for (const block of batch.attempt_blocks ?? []) touched.attempts.add(Number(block))
      day.rows += batch.rows
      day.attempts += batch.attempts
      result.rows += batch.rows
      result.attempts += batch.attempts
      if (batch.rows < batchSize || batch.last_id === null) break
      fromId = Number(batch.last_id) + 1
      if (options.pauseMs) await new Promise((resolve) => setTimeout(resolve, options.pauseMs))
    }
  }
  while (!options.signal?.aborted) {
    const swept = await db.rawQuery(
      `DELETE FROM request_attempts WHERE id IN (SELECT a.id FROM ${ORPHANS} LIMIT ?) RETURNING (ctid::text::point)[0]::bigint AS block`,
      [cutoff.toJSDate(), batchSize]
    )
    for (const row of swept.rows) touched.attempts.add(Number(row.block))
    result.attempts += swept.rows.length
    if (swept.rows.length < batchSize) break
  }
  // Logged bodies (request_logs, LOG_BODIES) go by the same cutoff, on their own time index.
  while (!options.signal?.aborted) {
    const swept = await db.rawQuery(
      `DELETE FROM request_logs WHERE request_id IN (SELECT request_id FROM request_logs WHERE created_at < ? LIMIT ?)`,
      [cutoff.toJSDate(), batchSize]
    )
    result.bodies += swept.rowCount ?? 0
    if ((swept.rowCount ?? 0) < batchSize) break
  }
  if (options.signal?.aborted) result.stopped = true
}

interface BatchResult {
  rows: number
  attempts: number
  last_id: number | null
  blocks: number[] | null
  attempt_blocks: number[] | null
}

/**
 * After the deletes: usage_records and request_attempts are append-only in
 * time order, and their created_at BRIN indexes keep a [min, max] per range
 * of pages. Once VACUUM frees the pruned pages, new rows fill them, and a
 * range whose summary still holds the deleted rows' old times would widen
 * to [a month ago, now]: every time-range scan (and the next prune's) would
 * read it. So the ranges rows were deleted from are desummarized, and the
 * VACUUM that frees their space summarizes them again, empty, before new
 * rows come. Also returns the space to the tables now rather than when
 * autovacuum gets to it. A failure (a role that may not vacuum) is not the
 * prune's: the rows are gone either way, autovacuum does the rest.
 */
async function tidyUp(touched: Touched, vacuum: boolean): Promise<boolean> {
  try {
    for (const [index, blocks] of [
      ['usage_records_created_at_brin', touched.usage],
      ['request_attempts_created_at_brin', touched.attempts],
    ] as const) {
      if (!blocks.size) continue
      await db.rawQuery(
        `WITH idx AS (
           SELECT c.oid, coalesce((SELECT option_value::int FROM pg_options_to_table(c.reloptions)
                                    WHERE option_name = 'pages_per_range'), 128) AS pages
             FROM pg_class c WHERE c.oid = to_regclass(?)
         )
         SELECT count(brin_desummarize_range(idx.oid, r.start))
           FROM idx, LATERAL (SELECT DISTINCT b / idx.pages * idx.pages AS start FROM unnest(?::bigint[]) b) r`,
        [index, [...blocks]]
      )
    }
    if (!vacuum) return false
    await db.rawQuery('VACUUM usage_records, request_attempts')
    return true
  } catch {
    return false
  }
}

async function audit(result: PruneResult, actor: Actor) {
  if (result.rows === 0 && result.attempts === 0 && result.bodies === 0) return
  const pruned = result.days.filter((d) => d.rows > 0)
  const span = pruned.length === 0 ? '' : pruned.length === 1 ? ` of ${pruned[0].day}` : ` of ${pruned[0].day} to ${pruned[pruned.length - 1].day}`
  const count = (n: number, what: string) => `${n.toLocaleString('en-US')} ${what}${n === 1 ? '' : 's'}`
  await db.transaction((trx) =>
    writeAudit(trx, actor, {
      action: 'usage.prune',
      subjectType: 'usage_records',
      subjectId: null,
      summary:
        `usage rows kept for ${result.keepDays} days (from ${result.oldestKept}): ` +
        `${count(result.rows, 'request row')} and ${count(result.attempts, 'attempt row')}${span}` +
        `${result.bodies ? ` and ${count(result.bodies, 'logged body row')}` : ''} deleted` +
        `${result.stopped ? ' (stopped early)' : ''}; daily totals, monthly counters and the ledger kept`,
      after: {
        keepDays: result.keepDays,
        oldestKept: result.oldestKept,
        rows: result.rows,
        attempts: result.attempts,
        bodies: result.bodies,
        firstDay: pruned[0]?.day ?? null,
        lastDay: pruned[pruned.length - 1]?.day ?? null,
        rolledUp: result.rolledUp,
      },
    })
  )
}
