import { test } from '@japa/runner'
import pg from 'pg'
import { spawnInstance } from '#tests/instances_harness'

/**
 * A start that fails once the HTTP server listens (here the first start's
 * bootstrap: an ADMIN_EMAIL longer than the column takes) must end the
 * process with exit code 1, so a supervisor restarts it and an operator
 * sees it, instead of a server that stays up and is never ready.
 */
test.group('A start that fails after the server listens', () => {
  test('exits 1 after stopping cleanly', async ({ assert }) => {
    const name = `gw_failed_start_${process.pid}`
    const url = new URL(process.env.DATABASE_URL!)
    const admin = new pg.Client({ connectionString: url.toString() })
    await admin.connect()
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
    await admin.query(`CREATE DATABASE ${name}`)
    url.pathname = `/${name}`
    const instance = await spawnInstance('failing', {
      DATABASE_URL: url.toString(),
      ADMIN_EMAIL: `${'a'.repeat(300)}@example.com`,
      LOG_LEVEL: 'info',
    })
    try {
      const code = await Promise.race([instance.exited, new Promise((r) => setTimeout(() => r('still running'), 120_000))])
      assert.equal(code, 1, instance.output())
      assert.include(instance.output(), 'value too long')
      assert.include(instance.output(), 'gateway: the start failed (above); stopping')
    } finally {
      await instance.stop()
      await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
      await admin.end()
    }
  }).timeout(180_000)
})
