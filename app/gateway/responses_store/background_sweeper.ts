import { randomUUID } from 'node:crypto'
import db from '@adonisjs/lucid/services/db'

export interface SweeperOptions {
  /** This instance's id: process-unique, written on the rows of the background runs it runs itself */
  instanceId: string
  /** Between two heartbeats, ms (default 10 s) */
  beatMs?: number
  /** A heartbeat older than this is an instance gone, ms (default 60 s: five beats missed) */
  staleMs?: number
  /** Between two sweeps, ms (default 60 s; one also at start) */
  sweepMs?: number
  log: (message: string) => void
  /** More of the same sweep, given how old a heartbeat is a dead instance's (ms): WebRTC calls it left running */
  alsoSweep?: (staleMs: number) => Promise<unknown>
}

/** What a swept response says on GET (OpenAI's error object of a failed response) */
export const INSTANCE_GONE_ERROR = {
  code: 'server_error',
  message: 'The gateway instance running this background response stopped before it ended; create it again',
}

/**
 * Rows written before instances were named (migration 1043) have no instance:
 * an old instance of a rolling upgrade may still run them, so they are failed
 * only once older than any run goes on (a day).
 */
const UNNAMED_AFTER_MS = 24 * 3_600_000
/** Heartbeat rows of instances gone this long are deleted (their rows were swept long before) */
const FORGET_AFTER_MS = 24 * 3_600_000

/** A process-unique instance id */
export function newInstanceId(): string {
  return randomUUID()
}

/**
 * Background responses run by an instance that died (killed, OOM, a crash:
 * not stopped, which stores them failed itself). A run lives in the memory
 * of its instance only, so nothing else would ever end its row.
 *
 * A heartbeat row per instance (`gateway_instances`, migration 1043), its
 * `seen_at` set by the database's clock every `beatMs`; every `sweepMs` (and
 * at start) any instance marks failed, in one UPDATE, the unfinished
 * background rows of instances whose heartbeat is older than `staleMs` or
 * gone. A heartbeat row rather than an advisory lock held on a session: it
 * needs no connection kept for the process's life (a pooler in transaction
 * mode, a listener reconnect), and a host that vanished frees nothing until
 * TCP keepalive gives up on its session, while a row goes stale on time.
 * The price: an instance cut from the database longer than `staleMs` looks
 * dead; its runs' rows are marked failed, and each run's own end (the store's
 * upsert rewrites background rows) puts back how it really ended. Its own
 * rows are never swept by itself.
 *
 * Nothing is billed here: the dead instance's holds and the usage its runs
 * streamed were in its memory (the meter writes a request's usage when its
 * account closes, at the run's end), and no count of them is left to bill.
 * A run whose end was metered has a terminal status unless its row's last
 * write was lost too; the sweep writes no usage row and no ledger entry, so
 * it never charges anything twice.
 */
export class BackgroundSweeper {
  #timer: NodeJS.Timeout | null = null
  #ticks = 0
  #work: Promise<unknown> = Promise.resolve()
  #stopped = false

  constructor(readonly options: SweeperOptions) {}

  get #beatMs() {
    return this.options.beatMs ?? 10_000
  }

  /** The heartbeat written, then a first sweep (an instance dead for a while, none running meanwhile: its rows end at once). */
  async start() {
    await this.beat()
    await this.sweep().catch((error) => this.options.log(`background sweep failed: ${reason(error)}`))
    const sweepEvery = Math.max(1, Math.round((this.options.sweepMs ?? 60_000) / this.#beatMs))
    this.#timer = setInterval(() => {
      if (this.#stopped) return
      const sweep = ++this.#ticks % sweepEvery === 0
      this.#work = this.beat()
        .then(() => (sweep ? this.sweep() : 0))
        .catch((error) => this.options.log(`background heartbeat or sweep failed: ${reason(error)}`))
    }, this.#beatMs)
    this.#timer.unref()
  }

  /** This instance is alive (an upsert: a row another instance deleted, thinking it gone, comes back). */
  async beat() {
    await db.rawQuery(
      `INSERT INTO gateway_instances (id) VALUES (?) ON CONFLICT (id) DO UPDATE SET seen_at = now()`,
      [this.options.instanceId]
    )
  }

  /**
   * Marks failed the unfinished background rows no live instance runs; how
   * many. One statement on the partial index `stored_responses_unfinished`;
   * a row ending meanwhile (its terminal status written first) is left alone.
   */
  async sweep(): Promise<number> {
    const result = await db.rawQuery(
      `WITH swept AS (
         UPDATE stored_responses s SET status = 'failed', error = ?::jsonb
          WHERE s.background AND s.status IN ('queued', 'in_progress') AND s.kind = 'gateway'
            AND s.instance_id IS DISTINCT FROM ?
            AND CASE WHEN s.instance_id IS NULL THEN s.created_at < now() - make_interval(secs => ?)
                     ELSE NOT EXISTS (SELECT 1 FROM gateway_instances i
                                       WHERE i.id = s.instance_id AND i.seen_at > now() - make_interval(secs => ?)) END
          RETURNING s.id
       ), forgotten AS (
         DELETE FROM gateway_instances WHERE seen_at < now() - make_interval(secs => ?) AND id <> ?
       )
       SELECT count(*)::int AS n FROM swept`,
      [
        JSON.stringify(INSTANCE_GONE_ERROR),
        this.options.instanceId,
        UNNAMED_AFTER_MS / 1000,
        (this.options.staleMs ?? 60_000) / 1000,
        FORGET_AFTER_MS / 1000,
        this.options.instanceId,
      ]
    )
    const n = Number(result.rows[0]?.n ?? 0)
    if (n > 0) this.options.log(`background responses: ${n} left unfinished by a gateway instance that stopped were marked failed`)
    await this.options.alsoSweep?.(this.options.staleMs ?? 60_000)
    return n
  }

  /**
   * Shutdown, after the store's last flush (the runs cut by the stop stored
   * failed): the heartbeat row goes, so a row that flush lost is swept by the next
   * sweep of another instance (or of this one's restart).
   */
  async stop() {
    this.#stopped = true
    if (this.#timer) clearInterval(this.#timer)
    this.#timer = null
    await this.#work
    await db
      .rawQuery('DELETE FROM gateway_instances WHERE id = ?', [this.options.instanceId])
      .catch((error) => this.options.log(`could not remove this instance's heartbeat: ${reason(error)}`))
  }
}

function reason(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}
