/*
|--------------------------------------------------------------------------
| Benchmark: the gateway against calling the mock upstream directly
|--------------------------------------------------------------------------
|
| `npm run bench` (docs/benchmarks.md explains the figures). Everything runs
| on 127.0.0.1 and is bounded in time:
|
| 1. a throwaway DATA_DIR and free ports; the mock upstream and the gateway
|    (`bin/start.js`, NODE_ENV=production) as child processes; the gateway
|    starts the embedded Postgres, then ace commands provision a plan, a user,
|    a channel to the mock, a price (so metering is priced), a top-up and a key;
| 2. autocannon: non-stream at c=50 and c=1, stream at c=50, direct vs gateway;
| 3. sequential requests with a high-resolution clock: latency of a
|    non-stream call and time to the first body byte of a stream;
| 4. during each autocannon run, the CPU time of every process (client, mock,
|    gateway, Postgres) per request, from /proc: a figure that holds on a
|    busy machine where req/s do not;
| 5. slow streams (bin/bench_slow_streams.ts): thousands of concurrent
|    streams, a chunk a second, against each target: completion, wall time,
|    peak RSS, per-chunk delivery delay;
| 6. accounting, exact: usage rows = requests the gateway forwarded (counted
|    by the mock), ledger sum = balance, charges = usage cost;
| 7. a table on stdout, JSON to BENCH_OUT when set.
|
| Portkey's open-source gateway joins as a third target when it is installed
| (docs/benchmarks.md says how); otherwise it is skipped.
|
| Only the processes started here are stopped (by their PID), and the data
| directory is removed at exit unless it was given or BENCH_KEEP=1.
|
| Environment (all optional):
|   BENCH_SECONDS          duration of each c=50 run (default 10)
|   BENCH_C1_SECONDS       duration of each c=1 run (default BENCH_SECONDS/2)
|   BENCH_CONNECTIONS      connections of the concurrent runs (default 50)
|   BENCH_WARMUP_SECONDS   unrecorded warm-up per target (default 3)
|   BENCH_SEQ_N            sequential non-stream calls per target (default 1000)
|   BENCH_TTFB_N           sequential stream calls per target (default 200)
|   BENCH_TIMEOUT_SECONDS  hard limit for the whole run (default 900)
|   BENCH_OUT              write the results as JSON to this file
|   BENCH_DATA_DIR         data directory to use (kept) instead of a fresh one
|   BENCH_PORT, BENCH_MOCK_PORT, BENCH_PG_PORT   fixed ports instead of free ones
|   BENCH_KEEP=1           keep the throwaway data directory
|   BENCH_CPU_PROF=1       run the gateway with --cpu-prof (tmp/bench-prof) and
|                          print its self time by area and function per run
|                          (the runs' time windows on the profile's clock: windows.json there)
|   BENCH_PORTKEY=0        skip the optional Portkey gateway comparison
|   BENCH_TRANSLATED=1     also load the gateway in Anthropic's format (/v1/messages to the
|                          chat mock: every request, answer and event translated), target `gateway-msg`
|   BENCH_BARE=0           skip the bare relay (bin/bare_proxy.js: node:http + undici and nothing
|                          else, the floor the gateway is measured against)
|   BENCH_CHILD_LOG_DIR    also write each child's whole output to <dir>/<name>.log
|   BENCH_GATEWAY_NODE_FLAGS  node flags for the gateway process, after the ones `npm start` sets (e.g. "--trace-gc")
|   BENCH_PORTKEY_DIR      where @portkey-ai/gateway is installed (default tmp/portkey)
|   BENCH_LOG_LEVEL        gateway LOG_LEVEL (default warn)
|   BENCH_SLOW=0           skip the slow-stream run
|   BENCH_ONLY_SLOW=1      run only the slow-stream run (no autocannon or sequential runs)
|   BENCH_SLOW_STREAMS     concurrent slow streams per target (default 2000)
|   BENCH_SLOW_CHUNKS      content chunks per slow stream (default 40)
|   BENCH_SLOW_PROMPT_KB   size of each slow stream's request, as a coding agent's
|                          (a long prompt in 40 parts; default 0: "hello")
|   BENCH_SLOW_CHUNK_DELAY_MS  pause before each chunk (default 1000)
|   BENCH_SLOW_FORMAT=messages  the gateway's slow streams come in Anthropic's
|                          format (Claude Code on a chat provider: every event
|                          translated); the direct run stays chat, as the baseline
|   BENCH_SLOW_RAMP_MS     the streams are opened evenly over this long (default 2000)
|   BENCH_SLOW_TIMEOUT_SECONDS  streams still open then are cut (default 3 x the stream's length)
|   BENCH_SLOW_DIRECT=0    skip the direct slow-stream run (its delays are the baseline)
|   BENCH_SLOW_BARE=1      also hold the slow streams through the bare relay (the memory floor:
|                          node:http + undici and nothing else, one connection per stream)
|   BENCH_SLOW_MOCK_PORT   fixed port of the slow mock upstream
|   BENCH_SOAK=1           soak instead of everything else (`npm run soak`): for
|                          BENCH_SOAK_SECONDS (default 600), BENCH_SOAK_STREAMS
|                          (default 300) slow streams held open at all times and
|                          BENCH_SOAK_SHORT_WORKERS (default 4) short-call loops
|                          pausing BENCH_SOAK_SHORT_PAUSE_MS (default 10) between
|                          calls; figures per minute (bin/bench_soak.ts)
|
| The file descriptor limit (ulimit -n) must exceed 2 x BENCH_SLOW_STREAMS + 100
| for the gateway (a client and an upstream socket per stream): raise it in
| the shell that runs the bench.
*/
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { appendFileSync, chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import { createRequire } from 'node:module'
import net from 'node:net'
import os from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { rssMb, runSlowStreams, type SlowStreamResult } from './bench_slow_streams.js'
import { runSoak, type SoakResult } from './bench_soak.js'

const ROOT = fileURLToPath(new URL('../', import.meta.url))
const require = createRequire(import.meta.url)
const env = process.env

/** The node flags of the start script (`node --flag --flag bin/start.js`; bench_ab.js reads them the same way). */
function npmStartNodeFlags(): string[] {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'))
  const match = /\bnode((?:\s+--\S+)*)\s+bin\/start\.js/.exec(pkg.scripts?.start ?? '')
  return match ? match[1].split(/\s+/).filter(Boolean) : []
}

function numEnv(name: string, fallback: number): number {
  const raw = env[name]
  if (raw === undefined || raw === '') return fallback
  const value = Number(raw)
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number, got "${raw}"`)
  return value
}

/** The bench plan's limits (plan:create flags): checked on every call, never reached. */
const BENCH_PLAN_LIMITS = ['--rpm', '100000000', '--tpm', '2000000000', '--monthly-input-tokens', '1000000000000', '--monthly-output-tokens', '1000000000000']

const SECONDS = numEnv('BENCH_SECONDS', 10)
const C1_SECONDS = numEnv('BENCH_C1_SECONDS', Math.max(2, SECONDS / 2))
const CONNECTIONS = Math.round(numEnv('BENCH_CONNECTIONS', 50))
const WARMUP_SECONDS = numEnv('BENCH_WARMUP_SECONDS', 3)
const SEQ_N = Math.round(numEnv('BENCH_SEQ_N', 1000))
/** Sequential calls per target per turn (recorded), and the unrecorded calls that open each turn */
const SEQ_BLOCK = 20
const SEQ_SETTLE = 2
const TTFB_N = Math.round(numEnv('BENCH_TTFB_N', 200))
const TIMEOUT_SECONDS = numEnv('BENCH_TIMEOUT_SECONDS', 900)
const CPU_PROF = env.BENCH_CPU_PROF === '1'
const PROF_DIR = join(ROOT, 'tmp', 'bench-prof')
const SOAK_SECONDS = env.BENCH_SOAK === '1' ? numEnv('BENCH_SOAK_SECONDS', 600) : 0
const SLOW = env.BENCH_SLOW !== '0' && !SOAK_SECONDS
const ONLY_SLOW = env.BENCH_ONLY_SLOW === '1' || SOAK_SECONDS > 0
const SLOW_STREAMS = Math.round(numEnv('BENCH_SLOW_STREAMS', 2000))
const SLOW_CHUNKS = Math.round(numEnv('BENCH_SLOW_CHUNKS', 40))
const SLOW_CHUNK_DELAY_MS = numEnv('BENCH_SLOW_CHUNK_DELAY_MS', 1000)
const SLOW_RAMP_MS = numEnv('BENCH_SLOW_RAMP_MS', 2000)
const SLOW_TIMEOUT_MS = numEnv('BENCH_SLOW_TIMEOUT_SECONDS', (3 * SLOW_CHUNKS * SLOW_CHUNK_DELAY_MS) / 1000) * 1000
const SLOW_PROMPT_KB = numEnv('BENCH_SLOW_PROMPT_KB', 0)
const SLOW_MESSAGES = env.BENCH_SLOW_FORMAT === 'messages'
const SLOW_CHAT_BODY = slowStreamBody(SLOW_PROMPT_KB)
/** What the gateway's slow streams send: chat, or the same prompt as an Anthropic Messages request */
const SLOW_BODY = SLOW_MESSAGES ? JSON.stringify({ ...JSON.parse(SLOW_CHAT_BODY), max_tokens: 4096 }) : SLOW_CHAT_BODY

/**
 * The slow streams' request. With BENCH_SLOW_PROMPT_KB, it has the size of a
 * coding agent's (Claude Code, Codex send 20-200 KB per call) and many parts,
 * as their system prompts, files and tool results make. It stays one message
 * without tools, so the mock answers in text and its prompt_tokens (10 + 2
 * per message) keep the metered-calls check working.
 */
function slowStreamBody(promptKb: number): string {
  if (promptKb <= 0) return JSON.stringify({ model: 'slow-1', stream: true, messages: [{ role: 'user', content: 'hello' }] })
  const words = ['read', 'the', 'file', 'and', 'apply', 'patch', 'to', 'function', 'test', 'result', 'error', 'context']
  const filler = (chars: number, seed: number) => {
    let text = ''
    for (let i = seed; text.length < chars; i++) text += words[(i * 7) % words.length] + ' '
    return text.slice(0, chars)
  }
  const partCount = 40
  const parts = Array.from({ length: partCount }, (_, i) => ({
    type: 'text',
    text: filler(Math.round((promptKb * 1024) / partCount) - 40, i),
    ...(i % 10 === 9 ? { cache_control: { type: 'ephemeral' } } : {}),
  }))
  return JSON.stringify({ model: 'slow-1', stream: true, messages: [{ role: 'user', content: parts }] })
}

const BODY = JSON.stringify({ model: 'bench-1', messages: [{ role: 'user', content: 'hello' }] })
const STREAM_BODY = JSON.stringify({
  model: 'bench-1',
  stream: true,
  messages: [{ role: 'user', content: 'hello' }],
})

/*
|--------------------------------------------------------------------------
| Child processes
|--------------------------------------------------------------------------
*/

interface Managed {
  name: string
  child: ChildProcess
  /** Last output lines (stdout and stderr) */
  lines: string[]
  /** Output lines seen in total */
  lineCount: number
  exited: Promise<number | null>
  exitCode: number | null | undefined
}

const managed: Managed[] = []

function startChild(name: string, args: string[], childEnv: NodeJS.ProcessEnv): Managed {
  const child = spawn(process.execPath, args, { cwd: ROOT, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] })
  const entry: Managed = {
    name,
    child,
    lines: [],
    lineCount: 0,
    exitCode: undefined,
    exited: new Promise((resolveExit) => {
      child.once('exit', (code) => {
        entry.exitCode = code
        resolveExit(code)
      })
      child.once('error', () => {
        entry.exitCode = -1
        resolveExit(-1)
      })
    }),
  }
  // BENCH_CHILD_LOG_DIR: every line of each child's output also goes to <dir>/<name>.log (e.g. with --trace-gc).
  const logFile = env.BENCH_CHILD_LOG_DIR ? join(env.BENCH_CHILD_LOG_DIR, `${name}.log`) : null
  const collect = (chunk: Buffer) => {
    if (logFile) appendFileSync(logFile, chunk)
    for (const line of chunk.toString('utf8').split('\n')) {
      if (!line.trim()) continue
      entry.lineCount++
      entry.lines.push(line)
      if (entry.lines.length > 200) entry.lines.shift()
    }
  }
  child.stdout!.on('data', collect)
  child.stderr!.on('data', collect)
  managed.push(entry)
  return entry
}

/** SIGTERM, then SIGKILL after `graceMs`: only this child, by its PID. */
async function stopChild(entry: Managed, graceMs: number) {
  if (entry.exitCode !== undefined || entry.child.pid === undefined) return
  entry.child.kill('SIGTERM')
  const timer = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), graceMs))
  if ((await Promise.race([entry.exited, timer])) === 'timeout') {
    console.error(`[bench] ${entry.name} (pid ${entry.child.pid}) did not stop in ${graceMs} ms: SIGKILL`)
    entry.child.kill('SIGKILL')
    await entry.exited
  }
}

function describeExit(entry: Managed) {
  return `${entry.name} exited (code ${entry.exitCode}). Last output:\n${entry.lines.slice(-40).join('\n')}`
}

function runNode(args: string[], childEnv: NodeJS.ProcessEnv, timeoutMs = 120_000): Promise<string> {
  return new Promise((resolveRun, reject) => {
    execFile(
      process.execPath,
      args,
      { cwd: ROOT, env: childEnv, timeout: timeoutMs, maxBuffer: 4 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error) {
          reject(new Error(`node ${args.join(' ')} failed: ${error.message}\n${stdout}\n${stderr}`))
        } else {
          resolveRun(stripAnsi(stdout))
        }
      }
    )
  })
}

const stripAnsi = (text: string) => text.replace(/\u001b\[[0-9;]*m/g, '')

function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = net.createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolvePort(port))
    })
  })
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** pid of a live postmaster on this data directory, or null */
function livePostmaster(dataDir: string): number | null {
  const file = join(dataDir, 'postgres', 'postmaster.pid')
  if (!existsSync(file)) return null
  const pid = Number(readFileSync(file, 'utf8').split('\n')[0])
  if (!pid) return null
  try {
    process.kill(pid, 0)
    return pid
  } catch {
    return null
  }
}

/*
|--------------------------------------------------------------------------
| CPU accounting (Linux /proc): CPU time per request of each process, a
| figure that holds on a busy machine where req/s do not
|--------------------------------------------------------------------------
*/

const CLK_TCK = 100

/** user + system CPU ms of a process (all its threads), or 0 when unknown */
function procCpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLK_TCK
  } catch {
    return 0
  }
}

/** Last CPU ms seen of each Postgres process: a backend that exits keeps its share */
const postgresSeen = new Map<number, number>()

/** The postmaster and its backends (cumulative over the processes seen so far) */
function postgresCpuMs(): number {
  const postmaster = dataDir ? livePostmaster(dataDir) : null
  if (postmaster) {
    const see = (pid: number) => postgresSeen.set(pid, Math.max(postgresSeen.get(pid) ?? 0, procCpuMs(pid)))
    see(postmaster)
    for (const name of existsSync('/proc') ? readdirSync('/proc') : []) {
      if (!/^\d+$/.test(name)) continue
      try {
        const stat = readFileSync(`/proc/${name}/stat`, 'utf8')
        const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
        if (ppid === postmaster) see(Number(name))
      } catch {}
    }
  }
  let total = 0
  for (const ms of postgresSeen.values()) total += ms
  return total
}

type CpuSnapshot = Record<string, number>

function cpuSnapshot(): CpuSnapshot {
  const usage = process.cpuUsage()
  const snapshot: CpuSnapshot = { bench: (usage.user + usage.system) / 1000 }
  for (const entry of managed) {
    if (entry.child.pid && entry.exitCode === undefined) snapshot[entry.name] = procCpuMs(entry.child.pid)
  }
  snapshot.postgres = postgresCpuMs()
  return snapshot
}

/** µs of CPU per request of each process between two snapshots */
function cpuPerRequest(before: CpuSnapshot, after: CpuSnapshot, requests: number): Record<string, number> {
  const out: Record<string, number> = {}
  for (const name of Object.keys(after)) {
    out[name] = requests ? Math.round((((after[name] ?? 0) - (before[name] ?? 0)) * 1000) / requests) : 0
  }
  return out
}

/*
|--------------------------------------------------------------------------
| HTTP helpers
|--------------------------------------------------------------------------
*/

interface Timed {
  status: number
  /** ms from sending the request to the first body byte */
  ttfb: number
  /** ms from sending the request to the end of the response */
  total: number
}

function timedRequest(agent: http.Agent, url: URL, body: string, headers: Record<string, string>): Promise<Timed> {
  return new Promise((resolveReq, reject) => {
    const payload = Buffer.from(body)
    const started = performance.now()
    let ttfb = -1
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
        res.on('data', () => {
          if (ttfb < 0) ttfb = performance.now() - started
        })
        res.on('end', () => resolveReq({ status: res.statusCode ?? 0, ttfb, total: performance.now() - started }))
        res.on('error', reject)
      }
    )
    req.setTimeout(10_000, () => req.destroy(new Error('request timed out')))
    req.on('error', reject)
    req.end(payload)
  })
}

async function getJson(url: string): Promise<{ status: number; body: any }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(5000) })
  const text = await res.text()
  let body: any = text
  try {
    body = JSON.parse(text)
  } catch {}
  return { status: res.status, body }
}

async function postOnce(target: Target, stream = false): Promise<{ status: number; text: string }> {
  target.sent++
  const res = await fetch(target.url, {
    method: 'POST',
    headers: target.headers,
    body: bodyOf(target, stream),
    signal: AbortSignal.timeout(5000),
  })
  if (res.status >= 200 && res.status <= 299) target.answered++
  return { status: res.status, text: await res.text() }
}

/*
|--------------------------------------------------------------------------
| Measurements
|--------------------------------------------------------------------------
*/

interface AutocannonResult {
  duration: number
  errors: number
  timeouts: number
  non2xx: number
  resets: number
  '2xx': number
  statusCodeStats: Record<string, { count: number }>
  latency: { p50: number; p99: number; average: number; max: number }
  requests: { total: number; average: number; sent: number }
}
type Autocannon = (opts: Record<string, unknown>) => Promise<AutocannonResult>
const autocannon = require('autocannon') as Autocannon

interface Target {
  name: string
  /** 2xx answers and requests sent over the whole run (warm-up included), for the metering check */
  answered: number
  sent: number
  /** full URL of POST /v1/chat/completions (or /v1/messages for `gateway-msg`) */
  url: string
  headers: Record<string, string>
  /** The request bodies, when not the chat ones (BODY, STREAM_BODY) */
  bodies?: { plain: string; stream: string }
}

/** The body a target is sent: its own, or the chat ones. */
function bodyOf(target: Target, stream: boolean): string {
  return target.bodies ? (stream ? target.bodies.stream : target.bodies.plain) : stream ? STREAM_BODY : BODY
}

interface LoadResult {
  connections: number
  seconds: number
  requests: number
  rps: number
  /** mean latency in ms by Little's law (connections / throughput): exact, unlike the histogram */
  meanLatency: number
  /** autocannon latency in ms (its histogram records whole milliseconds) */
  p50: number
  p99: number
  mean: number
  max: number
  non2xx: number
  errors: number
  timeouts: number
  statusCodes: Record<string, number>
  /** CPU µs per request of each process (bench = autocannon) */
  cpuUs: Record<string, number>
}

async function load(target: Target, connections: number, seconds: number, stream: boolean): Promise<LoadResult> {
  const cpuBefore = cpuSnapshot()
  const result = await autocannon({
    url: target.url,
    method: 'POST',
    headers: target.headers,
    body: bodyOf(target, stream),
    connections,
    duration: seconds,
    timeout: 10,
  })
  target.answered += result['2xx']
  target.sent += result.requests.sent
  const statusCodes: Record<string, number> = {}
  for (const [code, stat] of Object.entries(result.statusCodeStats ?? {})) statusCodes[code] = stat.count
  return {
    connections,
    seconds: result.duration,
    requests: result.requests.total,
    rps: result.requests.total / result.duration,
    meanLatency: (connections * 1000 * result.duration) / result.requests.total,
    p50: result.latency.p50,
    p99: result.latency.p99,
    mean: result.latency.average,
    max: result.latency.max,
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    statusCodes,
    cpuUs: cpuPerRequest(cpuBefore, cpuSnapshot(), result.requests.total),
  }
}

interface Distribution {
  n: number
  p50: number
  p90: number
  p99: number
  mean: number
  min: number
  max: number
}

function distribution(values: number[]): Distribution {
  const sorted = [...values].sort((a, b) => a - b)
  const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]
  return {
    n: sorted.length,
    p50: at(0.5),
    p90: at(0.9),
    p99: at(0.99),
    mean: sorted.reduce((a, b) => a + b, 0) / sorted.length,
    min: sorted[0],
    max: sorted[sorted.length - 1],
  }
}

interface SequentialResult {
  total: Distribution
  ttfb: Distribution
  non2xx: number
}

/**
 * `n` sequential calls to each target over one keep-alive connection each, as
 * a lone client calling back to back would make them. The targets take turns
 * in short blocks (A-B then B-A), so that both see the same drift in the
 * host's speed, and the first calls of each block are not recorded: a call
 * right after another target's overlaps whatever that target still does
 * after answering (the gateway's metering and GC, on the same two cores),
 * which a lone client never meets (between two identical gateways, a call
 * right after the other's had a p50 100-150 µs higher than one right after
 * its own).
 */
async function sequential(targets: Target[], n: number, warmup: number, stream: boolean) {
  const agents = targets.map(() => new http.Agent({ keepAlive: true, maxSockets: 1 }))
  const samples = targets.map(() => ({ total: [] as number[], ttfb: [] as number[], non2xx: 0 }))
  const forward = [...targets.entries()]
  const backward = [...forward].reverse()
  const blocks = Math.ceil((warmup + n) / SEQ_BLOCK)
  try {
    for (let b = 0; b < blocks; b++) {
      for (const [t, target] of b % 2 ? backward : forward) {
        for (let k = 0; k < SEQ_SETTLE + SEQ_BLOCK; k++) {
          const timed = await timedRequest(agents[t], new URL(target.url), bodyOf(target, stream), target.headers)
          target.sent++
          if (timed.status >= 200 && timed.status <= 299) target.answered++
          if (k < SEQ_SETTLE || b * SEQ_BLOCK + (k - SEQ_SETTLE) < warmup) continue
          if (timed.status < 200 || timed.status > 299) samples[t].non2xx++
          samples[t].total.push(timed.total)
          samples[t].ttfb.push(timed.ttfb)
        }
      }
    }
  } finally {
    for (const agent of agents) agent.destroy()
  }
  return samples.map(
    (s): SequentialResult => ({ total: distribution(s.total), ttfb: distribution(s.ttfb), non2xx: s.non2xx })
  )
}

/*
|--------------------------------------------------------------------------
| CPU profile summary
|--------------------------------------------------------------------------
*/

interface ProfileNode {
  id: number
  callFrame: { functionName: string; url: string; lineNumber: number }
  children?: number[]
}

/** A measured run, in the monotonic clock the V8 profiler uses (µs) */
interface Window {
  label: string
  startUs: number
  endUs: number
}
const windows: Window[] = []
const monotonicUs = () => Number(process.hrtime.bigint() / 1000n)

interface ProfileSummary {
  file: string
  busyMs: number
  idleMs: number
  functions: Array<{ name: string; ms: number; share: number }>
  areas: Array<{ name: string; ms: number; share: number }>
}

/** Where a frame lives: the app's own files, a package, node internals or V8 */
function areaOf(url: string): string {
  if (!url) return '(v8: gc, program, native)'
  if (url.startsWith('node:')) return 'node internals'
  const pkg = url.match(/node_modules\/((?:@[^/]+\/)?[^/]+)/)
  if (pkg) return pkg[1]
  const own = url.replace(`file://${ROOT}`, '').match(/^[^/]+(\/[^/]+)?/)
  return own ? own[0] : url
}

/**
 * Self time by function and by area over the samples that fall inside
 * `window` (the V8 profile and process.hrtime share the monotonic clock).
 */
function summarizeProfile(file: string, window: Window | null, top = 25): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as {
    nodes: ProfileNode[]
    startTime: number
    samples: number[]
    timeDeltas: number[]
  }
  const byId = new Map(profile.nodes.map((node) => [node.id, node]))
  const self = new Map<string, number>()
  const areas = new Map<string, number>()
  let busy = 0
  let idle = 0
  let at = profile.startTime
  for (const [i, id] of profile.samples.entries()) {
    const delta = profile.timeDeltas[i] ?? 0
    at += delta
    if (window && (at < window.startUs || at > window.endUs)) continue
    const frame = byId.get(id)?.callFrame
    if (!frame) continue
    if (frame.functionName === '(idle)') {
      idle += delta
      continue
    }
    const where = frame.url ? frame.url.replace(`file://${ROOT}`, '').replace(/^.*node_modules\//, '~/') : ''
    const key = `${frame.functionName || '(anonymous)'} ${where}${where ? `:${frame.lineNumber + 1}` : ''}`
    self.set(key, (self.get(key) ?? 0) + delta)
    const area = areaOf(frame.url)
    areas.set(area, (areas.get(area) ?? 0) + delta)
    busy += delta
  }
  const rank = (map: Map<string, number>) =>
    [...map.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, us]) => ({ name, ms: Math.round(us / 100) / 10, share: busy ? us / busy : 0 }))
  return { file, busyMs: busy / 1000, idleMs: idle / 1000, functions: rank(self), areas: rank(areas) }
}

/*
|--------------------------------------------------------------------------
| Main
|--------------------------------------------------------------------------
*/

let dataDir = ''
let removeDataDir = false
let postmasterBefore: number | null = null
let cleaning: Promise<void> | null = null

function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    // Reverse start order: Portkey, gateway (stops its Postgres), mock.
    const started = Date.now()
    for (const entry of [...managed].reverse()) {
      await stopChild(entry, entry.name === 'gateway' ? 30_000 : 5_000)
    }
    if (managed.length) console.log(`[bench] stopped ${managed.map((m) => m.name).join(', ')} in ${Date.now() - started} ms`)
    // The gateway stops the Postgres it started; if it could not (crash,
    // SIGKILL), stop that postmaster ourselves, but never one that was already
    // running on this directory before the bench.
    if (dataDir && postmasterBefore === null) {
      const orphan = livePostmaster(dataDir)
      if (orphan) {
        console.error(`[bench] stopping the embedded Postgres left running (pid ${orphan})`)
        try {
          process.kill(orphan, 'SIGINT')
        } catch {}
        for (let i = 0; i < 100 && livePostmaster(dataDir); i++) await sleep(100)
      }
    }
    if (removeDataDir && dataDir) rmSync(dataDir, { recursive: true, force: true })
  })()
  return cleaning
}

process.on('exit', () => {
  // Last resort when exiting without cleanup: no child may outlive the bench.
  for (const entry of managed) {
    if (entry.exitCode === undefined) entry.child.kill('SIGKILL')
  }
})
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    console.error(`\n[bench] ${signal}: cleaning up`)
    cleanup().finally(() => process.exit(130))
  })
}

const log = (message: string) => console.log(`[bench] ${message}`)

async function waitFor(what: string, entry: Managed, timeoutMs: number, probe: () => Promise<boolean>) {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (entry.exitCode !== undefined) throw new Error(`${what}: ${describeExit(entry)}`)
    if (await probe().catch(() => false)) return
    await sleep(200)
  }
  throw new Error(`${what}: not ready after ${timeoutMs} ms. Last output:\n${entry.lines.slice(-40).join('\n')}`)
}

/**
 * Optional: Portkey's open-source gateway, when `@portkey-ai/gateway` is
 * installed in the project or in BENCH_PORTKEY_DIR (default tmp/portkey, see
 * docs/benchmarks.md). Returns its start script.
 */
function portkeyEntry(): string | null {
  if (env.BENCH_PORTKEY === '0') return null
  const dir = resolve(ROOT, env.BENCH_PORTKEY_DIR || 'tmp/portkey')
  const places = [import.meta.url, join(dir, 'package.json')]
  for (const from of places) {
    try {
      const pkgFile = createRequire(from).resolve('@portkey-ai/gateway/package.json')
      const pkg = JSON.parse(readFileSync(pkgFile, 'utf8'))
      const bin = typeof pkg.bin === 'string' ? pkg.bin : pkg.bin && Object.values(pkg.bin)[0]
      if (bin) return resolve(pkgFile, '..', bin as string)
    } catch {}
  }
  return null
}

async function main() {
  const machine = {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    platform: `${os.type()} ${os.release()} ${os.arch()}`,
    loadavgAtStart: os.loadavg().map((l) => Math.round(l * 100) / 100),
  }
  log(`machine: ${machine.cpus} cpus (${machine.cpuModel}), node ${machine.node}, load ${machine.loadavgAtStart.join(' ')}`)

  if (env.BENCH_DATA_DIR) {
    dataDir = resolve(env.BENCH_DATA_DIR)
    mkdirSync(dataDir, { recursive: true })
  } else {
    dataDir = mkdtempSync(join(os.tmpdir(), 'gateway-bench-'))
    removeDataDir = env.BENCH_KEEP !== '1'
  }
  // mkdtemp makes it 0700; as root, the embedded Postgres runs as the
  // "postgres" user and must be able to enter it.
  chmodSync(dataDir, 0o755)
  postmasterBefore = livePostmaster(dataDir)

  const [gatewayPort, mockPort, pgPort] = await Promise.all([
    env.BENCH_PORT ? Number(env.BENCH_PORT) : freePort(),
    env.BENCH_MOCK_PORT ? Number(env.BENCH_MOCK_PORT) : freePort(),
    env.BENCH_PG_PORT ? Number(env.BENCH_PG_PORT) : freePort(),
  ])

  // The children get a clean configuration: the throwaway data directory and
  // its own embedded Postgres, never a DATABASE_URL or provider keys of the
  // shell that runs the bench.
  const childEnv: NodeJS.ProcessEnv = { ...process.env }
  for (const name of Object.keys(childEnv)) {
    if (name === 'DATABASE_URL' || name.endsWith('_API_KEY') || name.startsWith('ADMIN_')) delete childEnv[name]
  }
  Object.assign(childEnv, {
    DATA_DIR: dataDir,
    EMBEDDED_PG_PORT: String(pgPort),
    NODE_ENV: 'production',
    LOG_LEVEL: env.BENCH_LOG_LEVEL || 'warn',
    HOST: '127.0.0.1',
    PORT: String(gatewayPort),
  })

  // 1. Mock upstream and gateway
  log(`data dir ${dataDir}; mock :${mockPort}, gateway :${gatewayPort}, postgres :${pgPort}`)
  const mock = startChild('mock', ['bin/mock_upstream.js', '--port', String(mockPort)], childEnv)
  const mockOrigin = `http://127.0.0.1:${mockPort}`
  await waitFor('mock upstream', mock, 30_000, async () => mock.lines.some((l) => l.includes('listening')))
  // The slow-stream upstream: its own process, so its timers do not share an event loop with the fast mock.
  const slowMockPort = env.BENCH_SLOW_MOCK_PORT ? Number(env.BENCH_SLOW_MOCK_PORT) : await freePort()
  const slowMock = startChild(
    'slowmock',
    ['bin/mock_upstream.js', '--port', String(slowMockPort), '--chunks', String(SLOW_CHUNKS), '--chunk-delay', String(SLOW_CHUNK_DELAY_MS), '--stamp'],
    childEnv
  )
  const slowMockOrigin = `http://127.0.0.1:${slowMockPort}`
  await waitFor('slow mock upstream', slowMock, 30_000, async () => slowMock.lines.some((l) => l.includes('listening')))

  // The node flags `npm start` gives the gateway (package.json: NODE_OPTIONS in
  // the start script), so the bench measures what operators run.
  const gatewayArgs = [...npmStartNodeFlags(), 'bin/start.js']
  // BENCH_GATEWAY_NODE_FLAGS: node flags for the gateway only (e.g. --trace-gc, --max-semi-space-size=8).
  // Given after npm start's own flags: the later of two values of a V8 flag wins.
  if (env.BENCH_GATEWAY_NODE_FLAGS) gatewayArgs.splice(gatewayArgs.length - 1, 0, ...env.BENCH_GATEWAY_NODE_FLAGS.split(/\s+/).filter(Boolean))
  if (CPU_PROF) {
    rmSync(PROF_DIR, { recursive: true, force: true })
    mkdirSync(PROF_DIR, { recursive: true })
    gatewayArgs.unshift('--cpu-prof', '--cpu-prof-dir', PROF_DIR)
  }
  const started = Date.now()
  const gateway = startChild('gateway', gatewayArgs, childEnv)
  const gatewayOrigin = `http://127.0.0.1:${gatewayPort}`
  // Ready, not only listening: the boot's caches are loaded and its heap settled (start/settle_heap.ts).
  await waitFor('gateway', gateway, 180_000, async () => {
    const status = await getJson(`${gatewayOrigin}/api/status`)
    return status.status === 200 && status.body?.ready !== false
  })
  const startMs = Date.now() - started
  const idleRssMb = rssMb(gateway.child.pid!)
  log(`gateway up in ${startMs} ms, RSS ${idleRssMb} MB before any traffic`)

  // 2. Provisioning through the ace commands (they attach to the gateway's Postgres)
  const run = Date.now().toString(36)
  const email = `bench-${run}@localhost`
  const ace = (...args: string[]) => runNode(['ace.js', ...args], childEnv)
  const provisioned = Date.now()
  // One at a time: every process applies pending migrations under Lucid's
  // advisory lock, and concurrent ace commands fail to release it.
  // Limits on, as an operator selling access runs it: the plan's requests and
  // tokens per minute (every call is counted against both) and monthly token
  // quotas, all far above what a run sends, so none refuses a call.
  await ace('plan:create', '--name', `bench-${run}`, '--models', '*', ...BENCH_PLAN_LIMITS)
  await ace(
    'channel:create',
    '--name',
    `mock-${run}`,
    '--provider',
    'custom',
    '--base-url',
    `${mockOrigin}/v1`,
    '--api-key',
    'mock-key',
    '--models',
    'bench-*',
    // Newest first, should a kept BENCH_DATA_DIR hold channels of older runs.
    '--priority',
    String(Math.floor(Date.now() / 1000))
  )
  await ace(
    'channel:create',
    '--name',
    `mock-slow-${run}`,
    '--provider',
    'custom',
    '--base-url',
    `${slowMockOrigin}/v1`,
    '--api-key',
    'mock-key',
    '--models',
    'slow-*',
    '--priority',
    String(Math.floor(Date.now() / 1000))
  )
  await ace('price:set', '--model', 'bench-*', '--input', '1', '--output', '2')
  await ace('price:set', '--model', 'slow-*', '--input', '1', '--output', '2')
  await ace('user:create', '--email', email, '--plan', `bench-${run}`, '--password', `bench-${run}-password`)
  await ace('balance:topup', '--user', email, '--amount', '1000000', '--note', 'benchmark')
  const keyOutput = await ace('key:create', '--user', email, '--name', 'bench')
  const apiKey = keyOutput.trim().split('\n').pop()!.trim()
  if (!/^\S{20,}$/.test(apiKey)) throw new Error(`key:create printed no key:\n${keyOutput}`)
  log(`provisioned (plan, user, channel, price, top-up, key) in ${Date.now() - provisioned} ms`)

  const headers = { 'authorization': `Bearer ${apiKey}`, 'content-type': 'application/json' }
  const direct: Target = { name: 'direct', answered: 0, sent: 0, url: `${mockOrigin}/v1/chat/completions`, headers }
  const viaGateway: Target = { name: 'gateway', answered: 0, sent: 0, url: `${gatewayOrigin}/v1/chat/completions`, headers }
  const targets: Target[] = [direct, viaGateway]

  // The channel and key reach the gateway's caches through LISTEN/NOTIFY.
  await waitFor('gateway with the bench key and channel', gateway, 15_000, async () => {
    return (await postOnce(viaGateway)).status === 200
  })
  const check = await postOnce(direct)
  if (check.status !== 200) throw new Error(`mock answered ${check.status}: ${check.text}`)
  const promptTokensPerCall = Number(JSON.parse(check.text).usage?.prompt_tokens)

  const portkeyBin = portkeyEntry()
  let portkeyIdleRssMb = 0
  if (portkeyBin) {
    const portkeyPort = await freePort()
    // It listens on all interfaces (no host option); the bench only calls 127.0.0.1.
    const portkey = startChild('portkey', [portkeyBin, `--port=${portkeyPort}`, '--headless'], childEnv)
    const portkeyTarget: Target = {
      name: 'portkey',
      answered: 0,
      sent: 0,
      url: `http://127.0.0.1:${portkeyPort}/v1/chat/completions`,
      headers: {
        ...headers,
        'x-portkey-provider': 'openai',
        'x-portkey-custom-host': `${mockOrigin}/v1`,
      },
    }
    try {
      await waitFor('portkey gateway', portkey, 30_000, async () => {
        return (await postOnce(portkeyTarget)).status === 200
      })
      // A Portkey whose streams fail would be compared on its error answers.
      // @hono/node-server past 1.13.5 does that under Node 24 (a 500 on every
      // stream: "immutable" headers), hence the override in docs/benchmarks.md.
      const streamCheck = await postOnce(portkeyTarget, true)
      if (streamCheck.status !== 200 || !streamCheck.text.includes('data:')) {
        throw new Error(
          `its streams answer ${streamCheck.status} ${streamCheck.text.slice(0, 120)} ` +
            '(install it with the @hono/node-server override of docs/benchmarks.md)'
        )
      }
      targets.push(portkeyTarget)
      portkeyIdleRssMb = rssMb(portkey.child.pid!)
      log(`portkey gateway (${portkeyBin}) on :${portkeyPort} is part of the run`)
    } catch (error) {
      log(`portkey gateway skipped: ${(error as Error).message.split('\n')[0]}`)
      await stopChild(portkey, 5000)
    }
  } else {
    log(env.BENCH_PORTKEY === '0' ? 'portkey gateway off (BENCH_PORTKEY=0)' : 'portkey gateway not installed (optional): skipped')
  }

  // The floor (bin/bare_proxy.js): node:http in front, undici behind, nothing
  // else. Gateway minus bare is the gateway's own work; bare against Portkey
  // is the best ratio a Node relay gets on these cores.
  if (env.BENCH_BARE !== '0' && !ONLY_SLOW && !SOAK_SECONDS) {
    const barePort = await freePort()
    const bare = startChild('bare', [...npmStartNodeFlags(), 'bin/bare_proxy.js', String(barePort), mockOrigin], childEnv)
    const bareTarget: Target = { name: 'bare', answered: 0, sent: 0, url: `http://127.0.0.1:${barePort}/v1/chat/completions`, headers }
    await waitFor('bare relay', bare, 15_000, async () => (await postOnce(bareTarget)).status === 200)
    targets.push(bareTarget)
    log(`bare relay (bin/bare_proxy.js, the floor) on :${barePort} is part of the run`)
  }

  // Translated (BENCH_TRANSLATED=1): the gateway again, called in Anthropic's format (Claude Code on a chat
  // provider), every request and event translated to and from the chat mock.
  if (env.BENCH_TRANSLATED === '1' && !ONLY_SLOW && !SOAK_SECONDS) {
    const messages = [{ role: 'user', content: 'hello' }]
    targets.push({
      name: 'gateway-msg',
      answered: 0,
      sent: 0,
      url: `${gatewayOrigin}/v1/messages`,
      headers: { ...headers, 'anthropic-version': '2023-06-01' },
      bodies: {
        plain: JSON.stringify({ model: 'bench-1', max_tokens: 256, messages }),
        stream: JSON.stringify({ model: 'bench-1', max_tokens: 256, stream: true, messages }),
      },
    })
    log('the gateway in Anthropic\'s format (translated to the chat mock) is part of the run')
  }

  const scenarios = [
    { id: 'nonstream_c50', label: `non-stream c=${CONNECTIONS}`, connections: CONNECTIONS, seconds: SECONDS, stream: false },
    { id: 'nonstream_c1', label: 'non-stream c=1', connections: 1, seconds: C1_SECONDS, stream: false },
    { id: 'stream_c50', label: `stream c=${CONNECTIONS}`, connections: CONNECTIONS, seconds: SECONDS, stream: true },
  ]
  const loadResults: Record<string, Record<string, LoadResult>> = {}
  // Each gateway alternates with the mock called directly, in its own pass:
  // a slow target between two calls would let the machine idle and slow
  // the next call down (wake-up latency), whatever target it goes to.
  const seqResults: Record<string, SequentialResult> = {}
  const ttfbResults: Record<string, SequentialResult> = {}
  /** The direct figures measured alongside each other target */
  const directPairs: Record<string, { sequential: SequentialResult; ttfb: SequentialResult }> = {}
  if (!ONLY_SLOW) {
    // 3. Warm-up (JIT, pools, caches): not recorded
    for (const target of targets) {
      log(`warm-up ${target.name} (${WARMUP_SECONDS}s non-stream + ${WARMUP_SECONDS}s stream)`)
      await load(target, CONNECTIONS, WARMUP_SECONDS, false)
      await load(target, CONNECTIONS, WARMUP_SECONDS, true)
    }

    // 4. Measurements
    for (const scenario of scenarios) {
      loadResults[scenario.id] = {}
      for (const target of targets) {
        await sleep(500)
        log(`${scenario.label}, ${target.name}, ${scenario.seconds}s`)
        const startUs = monotonicUs()
        loadResults[scenario.id][target.name] = await load(target, scenario.connections, scenario.seconds, scenario.stream)
        windows.push({ label: `${scenario.label}, ${target.name}`, startUs, endUs: monotonicUs() })
      }
    }

    for (const target of targets.slice(1)) {
      log(`sequential non-stream latency: ${SEQ_N} calls to direct and ${target.name}, in turns of ${SEQ_BLOCK}`)
      const [seqDirect, seqTarget] = await sequential([direct, target], SEQ_N, 50, false)
      log(`sequential stream time to first byte: ${TTFB_N} calls to direct and ${target.name}, in turns of ${SEQ_BLOCK}`)
      const [ttfbDirect, ttfbTarget] = await sequential([direct, target], TTFB_N, 20, true)
      seqResults[target.name] = seqTarget
      ttfbResults[target.name] = ttfbTarget
      directPairs[target.name] = { sequential: seqDirect, ttfb: ttfbDirect }
      if (target === viaGateway) {
        seqResults.direct = seqDirect
        ttfbResults.direct = ttfbDirect
      }
    }
  }

  // 5. Slow streams: every target holds SLOW_STREAMS streams at once
  const slowResults: Record<string, SlowStreamResult> = {}
  if (SLOW) {
    // In Anthropic's format only the gateway can answer (and the direct chat run is the delays' baseline).
    const slowTargets = targets.filter(
      (t) => t.name !== 'bare' && t.name !== 'gateway-msg' && (t !== direct || env.BENCH_SLOW_DIRECT !== '0') && (!SLOW_MESSAGES || t === direct || t === viaGateway)
    )
    if (env.BENCH_SLOW_BARE === '1') {
      // The floor for memory: the bare relay holding the same streams (its own instance, on the slow mock).
      const port = await freePort()
      const args = [...npmStartNodeFlags(), 'bin/bare_proxy.js', String(port), slowMockOrigin, String(SLOW_STREAMS + 100)]
      const bareSlow = startChild('bare-slow', args, childEnv)
      const target: Target = { name: 'bare-slow', answered: 0, sent: 0, url: `http://127.0.0.1:${port}/v1/chat/completions`, headers }
      await waitFor('bare relay (slow)', bareSlow, 15_000, async () => bareSlow.lines.some((l) => l.includes('bare relay on')))
      slowTargets.splice(slowTargets.indexOf(viaGateway) + 1, 0, target)
    }
    for (const target of slowTargets) {
      await sleep(2000)
      const slowHeaders = target.name === 'portkey' ? { ...target.headers, 'x-portkey-custom-host': `${slowMockOrigin}/v1` } : target.headers
      const messages = SLOW_MESSAGES && target === viaGateway
      const url = target === direct ? `${slowMockOrigin}/v1/chat/completions` : messages ? `${gatewayOrigin}/v1/messages` : target.url
      const body = messages ? SLOW_BODY : SLOW_CHAT_BODY
      const pid = managed.find((m) => m.name === target.name)?.child.pid
      log(
        `slow streams, ${target.name}: ${SLOW_STREAMS} at once, ${SLOW_CHUNKS} chunks ${SLOW_CHUNK_DELAY_MS} ms apart ` +
          `(${messages ? 'Anthropic Messages translated to chat, ' : ''}requests of ${(body.length / 1024).toFixed(1)} KB, opened over ${SLOW_RAMP_MS} ms, cut after ${SLOW_TIMEOUT_MS / 1000}s)`
      )
      const startUs = monotonicUs()
      const result = await runSlowStreams({
        url,
        headers: messages ? { ...slowHeaders, 'anthropic-version': '2023-06-01' } : slowHeaders,
        body,
        endMarker: messages ? 'event: message_stop' : '[DONE]',
        streams: SLOW_STREAMS,
        rampMs: SLOW_RAMP_MS,
        timeoutMs: SLOW_TIMEOUT_MS,
        watchPids: pid ? { [target.name]: pid } : {},
      })
      windows.push({ label: `slow streams, ${target.name}`, startUs, endUs: monotonicUs() })
      target.sent += SLOW_STREAMS
      target.answered += result.completed
      slowResults[target.name] = result
    }
  }

  let soak: SoakResult | null = null
  if (SOAK_SECONDS) {
    log(`soak: ${SOAK_SECONDS}s of mixed slow streams and short calls through the gateway`)
    soak = await runSoak({
      seconds: SOAK_SECONDS,
      streamWorkers: Math.round(numEnv('BENCH_SOAK_STREAMS', 300)),
      streamUrl: viaGateway.url,
      streamBody: SLOW_CHAT_BODY,
      shortWorkers: Math.round(numEnv('BENCH_SOAK_SHORT_WORKERS', 4)),
      shortPauseMs: numEnv('BENCH_SOAK_SHORT_PAUSE_MS', 10),
      shortUrl: viaGateway.url,
      directUrl: direct.url,
      shortBody: BODY,
      headers,
      gatewayPid: gateway.child.pid!,
      log,
    })
    viaGateway.sent += soak.streamsStarted + soak.shortCalls
    viaGateway.answered += soak.streamsCompleted + soak.shortOk
  }

  // 6. Accounting, exact. /v1/usage drains the meter first. Every request the
  // gateway admitted reached the mock with the channel's key (one channel per
  // model, no failures, so one attempt each) and must have exactly one usage
  // row; the ledger must sum to the balance, and the charges to the usage cost.
  // Metering check: /v1/usage drains the writer first; every call was
  // metered with the mock's prompt tokens. Requests still in flight when an
  // autocannon run stops are cut off by the client and may or may not count.
  const status = await getJson(`${gatewayOrigin}/api/status`)
  const usage: any = await fetch(`${gatewayOrigin}/v1/usage`, { headers }).then((r) => r.json()).catch(() => null)
  // What the gateway was sent, in either format (`gateway-msg` is the same gateway in Anthropic's)
  const throughGateway = targets.filter((t) => t === viaGateway || t.name === 'gateway-msg')
  const gatewayAnswered = throughGateway.reduce((sum, t) => sum + t.answered, 0)
  const gatewaySent = throughGateway.reduce((sum, t) => sum + t.sent, 0)
  const accounting = await checkAccounting(dataDir, email, [mockOrigin, slowMockOrigin], gatewayAnswered, gatewaySent)
  const balance = await fetch(`${gatewayOrigin}/v1/balance`, { headers }).then((r) => r.json()).catch(() => null)
  const metering = {
    answered: gatewayAnswered,
    sent: gatewaySent,
    meteredCalls: usage?.totals ? usage.totals.input_tokens / promptTokensPerCall : null,
    usage: usage?.totals ?? usage,
  }

  // 7. Report
  let bars: Record<string, { value: number; bar: string; met: boolean }> = {}
  if (!ONLY_SLOW) {
    const ratio = (name: string, id: string) => loadResults[id][name].rps / loadResults[id].direct.rps
    const gw = (id: string) => loadResults[id].gateway
    const addedP50 = seqResults.gateway.total.p50 - seqResults.direct.total.p50
    const addedTtfb = ttfbResults.gateway.ttfb.p50 - ttfbResults.direct.ttfb.p50
    bars = {
      throughput_ratio_c50: { value: ratio('gateway', 'nonstream_c50'), bar: '(x direct, for the record)', met: true },
      added_p50_ms_c1: { value: addedP50, bar: '<= 0.25', met: addedP50 <= 0.25 },
      added_ttfb_p50_ms: { value: addedTtfb, bar: '<= 1', met: addedTtfb <= 1 },
    }
    if (loadResults.nonstream_c50.portkey) {
      const vsPortkey = (id: string) => loadResults[id].gateway.rps / loadResults[id].portkey.rps
      bars.nonstream_vs_portkey = { value: vsPortkey('nonstream_c50'), bar: '>= 8', met: vsPortkey('nonstream_c50') >= 8 }
      bars.stream_vs_portkey = { value: vsPortkey('stream_c50'), bar: '>= 7', met: vsPortkey('stream_c50') >= 7 }
    }

    const f = (v: number, digits = 2) => (Number.isFinite(v) ? v.toFixed(digits) : '-')
    const rows: string[][] = [['scenario', 'target', 'req/s', 'p50 ms', 'p99 ms', 'mean ms', 'x direct', 'non-2xx/err']]
    for (const scenario of scenarios) {
      for (const target of targets) {
        const r = loadResults[scenario.id][target.name]
        rows.push([
          scenario.label,
          target.name,
          f(r.rps, 0),
          f(r.p50, 0),
          f(r.p99, 0),
          f(r.meanLatency, 3),
          f(ratio(target.name, scenario.id), 3),
          `${r.non2xx}/${r.errors + r.timeouts}`,
        ])
      }
    }
    for (const target of targets) {
      const s = seqResults[target.name]
      rows.push([
        `sequential non-stream (n=${SEQ_N})`,
        target.name,
        f(1000 / s.total.mean, 0),
        f(s.total.p50, 3),
        f(s.total.p99, 3),
        f(s.total.mean, 3),
        f(s.total.mean / (directPairs[target.name]?.sequential ?? s).total.mean, 3),
        `${s.non2xx}/0`,
      ])
    }
    for (const target of targets) {
      const s = ttfbResults[target.name]
      rows.push([
        `stream first byte (n=${TTFB_N})`,
        target.name,
        '',
        f(s.ttfb.p50, 3),
        f(s.ttfb.p99, 3),
        f(s.ttfb.mean, 3),
        '',
        `${s.non2xx}/0`,
      ])
    }
    const widths = rows[0].map((_, c) => Math.max(...rows.map((row) => row[c].length)))
    const line = (row: string[]) => row.map((cell, c) => (c < 2 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  ')
    console.log('')
    console.log(line(rows[0]))
    console.log(widths.map((w) => '-'.repeat(w)).join('  '))
    for (const row of rows.slice(1)) console.log(line(row))
    console.log('')
    const cpuNames = ['bench', 'mock', 'gateway', 'postgres', 'bare', 'portkey'].filter((n) =>
      Object.values(loadResults).some((byTarget) => Object.values(byTarget).some((r) => n in r.cpuUs))
    )
    const cpuRows: string[][] = [['CPU µs per request', 'target', ...cpuNames.map((n) => (n === 'bench' ? 'client' : n)), 'total']]
    for (const scenario of scenarios) {
      for (const target of targets) {
        const cpu = loadResults[scenario.id][target.name].cpuUs
        const total = cpuNames.reduce((sum, n) => sum + (cpu[n] ?? 0), 0)
        cpuRows.push([scenario.label, target.name, ...cpuNames.map((n) => String(cpu[n] ?? '-')), String(total)])
      }
    }
    const cpuTotal = (r: LoadResult) => Object.values(r.cpuUs).reduce((a, b) => a + b, 0)
    const cpuRatio = (id: string) => cpuTotal(loadResults[id].direct) / cpuTotal(loadResults[id].gateway)
    const cpuWidths = cpuRows[0].map((_, c) => Math.max(...cpuRows.map((row) => row[c].length)))
    const cpuLine = (row: string[]) => row.map((cell, c) => (c < 2 ? cell.padEnd(cpuWidths[c]) : cell.padStart(cpuWidths[c]))).join('  ')
    console.log(cpuLine(cpuRows[0]))
    console.log(cpuWidths.map((w) => '-'.repeat(w)).join('  '))
    for (const row of cpuRows.slice(1)) console.log(cpuLine(row))
    console.log('')
    const c1Added = gw('nonstream_c1').meanLatency - loadResults.nonstream_c1.direct.meanLatency
    console.log(`gateway/direct throughput, non-stream c=${CONNECTIONS}: ${f(bars.throughput_ratio_c50.value, 3)} (bar ${bars.throughput_ratio_c50.bar}: ${bars.throughput_ratio_c50.met ? 'met' : 'NOT met'})`)
    console.log(`gateway/direct throughput, stream c=${CONNECTIONS}:     ${f(ratio('gateway', 'stream_c50'), 3)}`)
    console.log(
      `CPU per request, direct/gateway (all processes, c=${CONNECTIONS}): non-stream ${f(cpuRatio('nonstream_c50'), 3)}, ` +
        `stream ${f(cpuRatio('stream_c50'), 3)} (the throughput ratio on a machine where the load is CPU-bound)`
    )
    console.log(`added p50 latency at c=1 (sequential):     ${f(bars.added_p50_ms_c1.value, 3)} ms (bar ${bars.added_p50_ms_c1.bar} ms: ${bars.added_p50_ms_c1.met ? 'met' : 'NOT met'}); autocannon c=1 mean: +${f(c1Added, 3)} ms`)
    console.log(`added time to first stream byte (p50):     ${f(bars.added_ttfb_p50_ms.value, 3)} ms (p99 ${f(ttfbResults.gateway.ttfb.p99 - ttfbResults.direct.ttfb.p99, 3)} ms) (bar ${bars.added_ttfb_p50_ms.bar} ms: ${bars.added_ttfb_p50_ms.met ? 'met' : 'NOT met'})`)
    if (targets.some((t) => t.name === 'portkey')) {
      const pair = directPairs.portkey
      console.log(
        `portkey/direct throughput, non-stream c=${CONNECTIONS}: ${f(ratio('portkey', 'nonstream_c50'), 3)}; ` +
          `added p50 c=1: ${f(seqResults.portkey.total.p50 - pair.sequential.total.p50, 3)} ms; ` +
          `added TTFB p50: ${f(ttfbResults.portkey.ttfb.p50 - pair.ttfb.ttfb.p50, 3)} ms (direct measured alongside: ` +
          `${f(pair.sequential.total.p50, 3)} / ${f(pair.ttfb.ttfb.p50, 3)} ms)`
      )
      for (const id of ['nonstream_vs_portkey', 'stream_vs_portkey']) {
        const bar = bars[id]
        const portkeyRun = loadResults[`${id.split('_')[0]}_c50`].portkey
        const failed = portkeyRun.non2xx + portkeyRun.errors + portkeyRun.timeouts
        console.log(
          `gateway/portkey throughput, ${id.split('_')[0]} c=${CONNECTIONS}: ${f(bar.value, 2)}x (bar ${bar.bar}: ${bar.met ? 'met' : 'NOT met'})` +
            (failed ? ` - NOT A VALID COMPARISON: ${failed} of portkey's answers were errors` : '')
        )
      }
    }
    if (targets.some((t) => t.name === 'bare')) {
      const pair = directPairs.bare
      const gatewayOwn = (id: string) => (loadResults[id].gateway.cpuUs.gateway ?? 0) - (loadResults[id].bare.cpuUs.bare ?? 0)
      console.log(
        `bare relay (the floor): ÷ direct non-stream ${f(ratio('bare', 'nonstream_c50'), 3)}, stream ${f(ratio('bare', 'stream_c50'), 3)}; ` +
          `added p50 c=1: ${f(seqResults.bare.total.p50 - pair.sequential.total.p50, 3)} ms; added TTFB p50: ${f(ttfbResults.bare.ttfb.p50 - pair.ttfb.ttfb.p50, 3)} ms`
      )
      console.log(
        `the gateway's own work over the floor, CPU µs per request (own process): non-stream ${gatewayOwn('nonstream_c50')}, ` +
          `stream ${gatewayOwn('stream_c50')}; gateway/bare throughput: non-stream ${f(loadResults.nonstream_c50.gateway.rps / loadResults.nonstream_c50.bare.rps, 3)}, ` +
          `stream ${f(loadResults.stream_c50.gateway.rps / loadResults.stream_c50.bare.rps, 3)}`
      )
      if (loadResults.nonstream_c50.portkey) {
        const vs = (id: string) => loadResults[id].bare.rps / loadResults[id].portkey.rps
        console.log(`bare/portkey throughput (the most a Node relay gets here): non-stream ${f(vs('nonstream_c50'), 2)}x, stream ${f(vs('stream_c50'), 2)}x`)
      }
    }
  }
  console.log(`gateway start: up in ${startMs} ms, RSS ${idleRssMb} MB before any traffic (bar <= 150 MB: ${idleRssMb <= 150 ? 'met' : 'NOT met'})` +
    (portkeyIdleRssMb ? `; portkey RSS after its first request: ${portkeyIdleRssMb} MB` : ''))
  let slowFailures = 0
  if (soak) {
    const d = soak.drift
    console.log(
      `\nsoak: ${soak.streamsCompleted}/${soak.streamsStarted} streams complete, ${soak.shortCalls} short calls, failures ${JSON.stringify(soak.failures)}`
    )
    console.log(
      `soak drift, last full minute against minute 2: RSS ${d.rssMb >= 0 ? '+' : ''}${d.rssMb} MB, short-call p50 ${d.shortP50Ms.toFixed(2)} ms, ` +
        `p99 ${d.shortP99Ms.toFixed(2)} ms (the mock called directly: p50 ${d.directP50Ms.toFixed(2)} ms), chunk delay p99 ${d.chunkP99Ms.toFixed(2)} ms`
    )
    slowFailures += Object.values(soak.failures).reduce((a, b) => a + b, 0)
  }
  if (SLOW) {
    const direct = slowResults.direct
    console.log(
      `\nslow streams: ${SLOW_STREAMS} at once per target, ${SLOW_CHUNKS} chunks ${SLOW_CHUNK_DELAY_MS} ms apart, requests of ${(SLOW_BODY.length / 1024).toFixed(1)} KB`
    )
    const slowRows: string[][] = [['target', 'complete', 'wall s', 'stream p50/max s', 'first byte p50/p99 ms', 'chunk delay p50/p99/max ms', 'added p50/p99 ms', 'RSS start/peak MB']]
    const g = (v: number, digits = 1) => (Number.isFinite(v) ? v.toFixed(digits) : '-')
    for (const [name, r] of Object.entries(slowResults)) {
      const added = direct && name !== 'direct' ? `${g(r.chunkDelayMs.p50 - direct.chunkDelayMs.p50, 2)}/${g(r.chunkDelayMs.p99 - direct.chunkDelayMs.p99, 2)}` : ''
      slowRows.push([
        name,
        `${r.completed}/${r.streams}`,
        g(r.wallMs / 1000),
        `${g(r.streamMs.p50 / 1000)}/${g(r.streamMs.max / 1000)}`,
        `${g(r.firstByteMs.p50)}/${g(r.firstByteMs.p99)}`,
        `${g(r.chunkDelayMs.p50, 2)}/${g(r.chunkDelayMs.p99, 2)}/${g(r.chunkDelayMs.max, 0)}`,
        added,
        name === 'direct' ? '' : `${r.rssStartMb[name] ?? '-'}/${r.rssPeakMb[name] ?? '-'}`,
      ])
      if (r.incomplete) console.log(`  ${name}: ${r.incomplete} incomplete: ${JSON.stringify(r.failures)}`)
      if (r.unstampedStreams) console.log(`  ${name}: ${r.unstampedStreams} complete streams carried no send stamps (the path rewrote the chunks)`)
      if (name === 'gateway') slowFailures += r.incomplete
    }
    const sw = slowRows[0].map((_, c) => Math.max(...slowRows.map((row) => row[c].length)))
    for (const [i, row] of slowRows.entries()) {
      console.log(row.map((cell, c) => (c === 0 ? cell.padEnd(sw[c]) : cell.padStart(sw[c]))).join('  '))
      if (i === 0) console.log(sw.map((w) => '-'.repeat(w)).join('  '))
    }
    const gw = slowResults.gateway
    if (gw) {
      const addedP99 = direct ? gw.chunkDelayMs.p99 - direct.chunkDelayMs.p99 : gw.chunkDelayMs.p99
      const ok = gw.incomplete === 0 && gw.streamMs.max <= SLOW_CHUNKS * SLOW_CHUNK_DELAY_MS + 5000 && (gw.rssPeakMb.gateway ?? 0) <= 400 && addedP99 <= 50
      console.log(
        `slow-stream bar (all complete, each within the stream's length + 5 s, RSS <= 400 MB, added p99 per chunk <= 50 ms): ${ok ? 'met' : 'NOT met'}`
      )
    }
  }
  const failures = slowFailures + accounting.mismatches + Object.values(loadResults)
    .flatMap((byTarget) => Object.values(byTarget))
    .reduce((sum, r) => sum + r.non2xx + r.errors + r.timeouts, 0) +
    Object.values(seqResults).reduce((sum, r) => sum + r.non2xx, 0) +
    Object.values(ttfbResults).reduce((sum, r) => sum + r.non2xx, 0) +
    Object.entries(directPairs)
      .filter(([name]) => name !== 'gateway')
      .reduce((sum, [, pair]) => sum + pair.sequential.non2xx + pair.ttfb.non2xx, 0)
  console.log(`non-2xx responses, errors and timeouts in all runs: ${failures}`)
  console.log(`gateway output lines during the run: ${gateway.lineCount} (LOG_LEVEL=${childEnv.LOG_LEVEL})`)
  for (const l of gateway.lines.filter((l) => !/First start|email:|password:|channels:|Create an API key/.test(l)).slice(-10)) {
    console.log(`  | ${l}`)
  }
  console.log(
    `metering: ${metering.meteredCalls?.toFixed(1)} calls metered (input tokens / ${promptTokensPerCall}); ` +
      `the gateway answered ${metering.answered} with 2xx of ${metering.sent} sent (warm-up included)`
  )
  if (balance) console.log(`bench user's balance after the run: ${JSON.stringify(balance)}`)
  console.log(
    `accounting: ${accounting.usageRows} usage rows (${accounting.answered} answered 2xx, ${accounting.sent} sent), recording ` +
      `${accounting.recordedAttempts} upstream attempts for ${accounting.forwarded} the mocks received; ` +
      `ledger sum ${accounting.ledgerSum} = balance ${accounting.balance}; charges ${accounting.charges} = usage cost ${accounting.usageCost} ` +
      `(balance change ${accounting.balanceChange}): ${accounting.mismatches ? 'MISMATCH' : 'exact'}`
  )

  const results = {
    date: new Date().toISOString(),
    machine,
    config: {
      seconds: SECONDS,
      c1Seconds: C1_SECONDS,
      connections: CONNECTIONS,
      warmupSeconds: WARMUP_SECONDS,
      sequentialN: SEQ_N,
      ttfbN: TTFB_N,
      body: BODY,
      cpuProfile: CPU_PROF,
    },
    targets: targets.map((t) => t.name),
    load: loadResults,
    sequential: seqResults,
    ttfb: ttfbResults,
    directPairs,
    bars,
    failures,
    metering,
    accounting,
    start: { ms: startMs, idleRssMb, portkeyIdleRssMb },
    soak,
    slowStreams: SLOW ? { streams: SLOW_STREAMS, chunks: SLOW_CHUNKS, chunkDelayMs: SLOW_CHUNK_DELAY_MS, results: slowResults } : null,
    gatewayStatus: status.body,
    balance,
    loadavgAtEnd: os.loadavg().map((l) => Math.round(l * 100) / 100),
  }
  if (env.BENCH_OUT) {
    writeFileSync(resolve(env.BENCH_OUT), JSON.stringify(results, null, 2) + '\n')
    log(`results written to ${resolve(env.BENCH_OUT)}`)
  }
  return failures
}

interface Accounting {
  /** Requests the mocks received with the channel's key: the gateway's upstream attempts */
  forwarded: number
  /** The attempts the usage rows record (equal to `forwarded`) */
  recordedAttempts: number
  /** 2xx answers and requests sent through the gateway by the bench (rows fall between: a request cut by its client still has one) */
  answered: number
  sent: number
  usageRows: number
  usageCost: string
  charges: string
  ledgerSum: string
  balance: string
  balanceChange: string
  mismatches: number
}

/**
 * The exact accounting check, read from the database after the meter has
 * drained: the upstream attempts the usage rows record equal the requests
 * the mocks received with the channel's key; there is a row for every 2xx
 * answer and no more rows than requests sent (a request its client cut off
 * while queued still has one, with no attempt); the ledger sums to the
 * balance and the charges to the usage cost (compared in Postgres, exact
 * numerics).
 */
async function checkAccounting(
  dir: string,
  email: string,
  mockOrigins: string[],
  answered: number,
  sent: number
): Promise<Accounting> {
  let forwarded = 0
  for (const origin of mockOrigins) {
    const received = (await getJson(`${origin}/__mock/received`)).body as Record<string, number>
    forwarded += received['mock-key'] ?? 0
  }
  const { pgPassword } = JSON.parse(readFileSync(join(dir, 'secrets.json'), 'utf8'))
  const port = Number(readFileSync(join(dir, 'postgres', 'postmaster.pid'), 'utf8').split('\n')[3])
  const client = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', password: pgPassword, database: 'gateway' })
  await client.connect()
  try {
    const { rows } = await client.query(
      `SELECT u.balance::text AS balance,
              (SELECT COUNT(*) FROM usage_records r WHERE r.user_id = u.id)::int AS usage_rows,
              (SELECT COALESCE(SUM(attempts), 0) FROM usage_records r WHERE r.user_id = u.id)::int AS attempts,
              (SELECT COALESCE(SUM(cost), 0) FROM usage_records r WHERE r.user_id = u.id)::text AS usage_cost,
              (SELECT COALESCE(SUM(-amount), 0) FROM balance_ledger l WHERE l.user_id = u.id AND kind = 'charge')::text AS charges,
              (SELECT COALESCE(SUM(amount), 0) FROM balance_ledger l WHERE l.user_id = u.id)::text AS ledger_sum,
              (SELECT COALESCE(SUM(amount), 0) FROM balance_ledger l WHERE l.user_id = u.id AND kind = 'topup')::text AS topups,
              (SELECT (COALESCE(SUM(amount), 0) - u.balance) FROM balance_ledger l WHERE l.user_id = u.id AND kind = 'topup')::text AS balance_change,
              (SELECT COALESCE(SUM(amount), 0) FROM balance_ledger l WHERE l.user_id = u.id) = u.balance AS ledger_ok,
              (SELECT COALESCE(SUM(-amount), 0) FROM balance_ledger l WHERE l.user_id = u.id AND kind = 'charge')
                = (SELECT COALESCE(SUM(cost), 0) FROM usage_records r WHERE r.user_id = u.id) AS charges_ok
         FROM users u WHERE u.email = $1`,
      [email]
    )
    const row = rows[0]
    const rowsOk = row.attempts === forwarded && row.usage_rows >= answered && row.usage_rows <= sent
    const mismatches = (rowsOk ? 0 : 1) + (row.ledger_ok ? 0 : 1) + (row.charges_ok ? 0 : 1)
    return {
      forwarded,
      recordedAttempts: row.attempts,
      answered,
      sent,
      usageRows: row.usage_rows,
      usageCost: row.usage_cost,
      charges: row.charges,
      ledgerSum: row.ledger_sum,
      balance: row.balance,
      balanceChange: row.balance_change,
      mismatches,
    }
  } finally {
    await client.end()
  }
}

/** The gateway's main thread profile (the busiest of its threads' profiles), per autocannon run (c=50 and c=1) and over its whole life. */
function printProfiles() {
  const files = existsSync(PROF_DIR) ? readdirSync(PROF_DIR).filter((f) => f.endsWith('.cpuprofile')) : []
  if (!files.length) {
    console.log(`\nno CPU profile was written in ${PROF_DIR}`)
    return
  }
  // The load windows on the profile's clock, for tools that read the profile further (inclusive times, call trees).
  writeFileSync(join(PROF_DIR, 'windows.json'), JSON.stringify(windows, null, 1))
  const gatewayWindows = windows.filter((w) => w.label.endsWith(', gateway'))
  for (const window of [...gatewayWindows, null]) {
    const summaries = files.map((f) => summarizeProfile(join(PROF_DIR, f), window)).sort((a, b) => b.busyMs - a.busyMs)
    const main = summaries[0]
    const total = main.busyMs + main.idleMs
    console.log(
      `\nGateway CPU profile, ${window ? window.label : 'whole life (boot included)'}: ` +
        `main thread busy ${main.busyMs.toFixed(0)} ms of ${total.toFixed(0)} ms (${((main.busyMs / total) * 100).toFixed(0)}%)` +
        ` [${main.file}]`
    )
    console.log('  self time by area:')
    for (const a of main.areas.slice(0, 12)) console.log(`    ${(a.share * 100).toFixed(1).padStart(5)}%  ${a.name}`)
    console.log('  self time by function:')
    for (const fn of main.functions.slice(0, window ? 25 : 10)) {
      console.log(`    ${(fn.share * 100).toFixed(1).padStart(5)}%  ${fn.name}`)
    }
  }
}

const deadline = setTimeout(() => {
  console.error(`[bench] timed out after ${TIMEOUT_SECONDS}s: cleaning up`)
  cleanup().finally(() => process.exit(1))
}, TIMEOUT_SECONDS * 1000)

try {
  const failures = await main()
  await cleanup()
  if (CPU_PROF) printProfiles()
  if (failures > 0) process.exitCode = 1
} catch (error) {
  console.error(`[bench] failed: ${(error as Error).stack ?? error}`)
  await cleanup()
  process.exitCode = 1
} finally {
  clearTimeout(deadline)
}
