import { test } from '@japa/runner'
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
import { stopServer } from '#start/postgres_process'

/**
 * Background responses still running when the gateway is stopped
 * (responses_store/background_runs.ts): after the grace, one run here is cut
 * and stored failed, one held upstream is cancelled there; both are billed
 * before the process exits (a restart has nothing left to bill them by).
 */
test.group('Background responses at shutdown', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    mock = new MockUpstream()
    await mock.start()
    return () => mock.stop()
  })

  test('after the grace: the gateway\'s run is stored failed and billed what it streamed; the upstream\'s is cancelled there and billed what it reports', async ({ assert }) => {
    const dataDir = freshDataDir()
    const port = await freePort()
    const pgPort = await freePort()
    const server = await startGatewayProcess({ dataDir, port, pgPort, detached: true, env: { SHUTDOWN_GRACE_MS: '1000', START_FROM_SOURCE: '1' }, readyTimeoutMs: 120_000 })
    let seed = await connectDataDir(dataDir, pgPort)
    await seedChannelSql(seed, { name: 'claude', provider: 'anthropic', baseUrl: mock.url, models: ['claude-*'] })
    await seedChannelSql(seed, { name: 'openai', provider: 'openai', baseUrl: mock.url, models: ['gpt-*'] })
    await seedPriceSql(seed, 'claude-*', '1', '2')
    await seedPriceSql(seed, 'gpt-*', '1', '2')
    const user = await seedAccount(seed, 'background@test.local', '5')
    await seed.end()
    const create = (body: Record<string, unknown>) =>
      fetch(`http://127.0.0.1:${port}/v1/responses`, {
        method: 'POST',
        headers: { 'authorization': `Bearer ${user.key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ ...body, background: true }),
      })
    // Both channels reach the server's caches through NOTIFY.
    let served = false
    for (let i = 0; i < 300 && !served; i++) {
      const probe = await fetch(`http://127.0.0.1:${port}/v1/models`, { headers: { authorization: `Bearer ${user.key}` } })
      const ids = probe.ok ? ((await probe.json()) as any).data.map((m: any) => m.id) : []
      served = ids.some((id: string) => id.startsWith('claude')) && ids.some((id: string) => id.startsWith('gpt'))
      if (!served) await new Promise((r) => setTimeout(r, 100))
    }
    mock.storedResponses.backgroundPolls = 1_000_000
    mock.script({ chunks: 2000, chunk_delay_ms: 20 })
    const ours: any = await (await create({ model: 'claude-x', input: 'Long' })).json()
    const theirs: any = await (await create({ model: 'gpt-x', input: 'Long' })).json()
    assert.equal(ours.status, 'queued')
    assert.equal(theirs.status, 'queued')
    await new Promise((r) => setTimeout(r, 400))

    process.kill(-server.child.pid!, 'SIGTERM')
    const exit = await Promise.race([server.exited, new Promise((r) => setTimeout(() => r('still running'), 30_000))])
    assert.deepEqual(exit, { code: 0, signal: null }, server.output())
    assert.isTrue(mock.requests.some((r) => r.method === 'POST' && r.path.endsWith(`/responses/${theirs.id}/cancel`)))

    const pid = await startClusterDirectly(dataDir, pgPort)
    seed = await connectDataDir(dataDir, pgPort)
    try {
      const rows = await seed.query('SELECT model, status, error_code, completion_tokens, cost::text FROM usage_records WHERE user_id = $1 ORDER BY model', [user.userId])
      assert.lengthOf(rows.rows, 2)
      const [claude, gpt] = rows.rows
      assert.deepEqual([claude.model, claude.status, claude.error_code], ['claude-x', 200, 'stream_interrupted'])
      assert.isAbove(claude.completion_tokens, 0)
      assert.isBelow(claude.completion_tokens, 2000)
      assert.deepEqual([gpt.model, gpt.status, gpt.error_code, gpt.completion_tokens], ['gpt-x', 499, 'cancelled', 1])
      assert.isAbove(Number(claude.cost), 0)
      assert.isAbove(Number(gpt.cost), 0)
      const stored = await seed.query('SELECT id, status, background FROM stored_responses WHERE id = $1', [ours.id])
      assert.deepEqual([stored.rows[0].status, stored.rows[0].background], ['failed', true])
      const money = await seed.query(
        `SELECT u.balance::text AS balance, (SELECT COALESCE(SUM(amount), 0)::text FROM balance_ledger WHERE user_id = u.id) AS ledger FROM users u WHERE id = $1`,
        [user.userId]
      )
      assert.equal(money.rows[0].balance, money.rows[0].ledger)
      assert.isBelow(Number(money.rows[0].balance), 5)
    } finally {
      await seed.end()
      await stopServer(pid)
    }
  }).timeout(180_000)
})
