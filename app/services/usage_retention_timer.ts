import { pruneUsage, type PruneOptions, type PruneResult } from '#actions/prune_usage'
import type { Actor } from '#actions/audit'
import type { RetentionSweep } from '#services/retention_sweeps'

/** The audit log's actor of the automatic prune. */
export const RETENTION_ACTOR: Actor = { id: null, label: 'system:retention', source: 'system' }

export interface RetentionTimerOptions {
  /** USAGE_RETENTION_DAYS, read at each run (0: nothing to do) */
  days: () => number
  /** Between the end of a run and the next (default an hour) */
  intervalMs?: number
  /** From start() to the first run (default a minute: the boot's work first) */
  firstDelayMs?: number
  log: (message: string) => void
  /** The prune (tests give their own) */
  prune?: (options: PruneOptions) => Promise<PruneResult>
  /** Rows past their own expiry swept at each run, whatever the usage retention (retention_sweeps.ts; absent: none) */
  sweeps?: readonly RetentionSweep[]
  /** Days marked stale rolled up at each run, whatever the usage retention (usage_rollup.ts rollUpStaleDays; absent: none) */
  rollUpStale?: (signal: AbortSignal) => Promise<number>
}

/**
 * The running server's usage retention: once an hour, in the background,
 * `pruneUsage` with USAGE_RETENTION_DAYS. Started at boot by
 * providers/gateway_provider.ts (web server only, when retention is on),
 * never on a request's path. Several instances may run it: the prune's
 * advisory lock lets one work and the others skip. The timer keeps no process
 * alive; stop() (shutdown) stops a run between two batches and waits for it.
 */
export class UsageRetentionTimer {
  #timer: NodeJS.Timeout | null = null
  #running: Promise<PruneResult | null> | null = null
  #rolling: Promise<void> | null = null
  #abort = new AbortController()
  #stopped = false

  constructor(private options: RetentionTimerOptions) {}

  start() {
    if (this.#timer || this.#stopped) return
    this.#schedule(this.options.firstDelayMs ?? 60_000)
  }

  #schedule(ms: number) {
    this.#timer = setTimeout(() => {
      void this.tick().finally(() => {
        if (!this.#stopped) this.#schedule(this.options.intervalMs ?? 3_600_000)
      })
    }, ms)
    this.#timer.unref()
  }

  /**
   * One run: prunes with the configured days and logs what went. Null when
   * retention is off, a run is going on, or the prune failed (logged: a timer's
   * error must not stop the server; the next run tries again).
   */
  async tick(): Promise<PruneResult | null> {
    for (const sweep of this.options.sweeps ?? []) {
      if (!this.#stopped) await this.#sweep(sweep)
    }
    if (this.options.rollUpStale && !this.#stopped) await this.#rollUpStale(this.options.rollUpStale)
    const keepDays = this.options.days()
    if (keepDays <= 0 || this.#running || this.#stopped) return null
    const prune = this.options.prune ?? pruneUsage
    this.#running = (async () => {
      const started = Date.now()
      try {
        const result = await prune({ keepDays, actor: RETENTION_ACTOR, signal: this.#abort.signal, pauseMs: 20 })
        if (result.skipped) {
          this.options.log('usage retention: another process is pruning; this one skips this hour')
        } else if (result.rows || result.attempts) {
          this.options.log(
            `usage retention (${keepDays} days): ${result.rows} usage rows and ${result.attempts} attempts before ` +
              `${result.oldestKept} deleted in ${Date.now() - started} ms (${result.batches} batches` +
              `${result.rolledUp ? `, ${result.rolledUp} days rolled up first` : ''})${result.stopped ? ', stopped by shutdown' : ''}`
          )
        }
        return result
      } catch (error) {
        this.options.log(`usage retention failed: ${error instanceof Error ? error.message : String(error)}`)
        return null
      }
    })()
    try {
      return await this.#running
    } finally {
      this.#running = null
    }
  }

  async #sweep(sweep: RetentionSweep) {
    try {
      const said = await sweep.run()
      if (said !== null) this.options.log(said)
    } catch (error) {
      this.options.log(`${sweep.name} failed: ${error instanceof Error ? error.message : String(error)}`)
    }
  }

  /** Stale days rolled up (after an upgrade, a whole history: in the background, not in a reader's request). */
  async #rollUpStale(rollUp: (signal: AbortSignal) => Promise<number>) {
    this.#rolling = (async () => {
      try {
        const rolled = await rollUp(this.#abort.signal)
        if (rolled > 0) this.options.log(`usage rollups: ${rolled} days marked stale rolled up again`)
      } catch (error) {
        this.options.log(`usage rollups of stale days failed: ${error instanceof Error ? error.message : String(error)}`)
      }
    })()
    await this.#rolling
    this.#rolling = null
  }

  /** No more runs; a run in progress stops after its current batch (or day), and is waited for. */
  async stop() {
    this.#stopped = true
    if (this.#timer) clearTimeout(this.#timer)
    this.#timer = null
    this.#abort.abort()
    await Promise.all([this.#running, this.#rolling])
  }
}
