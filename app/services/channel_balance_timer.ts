import { lastBalanceCheck, updateAllChannelBalances, type BalanceObserver } from '#actions/channel_balance'

/**
 * Channel balances checked in the background every
 * CHANNEL_BALANCE_REFRESH_MINUTES (new-api's automatic balance update; off
 * unless set). Started by providers/gateway_provider.ts on the web server,
 * never on a request's path. Several instances may run it: a run is skipped
 * when another checked within half the interval (the last `checked_at`), so
 * the upstreams are asked about once per interval. The timer keeps no
 * process alive; stop() ends a run under way (its checks cut, not recorded)
 * and waits for it to wind up.
 */
export class ChannelBalanceTimer {
  #timer: NodeJS.Timeout | null = null
  #running: Promise<void> | null = null
  #stopped = false
  /** Ends a run under way at stop(): a hanging upstream held the shutdown for the run's time (up to 110 s) */
  #stop = new AbortController()

  constructor(
    private options: {
      intervalMs: number
      /** From start() to the first run (default a minute: the boot's work first) */
      firstDelayMs?: number
      observe?: BalanceObserver
      log: (message: string) => void
    }
  ) {}

  start() {
    if (this.#timer || this.#stopped) return
    this.#schedule(this.options.firstDelayMs ?? 60_000)
  }

  #schedule(ms: number) {
    this.#timer = setTimeout(() => {
      this.#running = this.tick().finally(() => {
        this.#running = null
        if (!this.#stopped) this.#schedule(this.options.intervalMs)
      })
    }, ms)
    this.#timer.unref()
  }

  /** One run (a failure is logged: a timer's error must not stop the server; the next run tries again). */
  async tick(): Promise<void> {
    try {
      const last = await lastBalanceCheck()
      if (last && Date.now() - last.getTime() < this.options.intervalMs / 2) return
      const { checks, skipped } = await updateAllChannelBalances({ observe: this.options.observe, signal: this.#stop.signal })
      const failed = checks.filter((check) => !check.ok)
      if (failed.length || skipped) {
        const names = failed.map((check) => `${check.name}: ${check.error}`).join('; ')
        this.options.log(`channel balances: ${failed.length} of ${checks.length} checks failed${skipped ? `, ${skipped} not reached in time` : ''}${names ? ` (${names})` : ''}`)
      }
    } catch (error) {
      this.options.log(`channel balances: the check failed: ${error instanceof Error ? error.message : String(error)}`)
    }
  }

  async stop() {
    this.#stopped = true
    this.#stop.abort()
    if (this.#timer) clearTimeout(this.#timer)
    await this.#running
  }
}
