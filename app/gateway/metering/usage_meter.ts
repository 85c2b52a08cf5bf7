import pg from 'pg'
import type { Logger } from '@adonisjs/core/logger'
import { formatDecimal, fromPico } from '#gateway/metering/money'
import { type ArrayColumn, booleanColumn, columnsOf, numberColumn, textColumn, unnestOf } from '#gateway/metering/pg_array'
import type { MeterEvent } from '#gateway/metering/meter_event'
import { PendingTotals, type UserPending } from '#gateway/metering/pending_totals'
import { readSpill, removeSpill, SpillFile, type SpilledRecord } from '#gateway/metering/spill_file'
import { withoutPrunedCharges } from '#gateway/metering/pruned_charges'
import { periodSpendAssignments } from '#gateway/metering/period_spend_sql'

/** The usage row's columns, in the order of the batch statement's parameters. */
const USAGE_COLUMNS: readonly ArrayColumn[] = [
  { name: 'request_id', type: 'uuid', encode: textColumn },
  { name: 'user_id', type: 'bigint', encode: numberColumn },
  { name: 'api_key_id', type: 'bigint', encode: numberColumn },
  { name: 'channel_id', type: 'bigint', encode: numberColumn },
  { name: 'provider', type: 'text', encode: textColumn },
  { name: 'model', type: 'text', encode: textColumn },
  { name: 'requested_model', type: 'text', encode: textColumn },
  { name: 'cache_hit', type: 'boolean', encode: booleanColumn },
  { name: 'served_model', type: 'text', encode: textColumn },
  { name: 'endpoint', type: 'text', encode: textColumn },
  { name: 'stream', type: 'boolean', encode: booleanColumn },
  { name: 'status', type: 'int', encode: numberColumn },
  { name: 'error_code', type: 'text', encode: textColumn },
  { name: 'prompt_tokens', type: 'int', encode: numberColumn },
  { name: 'completion_tokens', type: 'int', encode: numberColumn },
  { name: 'total_tokens', type: 'int', encode: numberColumn },
  { name: 'cached_tokens', type: 'int', encode: numberColumn },
  { name: 'reasoning_tokens', type: 'int', encode: numberColumn },
  { name: 'cache_write_tokens', type: 'int', encode: numberColumn },
  { name: 'images', type: 'int', encode: numberColumn },
  { name: 'audio_seconds', type: 'numeric', encode: textColumn },
  { name: 'characters', type: 'int', encode: numberColumn },
  { name: 'video_seconds', type: 'int', encode: numberColumn },
  { name: 'estimated', type: 'boolean', encode: booleanColumn },
  { name: 'cost', type: 'numeric', encode: textColumn },
  { name: 'latency_ms', type: 'int', encode: numberColumn },
  { name: 'ttft_ms', type: 'int', encode: numberColumn },
  { name: 'created_at', type: 'timestamptz', encode: textColumn },
  { name: 'attempts', type: 'int', encode: numberColumn },
  // A row's tags joined by ',' (no tag holds one): unnest would flatten a text[][] parameter.
  { name: 'tags', type: 'text', encode: textColumn },
  { name: 'end_user', type: 'text', encode: textColumn },
  // The team the request was admitted under (NULL: none, the usual row); TEAM_SPEND_EFFECT reads it from `ins`.
  { name: 'team_id', type: 'bigint', encode: numberColumn },
  // The team's organization at admission (NULL: none, the usual row); ORG_SPEND_EFFECT reads it from `ins`.
  { name: 'organization_id', type: 'bigint', encode: numberColumn },
  // Not inserted: the model name of the key's budget the request was admitted under (NULL: none, the usual row),
  // which may be another spelling than the one asked for (model_limits.ts limitFor); MODEL_BUDGET_SPEND_EFFECT reads it.
  { name: 'budget_model', type: 'text', encode: textColumn },
  // Not inserted: admitted under the key owner's limits in its team (NULL: not, the usual row); MEMBER_SPEND_EFFECT reads it.
  { name: 'member_budget', type: 'boolean', encode: booleanColumn },
]

/** The attempt rows' columns (only requests that were not one clean attempt have any). */
const ATTEMPT_COLUMNS: readonly ArrayColumn[] = [
  { name: 'request_id', type: 'uuid', encode: textColumn },
  { name: 'attempt', type: 'int', encode: numberColumn },
  { name: 'channel_id', type: 'bigint', encode: numberColumn },
  { name: 'status', type: 'int', encode: numberColumn },
  { name: 'outcome', type: 'text', encode: textColumn },
  { name: 'error', type: 'text', encode: textColumn },
  { name: 'latency_ms', type: 'int', encode: numberColumn },
]

/**
 * What a metered request changes besides its usage row, as CTEs over `ins`
 * (the inserted usage rows: id, user_id, api_key_id, model, requested_model,
 * provider, prompt_tokens, completion_tokens, cost, created_at, end_user, team_id, organization_id): the ledger charge
 * (users.balance follows by trigger), the month's counters per user and
 * model, and the key's spend and last use (and, for a cap that resets, its
 * spend in its newest UTC day/week/month: rows of an older period, from a
 * replayed spill or a call that began before midnight, change only the
 * lifetime spend; only keys with a period pay for that sum). The batch writer below and
 * `seed:demo` (demo rows must add up like real ones) share it.
 */
export const METER_EFFECTS = `
charges AS (
  INSERT INTO balance_ledger (user_id, kind, amount, usage_record_id, created_at)
  SELECT user_id, 'charge', -cost, id, created_at FROM ins WHERE cost > 0
),
counters AS (
  INSERT INTO monthly_usage (user_id, period, model, provider, requests, input_tokens, output_tokens, cost)
  SELECT user_id, date_trunc('month', created_at AT TIME ZONE 'UTC')::date, model, COALESCE(provider, ''),
         COUNT(*), SUM(prompt_tokens), SUM(completion_tokens), SUM(cost)
    FROM ins GROUP BY 1, 2, 3, 4
  ON CONFLICT (user_id, period, model, provider) DO UPDATE SET
    requests = monthly_usage.requests + EXCLUDED.requests,
    input_tokens = monthly_usage.input_tokens + EXCLUDED.input_tokens,
    output_tokens = monthly_usage.output_tokens + EXCLUDED.output_tokens,
    cost = monthly_usage.cost + EXCLUDED.cost
),
touched AS (
  UPDATE api_keys k SET last_used_at = t.last_used, spent = k.spent + t.cost,
    ${periodSpendAssignments({ row: 'k', period: 'spend_period', last: 't.last_used', rows: 'ins', match: 'r.api_key_id = k.id' })}
    FROM (SELECT api_key_id, MAX(created_at) AS last_used, SUM(cost) AS cost FROM ins
           WHERE api_key_id IS NOT NULL GROUP BY api_key_id) t
   WHERE k.id = t.api_key_id
  RETURNING k.id, k.model_limits
)`

/**
 * The spend of each end user its owner listed in `end_users`
 * (end_users/end_user_policies.ts: limits), as a team's in TEAM_SPEND_EFFECT:
 * the lifetime spend, and the spend in the newest UTC day/week/month of its
 * period (`end_users.spend_period`: its shared budget's when linked to one,
 * else its own; none: only the lifetime). The period is read from the row
 * being updated, never through a join: a period change committed while this
 * statement waited on the row is then the one of the row it re-reads
 * (migration 1016; a join's row stays the statement's snapshot's). Appended after METER_EFFECTS only to a batch holding a row
 * that names an end user: the usual batch does not pay for the join
 * (measured: ~5 µs of Postgres CPU per request at c=50 when every batch
 * carried it).
 */
export const END_USER_SPEND_EFFECT = `,
end_user_spend AS (
  UPDATE end_users e SET spent = e.spent + t.cost,
    ${periodSpendAssignments({
      row: 'e',
      period: 'spend_period',
      last: 't.last_at',
      rows: 'ins',
      match: 'r.user_id = e.user_id AND r.end_user = e.end_user',
    })}
    FROM (SELECT user_id, end_user, MAX(created_at) AS last_at, SUM(cost) AS cost FROM ins
           WHERE end_user IS NOT NULL AND cost > 0 GROUP BY user_id, end_user) t
   WHERE e.user_id = t.user_id AND e.end_user = t.end_user
)`

/**
 * The spend of each team whose keys are in the batch (teams/team_policies.ts:
 * budgets), as the key's spend in METER_EFFECTS: the lifetime spend, and, for
 * a budget that resets, the spend in its newest UTC day/week/month. The team
 * is the one the call was admitted under (the usage row's `team_id`); only
 * inserted rows count (`ins`: a replayed row is not counted twice). Appended
 * only to a batch holding a team's row.
 */
export const TEAM_SPEND_EFFECT = `,
team_rows AS (
  SELECT team_id, cost, created_at FROM ins WHERE team_id IS NOT NULL
),
team_spend AS (
  UPDATE teams t SET spent = t.spent + s.cost,
    ${periodSpendAssignments({ row: 't', period: 'budget_period', last: 's.last_at', rows: 'team_rows', match: 'r.team_id = t.id' })}
    FROM (SELECT team_id, MAX(created_at) AS last_at, SUM(cost) AS cost FROM team_rows GROUP BY team_id) s
   WHERE t.id = s.team_id
)`

/**
 * The spend of each organization whose teams' keys are in the batch, as a
 * team's in TEAM_SPEND_EFFECT: the organization is the one the call was
 * admitted under (the usage row's `organization_id`, its team's then), so a
 * team moved to another organization leaves its past spend with the first.
 * Appended only to a batch holding such a row.
 */
export const ORG_SPEND_EFFECT = `,
org_rows AS (
  SELECT organization_id, cost, created_at FROM ins WHERE organization_id IS NOT NULL
),
org_spend AS (
  UPDATE organizations o SET spent = o.spent + s.cost,
    ${periodSpendAssignments({ row: 'o', period: 'budget_period', last: 's.last_at', rows: 'org_rows', match: 'r.organization_id = o.id' })}
    FROM (SELECT organization_id, MAX(created_at) AS last_at, SUM(cost) AS cost FROM org_rows GROUP BY organization_id) s
   WHERE o.id = s.organization_id
)`

/**
 * The spend of each member in a team with a budget or rpm/tpm there
 * (teams/member_policies.ts), as a team's in TEAM_SPEND_EFFECT: the member is
 * the key's owner in the team the call was admitted under (the usage row's
 * `user_id` and `team_id`), counted only for rows admitted under the
 * member's limits (`member_budget`, not inserted: read from `e`); only
 * inserted rows count. Appended only to a batch holding such a row, written
 * before TEAM_SPEND_EFFECT so that it runs right after it: teams, then team
 * members (architecture.md "Row locks and their order").
 */
export const MEMBER_SPEND_EFFECT = `,
member_rows AS (
  SELECT i.team_id, i.user_id, i.cost, i.created_at
    FROM ins i JOIN e ON e.request_id = i.request_id
   WHERE e.member_budget AND i.team_id IS NOT NULL
),
member_spend AS (
  UPDATE team_members m SET spent = m.spent + s.cost,
    ${periodSpendAssignments({
      row: 'm',
      period: 'budget_period',
      last: 's.last_at',
      rows: 'member_rows',
      match: 'r.team_id = m.team_id AND r.user_id = m.user_id',
    })}
    FROM (SELECT team_id, user_id, MAX(created_at) AS last_at, SUM(cost) AS cost FROM member_rows GROUP BY team_id, user_id) s
   WHERE m.team_id = s.team_id AND m.user_id = s.user_id
)`

/**
 * A key's spend per model with a budget (limits/model_budgets.ts), as the
 * key's spend in METER_EFFECTS: the lifetime spend, and, for a budget that
 * resets, the spend in its newest UTC day/week/month. The model is the
 * budget's own name (`budget_model`: the request may have used another
 * spelling of it), else, in spill files from before that column, the name
 * the client asked for (requested_model when a fallback answered); the
 * budget's period is read from the key's setting (api_keys.model_limits), and
 * only models that have a budget there count. The setting is the one of the
 * key's row as `touched` updated it (its RETURNING), not a join's: a change
 * committed while this statement waited on the key's row (updateApiKey's
 * recount, under that lock) is then the one read (a join's row stays the
 * statement's snapshot's: the recount's new period was replaced by the
 * batch's cost in the old one), and the key's row is locked before the spend
 * rows, in the order the recount takes them (the other order deadlocked it:
 * the batch stalled 1 s and was retried). Appended only to a batch holding
 * a row admitted under such a budget (the record's `model_budget` flag).
 */
export const MODEL_BUDGET_SPEND_EFFECT = `,
model_budget_rows AS (
  SELECT i.api_key_id, b.model, i.cost, i.created_at, k.model_limits -> b.model ->> 'budget_period' AS period
    FROM ins i JOIN e ON e.request_id = i.request_id
    CROSS JOIN LATERAL (SELECT COALESCE(e.budget_model, i.requested_model, i.model) AS model) b
    JOIN touched k ON k.id = i.api_key_id
   WHERE i.cost > 0 AND k.model_limits -> b.model ? 'budget'
),
model_budget_sums AS (
  SELECT api_key_id, model, period, SUM(cost) AS cost,
         CASE WHEN period IS NULL THEN NULL ELSE date_trunc(period, MAX(created_at) AT TIME ZONE 'UTC')::date END AS newest
    FROM model_budget_rows GROUP BY api_key_id, model, period
),
model_budget_spend AS (
  INSERT INTO api_key_model_spend AS s (api_key_id, model, spent, period_spent, period_start)
  SELECT m.api_key_id, m.model, m.cost,
         CASE WHEN m.period IS NULL THEN 0 ELSE (SELECT SUM(r.cost) FROM model_budget_rows r
            WHERE r.api_key_id = m.api_key_id AND r.model = m.model
              AND date_trunc(m.period, r.created_at AT TIME ZONE 'UTC')::date = m.newest) END,
         m.newest
    FROM model_budget_sums m
  ON CONFLICT (api_key_id, model) DO UPDATE SET spent = s.spent + EXCLUDED.spent,
    -- A row of an older period (a replayed spill) changes only the lifetime spend.
    period_spent = CASE WHEN EXCLUDED.period_start IS NULL THEN 0
        WHEN s.period_start > EXCLUDED.period_start THEN s.period_spent
        WHEN s.period_start = EXCLUDED.period_start THEN s.period_spent + EXCLUDED.period_spent
        ELSE EXCLUDED.period_spent END,
    period_start = CASE WHEN EXCLUDED.period_start IS NULL THEN s.period_start
        ELSE GREATEST(s.period_start, EXCLUDED.period_start) END
)`

/**
 * Rows of a finished day (a replayed spill, a call metered just after
 * midnight, demo rows) mark it, so its daily rollup is redone
 * (app/services/usage_rollup.ts). Appended after METER_EFFECTS only to a
 * batch that holds such a row: the usual batch pays nothing for it.
 */
export const LATE_DAYS_EFFECT = `,
late AS (
  INSERT INTO usage_daily_stale (day)
  SELECT DISTINCT (created_at AT TIME ZONE 'UTC')::date FROM ins
   WHERE created_at < date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
  ON CONFLICT (day) DO NOTHING
)`

/**
 * The metering writer. Every request's usage row, monthly counters and ledger
 * charge are written by one SQL statement (hence one transaction). Requests
 * are queued and written behind the response in batches: under load one
 * statement carries many requests, each still all-or-nothing, so metering
 * costs the database a few statements per batch instead of several per
 * request. request_id is unique, so a retried batch never charges twice.
 * The rows go in as one array literal per column (pg_array.ts), which the
 * statement's `unnest` turns back into rows.
 *
 * When the database cannot take a batch (an outage, a restart), the batch is
 * appended to a durable spill file in DATA_DIR (spill_file.ts) instead of
 * being retried forever in memory; the writer then probes the database and
 * replays the spill once it answers. Requests keep being served meanwhile:
 * their cost stays applied to the cached balances and key spends (pendingFor,
 * pendingKeyCost) until the replay commits it. A shutdown flush is bounded:
 * what it could not write in time is spilled too, and replayed by the next
 * start.
 */
const batchSql = (effects: string) => `
WITH e AS (
  SELECT * FROM ${unnestOf(USAGE_COLUMNS, 'e', 1)}
),
ins AS (
  INSERT INTO usage_records (request_id, user_id, api_key_id, channel_id, provider, model,
    requested_model, cache_hit, served_model, endpoint, stream, status, error_code, prompt_tokens, completion_tokens,
    total_tokens, cached_tokens, reasoning_tokens, cache_write_tokens, images, audio_seconds, characters, video_seconds, estimated, cost, latency_ms, ttft_ms, created_at, attempts, tags, end_user, team_id, organization_id)
  SELECT request_id, user_id, api_key_id, channel_id, provider, model, requested_model, COALESCE(cache_hit, false), served_model, endpoint,
    stream, status, error_code, prompt_tokens, completion_tokens, total_tokens, cached_tokens,
    reasoning_tokens, COALESCE(cache_write_tokens, 0), COALESCE(images, 0), audio_seconds, characters, video_seconds, estimated, cost, latency_ms, ttft_ms, created_at, attempts,
    string_to_array(tags, ','), end_user, team_id, organization_id
  FROM e
  ON CONFLICT (request_id) DO NOTHING
  RETURNING id, request_id, user_id, api_key_id, model, requested_model, provider, prompt_tokens, completion_tokens, cost, created_at, end_user, team_id, organization_id
),
attempt_log AS (
  INSERT INTO request_attempts (request_id, attempt, channel_id, status, outcome, error, latency_ms, created_at)
  SELECT a.request_id, a.attempt, a.channel_id, a.status, a.outcome, a.error, a.latency_ms, ins.created_at
    FROM ${unnestOf(ATTEMPT_COLUMNS, 'a', USAGE_COLUMNS.length + 1)}
    JOIN ins ON ins.request_id = a.request_id
),
${effects}
SELECT COUNT(*)::int AS inserted FROM ins`
/**
 * The batch statements by what their rows hold (bit 1: a row of a finished
 * day, LATE_DAYS_EFFECT; bit 2: a row that names an end user,
 * END_USER_SPEND_EFFECT; bit 4: a row of a team's key, TEAM_SPEND_EFFECT;
 * bit 8: a row admitted under a key's budget for a model,
 * MODEL_BUDGET_SPEND_EFFECT; bit 16: a row admitted under an organization,
 * ORG_SPEND_EFFECT; bit 32: a row admitted under a member's limits in a team,
 * MEMBER_SPEND_EFFECT), each a named statement planned once per connection (and
 * only when a batch needs it).
 *
 * The order of the effects is the order of the row locks (architecture.md
 * "Row locks and their order"): Postgres runs the data-modifying CTEs that
 * nothing reads after the main query, the last written first, and a CTE that
 * another reads (`touched`, read by MODEL_BUDGET_SPEND_EFFECT) when that one
 * runs. So, written in this order, every kind of batch locks organizations,
 * teams, team members, end users, keys, the keys' model spend, the monthly counters, and
 * last (the ledger trigger, at the statement's end) users. The model budget
 * effect written last made its batches lock the key before the team and the
 * end user, the other batches after them: no action could take both in an
 * order that deadlocked with neither. (Checked by tests/functional/lock_order.spec.ts.)
 */
const KINDS = Array.from({ length: 64 }, (_, kind) => kind)
const WRITE_BATCH_SQL = KINDS.map((kind) =>
  batchSql(
    METER_EFFECTS +
      (kind & 1 ? LATE_DAYS_EFFECT : '') +
      (kind & 8 ? MODEL_BUDGET_SPEND_EFFECT : '') +
      (kind & 2 ? END_USER_SPEND_EFFECT : '') +
      (kind & 32 ? MEMBER_SPEND_EFFECT : '') +
      (kind & 4 ? TEAM_SPEND_EFFECT : '') +
      (kind & 16 ? ORG_SPEND_EFFECT : '')
  )
)
const BATCH_NAMES = KINDS.map(
  (kind) =>
    `gateway_meter_batch${kind & 1 ? '_late' : ''}${kind & 2 ? '_end_users' : ''}${kind & 4 ? '_teams' : ''}${kind & 8 ? '_model_budgets' : ''}${kind & 16 ? '_orgs' : ''}${kind & 32 ? '_members' : ''}`
)

/** What the after-commit watches read of a committed row (a MeterEvent is one). */
export interface CommittedRow {
  userId: number
  apiKeyId?: number | null
  endUser?: string | null
}

export interface MeterOptions {
  connectionString: string
  batchSize: number
  flushMs: number
  logger: Logger
  /** Where unwritable records are spilled (DATA_DIR); without it they stay queued in memory */
  spillDir?: string
  /** Events held in memory before the writer stops waiting for the database and spills (default 20,000) */
  maxQueued?: number
  /** Called at once for each recorded request, before it is written (cache update) */
  onRecord?: (event: MeterEvent) => void
  /** Called after a batch commits, with its rows' users, keys and end users (low_balance_watch.ts, budget_watch.ts); not awaited */
  onCommitted?: (rows: readonly CommittedRow[]) => void
}

/** Where committed rows go for log export (log_export/log_exporter.ts); the meter knows only this. */
export interface RowSink {
  take(rows: readonly Record<string, unknown>[]): void
}

/** Quick retries of a failed batch before it is spilled (a dropped connection, a failover). */
const RETRY_DELAYS_MS = [50, 250, 1000]
/** While the database is unreachable, how often the writer checks it again */
const PROBE_MS = 1000

export class UsageMeter {
  #pool: pg.Pool
  #queue: MeterEvent[] = []
  /** The batch being written now (spilled too if a bounded flush gives up on it) */
  #inFlight: MeterEvent[] = []
  /** The batch a timed-out close spilled while it was in flight: the write loop, failing it later, does not spill it again */
  #spilledAtClose: MeterEvent[] | null = null
  /** Recorded and not yet committed (queued, being written, or spilled), per user and per key */
  #pending = new PendingTotals()
  /** Of the pending totals, what sits in this process's spill file */
  #spilled = new PendingTotals()
  #writing: Promise<void> | null = null
  #timer: NodeJS.Timeout | null = null
  /** drain() is waiting: write batch after batch without pausing for the flush timer */
  #draining = 0
  #closed = false
  #spill: SpillFile | null
  /** The database failed a write and has not answered since: spill without trying */
  #outage = false
  #probe: NodeJS.Timeout | null = null
  /** Records of a spill file being replayed now (still pending until written) */
  #replaying = 0
  /** Overflow appends started by record() when the queue is over its bound */
  #overflow: Promise<void> = Promise.resolve()
  /** Records spilled / replayed over this process's life (for status and tests) */
  spilledTotal = 0
  replayedTotal = 0
  /** Batch statements committed over this process's life (each one transaction) */
  batchesWritten = 0
  /** Bumped whenever committed records leave the pending totals */
  settledCount = 0
  /** Batch writes under way, and a count bumped as each begins and ends (reads of rows the meter writes: settled_read.ts) */
  writesUnderWay = 0
  writeEpoch = 0
  #idleWaiters: Array<() => void> = []
  /** Postgres backend pids of this meter's pool connections */
  #backends = new Set<number>()
  /**
   * Log export (Langfuse, OTLP, a webhook: log_export/): handed each committed batch's rows, the
   * objects the statement was built from; null when none is configured (one test per batch).
   */
  exporter: RowSink | null = null

  /** Resolves once no batch write is under way (at once when none is), or after `ms`. */
  idle(ms: number): Promise<void> {
    if (this.writesUnderWay === 0) return Promise.resolve()
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms)
      this.#idleWaiters.push(() => {
        clearTimeout(timer)
        resolve()
      })
    })
  }

  #beginWrite() {
    this.writesUnderWay++
    this.writeEpoch++
  }

  /** After the write's records settled, or went back to pending (spilled, queued again). */
  #endWrite() {
    this.writesUnderWay--
    this.writeEpoch++
    if (this.writesUnderWay === 0 && this.#idleWaiters.length > 0) {
      const waiters = this.#idleWaiters
      this.#idleWaiters = []
      for (const wake of waiters) wake()
    }
  }

  /** Did this meter's connection send a notification from backend `pid`? (its own charges, already applied here) */
  writesFrom(pid: number): boolean {
    return this.#backends.has(pid)
  }

  constructor(private options: MeterOptions) {
    this.#pool = new pg.Pool({
      connectionString: options.connectionString,
      max: 2,
      // A database that does not answer must fail the write, not hold the writer forever.
      connectionTimeoutMillis: 5000,
      query_timeout: 30_000,
    })
    this.#pool.on('error', (error) => options.logger.warn({ err: error }, 'metering pool error'))
    // The backends this meter writes through: their `charged:` notifications are this instance's own (migration 996).
    this.#pool.on('connect', (client: pg.PoolClient & { processID?: number | null }) => {
      if (client.processID) this.#backends.add(client.processID)
    })
    this.#pool.on('remove', (client: pg.PoolClient & { processID?: number | null }) => {
      if (client.processID) this.#backends.delete(client.processID)
    })
    this.#spill = options.spillDir ? new SpillFile(options.spillDir) : null
  }

  /** Queues one request's accounting; it is durable once `drain()` resolves. */
  record(event: MeterEvent) {
    this.#queue.push(event)
    this.#pending.add(event)
    this.options.onRecord?.(event)
    if (this.#spill && this.#queue.length >= (this.options.maxQueued ?? 20_000)) {
      // The database is too slow or away: memory stays bounded, the overflow goes to disk.
      const overflow = this.#queue.splice(0, this.#queue.length)
      this.#overflow = this.#overflow
        .then(() => this.#spillEvents(overflow))
        .catch((error) => this.options.logger.error({ err: error }, 'metering spill failed'))
    }
    this.#schedule()
  }

  /** What is recorded for a user but not yet committed (caches add it to database values). */
  pendingFor(userId: number): UserPending {
    return this.#pending.user(userId)
  }

  /**
   * The cost recorded through a key but not yet committed, of calls begun at
   * or after `sinceMs` (the start of the key's spend period; -Infinity for a
   * lifetime cap): the key cache adds it to the spend it reads.
   */
  pendingKeyCost(keyId: number, sinceMs: number): bigint {
    return this.#pending.keyCost(keyId, sinceMs)
  }

  /** The cost recorded through a team's keys but not yet committed, of calls begun at or after `sinceMs`. */
  pendingTeamCost(teamId: number, sinceMs: number): bigint {
    return this.#pending.teamCost(teamId, sinceMs)
  }

  /** The same for an organization (the rows admitted under it). */
  pendingOrgCost(orgId: number, sinceMs: number): bigint {
    return this.#pending.orgCost(orgId, sinceMs)
  }

  /** The same for a member in a team (MemberPolicy.id), of the rows admitted under their limits. */
  pendingMemberCost(memberId: string, sinceMs: number): bigint {
    return this.#pending.memberCost(memberId, sinceMs)
  }

  /** The cost recorded on a key's budget for a model (`${keyId} ${model}`) but not yet committed, of calls begun at or after `sinceMs`. */
  pendingModelBudgetCost(id: string, sinceMs: number): bigint {
    return this.#pending.modelBudgetCost(id, sinceMs)
  }

  /** The cost recorded for an owner's end user but not yet committed, of calls begun at or after `sinceMs`. */
  pendingEndUserCost(userId: number, endUser: string, sinceMs: number): bigint {
    return this.#pending.endUserCost(userId, endUser, sinceMs)
  }

  get queued() {
    return this.#queue.length
  }

  /** True while the database is unreachable and records go to the spill file. */
  get degraded() {
    return this.#outage
  }

  /** Records waiting in this process's spill file for the database. */
  get spilledPending() {
    return (this.#spill?.pending ?? 0) + this.#replaying
  }

  get spillDir() {
    return this.#spill?.dir ?? null
  }

  /** Resolves once everything recorded so far is committed, or spilled while the database is away. */
  async drain() {
    this.#draining++
    try {
      while (this.#queue.length > 0 || this.#writing) {
        if (this.#timer) {
          clearTimeout(this.#timer)
          this.#timer = null
        }
        if (!this.#writing) this.#writing = this.#writeLoop()
        await this.#writing
      }
    } finally {
      this.#draining--
    }
    await this.#overflow
  }

  /**
   * Replays spill files that processes now gone left behind (at boot, before
   * serving). Returns how many records were replayed.
   */
  async replayOrphans(): Promise<number> {
    if (!this.#spill) return 0
    let replayed = 0
    for (const path of await this.#spill.orphans()) {
      const records = await readSpill(path)
      const written = await this.#replayRecords(records)
      if (written === null) {
        this.options.logger.warn({ path }, 'metering spill could not be replayed yet (database unavailable)')
        return replayed
      }
      await removeSpill(path)
      replayed += records.length
      // A previous run's rows, never exported (export follows the commit).
      if (this.exporter !== null) this.#export(written)
    }
    if (replayed > 0) {
      this.replayedTotal += replayed
      this.options.logger.info({ replayed }, 'metering records replayed from spill files of a previous run')
    }
    return replayed
  }

  /**
   * Flushes within `timeoutMs`; whatever is still unwritten then (database
   * down or too slow) is spilled, and the operator told where on stderr.
   */
  async close(timeoutMs = 10_000) {
    let timer: NodeJS.Timeout | undefined
    const timedOut = await Promise.race([
      this.drain().then(() => false),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), timeoutMs))),
    ])
    clearTimeout(timer)
    this.#closed = true
    if (this.#probe) clearTimeout(this.#probe)
    if (timedOut) {
      // The batch in flight may still commit: spilling it too is safe (replay is idempotent).
      const rest = [...this.#inFlight, ...this.#queue]
      this.#spilledAtClose = this.#inFlight
      this.#queue = []
      if (this.#spill) await this.#spillEvents(rest)
      else if (rest.length > 0) {
        this.options.logger.error({ lost: rest.length }, 'metering: database unreachable at shutdown and no spill directory; records lost')
      }
    }
    const left = this.#spill?.pending ?? 0
    if (left > 0) {
      process.stderr.write(
        `metering: ${left} usage record(s) could not be written to the database and were saved to ` +
          `${this.#spill!.path}; they are replayed automatically at the next start.\n`
      )
    }
    await this.#spill?.close()
    // An in-flight query against a dead server must not hold the exit.
    await Promise.race([this.#pool.end().catch(() => {}), new Promise((r) => setTimeout(r, 1000).unref())])
  }

  #schedule() {
    if (this.#writing || this.#closed) return
    if (this.#queue.length >= this.options.batchSize) {
      // A full batch goes now, whether or not the flush timer is pending.
      if (this.#timer) clearTimeout(this.#timer)
      this.#timer = null
      this.#writing = this.#writeLoop()
      return
    }
    if (this.#timer) return
    this.#timer = setTimeout(() => {
      this.#timer = null
      if (!this.#writing && this.#queue.length > 0) this.#writing = this.#writeLoop()
    }, this.options.flushMs)
  }

  /**
   * Writes batches until the queue is empty, or holds less than a full batch;
   * one batch in flight at a time. During an outage, batches go straight to
   * the spill file; once the database answers again, the spill is replayed
   * first.
   *
   * Why a part batch waits for the flush timer instead of going at once:
   * while one batch commits, the next requests trickle in, and writing them
   * as soon as it returns made most commits carry one or two rows (each a
   * WAL flush, a statement and a wake-up of Postgres on the gateway's
   * cores). Waiting METER_FLUSH_MS bounds the commits to one per
   * METER_FLUSH_MS plus a write below METER_BATCH_SIZE requests, and the
   * window a crash can lose stays what it was: the flush delay plus the
   * batch being written.
   */
  async #writeLoop() {
    try {
      if (!this.#outage && (this.#spill?.pending ?? 0) > 0) await this.#replayOwnSpill()
      while (this.#queue.length > 0) {
        if (!this.#outage && (this.#spill?.pending ?? 0) > 0) await this.#replayOwnSpill()
        if (this.#outage && this.#spill) {
          await this.#spillEvents(this.#queue.splice(0, this.#queue.length))
          continue
        }
        const batch = this.#queue.splice(0, this.options.batchSize)
        this.#inFlight = batch
        this.#beginWrite()
        let committed: SpilledRecord[] | null
        const records = batch.map(toRecord)
        try {
          committed = await this.#writeRecords(records)
          this.#inFlight = []
          if (committed !== null) {
            for (const event of batch) this.#pending.settle(event)
            this.settledCount++
          }
        } finally {
          this.#endWrite()
        }
        if (committed !== null) {
          this.options.onCommitted?.(batch)
          // A batch a timed-out close spilled is exported by the spill's replay, not here as well: the
          // replay cannot tell whether this commit was seen, so the writer leaves every spilled row to it.
          if (this.exporter !== null && !(batch === this.#spilledAtClose && this.#spill !== null)) this.#export(committed)
          if (this.#queue.length < this.options.batchSize && this.#draining === 0) break
        } else if (this.#spill) {
          // Spilled already if a close gave up waiting for it (twice in the file, the replay would count it twice).
          if (batch !== this.#spilledAtClose) await this.#spillEvents(batch)
          this.#enterOutage()
        } else {
          // Nowhere durable to put it: keep it queued and try again later.
          this.#queue.unshift(...batch)
          await new Promise((r) => setTimeout(r, 1000))
        }
      }
    } finally {
      this.#inFlight = []
      this.#writing = null
    }
    // What arrived during the write waits for the flush timer (or a full batch).
    if (this.#queue.length > 0) this.#schedule()
  }

  /** Writes spilled records, but not those charged before their day was pruned (pruned_charges.ts). */
  async #replayRecords(records: SpilledRecord[]): Promise<SpilledRecord[] | null> {
    let fresh: SpilledRecord[]
    try {
      const checked = await withoutPrunedCharges(this.#pool, records)
      fresh = checked.records
      if (checked.dropped > 0) {
        this.options.logger.warn(
          { skipped: checked.dropped },
          'metering: spilled records of a pruned day were already charged; not written again'
        )
      }
    } catch (error) {
      this.options.logger.warn({ err: error }, 'metering spill check failed: the database is not answering')
      return null
    }
    // The records written (those of a pruned day are not), or null when the database did not take them.
    return this.#writeRecords(fresh)
  }

  /**
   * One statement per batch of records, with a few quick retries. Data
   * errors isolate the offending row so the others are not held back. The
   * records committed (all of them but a row a data error refused: log export
   * sends only these), or null when the database is not taking writes.
   */
  async #writeRecords(records: SpilledRecord[]): Promise<SpilledRecord[] | null> {
    let refused: Set<SpilledRecord> | null = null
    for (let offset = 0; offset < records.length; offset += this.options.batchSize) {
      const slice = records.slice(offset, offset + this.options.batchSize)
      for (let attempt = 0; ; attempt++) {
        try {
          await this.#query(slice)
          this.batchesWritten++
          break
        } catch (error: any) {
          if (isDataError(error)) {
            // The database went away halfway: the whole slice is spilled (rows written are skipped on replay).
            const dropped = await this.#writeOneByOne(slice).catch(() => null)
            if (dropped === null) return null
            for (const record of dropped) (refused ??= new Set()).add(record)
            break
          }
          if (attempt >= RETRY_DELAYS_MS.length || this.#closed) {
            this.options.logger.warn({ err: error }, 'metering write failed: the database is not taking writes')
            return null
          }
          await new Promise((resolve) => setTimeout(resolve, RETRY_DELAYS_MS[attempt]))
        }
      }
    }
    // The usual case allocates nothing: the same array.
    return refused === null ? records : records.filter((record) => !refused.has(record))
  }

  /** Writes a slice row by row; returns the rows a data error refused (logged, never written). */
  async #writeOneByOne(records: SpilledRecord[]): Promise<SpilledRecord[]> {
    const dropped: SpilledRecord[] = []
    for (const record of records) {
      try {
        await this.#query([record])
      } catch (error: any) {
        if (!isDataError(error)) throw error
        dropped.push(record)
        this.options.logger.error(
          { err: error, event: JSON.stringify(record).slice(0, 2000) },
          'usage could not be written; event logged here for manual replay'
        )
      }
    }
    return dropped
  }

  #query(records: SpilledRecord[]) {
    // A row of an organization, or under a member's limits, is a team's row: only a batch with one looks for one.
    const teams = ofTeam(records) ? 4 | (ofOrganization(records) ? 16 : 0) | (underMemberBudget(records) ? 32 : 0) : 0
    const kind = (holdsFinishedDay(records) ? 1 : 0) | (namesEndUser(records) ? 2 : 0) | teams | (underModelBudget(records) ? 8 : 0)
    // Named: parsed and planned once per connection, not per batch.
    return this.#pool.query({
      name: BATCH_NAMES[kind],
      text: WRITE_BATCH_SQL[kind],
      values: batchParameters(records),
    })
  }

  async #spillEvents(events: MeterEvent[]) {
    if (events.length === 0 || !this.#spill) return
    // Tallied as the append is queued, not once it is done: a replay hands over the tally
    // and queues the file's rotation in one step, so the tally always matches the file.
    for (const event of events) this.#spilled.add(event)
    await this.#spill.append(events.map(toRecord))
    this.spilledTotal += events.length
    // One warning per outage, not one per batch.
    if (!this.#outage) {
      this.options.logger.warn(
        { spilled: events.length, file: this.#spill.path },
        'metering: database unavailable, usage records spilled to disk (replayed when it is back)'
      )
    }
  }

  /** The database answered again: replay what this process spilled, then settle it. */
  async #replayOwnSpill() {
    // A write under way until its records leave the pending totals (or go back to the spill): settled_read.ts.
    this.#beginWrite()
    try {
      await this.#replaySpill()
    } finally {
      this.#endWrite()
    }
  }

  async #replaySpill() {
    // Counted as pending from before the hand-over until written (status readers see no gap).
    this.#replaying = this.#spill!.pending
    // What the handed-over file holds, per user and key; later spills start a new tally.
    const handedOver = this.#spilled
    this.#spilled = new PendingTotals()
    let written: SpilledRecord[] | null = null
    let records: SpilledRecord[] = []
    let path: string | null = null
    try {
      path = await this.#spill!.rotate()
      if (!path) {
        this.#spilled.addAll(handedOver)
        return
      }
      records = await readSpill(path)
      this.#replaying = records.length
      written = await this.#replayRecords(records)
    } finally {
      this.#replaying = 0
    }
    if (!written) {
      // Still down: hand the records back to the current spill file.
      if (path) {
        await this.#spill!.append(records)
        await removeSpill(path)
      }
      this.#spilled.addAll(handedOver)
      this.#enterOutage()
      return
    }
    await removeSpill(path)
    this.replayedTotal += records.length
    this.#pending.subtractAll(handedOver)
    this.settledCount++
    this.options.onCommitted?.(
      records.map((record) => ({
        userId: Number(record.e.user_id),
        apiKeyId: record.e.api_key_id == null ? null : Number(record.e.api_key_id),
        endUser: (record.e.end_user as string | null | undefined) ?? null,
      }))
    )
    // Spilled rows were never exported (export follows the commit): they go now.
    if (this.exporter !== null) this.#export(written)
    this.options.logger.info({ replayed: records.length }, 'metering: database is back, spilled usage records written')
  }

  /** The rows of committed records to the exporter (references, no copy); an exporter's fault never reaches the meter. */
  #export(records: readonly SpilledRecord[]) {
    const rows: Record<string, unknown>[] = new Array(records.length)
    for (let i = 0; i < records.length; i++) rows[i] = records[i].e
    try {
      this.exporter!.take(rows)
    } catch (error) {
      this.options.logger.warn({ err: error }, 'log export: rows could not be queued')
    }
  }

  #enterOutage() {
    this.#outage = true
    if (this.#probe || this.#closed) return
    const probe = async () => {
      this.#probe = null
      try {
        await this.#pool.query('SELECT 1')
        this.#outage = false
        if (!this.#writing) this.#writing = this.#writeLoop()
      } catch {
        if (!this.#closed) this.#probe = setTimeout(probe, PROBE_MS).unref()
      }
    }
    this.#probe = setTimeout(probe, PROBE_MS).unref()
  }
}

/** The batch statement's parameters: each usage column, then each attempt column, as an array literal. */
function batchParameters(records: SpilledRecord[]): string[] {
  const values: string[] = []
  const rows: Record<string, unknown>[] = []
  const attempts: Record<string, unknown>[] = []
  for (const record of records) {
    rows.push(record.e)
    for (const attempt of record.a) attempts.push(attempt)
  }
  columnsOf(USAGE_COLUMNS, rows, values)
  columnsOf(ATTEMPT_COLUMNS, attempts, values)
  return values
}

function isDataError(error: any): boolean {
  return typeof error?.code === 'string' && /^(22|23)/.test(error.code)
}

/** Does the batch hold a row dated before today (UTC)? ISO strings in UTC compare as their times do. */
/** Does the batch hold a row that names an end user? (see END_USER_SPEND_EFFECT) */
function namesEndUser(records: SpilledRecord[]): boolean {
  for (const record of records) if (record.e.end_user != null) return true
  return false
}

/** Does the batch hold a row of a team's key? (see TEAM_SPEND_EFFECT) */
function ofTeam(records: SpilledRecord[]): boolean {
  for (const record of records) if (record.e.team_id != null) return true
  return false
}

/** Does the batch hold a row admitted under an organization? (see ORG_SPEND_EFFECT) */
function ofOrganization(records: SpilledRecord[]): boolean {
  for (const record of records) if (record.e.organization_id != null) return true
  return false
}

/** Does the batch hold a row admitted under a member's limits in a team? (see MEMBER_SPEND_EFFECT) */
function underMemberBudget(records: SpilledRecord[]): boolean {
  for (const record of records) if (record.e.member_budget === true) return true
  return false
}

/** Does the batch hold a row admitted under a key's budget for a model? (see MODEL_BUDGET_SPEND_EFFECT) */
function underModelBudget(records: SpilledRecord[]): boolean {
  for (const record of records) if (record.e.model_budget === true) return true
  return false
}

function holdsFinishedDay(records: SpilledRecord[]): boolean {
  const today = new Date().toISOString().slice(0, 10)
  for (const record of records) if (String(record.e.created_at) < today) return true
  return false
}

/** One event as the batch statement (and the spill file) takes it. */
function toRecord(e: MeterEvent): SpilledRecord {
  return {
    e: {
      request_id: e.requestId,
      user_id: e.userId,
      api_key_id: e.apiKeyId,
      channel_id: e.channelId,
      provider: e.provider,
      model: e.model,
      // Absent from spill files written before the column: NULL, as textColumn writes undefined.
      requested_model: e.requestedModel,
      // Only hits carry it (NULL otherwise, written as false; spill files from before the column too).
      cache_hit: e.cacheHit ? true : undefined,
      served_model: e.servedModel,
      endpoint: e.endpoint,
      stream: e.stream,
      status: e.status,
      error_code: e.errorCode,
      prompt_tokens: e.usage.promptTokens,
      completion_tokens: e.usage.completionTokens,
      total_tokens: e.usage.totalTokens,
      cached_tokens: e.usage.cachedTokens,
      reasoning_tokens: e.usage.reasoningTokens,
      cache_write_tokens: e.usage.cacheWriteTokens ?? 0,
      images: e.usage.images ?? 0,
      // NULL on every row but the audio endpoints' (and in spill files from before the columns).
      audio_seconds: e.usage.audioMillis === undefined ? undefined : formatDecimal(BigInt(e.usage.audioMillis), 3),
      characters: e.usage.characters,
      // NULL on every row but a video's bill (and in spill files from before the column).
      video_seconds: e.usage.videoSeconds,
      estimated: e.usage.estimated,
      cost: fromPico(e.costPico),
      latency_ms: e.latencyMs,
      ttft_ms: e.ttftMs,
      created_at: e.createdAt.toISOString(),
      attempts: e.attemptCount,
      // NULL when untagged (and in spill files from before the column).
      tags: e.tags ? e.tags.join(',') : undefined,
      // NULL when the request named no end user (and in spill files from before the column).
      end_user: e.endUser ?? undefined,
      // NULL for a key in no team (and in spill files from before teams).
      team_id: e.teamId ?? undefined,
      // NULL for a key whose team is in no organization (and in spill files from before organizations).
      organization_id: e.organizationId ?? undefined,
      // Picks the statement that keeps the member's spend in the team (absent when not, and from older spill files).
      member_budget: e.memberBudget ? true : undefined,
      // Picks the statement that keeps the model's spend (absent from older spill files), and names the budget's
      // model (the id is `${keyId} ${model}`): the spend is kept under it whatever spelling the request used.
      ...(e.modelBudget != null ? { model_budget: true, budget_model: e.modelBudget.slice(e.modelBudget.indexOf(' ') + 1) } : null),
    },
    a: (e.attempts ?? []).map((a) => ({
      request_id: e.requestId,
      attempt: a.attempt,
      channel_id: a.channelId,
      status: a.status,
      outcome: a.outcome,
      error: a.error,
      latency_ms: a.latencyMs,
    })),
  }
}
