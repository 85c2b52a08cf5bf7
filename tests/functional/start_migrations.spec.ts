import { test } from '@japa/runner'
import { spawn } from 'node:child_process'
import { readdirSync } from 'node:fs'
import pg from 'pg'
import { emptyDatabase, freePort } from '#tests/instances_harness'

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
    const database = await emptyDatabase(`gw_start_migrations_${process.pid}`)
    const port = await freePort()
    const child = spawn(process.execPath, ['bin/start.js'], {
      env: { ...process.env, DATABASE_URL: database.url, NODE_ENV: 'production', PORT: String(port), LOG_LEVEL: 'info', SHUTDOWN_GRACE_MS: '1000' },
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
      const fresh = new pg.Client({ connectionString: database.url })
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
      await database.drop()
      assert.equal(code, 0, output)
    }
  }).timeout(180_000)

  /** Runs the production start with `env`; resolves with its exit code and everything it printed. */
  async function startWith(env: Record<string, string>): Promise<{ code: number | null; output: string; ms: number }> {
    const started = Date.now()
    const child = spawn(process.execPath, ['bin/start.js'], {
      env: { ...process.env, NODE_ENV: 'production', PORT: String(await freePort()), LOG_LEVEL: 'info', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let output = ''
    child.stdout.on('data', (d) => (output += d))
    child.stderr.on('data', (d) => (output += d))
    const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)))
    return { code, output, ms: Date.now() - started }
  }

  test('an external database that never answers: the start waits DATABASE_WAIT_SECONDS, then says why in one line', async ({ assert }) => {
    const { code, output } = await startWith({ DATABASE_URL: `postgres://u:p@127.0.0.1:${await freePort()}/nowhere`, DATABASE_WAIT_SECONDS: '2' })
    assert.equal(code, 1, output)
    assert.match(output, /gateway: waiting for the database at 127\.0\.0\.1:\d+\/nowhere \(ECONNREFUSED\), up to 2 s/)
    assert.match(output, /gateway: cannot use the database at 127\.0\.0\.1:\d+\/nowhere \(DATABASE_URL\): connect ECONNREFUSED/)
    assert.notMatch(output, /\bat \w+.*\(.*:\d+:\d+\)/, 'no stack trace')
    assert.notInclude(output, 'u:p@', 'no credentials in the messages')
  }).timeout(180_000)

  test('a database that refuses the password fails at once, in one line, without waiting', async ({ assert }) => {
    const url = new URL(process.env.DATABASE_URL!)
    url.password = 'not-the-password'
    const { code, output } = await startWith({ DATABASE_URL: url.toString(), DATABASE_WAIT_SECONDS: '60' })
    assert.equal(code, 1, output)
    assert.match(output, /gateway: cannot use the database at 127\.0\.0\.1:\d+\/\w+ \(DATABASE_URL\): password authentication failed/)
    assert.notInclude(output, 'waiting for the database')
  }).timeout(180_000)
})
