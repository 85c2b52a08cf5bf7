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
  /**
   * Characters of bodies held at once (16 Mi by default): those waiting for their row and those of
   * queued rows. Past it the oldest waiting go, and a row finding it full of queued rows' bodies goes
   * without its own: a stuck collector holds at most this much, not its queue's rows times their bodies.
   */
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
  /** Aborted when the shutdown grace is over: a POST still waiting on its collector lets the process go */
  readonly #shutdown = new AbortController()
  /** Bodies kept by LOG_BODIES, by request id, until their row is handed over (insertion order: oldest first) */
  #pendingBodies = new Map<string, ExportBodies>()
  /** Characters of every body held: waiting for their row, and of queued rows (#rowBodies); at most maxBodyBytes */
  #heldBodyBytes = 0
  /** The part of #heldBodyBytes still waiting for its row */
  #pendingBodyBytes = 0
  /** A queued row's bodies, for every destination's encoding; released when the last queue lets the row go */
  #rowBodies = new WeakMap<UsageRow, HeldBodies>()

  constructor(readonly options: LogExportOptions) {
    this.#destinations = options.destinations.map((spec) => new Destination(spec))
    this.#timer = setInterval(() => this.#tick(), timerMs(options.intervalMs))
    this.#timer.unref()
  }

  /** Whether bodies are wanted (the request log writer hands them over only then). */
  get wantsBodies() {
    return this.options.bodies
  }

  /** The meter's committed rows (usage_meter.ts): a reference per row and destination, nothing copied. */
  take(rows: readonly UsageRow[]) {
    if (this.#closed) return
    const attached = this.#pendingBodies.size > 0 && this.#attachBodies(rows)
    const max = this.options.maxQueued
    let full = false
    for (const destination of this.#destinations) {
      const queue = destination.queue
      for (const row of rows) {
        if (queue.length < max) {
          queue.push(row)
          if (attached) this.#holdBodies(row)
        } else destination.dropped++
      }
      if (queue.length >= this.options.batchSize && destination.sending === null) full = true
    }
    // Bodies of rows every queue dropped: freed now.
    if (attached) for (const row of rows) this.#releaseBodies(row, 0)
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
        let body: string
        try {
          const items = rows.map((row) => exportItem(row, this.options.names, this.#rowBodies.get(row)?.bodies ?? null))
          body = destination.spec.encode(items)
        } finally {
          // Encoded (or not encodable): this destination needs the bodies no more.
          if (this.options.bodies) for (const row of rows) this.#releaseBodies(row, 1)
        }
        await this.#post(destination, body, Math.min(this.options.timeoutMs, left))
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
        // The send under way ends by its own timeout, or is aborted when the grace is over.
        if (destination.sending) await Promise.race([destination.sending, sleep(Math.max(0, deadline - Date.now()))])
        if (destination.sending === null && destination.queue.length > 0) await this.#start(destination, deadline)
      })
    )
    this.#closed = true
    // A POST still under way (a collector that hangs) would hold its socket, and the process, until its
    // own timeout, past the grace: it is given up on now, its rows counted failed.
    this.#shutdown.abort()
    for (const destination of this.#destinations) {
      destination.dropped += destination.queue.length
      destination.queue = []
    }
    this.#pendingBodies.clear()
    this.#rowBodies = new WeakMap()
    this.#heldBodyBytes = 0
    this.#pendingBodyBytes = 0
  }

  /** Characters of bodies held now, waiting for their row or of queued rows (tests; at most maxBodyBytes). */
  get heldBodyBytes() {
    return this.#heldBodyBytes
  }
}

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
