import { test } from '@japa/runner'
import { spawn } from 'node:child_process'
import { readdirSync } from 'node:fs'
import { createServer, type AddressInfo } from 'node:net'
import pg from 'pg'

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo
      server.close(() => resolve(port))
    })
  })
}

/**
 * The web server hands pending migrations to a short-lived `ace
 * migration:run` child (GatewayProvider.#migrateInChild): a server that ran
 * them in its own heap measured 5-12% more CPU per request for its whole
 * life. Here the production server starts on an empty database (a fresh one
 * on the test cluster) and must come up with every migration applied, by
 * the child, not by itself.
 */
test.group('Server start on an empty database', () => {
  test('pending migrations are applied by a child process, then the server serves', async ({ assert }) => {
    const name = `gw_start_migrations_${process.pid}`
    const url = new URL(process.env.DATABASE_URL!)
    const admin = new pg.Client({ connectionString: url.toString() })
    await admin.connect()
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
    await admin.query(`CREATE DATABASE ${name}`)
    url.pathname = `/${name}`
    const port = await freePort()
    const child = spawn(process.execPath, ['bin/start.js'], {
      env: { ...process.env, DATABASE_URL: url.toString(), NODE_ENV: 'production', PORT: String(port), LOG_LEVEL: 'info', SHUTDOWN_GRACE_MS: '1000' },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let output = ''
    child.stdout.on('data', (d) => (output += d))
    child.stderr.on('data', (d) => (output += d))
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
    try {
      let ready = false
      for (let i = 0; i < 1200 && child.exitCode === null && !ready; i++) {
        ready = await fetch(`http://127.0.0.1:${port}/api/status`)
          .then((r) => r.json(), () => ({}))
          .then((b: any) => b.ready === true)
        if (!ready) await new Promise((r) => setTimeout(r, 100))
      }
      assert.isTrue(ready, `server did not get ready:\n${output}`)
      assert.match(output, /pending migrations applied by a child process in \d+ ms/)
      assert.notMatch(output, /applying the migrations in the server process/)

      const migrations = readdirSync('database/migrations').filter((f) => /\.(ts|js)$/.test(f))
      const fresh = new pg.Client({ connectionString: url.toString() })
      await fresh.connect()
      try {
        const { rows } = await fresh.query('SELECT COUNT(*)::int AS n FROM adonis_schema')
        assert.equal(rows[0].n, migrations.length)
      } finally {
        await fresh.end()
      }
    } finally {
      child.kill('SIGTERM')
      const code = await exited
      await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
      await admin.end()
      assert.equal(code, 0, output)
    }
  }).timeout(180_000)
})
