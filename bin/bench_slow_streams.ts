/*
|--------------------------------------------------------------------------
| Benchmark: many concurrent slow streams
|--------------------------------------------------------------------------
|
| What coding agents and chat apps do to a gateway: thousands of streams open
| at once, each delivering a chunk every second for tens of seconds. The mock
| upstream (started with `--stamp`) writes its send time into every chunk's
| text (`~sent=<ms>~`, the machine's monotonic clock in ms, so it survives a
| translation to another wire format); the client here reads it on arrival, so
| each chunk's delivery delay is measured end to end without any guesswork
| about when the upstream meant to send it. Used by bin/bench_main.ts.
*/
import http from 'node:http'
import { readFileSync } from 'node:fs'

export interface SlowStreamOptions {
  url: string
  headers: Record<string, string>
  body: string
  /** Concurrent streams to open */
  streams: number
  /** Streams are opened evenly over this many ms (a burst of thousands of connects at once would only measure the accept backlog) */
  rampMs: number
  /** Every stream still open after this long is cut and counted as incomplete */
  timeoutMs: number
  /** Processes whose resident memory is sampled during the run */
  watchPids: Record<string, number>
  /** What a complete stream ends with: `[DONE]` (OpenAI), `message_stop` (Anthropic) */
  endMarker?: string
}

export interface Percentiles {
  n: number
  p50: number
  p90: number
  p99: number
  max: number
}

export interface SlowStreamResult {
  streams: number
  /** Streams that answered 200 and ended with the end marker (`[DONE]`) */
  completed: number
  /** Streams that answered something else, failed, or were cut at the timeout */
  incomplete: number
  /** Status codes and errors of the incomplete ones */
  failures: Record<string, number>
  /** From the first request sent to the last stream finished (ms) */
  wallMs: number
  /** Duration of each complete stream (ms) */
  streamMs: Percentiles
  /** Time to the first body byte of each stream (ms) */
  firstByteMs: Percentiles
  /** Arrival time minus the mock's send time, per chunk (ms) */
  chunkDelayMs: Percentiles
  /** Chunks that arrived without a stamp (the path rewrote them) */
  unstampedStreams: number
  /** Peak and last resident memory per watched process (MB), sampled every 100 ms */
  rssPeakMb: Record<string, number>
  rssStartMb: Record<string, number>
}

/** Resident set size of a process in MB (0 when it is gone). */
export function rssMb(pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8')
    const match = status.match(/VmRSS:\s+(\d+) kB/)
    return match ? Math.round(Number(match[1]) / 1024) : 0
  } catch {
    return 0
  }
}

export function percentiles(values: ArrayLike<number>): Percentiles {
  const sorted = Float64Array.from(values).sort()
  const at = (p: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)] : NaN)
  return { n: sorted.length, p50: at(0.5), p90: at(0.9), p99: at(0.99), max: sorted.length ? sorted[sorted.length - 1] : NaN }
}

const STAMP = '~sent='
/** The monotonic clock in ms: the one the mock stamps chunks with, the same in every process */
export const now = () => Number(process.hrtime.bigint()) / 1e6

/** Growable list of doubles without an object per sample. */
export class Samples {
  #data = new Float64Array(1 << 16)
  length = 0
  push(value: number) {
    if (this.length === this.#data.length) {
      const bigger = new Float64Array(this.#data.length * 2)
      bigger.set(this.#data)
      this.#data = bigger
    }
    this.#data[this.length++] = value
  }
  view() {
    return this.#data.subarray(0, this.length)
  }
}

export interface StreamOutcome {
  /** Why the stream is incomplete, or null when it answered 200 and ended with the end marker */
  failure: string | null
  firstByteMs: number | null
  durationMs: number
  endedAt: number
  /** Send stamps seen */
  stamps: number
}

/**
 * One streaming request read to the end: each stamped chunk's delay goes to
 * `onDelay`. The request sits in `open` while it runs (to be cut from outside).
 */
export function streamOnce(
  agent: http.Agent,
  url: URL,
  headers: Record<string, string>,
  payload: Buffer,
  open: Set<http.ClientRequest>,
  onDelay: (ms: number) => void,
  endMarker = '[DONE]'
): Promise<StreamOutcome> {
  return new Promise((resolve) => {
    const started = now()
    let firstByteMs: number | null = null
    let stamps = 0
    let settled = false
    const settle = (failure: string | null) => {
      if (settled) return
      settled = true
      open.delete(req)
      const endedAt = now()
      resolve({ failure, firstByteMs, durationMs: endedAt - started, endedAt, stamps })
    }
    const req = http.request(
      {
        agent,
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method: 'POST',
        headers: { ...headers, 'content-length': String(payload.length) },
      },
      (res) => {
        if (res.statusCode !== 200) {
          res.resume()
          res.on('end', () => settle(`HTTP ${res.statusCode}`))
          res.on('error', () => settle(`HTTP ${res.statusCode}`))
          return
        }
        res.setEncoding('utf8')
        let tail = ''
        let done = false
        res.on('data', (text: string) => {
          const arrived = now()
          firstByteMs ??= arrived - started
          // A stamp may be split across two reads: keep the unfinished end.
          const chunk = tail + text
          let at = chunk.indexOf(STAMP)
          let consumed = 0
          while (at >= 0) {
            const end = chunk.indexOf('~', at + STAMP.length)
            if (end < 0) break
            onDelay(arrived - Number.parseFloat(chunk.slice(at + STAMP.length, end)))
            stamps++
            consumed = end
            at = chunk.indexOf(STAMP, end)
          }
          if (chunk.includes(endMarker)) done = true
          tail = chunk.slice(Math.max(consumed, chunk.length - 64))
        })
        res.on('end', () => settle(done ? null : `ended without ${endMarker}`))
        res.on('error', (error) => settle((error as NodeJS.ErrnoException).code ?? 'response error'))
        res.on('aborted', () => settle('aborted'))
      }
    )
    open.add(req)
    req.on('error', (error) => settle((error as NodeJS.ErrnoException).code ?? error.message))
    req.end(payload)
  })
}

/**
 * Opens `streams` streaming requests (ramped over `rampMs`), reads them all to
 * the end in parallel and reports completion, delays and memory. Bounded by
 * `timeoutMs`: whatever is still open then is destroyed.
 */
export async function runSlowStreams(options: SlowStreamOptions): Promise<SlowStreamResult> {
  const url = new URL(options.url)
  const payload = Buffer.from(options.body)
  // One socket per stream, no pooling limit, nothing kept alive afterwards.
  const agent = new http.Agent({ keepAlive: false, maxSockets: Number.POSITIVE_INFINITY })
  const delays = new Samples()
  const durations: number[] = []
  const firstBytes: number[] = []
  const failures: Record<string, number> = {}
  let completed = 0
  let unstamped = 0
  let lastEnd = 0
  const open = new Set<http.ClientRequest>()
  const fail = (why: string) => (failures[why] = (failures[why] ?? 0) + 1)

  const rssStartMb: Record<string, number> = {}
  const rssPeakMb: Record<string, number> = {}
  for (const [name, pid] of Object.entries(options.watchPids)) rssPeakMb[name] = rssStartMb[name] = rssMb(pid)
  const sampler = setInterval(() => {
    for (const [name, pid] of Object.entries(options.watchPids)) rssPeakMb[name] = Math.max(rssPeakMb[name], rssMb(pid))
  }, 100)

  const one = async () => {
    const outcome = await streamOnce(agent, url, options.headers, payload, open, (delay) => delays.push(delay), options.endMarker)
    if (outcome.firstByteMs !== null) firstBytes.push(outcome.firstByteMs)
    if (outcome.failure) {
      fail(outcome.failure)
      return
    }
    if (!outcome.stamps) unstamped++
    completed++
    durations.push(outcome.durationMs)
    lastEnd = Math.max(lastEnd, outcome.endedAt)
  }

  const begun = now()
  const running: Promise<void>[] = []
  const deadline = setTimeout(() => {
    for (const req of open) req.destroy(new Error('cut at the run timeout'))
  }, options.timeoutMs)
  const interval = options.rampMs / options.streams
  for (let i = 0; i < options.streams; i++) {
    const due = begun + i * interval
    const wait = due - now()
    if (wait > 1) await new Promise((r) => setTimeout(r, wait))
    running.push(one())
  }
  await Promise.all(running)
  clearTimeout(deadline)
  clearInterval(sampler)
  agent.destroy()

  const incomplete = options.streams - completed
  return {
    streams: options.streams,
    completed,
    incomplete,
    failures,
    wallMs: (lastEnd || now()) - begun,
    streamMs: percentiles(durations),
    firstByteMs: percentiles(firstBytes),
    chunkDelayMs: percentiles(delays.view()),
    unstampedStreams: unstamped,
    rssPeakMb,
    rssStartMb,
  }
}
