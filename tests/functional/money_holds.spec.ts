import { test } from '@japa/runner'
import db from '@adonisjs/lucid/services/db'
import { revokeApiKey } from '#actions/revoke_api_key'
import { updateUser } from '#actions/update_user'
import { estimateCostPico } from '#gateway/metering/reservation'
import { heldOnKey } from '#gateway/metering/key_reservations'
import { fromPico, toPico } from '#gateway/metering/money'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { gateway, post, resetDatabase, seedChannel, seedPrice, seedUser, startMock, usageRows } from '#tests/helpers'
import { ledgerOf, ledgerProblems } from '#tests/money_checks'

/**
 * Many requests of one key at once against a balance, a key's cap or a
 * plan's monthly tokens that cover only a couple of them: the holds taken
 * at admission (access_policy.ts) bound how far past the limit the account
 * can go, every admitted request is metered once, and every hold is
 * released on every exit path (answer, stream, upstream failure).
 */
const hello = [{ role: 'user', content: 'hi' }]
// $1,000 / $2,000 per 1M tokens: a call of the mock ("hi" -> 5 words) costs $0.0XX, its hold a few cents.
const body = (extra: Record<string, unknown> = {}) => ({ model: 'held-a', messages: hello, max_tokens: 5, mock: { latency_ms: 150 }, ...extra })

async function fire(key: string, count: number, make: (i: number) => Record<string, unknown>) {
  return Promise.all(
    Array.from({ length: count }, (_, i) =>
      post('/v1/chat/completions', make(i), { authorization: `Bearer ${key}` }).then(async (r) => {
        const text = await r.text()
        return { status: r.status, text }
      })
    )
  )
}

async function estimateOf(payload: Record<string, unknown>) {
  const price = (await gateway()).catalog.priceFor(String(payload.model))
  return estimateCostPico(price, Buffer.byteLength(JSON.stringify(payload)), payload)
}

async function reservedOf(userId: number) {
  return (await gateway()).catalog.cachedUser(userId)?.reservedPico ?? 0n
}

async function balanceOf(userId: number) {
  const row = await db.from('users').where('id', userId).select(db.raw('balance::text AS balance')).first()
  return toPico(row.balance)
}

test.group('Money holds: concurrent requests against a limit', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'mock', baseUrl: mock.url, models: ['*'] })
    await seedPrice('held-*', '1000', '2000')
    return () => mock.stop()
  })

  for (const stream of [false, true]) {
    test(`balance for two ${stream ? 'streams' : 'calls'}, 30 at once: at most one hold past it, holds released`, async ({ assert }) => {
      const payload = body(stream ? { stream: true, mock: { chunks: 5, chunk_delay_ms: 30 } } : {})
      const estimate = await estimateOf(payload)
      const user = await seedUser({ balance: fromPico(estimate * 2n) })
      const answers = await fire(user.key, 30, () => payload)
      const served = answers.filter((a) => a.status === 200).length
      assert.deepEqual([...new Set(answers.map((a) => a.status))].sort(), [200, 402])
      // Typically 2 or 3: a call costs about half its hold, so a late arrival can find room once the first ones end.
      assert.isBelow(served, 10)
      for (const refused of answers.filter((a) => a.status === 402)) assert.include(refused.text, 'insufficient_balance')
      assert.equal(await reservedOf(user.userId), 0n)
      const rows = await usageRows(user.userId)
      assert.lengthOf(rows, 30)
      const balance = await balanceOf(user.userId)
      assert.isTrue(balance >= -estimate, `balance ${fromPico(balance)} below minus one hold ${fromPico(estimate)}`)
      assert.deepEqual(await ledgerProblems(), [])
    })
  }

  test('30 calls failing upstream at once: holds released, nothing charged, each one row', async ({ assert }) => {
    const estimate = await estimateOf(body())
    const user = await seedUser({ balance: fromPico(estimate * 2n) })
    const answers = await fire(user.key, 30, (i) => body({ stream: i % 2 === 0, mock: { status: 503, latency_ms: 100 } }))
    const failed = answers.filter((a) => a.status === 502).length
    assert.isAtLeast(failed, 1)
    assert.equal(failed + answers.filter((a) => a.status === 402).length, 30)
    assert.equal(await reservedOf(user.userId), 0n)
    assert.lengthOf(await usageRows(user.userId), 30)
    assert.equal(await balanceOf(user.userId), estimate * 2n)
    // Released, the holds admit the next ones.
    const next = await fire(user.key, 2, () => body({ mock: { latency_ms: 0 } }))
    assert.deepEqual(next.map((a) => a.status), [200, 200])
    assert.deepEqual(await ledgerProblems(), [])
  })

  test('a key capped at two calls, 30 streams at once: at most one hold past the cap, the key\'s holds released', async ({ assert }) => {
    const payload = body({ stream: true, mock: { chunks: 5, chunk_delay_ms: 30 } })
    const estimate = await estimateOf(payload)
    const user = await seedUser({ balance: '100', key: { spendLimit: fromPico(estimate * 2n) } })
    const answers = await fire(user.key, 30, () => payload)
    assert.isBelow(answers.filter((a) => a.status === 200).length, 10)
    assert.equal(heldOnKey(user.keyId), 0n)
    await usageRows(user.userId)
    const key = await db.from('api_keys').where('id', user.keyId).select(db.raw('spent::text AS spent')).first()
    assert.isTrue(toPico(key.spent) <= estimate * 3n, `spent ${key.spent}`)
    assert.deepEqual(await ledgerProblems(), [])
  })

  test('a plan with room for about two calls\' prompt tokens this month, 30 at once: few admitted, the rest 429', async ({ assert }) => {
    const payload = body()
    const promptHold = Math.ceil(Buffer.byteLength(JSON.stringify(payload)) / 3)
    const user = await seedUser({ balance: '100', plan: { name: 'tight', monthlyInputTokens: 2 * promptHold } })
    const answers = await fire(user.key, 30, () => payload)
    const served = answers.filter((a) => a.status === 200).length
    for (const refused of answers.filter((a) => a.status !== 200)) {
      assert.equal(refused.status, 429)
      assert.include(refused.text, 'token_limit_exceeded')
    }
    assert.isAtLeast(served, 1)
    assert.isBelow(served, 10)
    const rows = await usageRows(user.userId)
    const used = rows.reduce((sum, r) => sum + r.prompt_tokens, 0)
    assert.isAtMost(used, 2 * promptHold + promptHold, 'past the limit by at most one hold')
    const state = (await gateway()).catalog.cachedUser(user.userId)!
    assert.equal(state.reservedInputTokens, 0)
    assert.equal(state.reservedOutputTokens, 0)
    assert.lengthOf(rows, 30)
    assert.deepEqual(await ledgerProblems(), [])
  })

  test('a user reloaded while a call is metered: the cached balance neither forgets nor doubles its charge', async ({ assert }) => {
    const user = await seedUser({ balance: '10' })
    const gw = await gateway()
    await gw.catalog.user(user.userId)
    // The reload reads the row while the call runs; its answer is taken only after the call is metered and committed.
    const seen = upstreamCalls(mock)
    const call = post('/v1/chat/completions', body({ mock: { latency_ms: 200 } }), { authorization: `Bearer ${user.key}` }).then((r) => r.text())
    // The call admitted and upstream (not a fixed 50 ms: under a loaded CI host it may not have been authenticated yet).
    await settle(() => upstreamCalls(mock) > seen)
    await withSlowRead(/FROM users u/, async () => {
      await call
      await gw.meter.drain()
    }, () => gw.catalog.handleChange(`users:${user.userId}`))
    assert.equal(gw.catalog.cachedUser(user.userId)!.balancePico, await balanceOf(user.userId))
    assert.isTrue((await balanceOf(user.userId)) < toPico('10'))
  })

  test('a key reloaded while a call is metered: the cached spend keeps its cost', async ({ assert }) => {
    const user = await seedUser({ balance: '10', key: { spendLimit: '5' } })
    const gw = await gateway()
    const seen = upstreamCalls(mock)
    const call = post('/v1/chat/completions', body({ mock: { latency_ms: 200 } }), { authorization: `Bearer ${user.key}` }).then((r) => r.text())
    // The call admitted and upstream (not a fixed 50 ms: under a loaded CI host it may not have been authenticated yet).
    await settle(() => upstreamCalls(mock) > seen)
    const hash = (await db.from('api_keys').where('id', user.keyId).first()).key_hash
    await gw.catalog.handleChange(`api_keys:${user.keyId}`)
    await withSlowRead(/FROM "api_keys"|from "api_keys"/i, async () => {
      await call
      await gw.meter.drain()
    }, () => gw.catalog.key(hash))
    const spent = (await db.from('api_keys').where('id', user.keyId).select(db.raw('spent::text AS spent')).first()).spent
    assert.isTrue(toPico(spent) > 0n)
    assert.equal(gw.catalog.cachedKey(hash)!.spentPico, toPico(spent))
  })

  test('the caches reloaded (the change listener reconnected) while a call runs: its holds still count', async ({ assert }) => {
    const payload = body({ mock: { latency_ms: 300 } })
    const estimate = await estimateOf(payload)
    const plan = { name: 'held', monthlyInputTokens: 1 }
    const user = await seedUser({ balance: fromPico(estimate), plan })
    const gw = await gateway()
    const first = post('/v1/chat/completions', payload, { authorization: `Bearer ${user.key}` })
    await new Promise((resolve) => setTimeout(resolve, 100))
    await gw.catalog.reload()
    const second = await post('/v1/chat/completions', body(), { authorization: `Bearer ${user.key}` })
    assert.equal(second.status, 429, 'the plan\'s tokens held by the first call count')
    await db.from('plans').where('name', 'like', 'held-%').update({ monthly_input_tokens: null })
    await gw.catalog.reload()
    const third = await post('/v1/chat/completions', body(), { authorization: `Bearer ${user.key}` })
    assert.equal(third.status, 402, 'the balance held by the first call counts')
    assert.equal((await first).status, 200)
    const state = gw.catalog.cachedUser(user.userId)!
    assert.equal(state.reservedPico, 0n)
    assert.equal(state.reservedInputTokens, 0)
    assert.deepEqual(await ledgerProblems(), [])
  })

  test('a key and, of another user, the account deleted in the database while their calls run: the rest of the batch lands', async ({ assert }) => {
    // Nothing in the app deletes keys or users (they are revoked, disabled); an operator's SQL can.
    const keyless = await seedUser({ balance: '10' })
    const gone = await seedUser({ balance: '10' })
    const bystander = await seedUser({ balance: '10' })
    const slow = body({ mock: { latency_ms: 300 } })
    const calls = [keyless, gone, bystander].map((u) => fire(u.key, 4, () => slow))
    await new Promise((resolve) => setTimeout(resolve, 100))
    await db.from('api_keys').where('id', keyless.keyId).delete()
    await db.from('users').where('id', gone.userId).delete()
    for (const answers of await Promise.all(calls)) assert.deepEqual([...new Set(answers.map((a) => a.status))], [200])
    // The key's calls are still the user's, charged once each; the deleted user's are dropped with it (logged).
    assert.lengthOf(await usageRows(keyless.userId), 4)
    assert.lengthOf(await ledgerOf(keyless.userId, 'charge'), 4)
    assert.lengthOf(await usageRows(gone.userId), 0)
    assert.lengthOf(await ledgerOf(gone.userId, 'charge'), 0)
    assert.lengthOf(await usageRows(bystander.userId), 4)
    assert.deepEqual(await ledgerProblems(), [])
  })

  test('a key revoked and its user disabled while 10 calls are in flight: each still answered, metered and charged to that user', async ({ assert }) => {
    const user = await seedUser({ balance: '10' })
    const other = await seedUser({ balance: '10' })
    const flying = fire(user.key, 10, (i) => body({ stream: i % 2 === 0, mock: { latency_ms: 300, chunks: 5, chunk_delay_ms: 60 } }))
    await new Promise((resolve) => setTimeout(resolve, 100))
    await revokeApiKey(String(user.keyId))
    await updateUser({ id: user.userId, role: 'user', planId: null, disabled: true })
    const answers = await flying
    assert.deepEqual([...new Set(answers.map((a) => a.status))], [200])
    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 10)
    for (const row of rows) {
      assert.equal(Number(row.api_key_id), user.keyId)
      assert.isTrue(toPico(row.cost) > 0n)
    }
    const charges = await db.from('balance_ledger').where('kind', 'charge').whereIn('usage_record_id', rows.map((r) => r.id)).select('user_id')
    assert.deepEqual([...new Set(charges.map((c) => Number(c.user_id)))], [user.userId])
    assert.lengthOf(charges, 10)
    assert.lengthOf(await usageRows(other.userId), 0)
    assert.equal(await reservedOf(user.userId), 0n)
    // And then refused, with nothing charged.
    const after = await post('/v1/chat/completions', body(), { authorization: `Bearer ${user.key}` })
    assert.equal(after.status, 401)
    assert.deepEqual(await ledgerProblems(), [])
  })
})

test.group('Money holds: fallbacks', (group) => {
  let down: MockUpstream
  let up: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    down = await startMock({ status: 503, latencyMs: 100 })
    up = await startMock({ latencyMs: 100 })
    await seedChannel({ name: 'down', baseUrl: down.url, models: ['hold-free', 'hold-cheap'] })
    await seedChannel({ name: 'up', baseUrl: up.url, models: ['hold-paid'] })
    await seedPrice('hold-paid', '1000', '2000')
    await seedPrice('hold-cheap', '0.001', '0.001')
    return async () => {
      ;(await gateway()).health.reset()
      await down.stop()
      await up.stop()
    }
  })

  for (const primary of ['hold-free', 'hold-cheap']) {
    test(`${primary === 'hold-free' ? 'a free' : 'a cheap'} model falling back to a priced one, 30 calls at once on a balance for two: the fallback's holds bound them`, async ({ assert }) => {
      const payload = { model: primary, models: [primary, 'hold-paid'], messages: hello, max_tokens: 5 }
      const estimate = await estimateOf({ ...payload, model: 'hold-paid' })
      const user = await seedUser({ balance: fromPico(estimate * 2n) })
      const answers = await fire(user.key, 30, () => payload)
      const served = answers.filter((a) => a.status === 200).length
      assert.isAtLeast(served, 1)
      assert.equal(await reservedOf(user.userId), 0n)
      assert.lengthOf(await usageRows(user.userId), 30)
      const balance = await balanceOf(user.userId)
      assert.isTrue(balance >= -estimate, `balance ${fromPico(balance)} below minus one hold ${fromPico(estimate)}`)
      assert.deepEqual(await ledgerProblems(), [])
    })
  }
})

/**
 * Runs `load` with the first database read whose SQL matches `pattern`
 * answered late: the read runs at once (its snapshot is taken then), and its
 * rows are handed back only after `meanwhile` (the race a reload can lose to
 * the meter's commit).
 */
/** Generation requests the mock has received in all (its recorded list keeps only the last 100) */
function upstreamCalls(mock: MockUpstream) {
  let total = 0
  for (const count of mock.received.values()) total += count
  return total
}

async function settle(check: () => boolean, ms = 5000) {
  const until = Date.now() + ms
  while (!check() && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 10))
}

async function withSlowRead<T>(pattern: RegExp, meanwhile: () => Promise<void>, load: () => Promise<T>): Promise<T> {
  const rawQuery = db.rawQuery.bind(db)
  const from = db.from.bind(db)
  let armed = true
  const delay = async <R>(run: () => Promise<R>, sql: string): Promise<R> => {
    if (!armed || !pattern.test(sql)) return run()
    armed = false
    const rows = await run()
    await meanwhile()
    return rows
  }
  ;(db as any).rawQuery = (sql: string, bindings?: any) => delay(() => rawQuery(sql, bindings) as any, sql)
  ;(db as any).from = (table: string) => {
    const query: any = from(table)
    const exec = query.exec.bind(query)
    query.exec = () => delay(exec, query.toQuery())
    return query
  }
  try {
    return await load()
  } finally {
    ;(db as any).rawQuery = rawQuery
    ;(db as any).from = from
  }
}
