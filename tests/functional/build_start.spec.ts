import { test } from '@japa/runner'
import { spawn, spawnSync } from 'node:child_process'
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createServer, type AddressInfo } from 'node:net'
import { WebSocket } from 'ws'

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo
      server.close(() => resolve(port))
    })
  })
}

/**
 * `npm start` runs a compiled build (bin/start.js compiles into build/ on
 * first start). The build's app root is build/, so everything the pages read
 * from disk at run time (translations, their CSS/JS, vendor files from
 * node_modules) must reach it: once it did not, and every page said
 * "translation missing" without styles. This runs first of the suites that
 * spawn bin/start.js, so it also pays for the one-time compile.
 */
test.group('npm start (compiled build)', () => {
  test('serves translated pages, their CSS/JS and the API', async ({ assert }) => {
    const port = await freePort()
    // A start killed mid-build leaves its lock behind; the next start must break it (its owner is
    // gone) instead of waiting 3 minutes. Only a start that needs to build takes the lock (CI's first).
    const lock = join(process.cwd(), 'tmp', 'build.lock')
    mkdirSync(lock, { recursive: true })
    writeFileSync(join(lock, 'pid'), String(spawnSync(process.execPath, ['-e', '']).pid))
    // The start script's own command line, run as npm runs it (`sh -c`, node_modules/.bin first on
    // the PATH): node flags it cannot take (once, one in NODE_OPTIONS) must fail here, not on an
    // operator's machine. Its own process group, so that whatever it leaves behind can be stopped.
    const script = JSON.parse(readFileSync('package.json', 'utf8')).scripts.start as string
    const child = spawn('sh', ['-c', script], {
      detached: true,
      env: {
        ...process.env,
        PATH: `${join(process.cwd(), 'node_modules', '.bin')}:${process.env.PATH}`,
        NODE_ENV: 'production',
        PORT: String(port),
        LOG_LEVEL: 'info',
        SHUTDOWN_GRACE_MS: '1000',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let output = ''
    child.stdout.on('data', (d) => (output += d))
    child.stderr.on('data', (d) => (output += d))
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
    const base = `http://127.0.0.1:${port}`
    try {
      let up = false
      for (let i = 0; i < 1200 && child.exitCode === null && !up; i++) {
        up = await fetch(`${base}/api/status`).then((r) => r.ok, () => false)
        if (!up) await new Promise((r) => setTimeout(r, 100))
      }
      assert.isTrue(up, `server did not start:\n${output}`)
      // Once booted, the web server runs its one memory-reducing GC (start/settle_heap.ts), then says ready.
      let ready = false
      for (let i = 0; i < 300 && !ready; i++) {
        ready = await fetch(`${base}/api/status`).then((r) => r.json(), () => ({})).then((b: any) => b.ready === true)
        if (!ready) await new Promise((r) => setTimeout(r, 100))
      }
      assert.isTrue(ready, `server never said ready:\n${output}`)
      // The line is logged before `ready` is set, but it reaches this pipe on its own time (a clean
      // clone's CI once read `ready` before it): wait for it a little.
      const settledLine = /heap settled after boot: RSS \d+ -> \d+ MB/
      for (let i = 0; i < 100 && !settledLine.test(output); i++) await new Promise((r) => setTimeout(r, 100))
      assert.match(output, settledLine)

      for (const page of ['/login', '/register', '/docs', '/status']) {
        const response = await fetch(`${base}${page}`, { headers: { 'accept-language': 'vi' } })
        const html = await response.text()
        assert.equal(response.status, 200, page)
        assert.notInclude(html, 'translation missing', page)
      }
      const login = await (await fetch(`${base}/login`)).text()
      assert.include(login, 'for="f-email"')
      for (const asset of ['/assets/app.css', '/assets/pico.min.css', '/assets/uplot.min.js', '/assets/app.js']) {
        const response = await fetch(`${base}${asset}`)
        assert.equal(response.status, 200, asset)
        assert.isAbove((await response.arrayBuffer()).byteLength, 100, asset)
      }
      // The Realtime API's upgrades reach their handler on the server bin/server.ts makes: a keyless one is refused as OpenAI does.
      const refusal = await new Promise<number | undefined>((resolve, reject) => {
        const socket = new WebSocket(`ws://127.0.0.1:${port}/v1/realtime?model=gpt-realtime`)
        socket.on('error', () => {})
        socket.once('open', () => reject(new Error('a keyless realtime session was accepted')))
        socket.once('unexpected-response', (_req, res) => resolve(res.statusCode))
      })
      assert.equal(refusal, 401)
    } finally {
      rmSync(lock, { recursive: true, force: true })
      // What npm does with a SIGTERM (docker stop, systemd): forward it to the script's shell. It must
      // reach the gateway (the script execs node), which drains, flushes the meter and exits 0.
      child.kill('SIGTERM')
      const code = await Promise.race([exited, new Promise((r) => setTimeout(() => r('still running'), 30_000))])
      try {
        process.kill(-child.pid!, 'SIGKILL')
      } catch {}
      assert.equal(code, 0, output)
      assert.match(output, /shutdown: requests drained, metering flushed/)
    }
  }).timeout(180_000)
})
