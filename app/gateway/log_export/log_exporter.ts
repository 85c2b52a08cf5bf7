import { request } from 'undici'
import type { Logger } from '@adonisjs/core/logger'
import { exportItem, type ExportBodies, type ExportItem, type ExportNames, type UsageRow } from '#gateway/log_export/export_row'
import { DEFAULT_RETRY_DELAYS_MS, ExportHttpError, parseRetryAfter, retryable, retryDelay } from '#gateway/log_export/export_retry'

/** Where a batch goes and how it is encoded (langfuse.ts, otlp.ts, webhook_lines.ts). */
export interface DestinationSpec {
  /** `langfuse`, `otlp`, `webhook`: the name /api/status counts under (never the URL) */
  name: string
  url: string
  headers: Record<string, string>
  encode: (items: readonly ExportItem[]) => string
  /** Rows per POST for this destination when LOG_EXPORT_BATCH_SIZE is not set (log_export_config.ts) */
  batchSize?: number
}

export interface LogExportOptions {
  destinations: DestinationSpec[]
  logger: Logger
  /** Rows per POST (LOG_EXPORT_BATCH_SIZE), for every destination; unset: each destination's own default */
  batchSize?: number
  /** How often the loop sends what waits, and looks whether a backoff is over (LOG_EXPORT_INTERVAL_MS) */
  intervalMs: number
  /** Rows waiting per destination (new and to retry) beyond this are dropped, counted (LOG_EXPORT_MAX_QUEUE) */
  maxQueued: number
  /** One POST's longest wait (LOG_EXPORT_TIMEOUT_MS): a collector that never answers fails the batch */
  timeoutMs: number
  names: ExportNames
  /** Send the bodies LOG_BODIES kept (LOG_EXPORT_BODIES); off: never held for export */
  bodies: boolean
  /**
   * Characters of bodies held at once (16 Mi by default): those waiting for their row and those of
   * queued rows. Past it the oldest waiting go, and a row finding it full of queued rows' bodies goes
   * without its own: a stuck collector holds at most this much, not its queue's rows times their bodies.
   */
  maxBodyBytes?: number
  /** Bytes a destination's waiting rows may hold (a row ~1 KB plus its bodies; LOG_EXPORT_MAX_QUEUE_MB, 64 MB) */
  maxQueuedBytes?: number
  /** A row waiting longer than this since it was handed over is dropped, counted (LOG_EXPORT_MAX_AGE_S, 10 min) */
  maxAgeMs?: number
  /** Backoff steps after consecutive retryable failures (export_retry.ts; 1 s, 5 s, 30 s, 2 min) */
  retryDelaysMs?: readonly number[]
}

/** What a row holds in a queue besides its bodies: its ~30 fields (measured ~0.8 KB a row on V8, rounded up) */
const ROW_BYTES = 1024

/**
 * One collector: its queue of row references (the rows of a batch it did not
 * take go back to its head, to be sent again first, in order) and its counts
 * (numbers only: /api/status).
 */
class Destination {
  queue: UsageRow[] = []
  /** The absolute position of queue[0] among every row ever queued here (with `markSeq`: each row's age) */
  head = 0
  /** Per hand-over (one per meter batch, not per row): where its rows start, and when it came */
  markSeq: number[] = []
  markAt: number[] = []
  /** What the queued rows hold (ROW_BYTES each, plus their bodies) */
  bytes = 0
  /** Rows at the head of the queue that a failed POST carried: sent again when the backoff is over */
  retrying = 0
  /** Rows of the POST out now (still counted against the rows bound: they may come back) */
  posting = 0
  /** Consecutive retryable failures; the next attempt not before `retryAt` (ms since epoch) */
  failures = 0
  retryAt = 0
  sending: Promise<void> | null = null
  exported = 0
  /** Rows a collector refused for good (a 4xx other than 408 and 429): not retried */
  failed = 0
  /** Rows given up on: a full queue, past the age bound, or still waiting at shutdown */
  dropped = 0
  /** When a failure was last logged (one line a minute per destination, with the counts) */
  loggedAt = 0
  constructor(
    readonly spec: DestinationSpec,
    readonly batchSize: number
  ) {}
}

/** A queued row's bodies and how many destinations' queues still hold the row (its characters are freed at 0). */
interface HeldBodies {
  bodies: ExportBodies
  bytes: number
  refs: number
}

const bodyBytes = (bodies: ExportBodies) => bodies.request.length + (bodies.response?.length ?? 0)

/**
 * Exports every metered request to log collectors (Langfuse, an OTLP
 * endpoint, a JSON-lines webhook), behind the requests: the meter hands
 * over each committed batch's rows (`take`: one push of a reference per row
 * and destination), and a background loop posts them in batches. Nothing
 * here is awaited by a request. A collector that is down, slow or busy
 * (a network error, a timeout, 5xx, 408, 429) gets the batch again after a
 * backoff with jitter (1 s, 5 s, 30 s, 2 min, then every 2 min; a 429's
 * Retry-After within that), the rows behind it waiting: a collector restart
 * loses nothing. What waits is bounded by rows, bytes and age, and what
 * goes over a bound is counted dropped; a batch refused for good (another
 * 4xx) is counted failed. Each process exports the rows its own meter
 * committed, so instances never export a row twice; a row that might reach
 * a collector twice (a retried POST whose first answer was lost) carries the
 * same event id each time (its request id), for the collector to deduplicate.
 */
export class LogExporter {
  readonly #destinations: Destination[]
  #timer: NodeJS.Timeout | null = null
  #kick: NodeJS.Immediate | null = null
  #closed = false
  /** Aborted when the shutdown grace is over: a POST still waiting on its collector lets the process go */
  readonly #shutdown = new AbortController()
  /** Bodies kept by LOG_BODIES, by request id, until their row is handed over (insertion order: oldest first) */
  #pendingBodies = new Map<string, ExportBodies>()
  /** Characters of every body held: waiting for their row, and of queued rows (#rowBodies); at most maxBodyBytes */
  #heldBodyBytes = 0
  /** The part of #heldBodyBytes still waiting for its row */
  #pendingBodyBytes = 0
  /** A queued row's bodies, for every destination's encoding (and a retry's); released when the last queue lets the row go */
  #rowBodies = new WeakMap<UsageRow, HeldBodies>()
  readonly #maxQueuedBytes: number
  readonly #maxAgeMs: number
  readonly #retryDelays: readonly number[]

  constructor(readonly options: LogExportOptions) {
    this.#destinations = options.destinations.map((spec) => new Destination(spec, Math.max(1, options.batchSize ?? spec.batchSize ?? 100)))
    this.#maxQueuedBytes = options.maxQueuedBytes ?? 64 * 1024 * 1024
    this.#maxAgeMs = options.maxAgeMs ?? 10 * 60_000
    this.#retryDelays = options.retryDelaysMs?.length ? options.retryDelaysMs : DEFAULT_RETRY_DELAYS_MS
    this.#timer = setInterval(() => this.#tick(), timerMs(options.intervalMs))
    this.#timer.unref()
  }

  /** Whether bodies are wanted (the request log writer hands them over only then). */
  get wantsBodies() {
    return this.options.bodies
  }

  /** The meter's committed rows (usage_meter.ts): a reference per row and destination, nothing copied. */
  take(rows: readonly UsageRow[]) {
    if (this.#closed || rows.length === 0) return
    const attached = this.#pendingBodies.size > 0 && this.#attachBodies(rows)
    const max = this.options.maxQueued
    const maxBytes = this.#maxQueuedBytes
    const now = Date.now()
    let full = false
    for (const destination of this.#destinations) {
      const queue = destination.queue
      const start = destination.head + queue.length
      for (const row of rows) {
        const bytes = this.#rowBytes(row)
        if (queue.length + destination.posting < max && destination.bytes + bytes <= maxBytes) {
          queue.push(row)
          destination.bytes += bytes
          if (attached) this.#holdBodies(row)
        } else destination.dropped++
      }
      if (destination.head + queue.length > start) {
        destination.markSeq.push(start)
        destination.markAt.push(now)
      }
      if (queue.length >= destination.batchSize && destination.sending === null && destination.retryAt <= now) full = true
    }
    // Bodies of rows every queue dropped: freed now.
    if (attached) for (const row of rows) this.#releaseBodies(row, 0)
    // A full batch goes now (on the next turn, not inside the meter's write loop) rather than at the
    // next interval: under load a row then waits milliseconds, not a second, and dies young instead of
    // being promoted to V8's old space with thousands of others (measured: docs/benchmarks.md).
    if (full && this.#kick === null) {
      this.#kick = setImmediate(() => {
        this.#kick = null
        const at = Date.now()
        for (const destination of this.#destinations) {
          if (destination.sending === null && destination.retryAt <= at && destination.queue.length >= destination.batchSize) {
            this.#start(destination, Infinity, 'full')
          }
        }
      })
    }
  }

  /** A call's bodies as LOG_BODIES cut them (request_log_writer.ts), kept until its row is committed. */
  keepBodies(requestId: string, request: string, response: string | null) {
    if (!this.options.bodies || this.#closed) return
    const bodies = { request, response }
    const bytes = bodyBytes(bodies)
    const max = this.options.maxBodyBytes ?? 16 * 1024 * 1024
    // Queued rows' bodies fill the room (a collector slow or stuck): this call is exported without its own.
    if (this.#heldBodyBytes - this.#pendingBodyBytes + bytes > max) return
    // The oldest waiting go first: a row that never came (its write failed) must not hold memory forever.
    while (this.#heldBodyBytes + bytes > max && this.#pendingBodies.size > 0) {
      const [oldest, kept] = this.#pendingBodies.entries().next().value!
      this.#pendingBodies.delete(oldest)
      this.#pendingBodyBytes -= bodyBytes(kept)
      this.#heldBodyBytes -= bodyBytes(kept)
    }
    this.#pendingBodies.set(requestId, bodies)
    this.#pendingBodyBytes += bytes
    this.#heldBodyBytes += bytes
  }

  /** Moves the committed rows' waiting bodies onto the rows (their characters stay counted); whether any was. */
  #attachBodies(rows: readonly UsageRow[]): boolean {
    let any = false
    for (const row of rows) {
      const id = String(row.request_id)
      const kept = this.#pendingBodies.get(id)
      if (kept === undefined) continue
      this.#pendingBodies.delete(id)
      const bytes = bodyBytes(kept)
      this.#pendingBodyBytes -= bytes
      this.#rowBodies.set(row, { bodies: kept, bytes, refs: 0 })
      any = true
    }
    return any
  }

  /** A queue took the row: its bodies stay until that queue lets it go. */
  #holdBodies(row: UsageRow) {
    const held = this.#rowBodies.get(row)
    if (held !== undefined) held.refs++
  }

  /** A queue let the row go (`by` 1: sent or failed; 0: a check after queuing); the last one frees its characters. */
  #releaseBodies(row: UsageRow, by: 0 | 1) {
    const held = this.#rowBodies.get(row)
    if (held === undefined) return
    held.refs -= by
    if (held.refs > 0) return
    this.#rowBodies.delete(row)
    this.#heldBodyBytes -= held.bytes
  }

  /** Per destination: exported, failed, dropped, waiting to be sent, waiting to be sent again (numbers only; /api/status). */
  counts() {
    const out: Record<string, { exported: number; failed: number; dropped: number; queued: number; retrying: number }> = {}
    for (const d of this.#destinations) {
      out[d.spec.name] = { exported: d.exported, failed: d.failed, dropped: d.dropped, queued: d.queue.length - d.retrying, retrying: d.retrying }
    }
    return out
  }

  #tick() {
    const now = Date.now()
    for (const destination of this.#destinations) {
      if (destination.sending === null && destination.queue.length > 0 && destination.retryAt <= now) this.#start(destination, Infinity, 'all')
    }
  }

  /** One sender per destination at a time (rows leave in the order they came). */
  #start(destination: Destination, deadline: number, mode: SendMode) {
    destination.sending = this.#sendAll(destination, deadline, mode).finally(() => (destination.sending = null))
    return destination.sending
  }

  /**
   * Posts what waits, a batch at a time (rows to retry first), until the queue is empty (`full`:
   * until less than a full batch of new rows is left), `deadline` (ms since epoch) passes, or a
   * batch fails in a way worth retrying: the destination then waits out its backoff (`now`, a
   * flush or the shutdown, does not wait for it, but stops at the first such failure). Started by
   * a full batch, the sender leaves a part batch for the interval: a POST costs the loop about as
   * much as encoding 100 rows (docs/benchmarks.md, twenty-fifth pass), so it should carry a full batch.
   */
  async #sendAll(destination: Destination, deadline: number, mode: SendMode) {
    while (true) {
      const now = Date.now()
      this.#expire(destination, now)
      const queue = destination.queue
      if (queue.length === 0) return
      if (mode !== 'now' && destination.retryAt > now) return
      if (mode === 'full' && destination.retrying === 0 && queue.length < destination.batchSize) return
      const left = deadline - now
      if (left <= 0) return
      // A failed batch is sent again as it was (the same rows), then the rows behind it.
      let length = this.#batchLength(destination)
      if (destination.retrying > 0) length = Math.min(length, destination.retrying)
      const rows = queue.splice(0, length)
      destination.head += length
      destination.posting = length
      try {
        if (this.options.names.loadKeyNames) await this.#loadKeyNames(rows)
        const items = rows.map((row) => exportItem(row, this.options.names, this.#rowBodies.get(row)?.bodies ?? null))
        await this.#post(destination, destination.spec.encode(items), Math.min(this.options.timeoutMs, left))
        destination.posting = 0
        destination.exported += length
        this.#settled(destination, rows)
        destination.failures = 0
        destination.retryAt = 0
      } catch (error) {
        destination.posting = 0
        if (!retryable(error)) {
          destination.failed += length
          this.#settled(destination, rows)
          this.#logFailure(destination, error as Error, 'refused a batch (its rows are not exported)')
          continue
        }
        if (this.#closed) {
          // Given up on at shutdown while this POST was out: nowhere to put it back.
          destination.dropped += length
          this.#settled(destination, rows)
          return
        }
        // Back at the head, in order, to be sent again when the backoff is over.
        queue.unshift(...rows)
        destination.head -= length
        destination.retrying = Math.max(destination.retrying, length)
        destination.failures++
        destination.retryAt = Date.now() + retryDelay(destination.failures, this.#retryDelays, error)
        this.#logFailure(destination, error as Error, 'did not take a batch (sent again after a backoff)')
        return
      }
    }
  }

  /** Rows that left the queue for good (sent, refused, dropped): their bytes and their place among those to retry. */
  #settled(destination: Destination, rows: readonly UsageRow[]) {
    destination.retrying = Math.max(0, destination.retrying - rows.length)
    for (const row of rows) {
      destination.bytes -= this.#rowBytes(row)
      if (this.options.bodies) this.#releaseBodies(row, 1)
    }
  }

  /** Drops, counted, the rows handed over longer than the age bound ago (the oldest hand-overs first). */
  #expire(destination: Destination, now: number) {
    const seq = destination.markSeq
    const at = destination.markAt
    while (seq.length > 0) {
      // The hand-overs whose rows all left already go.
      const end = seq.length > 1 ? seq[1] : destination.head + destination.queue.length
      if (end <= destination.head) {
        seq.shift()
        at.shift()
        continue
      }
      if (now - at[0] <= this.#maxAgeMs) return
      const stale = destination.queue.splice(0, end - destination.head)
      destination.head = end
      destination.dropped += stale.length
      this.#settled(destination, stale)
      seq.shift()
      at.shift()
    }
  }

  /** A row's share of the queued-bytes bound: the row itself and the bodies it carries. */
  #rowBytes(row: UsageRow): number {
    if (!this.options.bodies) return ROW_BYTES
    const held = this.#rowBodies.get(row)
    return held ? ROW_BYTES + held.bytes : ROW_BYTES
  }

  /** The names of keys the caches lack (a key not used lately, rows replayed at boot): one lookup per batch. */
  async #loadKeyNames(rows: readonly UsageRow[]) {
    let missing: Set<number> | null = null
    for (const row of rows) {
      const id = row.api_key_id
      if (typeof id === 'number' && this.options.names.keyName(id) === null) (missing ??= new Set()).add(id)
    }
    if (missing === null) return
    try {
      await this.options.names.loadKeyNames!([...missing])
    } catch (error) {
      // The rows go without those names rather than not at all.
      this.options.logger.warn({ err: error }, 'log export: key names could not be read')
    }
  }

  /**
   * Rows in the next POST: a batch, fewer when their bodies pass 2 MB (at least one row), so a
   * batch with bodies stays under Langfuse's 3.5 MB and a collector's usual 4 MB limit.
   */
  #batchLength(destination: Destination): number {
    const queue = destination.queue
    const max = Math.min(destination.batchSize, queue.length)
    if (!this.options.bodies) return max
    let bytes = 0
    for (let i = 0; i < max; i++) {
      const held = this.#rowBodies.get(queue[i])
      if (held) bytes += held.bytes
      if (bytes > MAX_BODY_BYTES_PER_POST) return Math.max(1, i)
    }
    return max
  }

  async #post(destination: Destination, body: string, timeoutMs: number) {
    const answer = await request(destination.spec.url, {
      method: 'POST',
      headers: destination.spec.headers,
      body,
      signal: AbortSignal.any([AbortSignal.timeout(timerMs(timeoutMs)), this.#shutdown.signal]),
    })
    await answer.body.dump()
    if (answer.statusCode >= 300) throw new ExportHttpError(answer.statusCode, parseRetryAfter(answer.headers['retry-after']))
  }

  /** One line a minute per destination: its name, the error (no URL, no header: they may hold secrets) and the counts. */
  #logFailure(destination: Destination, error: Error, what: string) {
    const now = Date.now()
    if (now - destination.loggedAt < 60_000) return
    destination.loggedAt = now
    this.options.logger.warn(
      {
        destination: destination.spec.name,
        error: error.name === 'TimeoutError' ? 'timed out' : error.message,
        retrying: destination.retrying,
        failed: destination.failed,
        dropped: destination.dropped,
      },
      `log export: the collector ${what}`
    )
  }

  /** Sends everything waiting now, a backoff or not, stopping at a failure worth retrying (tests; the loop does this every interval). */
  async flush() {
    for (const destination of this.#destinations) {
      while (destination.sending) await destination.sending
      if (destination.queue.length > 0) await this.#start(destination, Infinity, 'now')
    }
  }

  /**
   * Shutdown: stops the loop and sends what waits, each destination in
   * parallel, within `graceMs` (a destination in backoff is tried once more);
   * what is left then is counted dropped.
   */
  async close(graceMs: number) {
    if (this.#timer) clearInterval(this.#timer)
    this.#timer = null
    if (this.#kick) clearImmediate(this.#kick)
    this.#kick = null
    const deadline = Date.now() + graceMs
    await Promise.all(
      this.#destinations.map(async (destination) => {
        // The send under way ends by its own timeout, or is aborted when the grace is over.
        if (destination.sending) await Promise.race([destination.sending, sleep(Math.max(0, deadline - Date.now()))])
        if (destination.sending === null && destination.queue.length > 0) await this.#start(destination, deadline, 'now')
      })
    )
    this.#closed = true
    // A POST still under way (a collector that hangs) would hold its socket, and the process, until its
    // own timeout, past the grace: it is given up on now, its rows counted dropped.
    this.#shutdown.abort()
    for (const destination of this.#destinations) {
      destination.dropped += destination.queue.length
      destination.queue = []
      destination.retrying = 0
      destination.bytes = 0
      destination.markSeq = []
      destination.markAt = []
    }
    this.#pendingBodies.clear()
    this.#pendingBodyBytes = 0
    this.#rowBodies = new WeakMap()
    this.#heldBodyBytes = 0
  }

  /** Characters of bodies held now, waiting for their row or of queued rows (tests; at most maxBodyBytes). */
  get heldBodyBytes() {
    return this.#heldBodyBytes
  }
}

/** `full`: started by a full batch; `all`: the interval; `now`: a flush or the shutdown (backoff not waited for) */
type SendMode = 'full' | 'all' | 'now'

/** Bodies' characters in one POST before the batch is cut (see #batchLength) */
const MAX_BODY_BYTES_PER_POST = 2 * 1024 * 1024

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, timerMs(ms)).unref())

/**
 * A delay Node's timers can hold: past 2^31 - 1 ms (~24.8 days) Node sets them to 1 ms, so a
 * LOG_EXPORT_TIMEOUT_MS meant as "very long" aborted every POST at once (every batch failed), and an
 * interval that long sent every millisecond.
 */
const MAX_TIMER_MS = 2 ** 31 - 1
const timerMs = (ms: number) => Math.min(Math.max(0, ms), MAX_TIMER_MS)
