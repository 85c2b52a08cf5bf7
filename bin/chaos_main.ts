/*
|--------------------------------------------------------------------------
| Chaos run: faults everywhere, then a reconciliation that must balance
|--------------------------------------------------------------------------
|
| `npm run chaos` (docs/reliability.md explains the figures). Loopback only,
| bounded in count (CHAOS_REQUESTS) and time (CHAOS_TIMEOUT_SECONDS):
|
| 1. a throwaway DATA_DIR; the gateway (`bin/start.js`, production) as a child
|    process with its embedded Postgres on a fixed port; the mock upstream in
|    this process, injecting 5xx, 429 + Retry-After, connection resets
|    mid-stream, slow first bytes and stalls (before the head and mid-stream);
|    two channels per wire format (OpenAI, Anthropic, Google), priced models,
|    several users with small balances;
| 2. CHAOS_CONCURRENCY workers send a seeded mix of requests over every wire
|    format (chat completions, responses, messages, Gemini), stream or not,
|    and abort some at random;
| 3. at 25% of the requests the gateway is killed with SIGKILL and restarted
|    on the same data; at 50% Postgres is stopped for 2 s and restarted while
|    traffic goes on; at 75% the gateway gets SIGTERM (graceful) and is
|    restarted;
| 4. at the end the gateway is stopped gracefully and started once more (it
|    replays any spill), and the run reconciles what clients saw with the
|    database: rows missing or doubled, ledger vs balances, overdraw, records
|    lost to the SIGKILL. It prints a table and exits 1 when a check fails.
|
| Environment (all optional):
|   CHAOS_REQUESTS         requests to send (default 20000)
|   CHAOS_CONCURRENCY      concurrent clients (default 48)
|   CHAOS_USERS            users, each with a small balance (default 6)
|   CHAOS_SEED             seed of the request mix and the faults (default 7)
|   CHAOS_TIMEOUT_SECONDS  hard limit for the whole run (default 900)
|   CHAOS_OUT              also write the table (markdown) to this file
|   CHAOS_KEEP=1           keep the data directory
*/
import { rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Agent, request } from 'undici'
import { MockUpstream } from '../tests/fixtures/mock_upstream/server.js'
import {
  connectDataDir,
  freePort,
  freshDataDir,
  seedAccount,
  seedChannelSql,
  seedPriceSql,
  startClusterDirectly,
  startGatewayProcess,
  type GatewayProcess,
  type SeededAccount,
} from '../tests/fixtures/gateway_process.js'
import { postmasterPid, stopServer } from '../start/postgres_process.js'

const env = process.env
function numEnv(name: string, fallback: number): number {
  const raw = env[name]
  if (raw === undefined || raw === '') return fallback
  const value = Number(raw)
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number, got "${raw}"`)
  return value
}

const TOTAL = Math.round(numEnv('CHAOS_REQUESTS', 20_000))
const CONCURRENCY = Math.round(numEnv('CHAOS_CONCURRENCY', 48))
const USERS = Math.round(numEnv('CHAOS_USERS', 6))
const SEED = Math.round(numEnv('CHAOS_SEED', 7))
const TIMEOUT_SECONDS = numEnv('CHAOS_TIMEOUT_SECONDS', 900)
/** Metering batch size of the gateway under test (the SIGKILL bound is stated in it) */
const BATCH_SIZE = 200
/** Price per million tokens: input, output. A request costs about $0.00025. */
const PRICE = { input: '20', output: '50' }
/** Each user's balance runs out before the end of the run (reservations hold more than a request costs). */
const BALANCE = ((TOTAL / USERS) * 0.00025 * 1.2).toFixed(4)
const MODELS_PER_FAMILY = 6

/** mulberry32: a small seeded PRNG, so a failing run can be replayed. */
function prng(seed: number) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
const pick = <T>(r: () => number, items: readonly T[]) => items[Math.floor(r() * items.length)]

/** What the mock upstream does to one request (seeded). */
function faultInjector(seed: number) {
  const r = prng(seed)
  return (): Record<string, unknown> | undefined => {
    const x = r()
    if (x < 0.03) return { status: 500 }
    if (x < 0.05) return { status: 503 }
    if (x < 0.06) return { status: 429, retry_after: 1 }
    if (x < 0.1) return { reset_after: 2 } // streams: the connection drops mid-stream
    if (x < 0.13) return { latency_ms: 400 } // slow first byte, within the timeout
    if (x < 0.14) return { latency_ms: 2500 } // stalls before the head: first-byte timeout
    if (x < 0.16) return { chunks: 4, chunk_delay_ms: 1300 } // stalls mid-stream: idle timeout
    return undefined
  }
}

type Format = 'chat' | 'responses' | 'messages' | 'gemini'
const FORMATS: readonly Format[] = ['chat', 'responses', 'messages', 'gemini']
const FAMILIES = ['oa', 'an', 'gm'] as const

interface Outcome {
  index: number
  user: number
  format: Format
  stream: boolean
  /** HTTP status, 0 when no response (refused, reset before the head) */
  status: number
  requestId: string | null
  /** The body was read to its end */
  complete: boolean
  /** The client aborted it on purpose */
  aborted: boolean
  completedAt: number
}

function buildRequest(r: () => number, key: string) {
  const format = pick(r, FORMATS)
  const stream = r() < 0.5
  const model = `chaos-${pick(r, FAMILIES)}-${Math.floor(r() * MODELS_PER_FAMILY)}`
  const text = 'hello chaos, say something short'
  switch (format) {
    case 'chat':
      return { format, stream, path: '/v1/chat/completions', headers: { authorization: `Bearer ${key}` }, body: { model, stream, max_tokens: 16, messages: [{ role: 'user', content: text }] } }
    case 'responses':
      return { format, stream, path: '/v1/responses', headers: { authorization: `Bearer ${key}` }, body: { model, stream, max_output_tokens: 16, input: text } }
    case 'messages':
      return { format, stream, path: '/v1/messages', headers: { 'x-api-key': key, 'anthropic-version': '2023-06-01' }, body: { model, stream, max_tokens: 16, messages: [{ role: 'user', content: text }] } }
    case 'gemini':
      return {
        format,
        stream,
        path: `/v1beta/models/${model}:${stream ? 'streamGenerateContent?alt=sse' : 'generateContent'}`,
        headers: { 'x-goog-api-key': key },
        body: { contents: [{ role: 'user', parts: [{ text }] }], generationConfig: { maxOutputTokens: 16 } },
      }
  }
}

interface Incident {
  what: string
  at: number
  detail: string
}

async function main() {
  const started = Date.now()
  const dataDir = freshDataDir('gw-chaos-')
  /** Every gateway incarnation, for its log (written next to the data when a check fails) */
  const incarnations: GatewayProcess[] = []
  const hardStop = setTimeout(() => {
    console.error(`chaos: hard time limit (${TIMEOUT_SECONDS} s) reached`)
    incarnations.forEach((g, i) => writeFileSync(join(dataDir, `gateway-${i + 1}.log`), g.output()))
    env.CHAOS_KEEP = '1'
    cleanup().finally(() => process.exit(2))
  }, TIMEOUT_SECONDS * 1000)
  hardStop.unref()

  const port = await freePort()
  const pgPort = await freePort()
  const mock = new MockUpstream({ record: 0, chunks: 6, faults: faultInjector(SEED) })
  await mock.start()
  const gatewayEnv = { CIRCUIT_COOLDOWN_MS: '2000', SHUTDOWN_GRACE_MS: '5000', METER_BATCH_SIZE: String(BATCH_SIZE), MAX_INFLIGHT: '4096', LOG_LEVEL: env.CHAOS_LOG_LEVEL ?? 'warn' }
  let gateway: GatewayProcess | null = null
  const startGateway = async () => {
    gateway = await startGatewayProcess({ dataDir, port, pgPort, env: gatewayEnv })
    incarnations.push(gateway)
    return gateway
  }

  async function cleanup() {
    if (gateway && gateway.child.exitCode === null && gateway.child.signalCode === null) gateway.child.kill('SIGKILL')
    await mock.stop().catch(() => {})
    const pid = postmasterPid(join(dataDir, 'postgres'))
    if (pid) await stopServer(pid)
    if (env.CHAOS_KEEP !== '1') rmSync(dataDir, { recursive: true, force: true })
    else console.error(`chaos: data kept in ${dataDir}`)
  }

  const incidents: Incident[] = []
  try {
    log(`data ${dataDir}; ${TOTAL} requests, ${CONCURRENCY} clients, ${USERS} users with $${BALANCE} each, seed ${SEED}`)
    await startGateway()
    const accounts: SeededAccount[] = []
    {
      const db = await connectDataDir(dataDir, pgPort)
      const timeouts = { firstByte: 1500, idle: 1000, total: 15_000 }
      for (const suffix of ['a', 'b']) {
        await seedChannelSql(db, { name: `oa-${suffix}`, provider: 'openai', baseUrl: mock.url, models: ['chaos-oa-*'], timeouts })
        await seedChannelSql(db, { name: `an-${suffix}`, provider: 'anthropic', baseUrl: mock.url, models: ['chaos-an-*'], timeouts })
        await seedChannelSql(db, { name: `gm-${suffix}`, provider: 'google', baseUrl: `${mock.origin}/v1beta`, models: ['chaos-gm-*'], timeouts })
      }
      await seedPriceSql(db, 'chaos-*', PRICE.input, PRICE.output)
      for (let u = 0; u < USERS; u++) accounts.push(await seedAccount(db, `chaos${u}@test.local`, BALANCE))
      await db.end()
    }
    await new Promise((r) => setTimeout(r, 500)) // channel NOTIFY reaches the gateway

    const agent = new Agent({ connections: CONCURRENCY * 2, keepAliveTimeout: 10_000, connect: { timeout: 2000 } })
    const outcomes: Outcome[] = []
    const mix = prng(SEED * 7919)
    let next = 0
    /** Resolved while the gateway is up; workers wait on it during a restart */
    let up: Promise<void> = Promise.resolve()
    let release: () => void = () => {}
    const pause = () => {
      up = new Promise((r) => (release = r))
    }
    let killAt = 0

    const send = async (index: number): Promise<Outcome> => {
      const user = index % USERS
      const spec = buildRequest(mix, accounts[user].key)
      const abortAfter = mix() < 0.06 ? Math.floor(mix() * 400) : null
      const controller = new AbortController()
      const timer = abortAfter === null ? null : setTimeout(() => controller.abort(), abortAfter)
      const outcome: Outcome = { index, user, format: spec.format, stream: spec.stream, status: 0, requestId: null, complete: false, aborted: false, completedAt: 0 }
      try {
        const response = await request(`http://127.0.0.1:${port}${spec.path}`, {
          method: 'POST',
          dispatcher: agent,
          headers: { 'content-type': 'application/json', ...spec.headers },
          body: JSON.stringify(spec.body),
          signal: controller.signal,
          headersTimeout: 30_000,
          bodyTimeout: 30_000,
        })
        outcome.status = response.statusCode
        const id = response.headers['x-request-id']
        outcome.requestId = typeof id === 'string' ? id : null
        // text() rejects when the connection drops before the end (dump() would not tell).
        await response.body.text()
        outcome.complete = !controller.signal.aborted
      } catch {
        // refused, reset, or aborted on purpose
      } finally {
        if (timer) clearTimeout(timer)
        outcome.aborted = controller.signal.aborted
        outcome.completedAt = Date.now()
      }
      return outcome
    }

    /** The three disruptions, each once, when the run reaches its share of requests. */
    const disruptions = [
      {
        at: Math.floor(TOTAL * 0.25),
        run: async () => {
          pause()
          killAt = Date.now()
          gateway!.child.kill('SIGKILL')
          await gateway!.exited
          incidents.push({ what: 'gateway SIGKILL', at: killAt, detail: 'killed under load, restarted on the same data' })
          const t = Date.now()
          await startGateway()
          incidents[incidents.length - 1].detail += ` (back in ${((Date.now() - t) / 1000).toFixed(1)} s)`
        },
      },
      {
        at: Math.floor(TOTAL * 0.5),
        run: async () => {
          const clusterDir = join(dataDir, 'postgres')
          const pid = postmasterPid(clusterDir)
          const t = Date.now()
          if (pid) await stopServer(pid)
          await new Promise((r) => setTimeout(r, 2000))
          await startClusterDirectly(dataDir, pgPort)
          const downFor = (Date.now() - t) / 1000
          // The gateway's writer finds the database again and replays what it spilled.
          let metering: any = null
          for (let i = 0; i < 300; i++) {
            metering = await fetch(`http://127.0.0.1:${port}/api/status`).then((r) => r.json()).then((b: any) => b.metering, () => null)
            if (metering && !metering.degraded && metering.spill_pending === 0 && metering.queued < BATCH_SIZE) break
            await new Promise((r) => setTimeout(r, 100))
          }
          incidents.push({
            what: 'Postgres restart',
            at: t,
            detail:
              `down ${downFor.toFixed(1)} s while traffic went on; ${metering?.spilled_total ?? '?'} records spilled to disk, ` +
              `${metering?.replayed_total ?? '?'} replayed when it was back`,
          })
          if (metering?.spill_pending !== 0) failures.push('the spill was not replayed after Postgres came back')
        },
      },
      {
        at: Math.floor(TOTAL * 0.75),
        run: async () => {
          pause()
          const t = Date.now()
          gateway!.child.kill('SIGTERM')
          const exit = await exitWithin(gateway!, 60_000)
          incidents.push({ what: 'gateway SIGTERM', at: t, detail: `exit code ${exit.code} after ${((Date.now() - t) / 1000).toFixed(1)} s, restarted` })
          if (exit.code !== 0) failures.push(`the gateway exited with ${exit.code ?? exit.signal} after SIGTERM`)
          await startGateway()
        },
      },
    ]
    const failures: string[] = []
    let disrupting: Promise<void> | null = null

    const worker = async () => {
      while (next < TOTAL) {
        await up
        const index = next++
        const due = disruptions.find((d) => d.at === index)
        if (due) {
          // One disruption at a time: the next waits until the previous one is over.
          disrupting = (disrupting ?? Promise.resolve()).then(async () => {
            const name = disruptions.indexOf(due)
            log(`disruption ${name + 1} at request ${index}`)
            try {
              await due.run()
            } catch (error: any) {
              failures.push(`disruption ${name + 1} failed: ${error?.message ?? error}`)
            } finally {
              // Workers never wait on a gateway that is not coming back.
              release()
              log(`disruption ${name + 1} over`)
            }
          })
        }
        outcomes.push(await send(index))
        if (outcomes.length % 2000 === 0) log(`${outcomes.length}/${TOTAL} answered`)
      }
    }
    const runStarted = Date.now()
    await Promise.all(Array.from({ length: CONCURRENCY }, worker))
    await disrupting
    const runSeconds = (Date.now() - runStarted) / 1000
    await agent.close()

    // Graceful stop, then a fresh start on the same data (replays any spill) to reconcile.
    gateway!.child.kill('SIGTERM')
    const finalExit = await exitWithin(gateway!, 60_000)
    if (finalExit.code !== 0) failures.push(`final SIGTERM: exit ${finalExit.code ?? finalExit.signal}`)
    await startGateway()
    const report = await reconcile(dataDir, pgPort, accounts, outcomes, killAt, failures)
    gateway!.child.kill('SIGTERM')
    await gateway!.exited

    const table = renderTable({ outcomes, incidents, report, runSeconds, totalSeconds: (Date.now() - started) / 1000, failures })
    console.log(table)
    if (env.CHAOS_OUT) writeFileSync(env.CHAOS_OUT, table + '\n')
    process.exitCode = failures.length > 0 ? 1 : 0
    if (failures.length > 0) {
      incarnations.forEach((g, i) => writeFileSync(join(dataDir, `gateway-${i + 1}.log`), g.output()))
      const since = (t: number) => `${((t - started) / 1000).toFixed(2)} s`
      for (const i of incidents) console.error(`chaos: ${i.what} at ${since(i.at)}`)
      for (const id of report.missingIds.slice(0, 10)) {
        const o = outcomes.find((x) => x.requestId === id)!
        console.error(`chaos: missing ${id}: ${o.format} stream=${o.stream} status ${o.status}, finished at ${since(o.completedAt)}`)
      }
      env.CHAOS_KEEP = '1'
    }
  } finally {
    await cleanup()
    clearTimeout(hardStop)
  }
}

interface Reconciliation {
  usageRows: number
  expected: number
  missing: number
  doubled: number
  lostToKill: number
  lostMaxAgeMs: number
  missingIds: string[]
  users: Array<{ user: number; balance: number; ledger: number; charged: number; usageCost: number; maxCost: number; overdraw: number; rows: number }>
}

/**
 * What clients saw vs what the database holds. A request must have exactly
 * one usage row when the client got its x-request-id and read the answer to
 * the end (aborts and requests cut by a kill may or may not have one). The
 * ones missing that completed just before the SIGKILL are the records the
 * kill lost: counted, and held to the documented bound.
 */
async function reconcile(
  dataDir: string,
  pgPort: number,
  accounts: SeededAccount[],
  outcomes: Outcome[],
  killAt: number,
  failures: string[]
): Promise<Reconciliation> {
  const db = await connectDataDir(dataDir, pgPort)
  try {
    const rows = await db.query('SELECT request_id::text AS id FROM usage_records')
    const counts = new Map<string, number>()
    for (const row of rows.rows) counts.set(row.id, (counts.get(row.id) ?? 0) + 1)
    const doubledCharges = await db.query(
      `SELECT count(*)::int AS n FROM (SELECT usage_record_id FROM balance_ledger WHERE kind = 'charge' GROUP BY 1 HAVING count(*) > 1) d`
    )
    let expected = 0
    let missing = 0
    let lostToKill = 0
    let lostMaxAgeMs = 0
    const missingIds: string[] = []
    for (const o of outcomes) {
      if (!o.requestId || !o.complete) continue
      expected++
      if (counts.has(o.requestId)) continue
      // Finished before the SIGKILL and not written: the kill's loss (the flush window).
      if (killAt > 0 && o.completedAt <= killAt + 50 && o.completedAt >= killAt - 10_000) {
        lostToKill++
        lostMaxAgeMs = Math.max(lostMaxAgeMs, killAt - o.completedAt)
      } else {
        missing++
        missingIds.push(o.requestId)
      }
    }
    const doubled = [...counts.values()].filter((n) => n > 1).length + doubledCharges.rows[0].n

    const users: Reconciliation['users'] = []
    for (let u = 0; u < accounts.length; u++) {
      const r = await db.query(
        `SELECT u.balance::float8 AS balance,
                (SELECT COALESCE(SUM(amount), 0) FROM balance_ledger WHERE user_id = u.id)::float8 AS ledger,
                (SELECT COALESCE(-SUM(amount), 0) FROM balance_ledger WHERE user_id = u.id AND kind = 'charge')::float8 AS charged,
                (SELECT COALESCE(SUM(cost), 0) FROM usage_records WHERE user_id = u.id)::float8 AS usage_cost,
                (SELECT COALESCE(MAX(cost), 0) FROM usage_records WHERE user_id = u.id)::float8 AS max_cost,
                (SELECT count(*) FROM usage_records WHERE user_id = u.id)::int AS rows
           FROM users u WHERE u.id = $1`,
        [accounts[u].userId]
      )
      const x = r.rows[0]
      users.push({ user: u, balance: x.balance, ledger: x.ledger, charged: x.charged, usageCost: x.usage_cost, maxCost: x.max_cost, overdraw: Math.max(0, -x.balance), rows: x.rows })
    }

    if (missing > 0) failures.push(`${missing} answered requests have no usage row`)
    if (doubled > 0) failures.push(`${doubled} requests were written or charged twice`)
    if (lostToKill > BATCH_SIZE) failures.push(`SIGKILL lost ${lostToKill} records, more than one batch (${BATCH_SIZE})`)
    if (lostMaxAgeMs > 1000) failures.push(`SIGKILL lost a record finished ${lostMaxAgeMs} ms before the kill (bound: 1 s)`)
    for (const x of users) {
      if (Math.abs(x.balance - x.ledger) > 1e-9) failures.push(`user ${x.user}: balance ${x.balance} != ledger ${x.ledger}`)
      if (Math.abs(x.charged - x.usageCost) > 1e-9) failures.push(`user ${x.user}: charges ${x.charged} != usage cost ${x.usageCost}`)
      if (x.overdraw > x.maxCost + 1e-12) failures.push(`user ${x.user}: overdrawn by ${x.overdraw}, more than one request (${x.maxCost})`)
    }
    const errors500 = outcomes.filter((o) => o.status === 500).length
    if (errors500 > 0) failures.push(`${errors500} answers were 500 internal_error`)
    return { usageRows: rows.rowCount ?? 0, expected, missing, doubled, lostToKill, lostMaxAgeMs, missingIds, users }
  } finally {
    await db.end()
  }
}

function renderTable(input: {
  outcomes: Outcome[]
  incidents: Incident[]
  report: Reconciliation
  runSeconds: number
  totalSeconds: number
  failures: string[]
}) {
  const { outcomes, report } = input
  const byStatus = new Map<string, number>()
  for (const o of outcomes) {
    const key = o.aborted ? 'aborted by the client' : o.status === 0 ? 'no answer (refused or cut)' : String(o.status)
    byStatus.set(key, (byStatus.get(key) ?? 0) + 1)
  }
  const lines: string[] = []
  lines.push(`| Check | Value |`, `| --- | --- |`)
  lines.push(`| Requests sent | ${outcomes.length} (${outcomes.filter((o) => o.stream).length} streams; ${FORMATS.map((f) => `${f} ${outcomes.filter((o) => o.format === f).length}`).join(', ')}) |`)
  for (const [status, n] of [...byStatus].sort()) lines.push(`| Answered ${status} | ${n} |`)
  lines.push(`| Usage rows | ${report.usageRows} |`)
  lines.push(`| Answers read to the end with a request id | ${report.expected} |`)
  lines.push(`| Rows missing | ${report.missing} |`)
  lines.push(`| Rows or charges doubled | ${report.doubled} |`)
  lines.push(`| Records lost to the SIGKILL | ${report.lostToKill} (bound ${BATCH_SIZE}; oldest ${report.lostMaxAgeMs} ms before the kill, bound 1000 ms) |`)
  for (const u of report.users) {
    lines.push(
      `| User ${u.user}: balance / ledger sum / charges / usage cost | ${u.balance.toFixed(6)} / ${u.ledger.toFixed(6)} / ${u.charged.toFixed(6)} / ${u.usageCost.toFixed(6)} (${u.rows} rows) |`
    )
  }
  const worst = report.users.reduce((a, b) => (b.overdraw - b.maxCost > a.overdraw - a.maxCost ? b : a))
  lines.push(`| Largest overdraw | $${worst.overdraw.toFixed(6)} (user ${worst.user}; one request costs up to $${worst.maxCost.toFixed(6)}) |`)
  for (const i of input.incidents) lines.push(`| ${i.what} | ${i.detail} |`)
  lines.push(`| Duration | ${input.runSeconds.toFixed(0)} s of traffic (${(outcomes.length / input.runSeconds).toFixed(0)} req/s), ${input.totalSeconds.toFixed(0)} s in all |`)
  lines.push(`| Result | ${input.failures.length === 0 ? 'PASS' : `FAIL: ${input.failures.join('; ')}`} |`)
  return lines.join('\n')
}

/** Waits for the gateway to exit; one that hangs after SIGTERM is killed and reported as such. */
async function exitWithin(g: GatewayProcess, ms: number) {
  let timer: NodeJS.Timeout | undefined
  const hung = new Promise<null>((r) => (timer = setTimeout(() => r(null), ms)))
  const exit = await Promise.race([g.exited, hung])
  clearTimeout(timer)
  if (exit) return exit
  g.child.kill('SIGKILL')
  await g.exited
  return { code: null, signal: `still running ${ms / 1000} s after SIGTERM` as NodeJS.Signals }
}

function log(message: string) {
  console.error(`chaos: ${message}`)
}

await main()
