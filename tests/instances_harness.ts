import { spawn, type ChildProcess } from 'node:child_process'
import pg from 'pg'
import { createServer, type AddressInfo } from 'node:net'

/**
 * Several production gateways (`bin/start.js`) on one Postgres, as replicas
 * behind a balancer: the multi-instance tests (tests/functional/instances*.spec.ts)
 * start them as child processes, call each on its own port, and wait for a
 * change made through one to show on the other, always with a bound.
 */

export function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo
      server.close(() => resolve(port))
    })
  })
}

export interface Instance {
  name: string
  port: number
  url: string
  child: ChildProcess
  exited: Promise<number | null>
  output(): string
  /** SIGTERM, then the exit code (SIGKILL after `ms`) */
  stop(ms?: number): Promise<number | null>
}

/** Spawns one production gateway; does not wait for it to be ready (see waitReady). */
export async function spawnInstance(name: string, env: Record<string, string> = {}): Promise<Instance> {
  const port = await freePort()
  const child = spawn(process.execPath, ['bin/start.js'], {
    env: {
      ...process.env,
      NODE_ENV: 'production',
      PORT: String(port),
      LOG_LEVEL: 'warn',
      SHUTDOWN_GRACE_MS: '2000',
      SETTLE_HEAP: 'false',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  child.stdout!.on('data', (d) => (output = (output + d).slice(-50_000)))
  child.stderr!.on('data', (d) => (output = (output + d).slice(-50_000)))
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  return {
    name,
    port,
    url: `http://127.0.0.1:${port}`,
    child,
    exited,
    output: () => output,
    async stop(ms = 15_000) {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), ms)
      const code = await exited
      clearTimeout(timer)
      return code
    },
  }
}

/** Waits until the instance says `ready` on /api/status (up to `ms`: a stale build is compiled first). */
export async function waitReady(instance: Instance, ms = 120_000): Promise<void> {
  const deadline = Date.now() + ms
  while (Date.now() < deadline && instance.child.exitCode === null) {
    const ready = await fetch(`${instance.url}/api/status`)
      .then((r) => r.json(), () => ({}))
      .then((b: any) => b?.ready === true, () => false)
    if (ready) return
    await sleep(100)
  }
  throw new Error(`${instance.name} did not get ready (exit ${instance.child.exitCode}):\n${instance.output()}`)
}

export async function startInstance(name: string, env: Record<string, string> = {}): Promise<Instance> {
  const instance = await spawnInstance(name, env)
  try {
    await waitReady(instance)
  } catch (error) {
    instance.child.kill('SIGKILL')
    throw error
  }
  return instance
}

export function sleep(ms: number) {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/**
 * Polls `probe` until `done` holds of its result, at most `ms`; returns the
 * last result (the caller asserts on it, so a timeout fails with what was seen).
 */
export async function until<T>(probe: () => Promise<T>, done: (value: T) => boolean, ms = 5_000, every = 50): Promise<T> {
  const deadline = Date.now() + ms
  for (;;) {
    const value = await probe()
    if (done(value) || Date.now() >= deadline) return value
    await sleep(every)
  }
}

export interface Answer {
  status: number
  body: any
  headers: Headers
}

export async function call(
  instance: Instance,
  method: string,
  path: string,
  key: string,
  body?: unknown,
  headers: Record<string, string> = {}
): Promise<Answer> {
  const response = await fetch(`${instance.url}${path}`, {
    method,
    headers: { 'authorization': `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  const text = await response.text()
  let parsed: any = text
  try {
    parsed = JSON.parse(text)
  } catch {}
  return { status: response.status, body: parsed, headers: response.headers }
}

/** One small non-streamed chat completion. */
export function chat(instance: Instance, key: string, model = 'gpt-4o-mini', extra: Record<string, unknown> = {}, headers: Record<string, string> = {}) {
  return call(instance, 'POST', '/v1/chat/completions', key, { model, messages: [{ role: 'user', content: 'hi' }], ...extra }, headers)
}

/**
 * An empty database on the test cluster (a fresh install's), named `name`:
 * its URL, and `drop()` to remove it (forcing out any connection left).
 */
export async function emptyDatabase(name: string): Promise<{ url: string; drop(): Promise<void> }> {
  const url = new URL(process.env.DATABASE_URL!)
  const admin = new pg.Client({ connectionString: url.toString() })
  await admin.connect()
  await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
  await admin.query(`CREATE DATABASE ${name}`)
  url.pathname = `/${name}`
  return {
    url: url.toString(),
    async drop() {
      await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
      await admin.end()
    },
  }
}
