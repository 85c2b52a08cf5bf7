/*
|--------------------------------------------------------------------------
| Benchmark: soak (mixed slow streams and short calls for minutes)
|--------------------------------------------------------------------------
|
| `npm run soak` (BENCH_SOAK_SECONDS, default 600). A fixed number of stream
| workers each keep one slow stream open at all times (the slow mock's 40
| chunks, 1 s apart, stamped), and a few short-call workers send non-stream
| calls back to back at a bounded rate. Every minute the figures of that
| minute are kept: short-call latency p50/p99, chunk delay p50/p99, the
| gateway's RSS (max and last), requests done and failures. Memory and
| latency should be flat from minute 2 on. Used by bin/bench_main.ts.
*/
import http from 'node:http'
import { now, percentiles, rssMb, Samples, streamOnce, type Percentiles } from './bench_slow_streams.js'

export interface SoakOptions {
  seconds: number
  /** Streams held open at all times */
  streamWorkers: number
  streamUrl: string
  streamBody: string
  /** Short-call workers and the pause each takes between two calls (ms) */
  shortWorkers: number
  shortPauseMs: number
  shortUrl: string
  /** The mock called directly by one more short-call worker: the machine's own noise, minute by minute */
  directUrl: string
  shortBody: string
  headers: Record<string, string>
  gatewayPid: number
  log: (line: string) => void
}

export interface SoakMinute {
  minute: number
  shortCalls: number
  shortMs: Percentiles
  /** The same calls to the mock directly, in the same minute */
  directMs: Percentiles
  streamsDone: number
  chunkDelayMs: Percentiles
  rssMaxMb: number
  rssLastMb: number
  failures: number
}

export interface SoakResult {
  minutes: SoakMinute[]
  streamsStarted: number
  streamsCompleted: number
  shortCalls: number
  /** Short calls answered 200 */
  shortOk: number
  failures: Record<string, number>
  /** Last minute against minute 2 */
  drift: { rssMb: number; shortP50Ms: number; shortP99Ms: number; directP50Ms: number; chunkP99Ms: number }
}

function shortCall(agent: http.Agent, url: URL, headers: Record<string, string>, payload: Buffer): Promise<{ ms: number; failure: string | null }> {
  return new Promise((resolve) => {
    const started = now()
    const req = http.request(
      { agent, host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers: { ...headers, 'content-length': String(payload.length) } },
      (res) => {
        res.resume()
        res.on('end', () => resolve({ ms: now() - started, failure: res.statusCode === 200 ? null : `HTTP ${res.statusCode}` }))
        res.on('error', (error) => resolve({ ms: now() - started, failure: (error as NodeJS.ErrnoException).code ?? 'error' }))
      }
    )
    req.setTimeout(30_000, () => req.destroy(new Error('short call timed out')))
    req.on('error', (error) => resolve({ ms: now() - started, failure: (error as NodeJS.ErrnoException).code ?? error.message }))
    req.end(payload)
  })
}

export async function runSoak(options: SoakOptions): Promise<SoakResult> {
  const streamUrl = new URL(options.streamUrl)
  const shortUrl = new URL(options.shortUrl)
  const streamPayload = Buffer.from(options.streamBody)
  const shortPayload = Buffer.from(options.shortBody)
  const streamAgent = new http.Agent({ keepAlive: false, maxSockets: Number.POSITIVE_INFINITY })
  const shortAgent = new http.Agent({ keepAlive: true, maxSockets: options.shortWorkers })
  const open = new Set<http.ClientRequest>()
  const failures: Record<string, number> = {}
  const minutes: SoakMinute[] = []
  let streamsStarted = 0
  let streamsCompleted = 0
  let shortCalls = 0
  let shortOk = 0

  // The current minute's figures
  let shortMs = new Samples()
  let directMs = new Samples()
  let delays = new Samples()
  let streamsDone = 0
  let calls = 0
  let failed = 0
  let rssMax = 0
  const fail = (why: string) => {
    failures[why] = (failures[why] ?? 0) + 1
    failed++
  }

  const begun = Date.now()
  const endAt = begun + options.seconds * 1000
  const running = () => Date.now() < endAt

  const sampler = setInterval(() => (rssMax = Math.max(rssMax, rssMb(options.gatewayPid))), 1000)
  const closeMinute = () => {
    const rssLast = rssMb(options.gatewayPid)
    const minute: SoakMinute = {
      minute: minutes.length + 1,
      shortCalls: calls,
      shortMs: percentiles(shortMs.view()),
      directMs: percentiles(directMs.view()),
      streamsDone,
      chunkDelayMs: percentiles(delays.view()),
      rssMaxMb: Math.max(rssMax, rssLast),
      rssLastMb: rssLast,
      failures: failed,
    }
    minutes.push(minute)
    // The last minute is the drain: short calls have stopped, the last streams finish.
    const shortCalls =
      calls === 0
        ? 'no short calls (the streams draining); '
        : `${calls} short calls p50 ${minute.shortMs.p50.toFixed(2)} / p99 ${minute.shortMs.p99.toFixed(2)} ms ` +
          `(direct ${minute.directMs.p50.toFixed(2)} / ${minute.directMs.p99.toFixed(2)} ms); `
    options.log(
      `soak minute ${minute.minute}: ${shortCalls}` +
        `${streamsDone} streams done, chunk delay p50 ${minute.chunkDelayMs.p50.toFixed(2)} / p99 ${minute.chunkDelayMs.p99.toFixed(2)} ms; ` +
        `RSS max ${minute.rssMaxMb} MB, last ${rssLast} MB; failures ${failed}`
    )
    shortMs = new Samples()
    directMs = new Samples()
    delays = new Samples()
    streamsDone = calls = failed = rssMax = 0
  }
  const ticker = setInterval(closeMinute, 60_000)

  const streamWorker = async (index: number) => {
    // Spread the workers' starts over the stream's first seconds so they don't all end together.
    await new Promise((r) => setTimeout(r, (index * 40_000) / options.streamWorkers))
    while (running()) {
      streamsStarted++
      const outcome = await streamOnce(streamAgent, streamUrl, options.headers, streamPayload, open, (d) => delays.push(d))
      if (outcome.failure) fail(outcome.failure)
      else {
        streamsCompleted++
        streamsDone++
      }
    }
  }
  const directAgent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  const directUrl = new URL(options.directUrl)
  const directWorker = async () => {
    while (running()) {
      const { ms, failure } = await shortCall(directAgent, directUrl, options.headers, shortPayload)
      if (!failure) directMs.push(ms)
      await new Promise((r) => setTimeout(r, options.shortPauseMs))
    }
  }
  const shortWorker = async () => {
    while (running()) {
      const { ms, failure } = await shortCall(shortAgent, shortUrl, options.headers, shortPayload)
      shortCalls++
      calls++
      if (failure) fail(failure)
      else {
        shortOk++
        shortMs.push(ms)
      }
      await new Promise((r) => setTimeout(r, options.shortPauseMs))
    }
  }

  // Bounded: streams still open 60 s after the end are cut.
  const cut = setTimeout(() => {
    for (const req of open) req.destroy(new Error('cut after the soak'))
  }, options.seconds * 1000 + 60_000)
  await Promise.all([
    ...Array.from({ length: options.streamWorkers }, (_, i) => streamWorker(i)),
    ...Array.from({ length: options.shortWorkers }, () => shortWorker()),
    directWorker(),
  ])
  clearTimeout(cut)
  clearInterval(ticker)
  clearInterval(sampler)
  if (calls || streamsDone) closeMinute()
  streamAgent.destroy()
  shortAgent.destroy()
  directAgent.destroy()

  // Whole minutes only: the last, partial one (the tail of the streams) is not compared.
  const full = minutes.slice(0, Math.floor(options.seconds / 60))
  const second = full[1] ?? full[0]
  const last = full[full.length - 1]
  return {
    minutes,
    streamsStarted,
    streamsCompleted,
    shortCalls,
    shortOk,
    failures,
    drift: {
      rssMb: last.rssLastMb - second.rssLastMb,
      shortP50Ms: last.shortMs.p50 - second.shortMs.p50,
      shortP99Ms: last.shortMs.p99 - second.shortMs.p99,
      directP50Ms: last.directMs.p50 - second.directMs.p50,
      chunkP99Ms: last.chunkDelayMs.p99 - second.chunkDelayMs.p99,
    },
  }
}
