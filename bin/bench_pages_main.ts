/*
|--------------------------------------------------------------------------
| Benchmark: every GET page and reporting endpoint at 1M usage rows
|--------------------------------------------------------------------------
|
| `npm run bench:pages` (docs/benchmarks.md, "Pages at 1M usage rows (every
| page)"). A report, not a test: it exits 0 whatever it measures. Loopback
| only, bounded in time (BENCH_PAGES_TIMEOUT_SECONDS) and in count (one
| warm-up and BENCH_PAGES_RUNS requests per URL, one at a time).
|
| 1. its own DATA_DIR under tmp/bench-pages/ (BENCH_PAGES_DIR) and its own
|    embedded Postgres port, kept in state.json there: a rerun reuses the
|    seeded data and does not seed again (delete the directory to reseed);
| 2. `npm start`'s production server (bin/start.js, its node flags), the
|    administrator from ADMIN_EMAIL / ADMIN_PASSWORD on the first start;
| 3. on the first run, `seed:demo --users 1000 --usage-rows 1000000`
|    (BENCH_PAGES_USERS, BENCH_PAGES_ROWS) through ace against the running
|    server's Postgres, then VACUUM ANALYZE, a management key for the admin
|    and an API key for the portal user;
| 4. signs in as the admin and as a demo user (a team's member, in an
|    organization, with end users) through /login, as a browser does;
| 5. times each URL: the panel (/admin), the portal (/dashboard), the
|    management API (/api/admin), LiteLLM's reporting routes and the key's own
|    reports, with the filters a user picks (a user, a model, a channel, a
|    key, a tag, an end user, a team, an organization; 7 days, 30 days, a
|    year); the CSV exports to their first data row. No route sets a
|    Server-Timing header, so the figure is wall time on loopback, the whole
|    body read (session, auth, queries, rendering);
| 6. prints a table sorted slowest first (median, max, status, size), the
|    load average during the run, and writes JSON to BENCH_OUT (default
|    tmp/bench-pages/last.json).
|
| Only the gateway started here is stopped, by its PID (it stops the embedded
| Postgres it started).
|
| Environment (all optional):
|   BENCH_PAGES_DIR          state and data directory (default tmp/bench-pages)
|   BENCH_PAGES_PORT         the gateway's port (default: a free one)
|   BENCH_PAGES_RUNS         timed requests per URL (default 7)
|   BENCH_PAGES_ONLY         a regular expression: only the URLs it matches
|   BENCH_PAGES_USERS, BENCH_PAGES_ROWS   the seed's size (default 1000, 1000000)
|   BENCH_PAGES_TIMEOUT_SECONDS  hard limit for the whole run (default 1800)
|   BENCH_OUT                JSON results (default <dir>/last.json)
*/
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync, chmodSync } from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import os from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import pg from 'pg'

const ROOT = fileURLToPath(new URL('../', import.meta.url))
const env = process.env
const DIR = resolve(ROOT, env.BENCH_PAGES_DIR || 'tmp/bench-pages')
const DATA_DIR = join(DIR, 'data')
const STATE_FILE = join(DIR, 'state.json')
const RUNS = Number(env.BENCH_PAGES_RUNS || 7)
const ONLY = env.BENCH_PAGES_ONLY ? new RegExp(env.BENCH_PAGES_ONLY) : null
const SEED_USERS = Number(env.BENCH_PAGES_USERS || 1000)
const SEED_ROWS = Number(env.BENCH_PAGES_ROWS || 1_000_000)
const TIMEOUT_MS = Number(env.BENCH_PAGES_TIMEOUT_SECONDS || 1800) * 1000
const REQUEST_TIMEOUT_MS = 60_000
const ADMIN_EMAIL = 'admin@localhost'
const ADMIN_PASSWORD = 'bench-pages-admin-password'

interface State {
  pgPort: number
  seeded: boolean
  mgmtKey?: string
  userKey?: string
  portalUserId?: number
}

const log = (message: string) => console.log(`[bench:pages] ${message}`)
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
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

/** The node flags of the start script (`node --flag ... bin/start.js`), as bench_main.ts reads them. */
function npmStartNodeFlags(): string[] {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'))
  const match = /\bnode((?:\s+--\S+)*)\s+bin\/start\.js/.exec(pkg.scripts?.start ?? '')
  return match ? match[1].split(/\s+/).filter(Boolean) : []
}

function readState(): State | null {
  try {
    return JSON.parse(readFileSync(STATE_FILE, 'utf8'))
  } catch {
    return null
  }
}

let gateway: ChildProcess | null = null
const gatewayLines: string[] = []

async function stopGateway() {
  if (!gateway || gateway.exitCode !== null || gateway.pid === undefined) return
  const exited = new Promise((r) => gateway!.once('exit', r))
  gateway.kill('SIGTERM')
  if ((await Promise.race([exited, sleep(20_000).then(() => 'timeout')])) === 'timeout') {
    console.error(`[bench:pages] gateway (pid ${gateway.pid}) did not stop in 20 s: SIGKILL`)
    gateway.kill('SIGKILL')
    await exited
  }
}

function runNode(args: string[], childEnv: NodeJS.ProcessEnv, timeoutMs: number): Promise<string> {
  return new Promise((resolveRun, reject) => {
    execFile(process.execPath, args, { cwd: ROOT, env: childEnv, timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`node ${args.join(' ')} failed: ${error.message}\n${stdout}\n${stderr}`))
      else resolveRun(stripAnsi(stdout))
    })
  })
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })

interface Answer {
  status: number
  ms: number
  bytes: number
  headers: http.IncomingHttpHeaders
  body: string
}

/**
 * One GET on loopback: wall time until the whole body is read, or until its
 * first data row (`firstByte`: the CSV exports, whose header line is written
 * before the first batch is read; then the socket is dropped).
 */
function get(origin: string, path: string, headers: Record<string, string>, firstByte = false, keepBody = false): Promise<Answer> {
  return new Promise((resolveGet, reject) => {
    const started = process.hrtime.bigint()
    const request = http.get(`${origin}${path}`, { agent: firstByte ? false : agent, headers }, (response) => {
      const chunks: Buffer[] = []
      let bytes = 0
      let lines = 0
      let finished = false
      const done = () => {
        if (finished) return
        finished = true
        const ms = Number(process.hrtime.bigint() - started) / 1e6
        resolveGet({ status: response.statusCode ?? 0, ms, bytes, headers: response.headers, body: keepBody ? Buffer.concat(chunks).toString('utf8') : '' })
      }
      response.on('data', (chunk: Buffer) => {
        bytes += chunk.length
        if (keepBody) chunks.push(chunk)
        if (firstByte) {
          for (const byte of chunk) if (byte === 10) lines++
          // The header line, then a row (or an error page / empty export that ends first)
          if (lines >= 2 || response.statusCode !== 200) {
            done()
            request.destroy()
          }
        }
      })
      response.on('end', () => done())
      response.on('error', () => {})
    })
    request.setTimeout(REQUEST_TIMEOUT_MS, () => request.destroy(new Error(`${path}: no answer in ${REQUEST_TIMEOUT_MS} ms`)))
    request.on('error', (error) => {
      if (!firstByte || !request.destroyed) reject(error)
    })
  })
}

/** Signs in through /login as a browser does (the form's CSRF token, the session cookie). */
async function login(origin: string, email: string, password: string): Promise<string> {
  const jar = new Map<string, string>()
  const keep = (response: Response) => {
    for (const line of response.headers.getSetCookie()) {
      const [pair] = line.split(';')
      const eq = pair.indexOf('=')
      jar.set(pair.slice(0, eq).trim(), pair.slice(eq + 1).trim())
    }
  }
  const cookie = () => [...jar].map(([k, v]) => `${k}=${v}`).join('; ')
  const form = await fetch(`${origin}/login`, { redirect: 'manual' })
  keep(form)
  const html = await form.text()
  const input = /<input[^>]*name=["']_csrf["'][^>]*>/.exec(html)
  const csrf = input && /value=["']([^"']+)["']/.exec(input[0])?.[1]
  if (!csrf) throw new Error('no CSRF token on /login')
  const answer = await fetch(`${origin}/login`, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded', 'cookie': cookie(), 'referer': `${origin}/login` },
    body: new URLSearchParams({ email, password, _csrf: csrf }).toString(),
  })
  keep(answer)
  await answer.text()
  const location = answer.headers.get('location') ?? ''
  if (answer.status !== 302 || location.includes('login')) throw new Error(`login of ${email} failed: ${answer.status} -> ${location}`)
  return cookie()
}

type Auth = 'admin' | 'portal' | 'mgmt' | 'key' | 'none'
interface Target {
  auth: Auth
  path: string
  firstByte?: boolean
}

interface Picks {
  userId: number
  keyId: number
  model: string
  channelId: number
  tag: string
  endUser: string
  teamId: number
  orgId: number
  usageId: number
  portalUsageId: number
  requestId: string
  budgetId: string
}

/** What the URLs name: the portal user (offset 1: its key in a team of an organization, end users listed) and its data. */
async function pick(client: pg.Client, portalUserId: number): Promise<Picks> {
  const one = async (sql: string, params: unknown[] = []) => (await client.query(sql, params)).rows[0] ?? {}
  const key = await one(`SELECT id, team_id FROM api_keys WHERE user_id = $1 AND name = 'demo'`, [portalUserId])
  const team = await one(`SELECT organization_id FROM teams WHERE id = $1`, [key.team_id])
  const endUser = await one(`SELECT end_user FROM end_users WHERE user_id = $1 ORDER BY end_user LIMIT 1`, [portalUserId])
  const channel = await one(`SELECT id FROM channels WHERE name LIKE 'demo-openai-%' ORDER BY id DESC LIMIT 1`)
  const usage = await one(`SELECT id, request_id FROM usage_records ORDER BY id DESC LIMIT 1`)
  const own = await one(`SELECT id FROM usage_records WHERE user_id = $1 ORDER BY id DESC LIMIT 1`, [portalUserId])
  const budget = await one(`SELECT budget_id FROM budgets ORDER BY id LIMIT 1`)
  return {
    userId: portalUserId,
    keyId: Number(key.id),
    model: 'gpt-4o',
    channelId: Number(channel.id),
    tag: 'team-c',
    endUser: endUser.end_user ?? 'end-user-1',
    teamId: Number(key.team_id),
    orgId: Number(team.organization_id),
    usageId: Number(usage.id),
    portalUsageId: Number(own.id),
    requestId: usage.request_id,
    budgetId: budget.budget_id ?? 'demo-budget-1',
  }
}

function day(offset: number) {
  const d = new Date()
  d.setUTCHours(0, 0, 0, 0)
  d.setUTCDate(d.getUTCDate() - offset)
  return d.toISOString().slice(0, 10)
}

/** Every GET page and reporting endpoint, with the filters a user picks. */
function targets(p: Picks): Target[] {
  const today = day(0)
  const d30 = `from=${day(29)}&to=${today}`
  const year = `from=${day(364)}&to=${today}`
  const l7 = `start_date=${day(6)}&end_date=${today}`
  const l30 = `start_date=${day(29)}&end_date=${today}`
  const lyear = `start_date=${day(364)}&end_date=${today}`
  const usageFilters = [
    '',
    `?${d30}`,
    `?${year}`,
    `?user=${p.userId}`,
    `?user=${p.userId}&${d30}`,
    `?user=${p.userId}&${year}`,
    `?model=${p.model}`,
    `?model=${p.model}&${d30}`,
    `?model=${p.model}&${year}`,
    `?channel=${p.channelId}`,
    `?channel=${p.channelId}&${d30}`,
    `?key=${p.keyId}&${d30}`,
    `?tag=${p.tag}`,
    `?tag=${p.tag}&${d30}`,
    `?end_user=${p.endUser}&${d30}`,
    `?status=error`,
    `?status=error&${d30}`,
    `?model=${p.model}&status=error&${d30}`,
    `?user=${p.userId}&model=${p.model}&${year}`,
  ]
  const list: Target[] = []
  const add = (auth: Auth, ...paths: string[]) => list.push(...paths.map((path) => ({ auth, path })))
  // The admin panel
  add('admin', '/admin', '/admin/users', '/admin/users?q=demo-', '/admin/users?status=disabled', '/admin/users/new')
  add('admin', `/admin/users/${p.userId}`, `/admin/users/${p.userId}/end-users`, '/admin/budgets', '/admin/plans', '/admin/plans/new', '/admin/settings')
  add('admin', '/admin/keys', `/admin/keys?user=${p.userId}`, '/admin/keys?q=demo', '/admin/keys?status=revoked', '/admin/keys/new', `/admin/keys/${p.keyId}`, `/admin/keys/${p.keyId}/edit`)
  add('admin', '/admin/teams', '/admin/teams/new', `/admin/teams/${p.teamId}`, `/admin/teams/${p.teamId}/edit`)
  add('admin', '/admin/organizations', '/admin/organizations/new', `/admin/organizations/${p.orgId}/edit`)
  add('admin', '/admin/channels', '/admin/channels/new', `/admin/channels/${p.channelId}`, '/admin/prices', '/admin/redemptions', '/admin/redemptions/new')
  add('admin', '/admin/payments', '/admin/payments?status=paid', '/admin/payments?email=demo-', '/admin/batches', '/admin/audit', '/admin/audit?action=user', `/admin/audit?subject=user:${p.userId}`)
  add('admin', ...usageFilters.map((f) => `/admin/usage${f}`), `/admin/usage/${p.usageId}`)
  list.push({ auth: 'admin', path: '/admin/usage/export.csv', firstByte: true }, { auth: 'admin', path: `/admin/usage/export.csv?${year}`, firstByte: true })
  list.push({ auth: 'admin', path: `/admin/usage/export.csv?model=${p.model}&status=error&${d30}`, firstByte: true })
  // The portal, as the demo user
  add('portal', '/dashboard', '/dashboard/keys', `/dashboard/keys/${p.keyId}/edit`, '/dashboard/teams', `/dashboard/teams/${p.teamId}`, '/dashboard/billing')
  add('portal', '/dashboard/usage', `/dashboard/usage?${d30}`, `/dashboard/usage?${year}`, `/dashboard/usage?model=${p.model}&${d30}`, `/dashboard/usage?end_user=${p.endUser}&${d30}`)
  add('portal', `/dashboard/usage?key=${p.keyId}&${year}`, `/dashboard/usage/${p.portalUsageId}`, '/dashboard/batches', '/dashboard/models', '/dashboard/playground', '/dashboard/security', '/dashboard/password')
  list.push({ auth: 'portal', path: '/dashboard/usage.csv', firstByte: true }, { auth: 'portal', path: `/dashboard/usage.csv?${year}`, firstByte: true }, { auth: 'portal', path: '/dashboard/billing.csv', firstByte: true })
  add('none', '/pricing', '/docs', '/status', '/api/status')
  // The management API
  add('mgmt', '/api/admin/users', `/api/admin/users/${p.userId}`, `/api/admin/users/${p.userId}/usage`, '/api/admin/keys', `/api/admin/keys?user=${p.userId}`, `/api/admin/keys/${p.keyId}`)
  add('mgmt', '/api/admin/redemption-codes', `/api/admin/usage/${p.requestId}`, '/api/admin/budgets', `/api/admin/budgets/${p.budgetId}`, '/api/admin/teams', `/api/admin/teams/${p.teamId}`)
  add('mgmt', '/api/admin/organizations', `/api/admin/organizations/${p.orgId}`, '/api/admin/payments', `/api/admin/payments?user_id=${p.userId}`, '/api/admin/channels', `/api/admin/channels/${p.channelId}`, '/api/admin/prices')
  add('mgmt', '/api/admin/settings/sensitive-words', `/api/admin/end-users?user=${p.userId}`)
  add('mgmt', ...usageFilters.map((f) => `/api/admin/usage${f}`))
  add('mgmt', '/api/admin/spend/tags', `/api/admin/spend/tags?${d30}`, `/api/admin/spend/tags?${year}`, `/api/admin/spend/tags?tag=${p.tag}`, `/api/admin/spend/tags?user=${p.userId}&${d30}`)
  add('mgmt', '/api/admin/spend/end-users', `/api/admin/spend/end-users?${d30}`, `/api/admin/spend/end-users?${year}`, `/api/admin/spend/end-users?user=${p.userId}&${d30}`, `/api/admin/spend/end-users?end_user=${p.endUser}&${d30}`)
  // LiteLLM's routes (management key)
  add('mgmt', '/key/list', `/key/list?user_id=${p.userId}`, '/spend/logs', `/spend/logs?user_id=${p.userId}&${l30}`, `/spend/logs?api_key=${p.keyId}&${l30}`, `/spend/logs?${lyear}`)
  add('mgmt', `/user/info?user_id=${p.userId}`, '/user/list', '/spend/tags', `/spend/tags?${l30}`, `/spend/tags?${lyear}`)
  add('mgmt', `/customer/info?end_user_id=${p.endUser}&owner=${p.userId}`, `/customer/list?owner=${p.userId}`, '/budget/list', `/budget/settings?budget_id=${p.budgetId}`)
  add('mgmt', '/global/spend/logs', `/global/spend/logs?api_key=${p.keyId}`, '/global/spend/keys', '/global/spend/keys?limit=100', '/global/spend/models', '/global/spend/models?limit=100')
  add('mgmt', '/global/spend/report', `/global/spend/report?${l30}`, `/global/spend/report?${lyear}`, `/global/spend/report?group_by=customer`, `/global/spend/report?group_by=customer&${l30}`)
  add('mgmt', '/global/spend/report?group_by=api_key', `/global/spend/report?group_by=api_key&${l30}`, `/global/spend/report?group_by=api_key&${lyear}`)
  add('mgmt', `/team/info?team_id=${p.teamId}`, '/team/list', `/organization/info?organization_id=${p.orgId}`, '/organization/list')
  add('mgmt', `/organization/daily/activity?${l7}`, `/organization/daily/activity?${l30}`, `/organization/daily/activity?${lyear}`, `/organization/daily/activity?organization_ids=${p.orgId}&${l30}`)
  // The key's own reports (the portal user's API key)
  add('key', '/v1/usage', '/v1/balance', '/v1/models', '/api/v1/key', '/api/v1/credits', '/v1/dashboard/billing/subscription', '/v1/dashboard/billing/usage', '/key/info', '/v1/model/info')
  return ONLY ? list.filter((t) => ONLY.test(t.path)) : list
}

function median(values: number[]) {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

async function main() {
  const deadline = setTimeout(() => {
    console.error(`[bench:pages] over ${TIMEOUT_MS / 1000} s: stopping`)
    stopGateway().finally(() => process.exit(2))
  }, TIMEOUT_MS)
  deadline.unref()

  mkdirSync(DATA_DIR, { recursive: true })
  // As root the embedded Postgres runs as "postgres", which must enter the directory.
  chmodSync(DIR, 0o755)
  chmodSync(DATA_DIR, 0o755)
  let state = readState()
  if (!state) {
    state = { pgPort: await freePort(), seeded: false }
    writeFileSync(STATE_FILE, JSON.stringify(state, null, 2))
  }
  const port = env.BENCH_PAGES_PORT ? Number(env.BENCH_PAGES_PORT) : await freePort()
  const origin = `http://127.0.0.1:${port}`
  const childEnv: NodeJS.ProcessEnv = { ...process.env }
  for (const name of Object.keys(childEnv)) {
    if (name === 'DATABASE_URL' || name.endsWith('_API_KEY') || name.startsWith('ADMIN_')) delete childEnv[name]
  }
  Object.assign(childEnv, {
    DATA_DIR,
    EMBEDDED_PG_PORT: String(state.pgPort),
    NODE_ENV: 'production',
    LOG_LEVEL: 'warn',
    HOST: '127.0.0.1',
    PORT: String(port),
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
  })
  log(`data ${DATA_DIR}, gateway :${port}, postgres :${state.pgPort}, load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`)

  gateway = spawn(process.execPath, [...npmStartNodeFlags(), 'bin/start.js'], { cwd: ROOT, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] })
  const collect = (chunk: Buffer) => {
    for (const line of chunk.toString('utf8').split('\n')) if (line.trim()) gatewayLines.push(line)
    if (gatewayLines.length > 200) gatewayLines.splice(0, gatewayLines.length - 200)
  }
  gateway.stdout!.on('data', collect)
  gateway.stderr!.on('data', collect)
  const bootDeadline = Date.now() + 300_000
  while (true) {
    if (gateway.exitCode !== null) throw new Error(`the gateway exited (${gateway.exitCode}):\n${gatewayLines.slice(-40).join('\n')}`)
    const ready = await get(origin, '/api/status', {}, false, true).then((a) => a.status === 200 && JSON.parse(a.body).ready !== false).catch(() => false)
    if (ready) break
    if (Date.now() > bootDeadline) throw new Error(`the gateway was not ready in 300 s:\n${gatewayLines.slice(-40).join('\n')}`)
    await sleep(300)
  }
  log('gateway ready')

  const { pgPassword } = JSON.parse(readFileSync(join(DATA_DIR, 'secrets.json'), 'utf8'))
  const client = new pg.Client({ host: '127.0.0.1', port: state.pgPort, user: 'postgres', password: pgPassword, database: 'gateway' })
  await client.connect()
  try {
    const ace = (args: string[], timeoutMs = 120_000) => runNode(['ace.js', ...args], childEnv, timeoutMs)
    if (!state.seeded) {
      const started = Date.now()
      log(`seeding ${SEED_USERS} users and ${SEED_ROWS.toLocaleString()} usage rows (seed:demo; ~2 min)`)
      await ace(['seed:demo', '--users', String(SEED_USERS), '--usage-rows', String(SEED_ROWS)], 1_200_000)
      log(`seeded in ${((Date.now() - started) / 1000).toFixed(0)} s; VACUUM ANALYZE`)
      await client.query('VACUUM ANALYZE')
      const portal = await client.query(`SELECT min(id)::int + 1 AS id FROM users WHERE email LIKE 'demo-%@demo.local'`)
      state.portalUserId = Number(portal.rows[0].id)
      const last = (text: string) => text.trim().split('\n').pop()!.trim()
      state.mgmtKey = last(await ace(['key:create', '--user', ADMIN_EMAIL, '--name', 'bench-pages', '--manage']))
      state.userKey = last(await ace(['key:create', '--user', String(state.portalUserId), '--name', 'bench-pages']))
      state.seeded = true
      writeFileSync(STATE_FILE, JSON.stringify(state, null, 2))
    } else {
      log('reusing the seeded data (delete the directory to reseed)')
    }
    const counts = await client.query(`SELECT (SELECT count(*) FROM usage_records)::int AS rows, (SELECT count(*) FROM users)::int AS users`)
    log(`${counts.rows[0].rows.toLocaleString()} usage rows, ${counts.rows[0].users} users`)
    const portalEmail = (await client.query('SELECT email FROM users WHERE id = $1', [state.portalUserId])).rows[0].email
    const picks = await pick(client, state.portalUserId!)

    const headers: Record<Auth, Record<string, string>> = {
      admin: { cookie: await login(origin, ADMIN_EMAIL, ADMIN_PASSWORD) },
      portal: { cookie: await login(origin, portalEmail, 'demo-password') },
      mgmt: { authorization: `Bearer ${state.mgmtKey}` },
      key: { authorization: `Bearer ${state.userKey}` },
      none: {},
    }
    const list = targets(picks)
    log(`${list.length} URLs, 1 warm-up + ${RUNS} sequential requests each (user ${picks.userId}, key ${picks.keyId}, team ${picks.teamId}, org ${picks.orgId}, end user ${picks.endUser})`)

    const loads: number[] = []
    const sampler = setInterval(() => loads.push(os.loadavg()[0]), 2000)
    const results: { auth: Auth; path: string; status: number; bytes: number; median: number; max: number; min: number; firstByte: boolean }[] = []
    const started = Date.now()
    for (const target of list) {
      const h = headers[target.auth]
      const warm = await get(origin, target.path, h, target.firstByte)
      const times: number[] = []
      let last = warm
      for (let i = 0; i < RUNS; i++) {
        last = await get(origin, target.path, h, target.firstByte)
        times.push(last.ms)
      }
      results.push({ auth: target.auth, path: target.path, status: last.status, bytes: last.bytes, median: median(times), max: Math.max(...times), min: Math.min(...times), firstByte: !!target.firstByte })
    }
    clearInterval(sampler)
    loads.push(os.loadavg()[0])

    results.sort((a, b) => b.median - a.median)
    const fmt = (ms: number) => (ms >= 100 ? ms.toFixed(0) : ms.toFixed(1))
    console.log('')
    console.log('| median ms | max ms | status | bytes | who | URL |')
    console.log('| ---: | ---: | ---: | ---: | --- | --- |')
    for (const r of results) {
      const flag = r.median > 300 ? ' **over 300 ms**' : ''
      console.log(`| ${fmt(r.median)} | ${fmt(r.max)} | ${r.status} | ${r.firstByte ? 'first row' : r.bytes} | ${r.auth} | \`${r.path}\`${flag} |`)
    }
    const over = results.filter((r) => r.median > 300).length
    const bad = results.filter((r) => r.status >= 400 || (r.status >= 300 && r.auth !== 'none')).length
    const loadText = `load average (1 min) during the run ${Math.min(...loads).toFixed(2)}-${Math.max(...loads).toFixed(2)} on ${os.cpus().length} cores`
    console.log('')
    log(`${results.length} URLs in ${((Date.now() - started) / 1000).toFixed(0)} s; ${over} over 300 ms (median); ${bad} not 2xx; ${loadText}`)
    const out = env.BENCH_OUT || join(DIR, 'last.json')
    writeFileSync(out, JSON.stringify({ at: new Date().toISOString(), runs: RUNS, loads, picks, results }, null, 2))
    log(`JSON: ${out}`)
  } finally {
    await client.end().catch(() => {})
    await stopGateway()
  }
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    console.error(`[bench:pages] ${signal}: stopping the gateway`)
    stopGateway().finally(() => process.exit(130))
  })
}

main()
  .catch(async (error) => {
    console.error(`[bench:pages] ${error instanceof Error ? error.stack : error}`)
    await stopGateway()
  })
  .finally(() => {
    agent.destroy()
    // A report, not a test: exit 0 whatever was measured (2 only on the hard time limit).
    process.exitCode = 0
  })
