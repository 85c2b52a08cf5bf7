import { test } from '@japa/runner'
import { emptyDatabase, spawnInstance } from '#tests/instances_harness'

/**
 * A start that fails once the HTTP server listens (here the first start's
 * bootstrap: an ADMIN_EMAIL longer than the column takes) must end the
 * process with exit code 1, so a supervisor restarts it and an operator
 * sees it, instead of a server that stays up and is never ready.
 */
test.group('A start that fails after the server listens', () => {
  test('exits 1 after stopping cleanly', async ({ assert }) => {
    const database = await emptyDatabase(`gw_failed_start_${process.pid}`)
    const instance = await spawnInstance('failing', {
      DATABASE_URL: database.url,
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
      await database.drop()
    }
  }).timeout(180_000)
})
