/*
| `npm run bench:ab`: the gateway's CPU per request under two sets of node
| flags, measured interleaved.
|
| On this VM the host's noise moves a gateway's CPU per request by up to 2x
| between two runs a few minutes apart (docs/benchmarks.md), which swamps a
| 10% difference between flags measured one run after the other. Here two
| gateways run side by side (one Postgres, one mock upstream) and the load
| alternates between them in short windows, in A-B / B-A order, so the
| host's drift hits both alike; the medians and the per-window pairs are
| printed. Each window also reports the shared Postgres's CPU per request:
| only the loaded gateway meters during a window, so that is its metering
| cost in the database.
|
|   AB_A, AB_B     node flags of each gateway (default: none / npm start's)
|   AB_A_ENV, AB_B_ENV  extra environment of each, "NAME=value NAME=value"
|                  (e.g. AB_A_ENV=SETTLE_HEAP=false)
|   AB_A_ROOT, AB_B_ROOT  the tree each gateway runs from (default: this one),
|                  e.g. a `git worktree` of the commit before a change, with
|                  node_modules linked: the A/B of two commits
|   AB_ROUNDS      rounds of one window per gateway and scenario (6)
|   AB_SECONDS     seconds per window (4)
|   AB_SEQUENTIAL  sequential calls per gateway, in turns (3000)
|   AB_TURN        recorded calls per turn (20); longer turns keep work a
|                  gateway defers (a metering flush) inside its own turn
|   AB_IDLE_SECONDS  when set, the sequential calls come in AB_IDLE_CYCLES (4)
|                  cycles of a 4 s burst on each gateway, a pause of this many
|                  seconds, then AB_SEQUENTIAL / cycles calls each, in turns:
|                  what a lone client meets after a pause, once V8's memory
|                  reducer has run (it starts 8 s after the allocation rate
|                  drops; docs/benchmarks.md, ninth pass)
|
| The two places were not equal: the gateway started first (A) applied the
| migrations in its own heap and measured 5-12% more CPU per request than B
| with the same code. The server now applies them in a child process; a
| 3-4% difference is left. Run both orders (swap the A_ and B_ settings)
| and take the half-difference.
|
| Loopback only; bounded by the rounds; every child is stopped by PID.
*/
import { execFileSync, spawn } from 'node:child_process'
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import os from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import autocannon from 'autocannon'

const ROOT = fileURLToPath(new URL('../', import.meta.url))
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'))
// The node flags of the start script (`node --flag --flag bin/start.js`), as bench_main.ts reads them.
const startFlags = (/\bnode((?:\s+--\S+)*)\s+bin\/start\.js/.exec(pkg.scripts.start)?.[1] ?? '').trim()
const flags = (value) => value.split(/\s+/).filter(Boolean)
const FLAGS = { A: flags(process.env.AB_A ?? ''), B: flags(process.env.AB_B ?? startFlags) }
const envOf = (value) => Object.fromEntries(flags(value ?? '').map((pair) => [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)]))
const ENVS = { A: envOf(process.env.AB_A_ENV), B: envOf(process.env.AB_B_ENV) }
const ROOTS = { A: process.env.AB_A_ROOT || ROOT, B: process.env.AB_B_ROOT || ROOT }
const ROUNDS = Number(process.env.AB_ROUNDS ?? 6)
const SECONDS = Number(process.env.AB_SECONDS ?? 4)
const SEQUENTIAL = Number(process.env.AB_SEQUENTIAL ?? 3000)
const TURN = Number(process.env.AB_TURN ?? 20)
const IDLE_SECONDS = Number(process.env.AB_IDLE_SECONDS ?? 0)
const IDLE_CYCLES = Number(process.env.AB_IDLE_CYCLES ?? 4)

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const freePort = () =>
  new Promise((resolve) => {
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
  })
const cpuMs = (pid) => {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) * 10
}
/**
 * CPU of the shared Postgres (postmaster and its children: the two gateways' backends, the WAL
 * writer, the checkpointer), in ms. Only the loaded gateway meters during a window, so the
 * window's share is that gateway's metering cost.
 */
const postgresCpuMs = () => {
  const processes = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      if (!readFileSync(`/proc/${entry}/comm`, 'utf8').startsWith('postgres')) continue
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      const pid = Number(entry)
      if (!postmaster && readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(dataDir)) postmaster = pid
      processes.push({ pid, parent: Number(fields[1]), ms: (Number(fields[11]) + Number(fields[12])) * 10 })
    } catch {
      // The process ended between the listing and the read.
    }
  }
  let total = 0
  for (const p of processes) if (p.pid === postmaster || p.parent === postmaster) total += p.ms
  return total
}
/** The postmaster of this run: the postgres process whose command line names our data directory. */
let postmaster = 0
const rssMb = (pid) => Math.round(Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) / 1024)
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]

// A throwaway data directory (Postgres, run as the postgres user under root, must be able to enter it).
const dataDir = mkdtempSync(join(os.tmpdir(), 'gateway-ab-'))
chmodSync(dataDir, 0o777)
const [pgPort, mockPort, portA, portB] = [await freePort(), await freePort(), await freePort(), await freePort()]
const env = { ...process.env, DATA_DIR: dataDir, EMBEDDED_PG_PORT: String(pgPort), NODE_ENV: 'production', LOG_LEVEL: 'warn', HOST: '127.0.0.1' }
delete env.DATABASE_URL
delete env.NODE_OPTIONS

const children = []
function start(args, childEnv, cwd = ROOT) {
  const child = spawn(process.execPath, args, { cwd, env: childEnv, stdio: ['ignore', 'ignore', 'pipe'] })
  child.stderr.on('data', (data) => process.env.AB_VERBOSE && process.stderr.write(data))
  children.push(child)
  return child
}
async function stopAll() {
  // The gateways first (the one that started Postgres stops it once the other is gone), then the mock.
  for (const child of children.reverse()) {
    if (child.exitCode !== null) continue
    child.kill('SIGTERM')
    await Promise.race([new Promise((resolve) => child.once('exit', resolve)), sleep(20_000)])
  }
  rmSync(dataDir, { recursive: true, force: true })
}
async function ready(port) {
  for (let waited = 0; waited < 180_000; waited += 250) {
    try {
      const response = await fetch(`http://127.0.0.1:${port}/api/status`)
      if (response.status === 200 && (await response.json()).ready !== false) return
    } catch {}
    await sleep(250)
  }
  throw new Error(`the gateway on :${port} did not get ready`)
}

try {
  start(['bin/mock_upstream.js', '--port', String(mockPort)], env)
  const gateways = {
    A: { port: portA, child: start([...FLAGS.A, 'bin/start.js'], { ...env, ...ENVS.A, PORT: String(portA) }, ROOTS.A) },
    B: { port: portB, child: null },
  }
  await ready(portA)
  gateways.B.child = start([...FLAGS.B, 'bin/start.js'], { ...env, ...ENVS.B, PORT: String(portB) }, ROOTS.B)
  await ready(portB)
  console.log(`A: ${ROOTS.A} ${FLAGS.A.join(' ') || '(no flags)'} ${process.env.AB_A_ENV ?? ''}  idle RSS ${rssMb(gateways.A.child.pid)} MB`)
  console.log(`B: ${ROOTS.B} ${FLAGS.B.join(' ') || '(no flags)'} ${process.env.AB_B_ENV ?? ''}  idle RSS ${rssMb(gateways.B.child.pid)} MB`)

  const run = Date.now().toString(36)
  const ace = (...args) => execFileSync(process.execPath, ['ace.js', ...args], { cwd: ROOT, env, encoding: 'utf8' })
  // Limits on, never reached (as in `npm run bench`): per-minute requests and tokens, monthly quotas.
  ace('plan:create', '--name', `ab-${run}`, '--models', '*', '--rpm', '100000000', '--tpm', '2000000000', '--monthly-input-tokens', '1000000000000', '--monthly-output-tokens', '1000000000000')
  ace('channel:create', '--name', `mock-${run}`, '--provider', 'custom', '--base-url', `http://127.0.0.1:${mockPort}/v1`, '--api-key', 'mock-key', '--models', 'bench-*')
  ace('price:set', '--model', 'bench-*', '--input', '1', '--output', '2')
  ace('user:create', '--email', `ab-${run}@localhost`, '--plan', `ab-${run}`, '--password', `ab-${run}-password`)
  ace('balance:topup', '--user', `ab-${run}@localhost`, '--amount', '1000000')
  const key = ace('key:create', '--user', `ab-${run}@localhost`, '--name', 'ab').trim().split('\n').pop().trim()
  const headers = { 'authorization': `Bearer ${key}`, 'content-type': 'application/json' }
  const body = (stream) => JSON.stringify({ model: 'bench-1', stream, messages: [{ role: 'user', content: 'hello' }] })
  // The key and channel reach both gateways' caches through LISTEN/NOTIFY.
  await sleep(2000)

  async function window(name, stream, seconds) {
    const gateway = gateways[name]
    const before = cpuMs(gateway.child.pid)
    const postgresBefore = postgresCpuMs()
    const result = await autocannon({
      url: `http://127.0.0.1:${gateway.port}/v1/chat/completions`,
      method: 'POST',
      headers,
      body: body(stream),
      connections: 50,
      duration: seconds,
    })
    if (result.non2xx || result.errors) throw new Error(`${name}: ${result.non2xx} non-2xx, ${result.errors} errors`)
    const requests = result.requests.total
    return {
      rps: requests / result.duration,
      us: ((cpuMs(gateway.child.pid) - before) * 1000) / requests,
      postgresUs: ((postgresCpuMs() - postgresBefore) * 1000) / requests,
    }
  }

  for (const name of ['A', 'B']) {
    await window(name, false, 3)
    await window(name, true, 3)
  }
  const results = {}
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 ? ['B', 'A'] : ['A', 'B']
    for (const [scenario, stream] of [['non-stream c=50', false], ['stream c=50', true]]) {
      for (const name of order) (results[`${scenario} ${name}`] ??= []).push(await window(name, stream, SECONDS))
    }
  }

  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  const once = (port) =>
    new Promise((resolve, reject) => {
      const started = performance.now()
      const request = http.request({ host: '127.0.0.1', port, path: '/v1/chat/completions', method: 'POST', headers, agent }, (response) => {
        response.resume()
        response.on('end', () => resolve(performance.now() - started))
      })
      request.on('error', reject)
      request.end(body(false))
    })
  const sequential = { A: [], B: [] }
  // Turns of AB_TURN back-to-back calls, A-B then B-A, the first 2 of each turn unrecorded: a call right
  // after the other gateway's overlaps its post-answer work (metering, GC), which a lone client never meets.
  async function turns(calls, unrecorded) {
    const recorded = { A: [], B: [] }
    for (let turn = 0; turn < Math.ceil((calls + unrecorded) / TURN); turn++) {
      for (const name of turn % 2 ? ['B', 'A'] : ['A', 'B']) {
        for (let k = 0; k < TURN + 2; k++) {
          const ms = await once(gateways[name].port)
          if (k >= 2 && turn * TURN + k - 2 >= unrecorded) recorded[name].push(ms)
        }
      }
    }
    for (const name of ['A', 'B']) sequential[name].push(...recorded[name])
    return recorded
  }
  if (IDLE_SECONDS > 0) {
    // Cycles of a burst (both gateways, 4 s each), a pause, then calls in turns, all of them recorded:
    // the calls right after a pause are the ones it slows.
    for (let cycle = 0; cycle < IDLE_CYCLES; cycle++) {
      for (const name of cycle % 2 ? ['B', 'A'] : ['A', 'B']) await window(name, false, 4)
      await sleep(IDLE_SECONDS * 1000)
      const rss = { A: rssMb(gateways.A.child.pid), B: rssMb(gateways.B.child.pid) }
      const recorded = await turns(Math.ceil(SEQUENTIAL / IDLE_CYCLES), 0)
      console.log(
        `after pause ${cycle + 1}: p50 A ${median(recorded.A).toFixed(3)} ms, B ${median(recorded.B).toFixed(3)} ms; ` +
          `RSS at the end of the pause A ${rss.A} MB, B ${rss.B} MB`
      )
    }
  } else await turns(SEQUENTIAL, 100)
  agent.destroy()

  console.log('')
  for (const [label, windows] of Object.entries(results)) {
    console.log(
      `${label.padEnd(18)} gateway µs/request ${windows.map((w) => Math.round(w.us)).join(' ')} (median ${Math.round(median(windows.map((w) => w.us)))}); ` +
        `req/s median ${Math.round(median(windows.map((w) => w.rps)))}; ` +
        `postgres µs/request median ${Math.round(median(windows.map((w) => w.postgresUs)))}`
    )
  }
  // The median of the per-iteration differences: what drift in the host's speed moves least.
  const paired = sequential.A.map((a, i) => a - sequential.B[i])
  console.log(
    `sequential p50: A ${median(sequential.A).toFixed(3)} ms, B ${median(sequential.B).toFixed(3)} ms; ` +
      `median of the paired differences A - B: ${(median(paired) * 1000).toFixed(1)} µs`
  )
  console.log(`RSS after the load and the sequential calls: A ${rssMb(gateways.A.child.pid)} MB, B ${rssMb(gateways.B.child.pid)} MB`)
} catch (error) {
  process.exitCode = 1
  console.error(error)
} finally {
  await stopAll()
}
