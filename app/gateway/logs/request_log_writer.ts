import pg from 'pg'
import type { Logger } from '@adonisjs/core/logger'
import { booleanColumn, textColumn, type ArrayColumn, columnsOf, unnestOf } from '#gateway/metering/pg_array'

/** Which calls keep their bodies: none, those that failed (status >= 400), or all. */
export type BodyLogMode = 'off' | 'errors' | 'all'

export interface RequestLogOptions {
  connectionString: string
  mode: Exclude<BodyLogMode, 'off'>
  /** Each body is cut after this many bytes */
  maxBodyBytes: number
  logger: Logger
  /** Bodies waiting to be written beyond this many bytes are dropped (counted), never held */
  maxQueuedBytes?: number
  flushMs?: number
}

interface Entry {
  request_id: string
  request_body: string
  request_truncated: boolean
  response_body: string | null
  response_truncated: boolean
  created_at: string
}

const COLUMNS: readonly ArrayColumn[] = [
  { name: 'request_id', type: 'uuid', encode: textColumn },
  { name: 'request_body', type: 'text', encode: textColumn },
  { name: 'request_truncated', type: 'boolean', encode: booleanColumn },
  { name: 'response_body', type: 'text', encode: textColumn },
  { name: 'response_truncated', type: 'boolean', encode: booleanColumn },
  { name: 'created_at', type: 'timestamptz', encode: textColumn },
]

const INSERT_SQL = `INSERT INTO request_logs (${COLUMNS.map((c) => c.name).join(', ')})
  SELECT * FROM ${unnestOf(COLUMNS, 'l', 1)}
  ON CONFLICT (request_id) DO NOTHING`

/**
 * Writes request and response bodies behind the answers, in batches, on its
 * own connection: debugging data, kept apart from the meter's transaction
 * (a usage row never waits for a body, and a body lost to an outage or to
 * the memory bound loses no money). Bodies are cut to `maxBodyBytes` when
 * recorded, so what waits is bounded per call and in all.
 */
export class RequestLogWriter {
  #pool: pg.Pool
  #queue: Entry[] = []
  #queuedBytes = 0
  #timer: NodeJS.Timeout | null = null
  #writing: Promise<void> | null = null
  written = 0
  dropped = 0
  /** Log export with LOG_EXPORT_BODIES (log_export/): also handed each call's cut bodies; null otherwise */
  exportBodies: { keepBodies(requestId: string, request: string, response: string | null): void } | null = null

  constructor(readonly options: RequestLogOptions) {
    this.#pool = new pg.Pool({ connectionString: options.connectionString, max: 1, connectionTimeoutMillis: 5000, query_timeout: 30_000 })
    this.#pool.on('error', (error) => options.logger.warn({ err: error }, 'request log pool error'))
  }

  get mode() {
    return this.options.mode
  }

  /** Whether a call that ended so keeps its bodies: all, or those that failed (an error status, or a stream cut short). */
  wants(status: number, errorCode: string | null) {
    return this.options.mode === 'all' || status >= 400 || errorCode !== null
  }

  /** Queues one call's bodies (cut to the limit); drops them when too much already waits. */
  record(requestId: string, createdAt: Date, request: Buffer, response: Buffer | string | null) {
    const max = this.options.maxBodyBytes
    const req = cut(request, max)
    const res = response === null ? null : cut(typeof response === 'string' ? Buffer.from(response) : response, max)
    const bytes = req.text.length + (res?.text.length ?? 0)
    // Held by the exporter until the call's row commits (bounded there), whether or not the table takes them.
    if (this.exportBodies !== null) this.exportBodies.keepBodies(requestId, req.text, res?.text ?? null)
    if (this.#queuedBytes + bytes > (this.options.maxQueuedBytes ?? 32 * 1024 * 1024)) {
      this.dropped++
      return
    }
    this.#queue.push({
      request_id: requestId,
      request_body: req.text,
      request_truncated: req.truncated,
      response_body: res?.text ?? null,
      response_truncated: res?.truncated ?? false,
      created_at: createdAt.toISOString(),
    })
    this.#queuedBytes += bytes
    this.#timer ??= setTimeout(() => this.#flush(), this.options.flushMs ?? 50)
  }

  #flush() {
    this.#timer = null
    this.#writing ??= this.#writeAll().finally(() => (this.#writing = null))
  }

  async #writeAll() {
    while (this.#queue.length > 0) {
      const batch = this.#queue.splice(0, 100)
      let bytes = 0
      for (const entry of batch) bytes += entry.request_body.length + (entry.response_body?.length ?? 0)
      try {
        const values: string[] = []
        columnsOf(COLUMNS, batch as unknown as Record<string, unknown>[], values)
        await this.#pool.query({ name: 'gateway_request_logs', text: INSERT_SQL, values })
        this.written += batch.length
      } catch (error) {
        this.dropped += batch.length
        this.options.logger.warn({ err: error, dropped: batch.length }, 'request bodies could not be written (dropped)')
      } finally {
        this.#queuedBytes -= bytes
      }
    }
  }

  /** Writes what is queued (tests, shutdown). */
  async drain() {
    if (this.#timer) {
      clearTimeout(this.#timer)
      this.#flush()
    }
    while (this.#writing) await this.#writing
  }

  async close() {
    await this.drain()
    await this.#pool.end()
  }
}

/**
 * The first `max` bytes as text, cut on a character boundary (a UTF-8
 * sequence split by the limit is dropped whole, not stored as U+FFFD).
 */
export function cut(bytes: Buffer, max: number): { text: string; truncated: boolean } {
  if (bytes.length <= max) return { text: bytes.toString('utf8'), truncated: false }
  let end = max
  // Step back over continuation bytes (10xxxxxx) to the start of the split character.
  while (end > 0 && (bytes[end] & 0xc0) === 0x80) end--
  return { text: bytes.subarray(0, end).toString('utf8'), truncated: true }
}
