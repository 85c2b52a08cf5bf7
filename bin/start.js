/*
| `npm start`: the production HTTP server, run from a compiled build.
|
| Running the TypeScript sources through the ts-exec loader keeps the loader
| and its compiler resident: about 85 MB more RSS at idle (237 MB against
| 152 MB on the benchmark machine, docs/benchmarks.md). So the first start
| compiles the app into build/ (`node ace build`, ~30 s), and later starts
| reuse it as long as no source file is newer than it. Without the build
| tools (a production install without dev dependencies) or with
| START_FROM_SOURCE=1, the server runs from the sources as before.
*/
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

process.env.NODE_ENV ||= 'production'
const ROOT = fileURLToPath(new URL('../', import.meta.url))
const BUILD = join(ROOT, 'build')
const STAMP = join(BUILD, '.sources')
/** What the build is made of: a change in any of these makes it stale */
const SOURCES = ['app', 'bin/server.ts', 'bin/console.ts', 'commands', 'config', 'database', 'providers', 'resources', 'start', 'adonisrc.ts', 'package.json', 'tsconfig.json']

/** Newest modification time and number of the source files: the build's fingerprint. */
function fingerprint() {
  let newest = 0
  let files = 0
  const visit = (path) => {
    const stat = statSync(path, { throwIfNoEntry: false })
    if (!stat) return
    if (stat.isDirectory()) {
      for (const name of readdirSync(path)) visit(join(path, name))
      return
    }
    files++
    newest = Math.max(newest, stat.mtimeMs)
  }
  for (const source of SOURCES) visit(join(ROOT, source))
  return `${newest} ${files}`
}

function canBuild() {
  try {
    import.meta.resolve('@adonisjs/assembler')
    import.meta.resolve('typescript')
    return true
  } catch {
    return false
  }
}

/** Is the process that took the build lock still running? (A lock without a pid file yet is fresh.) */
function ownerAlive(lock) {
  let pid = 0
  try {
    pid = Number(readFileSync(join(lock, 'pid'), 'utf8').trim())
  } catch {}
  if (!pid) return true
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return error.code === 'EPERM'
  }
}

/** Builds into build/ unless it is current. Returns false when it can't. */
function ensureBuild() {
  const current = fingerprint()
  if (existsSync(join(BUILD, 'bin', 'server.js')) && existsSync(STAMP) && readFileSync(STAMP, 'utf8') === current) {
    return true
  }
  if (!canBuild()) return false
  // Two starts at once: one builds, the other waits for it (mkdir is atomic).
  const lock = join(ROOT, 'tmp', 'build.lock')
  mkdirSync(join(ROOT, 'tmp'), { recursive: true })
  for (let waited = 0; ; waited += 500) {
    try {
      mkdirSync(lock)
      writeFileSync(join(lock, 'pid'), String(process.pid))
      break
    } catch {
      // A start stopped mid-build (Ctrl-C, SIGKILL) leaves the lock behind: break it when its owner is gone.
      if (waited > 180_000 || !ownerAlive(lock)) rmSync(lock, { recursive: true, force: true })
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 500)
    }
  }
  try {
    if (existsSync(STAMP) && readFileSync(STAMP, 'utf8') === fingerprint()) return true
    console.log('[start] compiling the app into build/ (first start or changed sources)...')
    const started = Date.now()
    const result = spawnSync(process.execPath, ['ace.js', 'build'], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] })
    if (result.status !== 0) {
      console.error('[start] the build failed: running from the TypeScript sources')
      return false
    }
    writeFileSync(STAMP, current)
    console.log(`[start] built in ${Date.now() - started} ms`)
    return true
  } finally {
    rmSync(lock, { recursive: true, force: true })
  }
}

if (process.env.START_FROM_SOURCE !== '1' && ensureBuild()) {
  // The build's app root is build/: read the operator's .env from the project root.
  process.env.ENV_PATH ||= ROOT
  await import('../build/bin/server.js')
} else {
  await import('@poppinss/ts-exec')
  await import('./server.js')
}
