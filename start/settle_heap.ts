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
