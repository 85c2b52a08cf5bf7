import { test } from '@japa/runner'
import db from '@adonisjs/lucid/services/db'
import pg from 'pg'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { createUser } from '#actions/create_user'
import { createApiKey } from '#actions/issue_api_key'
import { createPlan } from '#actions/create_plan'
import { updatePlan } from '#actions/update_plan'
import { setModelFallbacks } from '#actions/set_model_fallbacks'
import { gateway, post, resetDatabase, seedChannel, seedPrice, seedUser, startMock, type SeededUser } from '#tests/helpers'
import { call, chat, startInstance, until, type Instance } from '#tests/instances_harness'

/**
 * Two production gateways (A and B, `bin/start.js` child processes) on the
 * test database, as replicas behind a balancer, with LIMITER_STORE=database.
 * A change made through one (its management API) or by another process (an
 * ace command, the panel of a third instance: the test process's actions)
 * must take effect on the other within a short, bounded wait: the caches
 * are kept fresh by Postgres LISTEN/NOTIFY, not by their TTL (15 s for
 * users, 60 s for keys), which every wait here is well below.
 */
const SEEN_MS = 3_000

test.group('Instances: two gateways on one Postgres', (group) => {
  let mock: MockUpstream
  let down: MockUpstream
  let a: Instance
  let b: Instance
  let manager: string

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    down = await startMock({ status: 503 })
    await seedChannel({ name: 'mock', baseUrl: mock.url, models: ['gpt-4o-mini', 'priced-*', 'dear-*', 'newly-priced', 'backup-y'] })
    await seedChannel({ name: 'down', baseUrl: down.url, models: ['primary-x'] })
    await seedPrice('priced-*', '1', '2')
    // About $2 a call (12 prompt and 8 completion tokens from the mock)
    await seedPrice('dear-*', '100000', '100000')
    await createUser({ email: 'ops@instances.test', password: 'password123', role: 'admin' })
    manager = (await createApiKey({ userRef: 'ops@instances.test', name: 'ops', manage: true })).key
    const env = { LIMITER_STORE: 'database' }
    ;[a, b] = await Promise.all([startInstance('A', env), startInstance('B', env)])
    return async () => {
      await Promise.all([a?.stop(), b?.stop()])
      await mock.stop()
      await down.stop()
    }
  })

  /** Management API call on an instance. */
  const manage = (instance: Instance, method: string, path: string, body?: unknown) => call(instance, method, `/api/admin${path}`, manager, body)

  /** A user with a working key, checked on both instances (so both have it cached). */
  async function warmUser(options: Parameters<typeof seedUser>[0] = {}): Promise<SeededUser> {
    const user = await seedUser(options)
    for (const instance of [a, b]) {
      const answer = await until(() => chat(instance, user.key), (r) => r.status === 200)
      if (answer.status !== 200) throw new Error(`${instance.name} refused a new key: ${JSON.stringify(answer.body)}`)
    }
    return user
  }

  /** Calls B until it answers `status` (at most SEEN_MS); the last answer. */
  const onB = (key: string, status: number, model = 'gpt-4o-mini') => until(() => chat(b, key, model), (r) => r.status === status, SEEN_MS)

  test('a key revoked on A is refused on B', async ({ assert }) => {
    const user = await warmUser()
    const revoked = await manage(a, 'DELETE', `/keys/${user.keyId}`)
    assert.equal(revoked.status, 200, JSON.stringify(revoked.body))
    const answer = await onB(user.key, 401)
    assert.equal(answer.status, 401, JSON.stringify(answer.body))
  }).timeout(30_000)

  test('a key expired on A is refused on B', async ({ assert }) => {
    const user = await warmUser()
    const yesterday = new Date(Date.now() - 86_400_000).toISOString().slice(0, 10)
    const patched = await manage(a, 'PATCH', `/keys/${user.keyId}`, { expires_on: yesterday })
    if (patched.status !== 200) await db.from('api_keys').where('id', user.keyId).update({ expires_at: new Date(Date.now() - 1000) })
    const answer = await onB(user.key, 401)
    assert.equal(answer.status, 401, JSON.stringify(answer.body))
  }).timeout(30_000)

  test('a spend cap set on A holds on B', async ({ assert }) => {
    const user = await warmUser({ balance: '10' })
    assert.equal((await chat(b, user.key, 'priced-1')).status, 200)
    const patched = await manage(a, 'PATCH', `/keys/${user.keyId}`, { spend_limit: '0.000001' })
    assert.equal(patched.status, 200, JSON.stringify(patched.body))
    const answer = await onB(user.key, 402, 'priced-1')
    assert.equal(answer.status, 402, JSON.stringify(answer.body))
  }).timeout(30_000)

  test('an IP allowlist set on A holds on B', async ({ assert }) => {
    const user = await warmUser()
    const patched = await manage(a, 'PATCH', `/keys/${user.keyId}`, { allowed_ips: ['10.1.2.3'] })
    assert.equal(patched.status, 200, JSON.stringify(patched.body))
    const answer = await onB(user.key, 403)
    assert.equal(answer.status, 403, JSON.stringify(answer.body))
  }).timeout(30_000)

  test('a user disabled on A is refused on B', async ({ assert }) => {
    const user = await warmUser()
    const patched = await manage(a, 'PATCH', `/users/${user.userId}`, { disabled: true })
    assert.equal(patched.status, 200, JSON.stringify(patched.body))
    const answer = await onB(user.key, 401)
    assert.equal(answer.status, 401, JSON.stringify(answer.body))
    assert.equal(answer.body.error.message, 'The account owning this API key is disabled')
  }).timeout(30_000)

  test('a balance topped up on A lets B serve; debited to nothing on A, B refuses', async ({ assert }) => {
    const user = await warmUser()
    // No money: a priced model is refused on both.
    assert.equal((await chat(b, user.key, 'priced-1')).status, 402)
    const topup = await manage(a, 'POST', `/users/${user.userId}/ledger`, { kind: 'topup', amount: '5' })
    assert.equal(topup.status, 201, JSON.stringify(topup.body))
    assert.equal((await onB(user.key, 200, 'priced-1')).status, 200)
    const balance = (await db.from('users').where('id', user.userId).first()).balance
    const debit = await manage(a, 'POST', `/users/${user.userId}/ledger`, { kind: 'adjustment', amount: `-${balance}` })
    assert.equal(debit.status, 201, JSON.stringify(debit.body))
    assert.equal((await onB(user.key, 402, 'priced-1')).status, 402)
  }).timeout(30_000)

  test('a channel disabled, edited and deleted on A: B follows', async ({ assert }) => {
    const user = await warmUser()
    const second = await seedChannel({ name: 'second', baseUrl: mock.url, models: ['only-second'] })
    assert.equal((await until(() => chat(b, user.key, 'only-second'), (r) => r.status === 200, SEEN_MS)).status, 200)
    const disabled = await manage(a, 'PATCH', `/channels/${second.id}`, { enabled: false })
    assert.equal(disabled.status, 200, JSON.stringify(disabled.body))
    const refused = await until(() => chat(b, user.key, 'only-second'), (r) => r.status !== 200, SEEN_MS)
    assert.notEqual(refused.status, 200)
    // Edited: back on, serving another name under a mapping.
    const edited = await manage(a, 'PATCH', `/channels/${second.id}`, { enabled: true, models: ['renamed'], model_mapping: { renamed: 'upstream-name' } })
    assert.equal(edited.status, 200, JSON.stringify(edited.body))
    const mapped = await until(() => chat(b, user.key, 'renamed'), (r) => r.status === 200, SEEN_MS)
    assert.equal(mapped.status, 200, JSON.stringify(mapped.body))
    assert.equal(JSON.parse(mock.requests.at(-1)!.body).model, 'upstream-name')
    await db.from('channels').where('id', second.id).delete()
    const gone = await until(() => chat(b, user.key, 'renamed'), (r) => r.status !== 200, SEEN_MS)
    assert.notEqual(gone.status, 200)
  }).timeout(30_000)

  test('a price set on A bills on B', async ({ assert }) => {
    const user = await warmUser({ balance: '10' })
    const set = await manage(a, 'POST', '/prices', { model: 'newly-priced', input: '1000', output: '1000' })
    assert.include([200, 201], set.status, JSON.stringify(set.body))
    const priced = await until(
      async () => {
        const answer = await chat(b, user.key, 'newly-priced')
        const row = await until(
          () => db.from('usage_records').where('request_id', answer.headers.get('x-request-id') ?? '').first(),
          (r) => !!r,
          2_000
        )
        return row ? Number(row.cost) : -1
      },
      (cost) => cost > 0,
      SEEN_MS
    )
    assert.isAbove(priced, 0)
  }).timeout(30_000)

  test('a plan changed (allowed models) is applied on B', async ({ assert }) => {
    const plan = await createPlan({ name: `instances-plan-${Date.now()}`, models: ['*'] })
    const user = await warmUser()
    await db.from('users').where('id', user.userId).update({ plan_id: plan.id })
    assert.equal((await onB(user.key, 200)).status, 200)
    await updatePlan(plan.id, { name: plan.name, models: ['something-else-*'] })
    const answer = await onB(user.key, 403)
    assert.notEqual(answer.status, 200, JSON.stringify(answer.body))
  }).timeout(30_000)

  test('a fallback set on A takes effect on B', async ({ assert }) => {
    const user = await warmUser()
    // The only channel of primary-x answers 503: without a fallback, an error.
    assert.notEqual((await chat(b, user.key, 'primary-x')).status, 200)
    await setModelFallbacks({ model: 'primary-x', fallbacks: ['backup-y'] })
    const answer = await until(() => chat(b, user.key, 'primary-x'), (r) => r.status === 200, SEEN_MS)
    assert.equal(answer.status, 200, JSON.stringify(answer.body))
    assert.equal(answer.body.model, 'backup-y')
  }).timeout(30_000)

  test("charges metered on A reach B's cached balance: B refuses once A spent the money", async ({ assert }) => {
    const user = await warmUser({ balance: '10' })
    const dear = { max_tokens: 8 }
    assert.equal((await chat(b, user.key, 'dear-1', dear)).status, 200)
    // A spends what is left (each call about $2; refused once the rest cannot hold one more).
    let spent = 0
    for (let i = 0; i < 20; i++) {
      const answer = await chat(a, user.key, 'dear-1', dear)
      if (answer.status === 402) break
      assert.equal(answer.status, 200, JSON.stringify(answer.body))
      spent++
    }
    assert.isAbove(spent, 0)
    assert.equal((await chat(a, user.key, 'dear-1', dear)).status, 402)
    // A's charges committed (balance below one call's hold), then a moment for them to reach B.
    const left = await until(async () => Number((await db.from('users').where('id', user.userId).first()).balance), (v) => v < 3.5, 2_000)
    assert.isBelow(left, 3.5)
    await new Promise((r) => setTimeout(r, 300))
    // B read the balance before A's charges: it must not go on spending what A already spent (until its 15 s TTL).
    const answer = await chat(b, user.key, 'dear-1', dear)
    assert.equal(answer.status, 402, JSON.stringify(answer.body))
  }).timeout(30_000)

  test("a key's spend on A counts against its cap on B", async ({ assert }) => {
    const user = await warmUser({ balance: '100', key: { spendLimit: '6' } })
    const dear = { max_tokens: 8 }
    assert.equal((await chat(b, user.key, 'dear-1', dear)).status, 200)
    let spent = 0
    for (let i = 0; i < 20; i++) {
      const answer = await chat(a, user.key, 'dear-1', dear)
      if (answer.status === 402) break
      assert.equal(answer.status, 200, JSON.stringify(answer.body))
      spent++
    }
    assert.isAbove(spent, 0)
    const spentNow = await until(async () => Number((await db.from('api_keys').where('id', user.keyId).first()).spent), (v) => v > 6 - 3.5, 2_000)
    assert.isAbove(spentNow, 6 - 3.5)
    await new Promise((r) => setTimeout(r, 300))
    const answer = await chat(b, user.key, 'dear-1', dear)
    assert.equal(answer.status, 402, JSON.stringify(answer.body))
  }).timeout(30_000)

  test('LIMITER_STORE=database: a key\'s RPM is shared by both instances', async ({ assert }) => {
    // Counts a previous run left for this key id (the test database's ids restart) are not this key's.
    await db.rawQuery('DELETE FROM rate_limits')
    const user = await seedUser({ key: { rpm: 4 } })
    const statuses: number[] = []
    for (let i = 0; i < 8; i++) statuses.push((await chat(i % 2 ? b : a, user.key)).status)
    assert.deepEqual(statuses, [200, 200, 200, 200, 429, 429, 429, 429])
  }).timeout(30_000)

  test('metering of both instances is exact: one row per answer, no id clash, ledger = balance', async ({ assert }) => {
    const user = await warmUser({ balance: '1000' })
    const answers = await Promise.all(
      Array.from({ length: 60 }, (_, i) => chat(i % 2 ? b : a, user.key, 'priced-1', { stream: i % 3 === 0 }))
    )
    assert.isTrue(answers.every((r) => r.status === 200))
    const ids = answers.map((r) => r.headers.get('x-request-id'))
    assert.equal(new Set(ids).size, 60)
    // The two warm-up calls and these.
    const expected = 62
    const rows = await until(() => db.from('usage_records').where('user_id', user.userId), (r) => r.length >= expected, 5_000)
    assert.lengthOf(rows, expected)
    assert.includeMembers(rows.map((r) => r.request_id), ids as string[])
    const money = await db.rawQuery(
      `SELECT u.balance::text AS balance, (SELECT SUM(amount) FROM balance_ledger WHERE user_id = u.id)::text AS ledger,
              1000 - (SELECT SUM(cost) FROM usage_records WHERE user_id = u.id) AS expected
         FROM users u WHERE u.id = ?`,
      [user.userId]
    )
    const { balance, ledger, expected: fromRows } = money.rows[0]
    assert.equal(Number(balance), Number(ledger))
    assert.equal(Number(balance), Number(fromRows))
    assert.isBelow(Number(balance), 1000)
  }).timeout(60_000)

  test('while A restarts, B serves; a key revoked meanwhile is refused by A once it is back', async ({ assert }) => {
    const keep = await warmUser()
    const revoke = await warmUser()
    const stopping = a.stop()
    const during: number[] = []
    while (a.child.exitCode === null && during.length < 200) during.push((await chat(b, keep.key)).status)
    assert.equal(await stopping, 0, a.output())
    assert.isTrue(during.every((s) => s === 200), JSON.stringify(during))
    const revoked = await manage(b, 'DELETE', `/keys/${revoke.keyId}`)
    assert.equal(revoked.status, 200)
    a = await startInstance('A', { LIMITER_STORE: 'database' })
    assert.equal((await chat(a, revoke.key)).status, 401)
    assert.equal((await chat(a, keep.key)).status, 200)
    assert.equal((await chat(b, keep.key)).status, 200)
  }).timeout(180_000)

  test('the LISTEN connection dropped: B reconnects, reloads what it missed, and hears later changes', async ({ assert }) => {
    const first = await warmUser()
    const second = await warmUser()
    const killed = await db.rawQuery(
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = 'LISTEN gateway_changes' AND pid <> pg_backend_pid()`
    )
    assert.isAtLeast(killed.rows.length, 2)
    // Revoked while no instance listens: that NOTIFY is lost, the reload after reconnecting must catch it.
    await db.from('api_keys').where('id', first.keyId).update({ revoked_at: new Date() })
    const missed = await until(() => chat(b, first.key), (r) => r.status === 401, 5_000, 100)
    assert.equal(missed.status, 401)
    await db.from('api_keys').where('id', second.keyId).update({ revoked_at: new Date() })
    const heard = await onB(second.key, 401)
    assert.equal(heard.status, 401)
  }).timeout(30_000)
})

test.group('Instances: the charged notification', (group) => {
  let mock: MockUpstream
  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'mock', baseUrl: mock.url, models: ['*'] })
    await seedPrice('priced-*', '1', '2')
    return () => mock.stop()
  })

  test("names the user and key, once per batch, from a backend the writing instance knows as its own meter's", async ({ assert }) => {
    const user = await seedUser({ balance: '5' })
    const listener = new pg.Client({ connectionString: process.env.DATABASE_URL })
    await listener.connect()
    const heard: Array<{ payload: string; pid: number }> = []
    listener.on('notification', (m) => {
      if (m.payload?.startsWith('charged:')) heard.push({ payload: m.payload, pid: m.processId })
    })
    await listener.query('LISTEN gateway_changes')
    try {
      const answer = await post('/v1/chat/completions', { model: 'priced-1', messages: [{ role: 'user', content: 'hi' }] }, { authorization: `Bearer ${user.key}` })
      assert.equal(answer.status, 200)
      const gw = await gateway()
      await gw.meter.drain()
      const seen = await until(async () => heard, (h) => h.length > 0, 2_000)
      assert.deepEqual(seen.map((h) => h.payload), [`charged:${user.userId}:${user.keyId}`])
      // The test process's gateway wrote it: its change handler skips it (its cache has the charge already).
      assert.isTrue(gw.meter.writesFrom(seen[0].pid))
      assert.isFalse(gw.meter.writesFrom((listener as unknown as { processID: number }).processID))
    } finally {
      await listener.end()
    }
  })
})
