import { request } from 'undici'
import type { Logger } from '@adonisjs/core/logger'
import { exportItem, type ExportBodies, type ExportItem, type ExportNames, type UsageRow } from '#gateway/log_export/export_row'

/** Where a batch goes and how it is encoded (langfuse.ts, otlp.ts, webhook_lines.ts). */
export interface DestinationSpec {
  /** `langfuse`, `otlp`, `webhook`: the name /api/status counts under (never the URL) */
  name: string
  url: string
  headers: Record<string, string>
  encode: (items: readonly ExportItem[]) => string
}

export interface LogExportOptions {
  destinations: DestinationSpec[]
  logger: Logger
  /** Rows per POST (LOG_EXPORT_BATCH_SIZE) */
  batchSize: number
  /** How often the loop sends what waits (LOG_EXPORT_INTERVAL_MS) */
  intervalMs: number
  /** Rows waiting per destination beyond this are dropped, counted (LOG_EXPORT_MAX_QUEUE) */
  maxQueued: number
  /** One POST's longest wait (LOG_EXPORT_TIMEOUT_MS): a collector that never answers fails the batch */
  timeoutMs: number
  names: ExportNames
  /** Send the bodies LOG_BODIES kept (LOG_EXPORT_BODIES); off: never held for export */
  bodies: boolean
  /** Bytes of bodies held for rows not yet handed over; past it the oldest go (never memory without bound) */
  maxBodyBytes?: number
}

/** One collector: its queue of row references and its counts (numbers only: /api/status). */
class Destination {
  queue: UsageRow[] = []
  sending: Promise<void> | null = null
  exported = 0
  failed = 0
  dropped = 0
  /** When a failure was last logged (one line a minute per destination, with the counts) */
  loggedAt = 0
  constructor(readonly spec: DestinationSpec) {}
}

/**
 * Exports every metered request to log collectors (Langfuse, an OTLP
 * endpoint, a JSON-lines webhook), behind the requests: the meter hands
 * over each committed batch's rows (`take`: one push of a reference per row
 * and destination), and a background loop posts them in batches. Nothing
 * here is awaited by a request; a collector that is down, slow or refusing
 * costs a log line and counts (failed: a batch it did not take; dropped: a
 * row that found its queue full), never unbounded memory. Each process
 * exports the rows its own meter committed, so instances never export a row
 * twice.
 */
export class LogExporter {
  readonly #destinations: Destination[]
  #timer: NodeJS.Timeout | null = null
  #kick: NodeJS.Immediate | null = null
  #closed = false
  /** Bodies kept by LOG_BODIES, by request id, until their row is handed over (insertion order: oldest first) */
  #pendingBodies = new Map<string, ExportBodies>()
  #pendingBodyBytes = 0
  /** A handed-over row's bodies, for every destination's encoding; gone with the row */
  #rowBodies = new WeakMap<UsageRow, ExportBodies>()

  constructor(readonly options: LogExportOptions) {
    this.#destinations = options.destinations.map((spec) => new Destination(spec))
    this.#timer = setInterval(() => this.#tick(), options.intervalMs)
    this.#timer.unref()
  }

  /** Whether bodies are wanted (the request log writer hands them over only then). */
  get wantsBodies() {
    return this.options.bodies
  }

  /** The meter's committed rows (usage_meter.ts): a reference per row and destination, nothing copied. */
  take(rows: readonly UsageRow[]) {
    if (this.#closed) return
    if (this.#pendingBodies.size > 0) this.#attachBodies(rows)
    const max = this.options.maxQueued
    let full = false
    for (const destination of this.#destinations) {
      const queue = destination.queue
      for (const row of rows) {
        if (queue.length < max) queue.push(row)
        else destination.dropped++
      }
      if (queue.length >= this.options.batchSize && destination.sending === null) full = true
    }
    // A full batch goes now (on the next turn, not inside the meter's write loop) rather than at the
    // next interval: under load a row then waits milliseconds, not a second, and dies young instead of
    // being promoted to V8's old space with thousands of others (measured: docs/benchmarks.md).
    if (full && this.#kick === null) {
      this.#kick = setImmediate(() => {
        this.#kick = null
        for (const destination of this.#destinations) {
          if (destination.sending === null && destination.queue.length >= this.options.batchSize) this.#start(destination, Infinity, true)
        }
      })
    }
  }

  /** A call's bodies as LOG_BODIES cut them (request_log_writer.ts), kept until its row is committed. */
  keepBodies(requestId: string, request: string, response: string | null) {
    if (!this.options.bodies || this.#closed) return
    const bytes = request.length + (response?.length ?? 0)
    const max = this.options.maxBodyBytes ?? 16 * 1024 * 1024
    if (bytes > max) return
    // The oldest go first: a row that never came (its write failed) must not hold memory forever.
    while (this.#pendingBodyBytes + bytes > max && this.#pendingBodies.size > 0) {
      const [oldest, kept] = this.#pendingBodies.entries().next().value!
      this.#pendingBodies.delete(oldest)
      this.#pendingBodyBytes -= kept.request.length + (kept.response?.length ?? 0)
    }
    this.#pendingBodies.set(requestId, { request, response })
    this.#pendingBodyBytes += bytes
  }

  #attachBodies(rows: readonly UsageRow[]) {
    for (const row of rows) {
      const id = String(row.request_id)
      const kept = this.#pendingBodies.get(id)
      if (kept === undefined) continue
      this.#pendingBodies.delete(id)
      this.#pendingBodyBytes -= kept.request.length + (kept.response?.length ?? 0)
      this.#rowBodies.set(row, kept)
    }
  }

  /** Per destination: exported, failed, dropped and waiting (numbers only; /api/status). */
  counts() {
    const out: Record<string, { exported: number; failed: number; dropped: number; queued: number }> = {}
    for (const d of this.#destinations) out[d.spec.name] = { exported: d.exported, failed: d.failed, dropped: d.dropped, queued: d.queue.length }
    return out
  }

  #tick() {
    for (const destination of this.#destinations) {
      if (destination.sending === null && destination.queue.length > 0) this.#start(destination, Infinity)
    }
  }

  /** One sender per destination at a time (rows leave in the order they came). */
  #start(destination: Destination, deadline: number, fullOnly = false) {
    destination.sending = this.#sendAll(destination, deadline, fullOnly).finally(() => (destination.sending = null))
    return destination.sending
  }

  /**
   * Posts what waits, a batch at a time, until the queue is empty (`fullOnly`: until less than a
   * full batch is left) or `deadline` (ms since epoch) passes. Started by a full batch, the sender
   * leaves a part batch for the interval: a POST costs the loop about as much as encoding 100 rows
   * (docs/benchmarks.md, twenty-fifth pass), so it should carry a full batch.
   */
  async #sendAll(destination: Destination, deadline: number, fullOnly = false) {
    const least = fullOnly ? this.options.batchSize : 1
    while (destination.queue.length >= least) {
      const left = deadline - Date.now()
      if (left <= 0) return
      const rows = destination.queue.splice(0, this.#batchLength(destination.queue))
      try {
        const items = rows.map((row) => exportItem(row, this.options.names, this.#rowBodies.get(row) ?? null))
        await this.#post(destination, destination.spec.encode(items), Math.min(this.options.timeoutMs, left))
        destination.exported += rows.length
      } catch (error) {
        destination.failed += rows.length
        this.#logFailure(destination, error as Error)
      }
    }
  }

  /**
   * Rows in the next POST: a batch, fewer when their bodies pass 2 MB (at least one row), so a
   * batch with bodies stays under Langfuse's 3.5 MB and a collector's usual 4 MB limit.
   */
  #batchLength(queue: readonly UsageRow[]): number {
    const max = Math.min(this.options.batchSize, queue.length)
    if (!this.options.bodies) return max
    let bytes = 0
    for (let i = 0; i < max; i++) {
      const bodies = this.#rowBodies.get(queue[i])
      if (bodies) bytes += bodies.request.length + (bodies.response?.length ?? 0)
      if (bytes > MAX_BODY_BYTES_PER_POST) return Math.max(1, i)
    }
    return max
  }

  async #post(destination: Destination, body: string, timeoutMs: number) {
    const answer = await request(destination.spec.url, {
      method: 'POST',
      headers: destination.spec.headers,
      body,
      signal: AbortSignal.timeout(timeoutMs),
    })
    await answer.body.dump()
    if (answer.statusCode >= 300) throw new Error(`HTTP ${answer.statusCode}`)
  }

  /** One line a minute per destination: its name, the error (no URL, no header: they may hold secrets) and the counts. */
  #logFailure(destination: Destination, error: Error) {
    const now = Date.now()
    if (now - destination.loggedAt < 60_000) return
    destination.loggedAt = now
    this.options.logger.warn(
      { destination: destination.spec.name, error: error.name === 'TimeoutError' ? 'timed out' : error.message, failed: destination.failed, dropped: destination.dropped },
      'log export: the collector did not take a batch (its rows are not exported)'
    )
  }

  /** Sends everything waiting now (tests; the loop does this every interval). */
  async flush() {
    for (const destination of this.#destinations) {
      while (destination.sending) await destination.sending
      if (destination.queue.length > 0) await this.#start(destination, Infinity)
    }
  }

  /**
   * Shutdown: stops the loop and sends what waits, each destination in
   * parallel, within `graceMs`; what is left then is counted dropped.
   */
  async close(graceMs: number) {
    if (this.#timer) clearInterval(this.#timer)
    this.#timer = null
    if (this.#kick) clearImmediate(this.#kick)
    this.#kick = null
    const deadline = Date.now() + graceMs
    await Promise.all(
      this.#destinations.map(async (destination) => {
        // The send under way ends by its own timeout, bounded by the grace.
        if (destination.sending) await Promise.race([destination.sending, sleep(Math.max(0, deadline - Date.now()))])
        if (destination.sending === null && destination.queue.length > 0) await this.#start(destination, deadline)
      })
    )
    this.#closed = true
    for (const destination of this.#destinations) {
      destination.dropped += destination.queue.length
      destination.queue = []
    }
    this.#pendingBodies.clear()
    this.#pendingBodyBytes = 0
  }
}

/** Bodies' characters in one POST before the batch is cut (see #batchLength) */
const MAX_BODY_BYTES_PER_POST = 2 * 1024 * 1024

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref())
