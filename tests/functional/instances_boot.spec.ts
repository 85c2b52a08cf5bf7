import { test } from '@japa/runner'
import pg from 'pg'
import { readdirSync } from 'node:fs'
import { emptyDatabase, spawnInstance, waitReady } from '#tests/instances_harness'

/**
 * Two replicas started at the same moment on an empty database (a compose
 * file or an orchestrator scaling to two): the migrations and the first
 * start's bootstrap (default plan, first administrator, channels from the
 * environment) must be done once, and neither instance may crash.
 */
test.group('Instances: two starts at once on an empty database', () => {
  test('migrations once, one administrator, one default plan, one channel per provider key; both serve', async ({ assert }) => {
    const database = await emptyDatabase(`gw_instances_boot_${process.pid}`)
    const env = {
      DATABASE_URL: database.url,
      ADMIN_EMAIL: 'ops@example.com',
      ADMIN_PASSWORD: 'correct-horse-battery',
      // A provider key in the environment: the first start makes a channel of it, once.
      DEEPSEEK_API_KEY: 'sk-test-deepseek',
      LOG_LEVEL: 'info',
    }
    const a = await spawnInstance('A', env)
    const b = await spawnInstance('B', env)
    const fresh = new pg.Client({ connectionString: database.url })
    try {
      await Promise.all([waitReady(a), waitReady(b)])
      await fresh.connect()
      const users = await fresh.query('SELECT email, role FROM users')
      assert.deepEqual(users.rows, [{ email: 'ops@example.com', role: 'admin' }], a.output() + b.output())
      const plans = await fresh.query(`SELECT COUNT(*)::int AS n FROM plans WHERE name = 'default'`)
      assert.equal(plans.rows[0].n, 1)
      const channels = await fresh.query('SELECT provider FROM channels')
      assert.deepEqual(channels.rows, [{ provider: 'deepseek' }])
      const migrations = readdirSync('database/migrations').filter((f) => /\.(ts|js)$/.test(f))
      const applied = await fresh.query('SELECT COUNT(*)::int AS n, COUNT(DISTINCT name)::int AS d FROM adonis_schema')
      assert.deepEqual(applied.rows[0], { n: migrations.length, d: migrations.length })
      // The credentials are printed once, by the instance that made the account.
      const said = [a, b].filter((i) => i.output().includes('First start: created the administrator account'))
      assert.lengthOf(said, 1, a.output() + b.output())
      for (const instance of [a, b]) assert.notMatch(instance.output(), /duplicate key|unique constraint|Error:/i, instance.output())
    } finally {
      const codes = await Promise.all([a.stop(), b.stop()])
      await fresh.end().catch(() => {})
      await database.drop()
      assert.deepEqual(codes, [0, 0], a.output() + b.output())
    }
  }).timeout(240_000)
})
