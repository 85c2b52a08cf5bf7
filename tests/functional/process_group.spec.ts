import { test } from '@japa/runner'
import { join } from 'node:path'
import { readFileSync } from 'node:fs'
import { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import {
  connectDataDir,
  freePort,
  freshDataDir,
  seedAccount,
  seedChannelSql,
  seedPriceSql,
  startClusterDirectly,
  startGatewayProcess,
} from '#tests/fixtures/gateway_process'
import { isAlive, stopServer } from '#start/postgres_process'

/**
 * Ctrl-C in a terminal sends SIGINT to the whole foreground process group;
 * `kill -TERM -<pgid>`, `docker stop` behind an init and systemd's
 * KillMode=control-group do the same with SIGTERM. Before the fix the
 * embedded Postgres was in that group: it shut down at once, the metering
 * flush failed with 57P03 and retried forever, the process never exited and
 * the usage of the drained streams was lost.
 */
test.group('A signal to the whole process group', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    mock = new MockUpstream({ record: 0 })
    await mock.start()
    return () => mock.stop()
  })

  test('{$self} to the group: streams finish, every request is metered, the process exits, Postgres stopped after')
    .with(['SIGTERM', 'SIGINT'] as const)
    .run(async ({ assert }, signal) => {
      const dataDir = freshDataDir()
      const port = await freePort()
      const pgPort = await freePort()
      const server = await startGatewayProcess({ dataDir, port, pgPort, detached: true, env: { SHUTDOWN_GRACE_MS: '5000' } })
      const clusterDir = join(dataDir, 'postgres')
      const pgPid = Number(readFileSync(join(clusterDir, 'postmaster.pid'), 'utf8').split('\n')[0])
      let seed = await connectDataDir(dataDir, pgPort)
      await seedChannelSql(seed, { name: 'mock', provider: 'custom', baseUrl: mock.url, models: ['*'] })
      await seedPriceSql(seed, 'group-*', '1', '1')
      const user = await seedAccount(seed, 'group@test.local', '1')
      const probe = await seedAccount(seed, 'group-probe@test.local', '1')
      await seed.end()

      const call = (body: unknown, key = user.key) =>
        fetch(`http://127.0.0.1:${port}/v1/chat/completions`, {
          method: 'POST',
          headers: { 'authorization': `Bearer ${key}`, 'content-type': 'application/json' },
          body: JSON.stringify(body),
        })
      // The channel and the price reach the server's caches through NOTIFY: wait until it serves the
      // model and prices it (another account's call, the answer's usage.cost), not a guessed 300 ms.
      const priced = async () => {
        const r = await call({ model: 'group-1', messages: [{ role: 'user', content: 'hi' }], usage: { include: true } }, probe.key)
        return r.status === 200 && ((await r.json()) as any).usage?.cost > 0
      }
      let ready = false
      for (let i = 0; i < 300 && !(ready = await priced()); i++) await new Promise((r) => setTimeout(r, 100))
      assert.isTrue(ready, 'the server serves group-1 at its price')
      // The six streams are admitted and running (their answers' heads came) when the signal is sent.
      const streams = await Promise.all(
        Array.from({ length: 6 }, () =>
          call({ model: 'group-1', stream: true, messages: [{ role: 'user', content: 'hi' }], mock: { chunks: 20, chunk_delay_ms: 60 } })
        )
      )
      process.kill(-server.child.pid!, signal)

      for (const r of streams) assert.equal(r.status, 200)
      const texts = await Promise.all(streams.map((r) => r.text()))
      for (const text of texts) assert.include(text, 'data: [DONE]')
      const exit = await Promise.race([server.exited, new Promise((r) => setTimeout(() => r('still running'), 20_000))])
      assert.deepEqual(exit, { code: 0, signal: null }, server.output())
      // The gateway stopped the Postgres it started, after flushing.
      for (let i = 0; i < 50 && isAlive(pgPid); i++) await new Promise((r) => setTimeout(r, 100))
      assert.isFalse(isAlive(pgPid), 'the embedded Postgres was stopped by the gateway')

      // Every request is in the database: start the cluster again and look.
      const pid = await startClusterDirectly(dataDir, pgPort)
      seed = await connectDataDir(dataDir, pgPort)
      try {
        const rows = await seed.query('SELECT status FROM usage_records WHERE user_id = $1', [user.userId])
        assert.deepEqual(rows.rows.map((r) => r.status), [200, 200, 200, 200, 200, 200])
        const money = await seed.query(
          `SELECT u.balance::text AS balance, (SELECT COALESCE(SUM(amount), 0)::text FROM balance_ledger WHERE user_id = u.id) AS ledger FROM users u WHERE id = $1`,
          [user.userId]
        )
        assert.equal(money.rows[0].balance, money.rows[0].ledger)
        assert.isBelow(Number(money.rows[0].balance), 1)
      } finally {
        await seed.end()
        await stopServer(pid)
      }
    })
    .timeout(90_000)
})
