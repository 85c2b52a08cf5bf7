import { test } from '@japa/runner'
import db from '@adonisjs/lucid/services/db'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { balanceAndLedger, baseUrl, gateway, openai, post, resetDatabase, seedChannel, seedPrice, seedUser, startMock, usageRows } from '#tests/helpers'
import { BackgroundSweeper, INSTANCE_GONE_ERROR } from '#gateway/responses_store/background_sweeper'

/**
 * Background responses left behind by an instance that was killed
 * (responses_store/background_sweeper.ts): their rows name the instance, the
 * instance's heartbeat goes stale, and any instance's sweep marks them
 * failed; a live instance's rows (and this one's) are never touched.
 */

async function eventually(done: () => Promise<boolean> | boolean, ms = 5000) {
  const until = Date.now() + ms
  while (!(await done())) {
    if (Date.now() > until) throw new Error('condition not met in time')
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

function show(id: string, key: string) {
  return fetch(`${baseUrl()}/v1/responses/${id}`, { headers: { authorization: `Bearer ${key}` } }).then((r) => r.json() as Promise<any>)
}

let n = 0
/** A background row as an instance running it wrote it (queued at acceptance, or in progress, or ended) */
async function runRow(userId: number, instanceId: string | null, status: string, createdAgo = '0 seconds'): Promise<string> {
  const id = `resp_${'ab'.repeat(20)}${String(++n).padStart(8, '0')}`
  await db.rawQuery(
    `INSERT INTO stored_responses (id, kind, user_id, model, input_items, output_items, status, background, instance_id, created_at, expires_at)
     VALUES (?, 'gateway', ?, 'claude-bg', '[]', '[]', ?, true, ?, now() - ?::interval, now() + interval '1 day')`,
    [id, userId, status, instanceId, createdAgo]
  )
  return id
}

async function heartbeat(instanceId: string, ago: string) {
  await db.rawQuery(
    `INSERT INTO gateway_instances (id, seen_at) VALUES (?, now() - ?::interval) ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at`,
    [instanceId, ago]
  )
}

async function ledgerEntries(userId: number): Promise<number> {
  return Number((await db.rawQuery('SELECT count(*)::int AS n FROM balance_ledger WHERE user_id = ?', [userId])).rows[0].n)
}

test.group('Background responses of a gateway instance that died', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'claude', provider: 'anthropic', baseUrl: mock.url, models: ['claude-*'] })
    await seedPrice('claude-bg', '1', '2')
    return async () => {
      await mock.stop()
      // This instance's heartbeat as it was (a test made it stale), the other instances' rows gone.
      await db.rawQuery('DELETE FROM gateway_instances WHERE id <> ?', [(await gateway()).instanceId])
      await (await gateway()).backgroundSweeper.beat()
    }
  })

  group.each.teardown(async () => {
    ;(await gateway()).background.options.perUser = 16
  })

  test("a dead instance's queued and in-progress rows are failed (server_error); a live instance's, an ended one and this instance's running one are not; nothing billed", async ({ assert }) => {
    const gw = await gateway()
    const user = await seedUser({ balance: '10' })
    await heartbeat('dead-instance', '5 minutes')
    await heartbeat('live-instance', '1 second')
    const deadQueued = await runRow(user.userId, 'dead-instance', 'queued')
    const deadRunning = await runRow(user.userId, 'dead-instance', 'in_progress')
    const deadEnded = await runRow(user.userId, 'dead-instance', 'completed')
    // An instance whose heartbeat row is gone altogether (deleted after a day, or never written) is dead too.
    const vanished = await runRow(user.userId, 'vanished-instance', 'in_progress')
    const live = await runRow(user.userId, 'live-instance', 'in_progress')
    // Rows from before instances were named: an old instance of a rolling upgrade may run them; failed after a day.
    const unnamedRecent = await runRow(user.userId, null, 'queued')
    const unnamedOld = await runRow(user.userId, null, 'queued', '2 days')

    // This instance runs one; even with its own heartbeat stale, its own sweep leaves it alone.
    mock.script({ chunks: 60, chunk_delay_ms: 20 })
    const ours: any = await openai(user.key).responses.create({ model: 'claude-bg', input: 'Long', background: true } as any)
    await eventually(async () => (await db.from('stored_responses').where('id', ours.id).first()) !== null)
    const ourRow = await db.from('stored_responses').where('id', ours.id).first()
    assert.equal(ourRow.instance_id, gw.instanceId)
    await heartbeat(gw.instanceId, '1 hour')
    const before = await balanceAndLedger(user.userId)
    const entriesBefore = await ledgerEntries(user.userId)

    assert.equal(await gw.backgroundSweeper.sweep(), 4)

    for (const id of [deadQueued, deadRunning, vanished, unnamedOld]) {
      const response = await show(id, user.key)
      assert.equal(response.status, 'failed', id)
      assert.isTrue(response.background)
      assert.deepEqual(response.error, INSTANCE_GONE_ERROR)
      assert.isNull(response.usage)
    }
    assert.equal((await show(deadEnded, user.key)).status, 'completed')
    assert.isNull((await show(deadEnded, user.key)).error)
    assert.equal((await show(live, user.key)).status, 'in_progress')
    assert.equal((await show(unnamedRecent, user.key)).status, 'queued')
    assert.equal((await db.from('stored_responses').where('id', ours.id).first()).status, 'queued')
    // A swept one cannot be cancelled any more (it ended); the live instance's still can.
    const cancel = await post(`/v1/responses/${deadQueued}/cancel`, {}, { authorization: `Bearer ${user.key}` })
    assert.equal(cancel.status, 400)

    // This instance's own run goes on to its end, billed once as always.
    await eventually(async () => (await show(ours.id, user.key)).status === 'completed')
    await eventually(async () => (await db.from('stored_responses').where('id', ours.id).first()).status === 'completed')
    await eventually(async () => (await usageRows(user.userId)).length === 1)
    // The sweep itself billed nothing: the one charge is this instance's run.
    const [row] = await usageRows(user.userId)
    const after = await balanceAndLedger(user.userId)
    assert.equal(await ledgerEntries(user.userId), entriesBefore + 1)
    assert.closeTo(Number(before.balance) - Number(after.balance), Number(row.cost), 1e-12)
    assert.equal(after.balance, after.ledger)

    // A second sweep finds nothing more.
    assert.equal(await gw.backgroundSweeper.sweep(), 0)
  })

  test("another instance's boot sweeps at once; its stop removes its heartbeat; the swept rows count for nothing against the per-user bound", async ({ assert }) => {
    const gw = await gateway()
    const user = await seedUser({ balance: '10' })
    gw.background.options.perUser = 2
    await heartbeat('killed-instance', '2 minutes')
    const left = [await runRow(user.userId, 'killed-instance', 'queued'), await runRow(user.userId, 'killed-instance', 'in_progress')]

    const logs: string[] = []
    const restarted = new BackgroundSweeper({ instanceId: 'restarted-instance', log: (m) => logs.push(m) })
    await restarted.start()
    try {
      const beat = await db.from('gateway_instances').where('id', 'restarted-instance').first()
      assert.isNotNull(beat)
      for (const id of left) assert.equal((await show(id, user.key)).status, 'failed')
      assert.match(logs.join('\n'), /2 left unfinished by a gateway instance that stopped were marked failed/)
    } finally {
      await restarted.stop()
    }
    assert.isNull(await db.from('gateway_instances').where('id', 'restarted-instance').first())

    // The bound counts the runs an instance holds in memory: the killed instance's rows, swept, take no place.
    mock.script({ chunks: 100, chunk_delay_ms: 20 }).script({ chunks: 100, chunk_delay_ms: 20 })
    const a: any = await openai(user.key).responses.create({ model: 'claude-bg', input: 'One', background: true } as any)
    const b: any = await openai(user.key).responses.create({ model: 'claude-bg', input: 'Two', background: true } as any)
    const third = await post('/v1/responses', { model: 'claude-bg', input: 'Three', background: true }, { authorization: `Bearer ${user.key}` })
    assert.equal(third.status, 429)
    await openai(user.key).responses.cancel(a.id)
    await openai(user.key).responses.cancel(b.id)
    await eventually(async () => (await usageRows(user.userId)).filter((r: any) => r.status === 499).length === 2)
  })

  test('a swept row read from the table (as another instance reads it): its stream is response.failed, with why', async ({ assert }) => {
    const gw = await gateway()
    const user = await seedUser({ balance: '10' })
    await heartbeat('dead-instance-2', '10 minutes')
    const id = await runRow(user.userId, 'dead-instance-2', 'in_progress')
    await gw.backgroundSweeper.sweep()
    const row = await db.from('stored_responses').where('id', id).first()
    assert.equal(row.status, 'failed')
    assert.deepEqual(row.error, INSTANCE_GONE_ERROR)
    // As another instance reads it (nothing of it in this one's memory).
    gw.responses.forgetCached()
    const stream = await fetch(`${baseUrl()}/v1/responses/${id}?stream=true`, { headers: { authorization: `Bearer ${user.key}` } })
    const text = await stream.text()
    assert.include(text, 'event: response.failed')
    assert.include(text, INSTANCE_GONE_ERROR.message)
  })

  test('a run of this instance that fails keeps its error on its row: another instance reading the table says why, as this one does from memory', async ({ assert }) => {
    const gw = await gateway()
    const user = await seedUser({ balance: '10' })
    mock.script({ status: 400 })
    const created: any = await openai(user.key).responses.create({ model: 'claude-bg', input: 'Hi', background: true } as any)
    let row: any
    await eventually(async () => {
      row = await db.from('stored_responses').where('id', created.id).first()
      return row?.status === 'failed'
    })
    assert.isObject(row.error)
    assert.isString(row.error.code)
    // What this instance answers from memory is what another reads from the table.
    assert.isDefined(gw.background.get(created.id))
    assert.deepEqual((await show(created.id, user.key)).error, row.error)
  })
})
