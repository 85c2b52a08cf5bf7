import pg from 'pg'
import type { Logger } from '@adonisjs/core/logger'
import { fromPico } from '#gateway/metering/money'
import type { MeterEvent } from '#gateway/metering/meter_event'

/**
 * The metering writer. Every request's usage row, monthly counters and ledger
 * charge are written by one SQL statement (hence one transaction). Requests
 * are queued and written behind the response in batches: under load one
 * statement carries many requests, each still all-or-nothing, so metering
 * costs the database a few statements per batch instead of several per
 * request. request_id is unique, so a retried batch never charges twice.
 */
const WRITE_BATCH_SQL = `
WITH e AS (
  SELECT * FROM json_to_recordset($1::json) AS e(
    request_id uuid, user_id bigint, api_key_id bigint, channel_id bigint, provider text,
    model text, served_model text, endpoint text, stream boolean, status int, error_code text,
    prompt_tokens int, completion_tokens int, total_tokens int, cached_tokens int,
    reasoning_tokens int, cache_write_tokens int, images int, estimated boolean, cost numeric, latency_ms int, ttft_ms int,
    created_at timestamptz, attempts int)
),
ins AS (
  INSERT INTO usage_records (request_id, user_id, api_key_id, channel_id, provider, model,
    served_model, endpoint, stream, status, error_code, prompt_tokens, completion_tokens,
    total_tokens, cached_tokens, reasoning_tokens, cache_write_tokens, images, estimated, cost, latency_ms, ttft_ms, created_at, attempts)
  SELECT request_id, user_id, api_key_id, channel_id, provider, model, served_model, endpoint,
    stream, status, error_code, prompt_tokens, completion_tokens, total_tokens, cached_tokens,
    reasoning_tokens, COALESCE(cache_write_tokens, 0), COALESCE(images, 0), estimated, cost, latency_ms, ttft_ms, created_at, attempts
  FROM e
  ON CONFLICT (request_id) DO NOTHING
  RETURNING id, request_id, user_id, api_key_id, model, provider, prompt_tokens, completion_tokens, cost, created_at
),
attempt_log AS (
  INSERT INTO request_attempts (request_id, attempt, channel_id, status, outcome, error, latency_ms, created_at)
  SELECT a.request_id, a.attempt, a.channel_id, a.status, a.outcome, a.error, a.latency_ms, ins.created_at
    FROM json_to_recordset($2::json) AS a(request_id uuid, attempt int, channel_id bigint, status int,
         outcome text, error text, latency_ms int)
    JOIN ins ON ins.request_id = a.request_id
),
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
  UPDATE api_keys k SET last_used_at = t.last_used, spent = k.spent + t.cost
    FROM (SELECT api_key_id, MAX(created_at) AS last_used, SUM(cost) AS cost FROM ins
           WHERE api_key_id IS NOT NULL GROUP BY api_key_id) t
   WHERE k.id = t.api_key_id
)
SELECT COUNT(*)::int AS inserted FROM ins`

export interface MeterOptions {
  connectionString: string
  batchSize: number
  flushMs: number
  logger: Logger
  /** Called at once for each recorded request, before it is written (cache update) */
  onRecord?: (event: MeterEvent) => void
}

interface PendingTotals {
  costPico: bigint
  input: number
  output: number
}

export class UsageMeter {
  #pool: pg.Pool
  #queue: MeterEvent[] = []
  #pendingByUser = new Map<number, PendingTotals>()
  #writing: Promise<void> | null = null
  #timer: NodeJS.Timeout | null = null
  #closed = false

  constructor(private options: MeterOptions) {
    this.#pool = new pg.Pool({ connectionString: options.connectionString, max: 2 })
    this.#pool.on('error', (error) => options.logger.warn({ err: error }, 'metering pool error'))
  }

  /** Queues one request's accounting; it is durable once `drain()` resolves. */
  record(event: MeterEvent) {
    this.#queue.push(event)
    const totals = this.#pendingByUser.get(event.userId) ?? { costPico: 0n, input: 0, output: 0 }
    totals.costPico += event.costPico
    totals.input += event.usage.promptTokens
    totals.output += event.usage.completionTokens
    this.#pendingByUser.set(event.userId, totals)
    this.options.onRecord?.(event)
    this.#schedule()
  }

  /** What is recorded for a user but not yet committed (caches add it to database values). */
  pendingFor(userId: number): PendingTotals {
    return this.#pendingByUser.get(userId) ?? { costPico: 0n, input: 0, output: 0 }
  }

  get queued() {
    return this.#queue.length
  }

  /** Resolves once everything recorded so far is committed. */
  async drain() {
    if (this.#timer) {
      clearTimeout(this.#timer)
      this.#timer = null
    }
    while (this.#queue.length > 0 || this.#writing) {
      if (!this.#writing) this.#writing = this.#writeLoop()
      await this.#writing
    }
  }

  async close() {
    await this.drain()
    this.#closed = true
    await this.#pool.end()
  }

  #schedule() {
    if (this.#writing || this.#timer || this.#closed) return
    if (this.#queue.length >= this.options.batchSize) {
      this.#writing = this.#writeLoop()
      return
    }
    this.#timer = setTimeout(() => {
      this.#timer = null
      if (!this.#writing) this.#writing = this.#writeLoop()
    }, this.options.flushMs)
  }

  /** Writes batches until the queue is empty; one batch in flight at a time. */
  async #writeLoop() {
    try {
      while (this.#queue.length > 0) {
        const batch = this.#queue.splice(0, this.options.batchSize)
        await this.#writeWithRetry(batch)
        for (const event of batch) this.#settlePending(event)
      }
    } finally {
      this.#writing = null
    }
  }

  async #writeWithRetry(batch: MeterEvent[]) {
    for (let attempt = 0; ; attempt++) {
      try {
        // Named: parsed and planned once per connection, not per batch.
        await this.#pool.query({ name: 'gateway_meter_batch', text: WRITE_BATCH_SQL, values: [serialize(batch), serializeAttempts(batch)] })
        return
      } catch (error: any) {
        const dataError = typeof error?.code === 'string' && /^(22|23)/.test(error.code)
        if (dataError && batch.length > 1) {
          // Isolate the offending row so the others are not held back.
          for (const event of batch) await this.#writeWithRetry([event])
          return
        }
        if (dataError || attempt >= 20) {
          this.options.logger.error(
            // Bounded: a row fails to write because of what is in it, and that may be huge.
            { err: error, events: serialize(batch).slice(0, 64 * 1024) },
            'usage could not be written; events logged here for manual replay'
          )
          return
        }
        const delay = Math.min(5000, 50 * 2 ** attempt)
        this.options.logger.warn({ err: error, attempt, delay }, 'metering write failed, retrying')
        await new Promise((resolve) => setTimeout(resolve, delay))
      }
    }
  }

  #settlePending(event: MeterEvent) {
    const totals = this.#pendingByUser.get(event.userId)
    if (!totals) return
    totals.costPico -= event.costPico
    totals.input -= event.usage.promptTokens
    totals.output -= event.usage.completionTokens
    if (totals.costPico === 0n && totals.input === 0 && totals.output === 0) {
      this.#pendingByUser.delete(event.userId)
    }
  }
}

function serialize(batch: MeterEvent[]): string {
  return JSON.stringify(
    batch.map((e) => ({
      request_id: e.requestId,
      user_id: e.userId,
      api_key_id: e.apiKeyId,
      channel_id: e.channelId,
      provider: e.provider,
      model: e.model,
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
      estimated: e.usage.estimated,
      cost: fromPico(e.costPico),
      latency_ms: e.latencyMs,
      ttft_ms: e.ttftMs,
      created_at: e.createdAt.toISOString(),
      attempts: e.attemptCount,
    }))
  )
}

function serializeAttempts(batch: MeterEvent[]): string {
  const rows = []
  for (const e of batch) {
    if (!e.attempts) continue
    for (const a of e.attempts) {
      rows.push({
        request_id: e.requestId,
        attempt: a.attempt,
        channel_id: a.channelId,
        status: a.status,
        outcome: a.outcome,
        error: a.error,
        latency_ms: a.latencyMs,
      })
    }
  }
  return JSON.stringify(rows)
}
