/*
| One compacting garbage collection once the gateway has booted.
|
| Booting (1,400 modules, the caches, the first-run checks) grows V8's young
| generation to its maximum and leaves the old generation without a single
| full collection, so V8 has no measure of the live heap: its first limit is
| a guess of several hundred MB. Under a burst of long streams the old
| generation then filled with promoted garbage up to that guess (measured in
| docs/benchmarks.md: 5,000 open streams, old space 146 -> 202 MB with no
| major GC at all), and the young generation never gave its boot-time pages
| back.
|
| A "last resort" collection (V8's memory-reducing full GC, the one it runs
| before an out-of-memory) right after boot shrinks the young generation,
| returns the freed pages, and sets the next limit from the real live heap,
| so later growth triggers collections sized to what the gateway holds. It
| costs one pause of ~160 ms, at boot, before traffic matters.
|
| It also shrinks the young generation to its minimum, and under short calls
| V8 regrows it slowly, scavenging far more often meanwhile (measured: +30-45%
| CPU per streamed request). `npm start` therefore pins the semi-spaces
| (`--min-semi-space-size` = `--max-semi-space-size` = 8 MB, package.json).
|
| V8 offers it only through `gc()`, which exists with --expose-gc. Setting
| that flag at run time makes `gc` available in contexts created afterwards
| (the technique Jest's leak detection uses), so `npm start` needs no flag.
*/
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

type GcFunction = (options?: { type?: 'major' | 'minor'; execution?: 'sync' | 'async'; flavor?: 'regular' | 'last-resort' }) => void

function gcFunction(): GcFunction | null {
  const existing = (globalThis as { gc?: GcFunction }).gc
  if (typeof existing === 'function') return existing
  try {
    setFlagsFromString('--expose-gc')
    const gc = runInNewContext('typeof gc === "function" ? gc : null') as GcFunction | null
    // The flag stays off for anything else that inspects it.
    setFlagsFromString('--no-expose-gc')
    return gc
  } catch {
    return null
  }
}

/** Runs the collection; returns the RSS before and after (MB), or null when V8 would not. */
export function settleHeap(): { beforeMb: number; afterMb: number; ms: number } | null {
  const gc = gcFunction()
  if (!gc) return null
  const beforeMb = Math.round(process.memoryUsage.rss() / 1048576)
  const started = performance.now()
  gc({ type: 'major', execution: 'sync', flavor: 'last-resort' })
  const ms = Math.round(performance.now() - started)
  return { beforeMb, afterMb: Math.round(process.memoryUsage.rss() / 1048576), ms }
}

/*
| The same collection after a long pause in traffic.
|
| V8's memory reducer runs its own memory-reducing collections ~8 s after the
| allocation rate drops, and those throw away optimized code: after every
| pause of a few seconds the next ~2,000 calls ran unoptimized while V8
| re-optimized ~280 functions, at about twice the CPU per call (measured,
| docs/benchmarks.md, ninth pass). `npm start` therefore runs V8 with
| `--no-memory-reducer-favors-memory` (the reducer still collects, but keeps
| code and pages), and this timer returns the memory instead, once the
| gateway has had no request and none in flight for HEAP_IDLE_SETTLE_SECONDS
| (300 by default; 0 turns it off). Short pauses keep the code hot; a long
| idle gives the pages back, one pause of 100-200 ms when nobody is waiting.
*/

export interface IdleSettleOptions {
  /** How long without traffic before settling (ms) */
  idleMs: number
  /** Requests admitted so far: unchanged between two checks means no new traffic */
  activity: () => number
  /** Requests still running (a long stream is traffic too) */
  busy: () => number
  /** The collection; null when V8 would not run it */
  settle: () => { beforeMb: number; afterMb: number; ms: number } | null
  log: (message: string) => void
}

/**
 * Watches for an idle period and settles the heap once per idle period. `check`
 * is driven by a timer (`start`) and, in tests, by hand with the time given.
 */
export class IdleHeapSettler {
  #lastActivity = -1
  #idleSince = 0
  #settled = false
  #timer: NodeJS.Timeout | null = null

  constructor(private options: IdleSettleOptions) {}

  /** The state at start: the heap is settled, and the traffic so far is the baseline. */
  begin(now: number) {
    this.#lastActivity = this.options.activity()
    this.#idleSince = now
    this.#settled = true
  }

  check(now: number) {
    const activity = this.options.activity()
    if (activity !== this.#lastActivity || this.options.busy() > 0) {
      this.#lastActivity = activity
      this.#idleSince = now
      this.#settled = false
      return
    }
    if (this.#settled || now - this.#idleSince < this.options.idleMs) return
    this.#settled = true
    // Runs from a timer: nothing may escape it (an uncaught error would stop the server).
    try {
      const settled = this.options.settle()
      if (settled) this.options.log(`heap settled after ${Math.round((now - this.#idleSince) / 1000)} s without requests: RSS ${settled.beforeMb} -> ${settled.afterMb} MB in ${settled.ms} ms`)
    } catch (error) {
      this.options.log(`heap settle after a pause failed: ${error instanceof Error ? error.message : String(error)}`)
    }
  }

  /**
   * Starts watching, with the heap just settled (at boot): the first settle comes
   * after traffic has come and gone. Checks every tenth of the idle period (at
   * least every second); the timer keeps no process alive.
   */
  start() {
    if (this.options.idleMs <= 0 || this.#timer) return
    this.begin(Date.now())
    this.#timer = setInterval(() => this.check(Date.now()), Math.max(1000, Math.floor(this.options.idleMs / 10)))
    this.#timer.unref()
  }

  stop() {
    if (this.#timer) clearInterval(this.#timer)
    this.#timer = null
  }
}
