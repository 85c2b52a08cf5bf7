import { test } from '@japa/runner'
import db from '@adonisjs/lucid/services/db'
import { randomBytes } from 'node:crypto'
import { hashApiKey } from '#gateway/auth/api_key_token'
import { updateChannel } from '#actions/update_channel'
import { pooledOrigins } from '#gateway/upstream/upstream_pool'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { gateway, post, resetDatabase, seedChannel, seedUser, startMock, usageRows } from '#tests/helpers'

/**
 * What hostile or changing input must not spoil in the gateway's memory:
 * the key cache (a flood of unknown keys; the router's refused model names
 * are in tests/unit/channel_router.spec.ts), and the upstream pools of
 * channels that moved.
 */

/** Counts the queries the application's database client sends while `run` runs. */
async function queriesDuring(run: () => Promise<unknown>): Promise<string[]> {
  const knex = db.connection().getReadClient()
  const seen: string[] = []
  const listener = (query: { sql: string }) => seen.push(query.sql)
  knex.on('query', listener)
  try {
    await run()
  } finally {
    knex.off('query', listener)
  }
  return seen
}

const unknownHash = () => hashApiKey(`sk-${randomBytes(16).toString('hex')}`)

test.group('Key cache: unknown keys', (group) => {
  group.setup(async () => {
    await resetDatabase()
  })

  test('more than 10,000 unknown keys leave the real keys cached (no database read for them)', async ({ assert }) => {
    const gw = await gateway()
    const user = await seedUser()
    const real = hashApiKey(user.key)
    assert.equal((await gw.catalog.key(real))?.id, user.keyId)

    // 10,500 distinct keys no one has: each is read once (and remembered as unknown).
    const flood = Array.from({ length: 10_500 }, unknownHash)
    for (let i = 0; i < flood.length; i += 100) {
      const answers = await Promise.all(flood.slice(i, i + 100).map((hash) => gw.catalog.key(hash)))
      assert.isTrue(answers.every((info) => info === null))
    }

    // (The counter sees a read: a key never seen costs one.)
    assert.isNotEmpty(await queriesDuring(() => gw.catalog.key(unknownHash())))
    assert.equal(gw.catalog.cachedKey(real)?.id, user.keyId, 'the real key is still in memory')
    const reads = await queriesDuring(() => gw.catalog.key(real))
    assert.deepEqual(reads, [], 'the real key resolves without a database read')

    // The unknown ones are bounded on their own: the newest are remembered, the oldest forgotten.
    assert.isNull(gw.catalog.cachedKey(flood[flood.length - 1]))
    assert.isUndefined(gw.catalog.cachedKey(flood[0]))
    assert.deepEqual(await queriesDuring(() => gw.catalog.key(flood[flood.length - 1])), [], 'a known-unknown key costs no read')

    // And through HTTP: the real key answers, an unknown one is a 401.
    assert.equal((await post('/v1/chat/completions', { model: 'x', messages: [] }, { authorization: 'Bearer sk-nobody' })).status, 401)
    const known = await queriesDuring(async () => {
      const r = await fetch(`http://${process.env.HOST}:${process.env.PORT}/v1/models`, { headers: { authorization: `Bearer ${user.key}` } })
      assert.equal(r.status, 200)
    })
    assert.isFalse(known.some((sql) => sql.includes('api_keys')), 'no api_keys read for the real key')
  }).timeout(120_000)

  test('an api_keys change forgets known and unknown keys alike; a key created after it was unknown is found', async ({ assert }) => {
    const gw = await gateway()
    const user = await seedUser()
    const real = hashApiKey(user.key)
    await gw.catalog.key(real)
    const bad = unknownHash()
    assert.isNull(await gw.catalog.key(bad))
    assert.isNull(gw.catalog.cachedKey(bad))

    await gw.catalog.handleChange('api_keys:0')
    assert.isUndefined(gw.catalog.cachedKey(real))
    assert.isUndefined(gw.catalog.cachedKey(bad))

    // A key that was remembered as unknown, then created, is found (the change's NOTIFY, by hand here).
    const later = `sk-${randomBytes(16).toString('hex')}`
    assert.isNull(await gw.catalog.key(hashApiKey(later)))
    await db.table('api_keys').insert({ user_id: user.userId, name: 'later', key_hash: hashApiKey(later), prefix: later.slice(0, 8), last_four: later.slice(-4) })
    await gw.catalog.handleChange('api_keys:0')
    assert.isNotNull(await gw.catalog.key(hashApiKey(later)))
  })
})

/** Polls `check` until it holds (true) or `ms` pass (false). */
async function eventually(check: () => boolean, ms = 3000) {
  for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 10))) {
    if (check()) return true
  }
  return check()
}

test.group('Upstream pools: a channel that moves', (group) => {
  let oldHome: MockUpstream
  let newHome: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    oldHome = await startMock()
    newHome = await startMock()
    return async () => {
      await oldHome.stop()
      await newHome.stop()
    }
  })

  test('a new base URL closes the old origin pool once its stream in flight has finished', async ({ assert }) => {
    const channel = await seedChannel({ name: 'moving', baseUrl: oldHome.url, models: ['move-*'] })
    const user = await seedUser({ balance: '10' })
    const auth = { authorization: `Bearer ${user.key}` }

    // A stream of 20 chunks, 50 ms apart, on the old origin.
    const streaming = await post('/v1/chat/completions', { model: 'move-a', stream: true, messages: [{ role: 'user', content: 'hi' }], mock: { chunks: 20, chunk_delay_ms: 50 } }, auth)
    assert.equal(streaming.status, 200)
    const reader = streaming.body!.getReader()
    const decoder = new TextDecoder()
    let text = decoder.decode((await reader.read()).value)
    let finished = false
    const rest = (async () => {
      for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) text += decoder.decode(chunk.value, { stream: true })
      finished = true
    })()
    assert.include(pooledOrigins(), oldHome.origin)

    // The panel's action; the running gateway hears of it through NOTIFY and reloads its channels.
    await updateChannel(channel.id, { name: 'moving', provider: 'custom', baseUrl: newHome.url, models: ['move-*'] })
    assert.isTrue(await eventually(() => !pooledOrigins().includes(oldHome.origin)), 'the old origin leaves the pools')
    assert.isFalse(finished, 'while the stream on it was still running')

    await rest
    const contents = text.split('\n').filter((line) => line.startsWith('data: {') && JSON.parse(line.slice(6)).choices?.[0]?.delta?.content)
    assert.lengthOf(contents, 20, 'every chunk arrived')
    assert.isTrue(text.trimEnd().endsWith('data: [DONE]'), 'the stream ended cleanly')

    // The next call goes to the new origin, through a pool of its own.
    const next = await post('/v1/chat/completions', { model: 'move-a', messages: [{ role: 'user', content: 'hi' }] }, auth)
    assert.equal(next.status, 200)
    await next.text()
    assert.lengthOf(newHome.requests, 1)
    assert.lengthOf(oldHome.requests, 1)
    assert.includeMembers(pooledOrigins(), [newHome.origin])
    assert.notInclude(pooledOrigins(), oldHome.origin)
    // The old pool's connection closed once its stream was done (not kept alive for the pool's keep-alive).
    assert.isTrue(await eventually(() => oldHome.openConnections === 0), `${oldHome.openConnections} connections still open to the old origin`)

    assert.deepEqual((await usageRows(user.userId)).map((row) => row.status), [200, 200])
  }).timeout(30_000)

  test('a request routed before a reload that fails over to the moved channel\'s old origin: its pool is its own, closed after it', async ({ assert }) => {
    // The first channel answers 500 after a while: long enough for the second channel to move meanwhile.
    const slowFailure = await startMock({ latencyMs: 1500, status: 500 })
    // A stream of 10 chunks, 30 ms apart, from the old origin: its pool closing must not cut it.
    const before = await startMock({ chunks: 10, chunkDelayMs: 30 })
    const after = await startMock()
    try {
      await seedChannel({ name: 'race-first', baseUrl: slowFailure.url, models: ['race-*'], priority: 10 })
      const second = await seedChannel({ name: 'race-second', baseUrl: before.url, models: ['race-*'], priority: 0 })
      const user = await seedUser({ balance: '10' })
      const answer = post('/v1/chat/completions', { model: 'race-a', stream: true, messages: [{ role: 'user', content: 'hi' }] }, { authorization: `Bearer ${user.key}` })
      assert.isTrue(await eventually(() => slowFailure.requests.length === 1), 'the first attempt is running')

      // Routed already (both channels, as they were); the second moves while the first attempt waits.
      await updateChannel(second.id, { name: 'race-second', provider: 'custom', baseUrl: after.url, models: ['race-*'] })
      const gw = await gateway()
      assert.isTrue(await eventually(() => gw.catalog.channels.find((c) => c.id === second.id)?.baseUrl === after.url), 'the gateway reloaded its channels')

      // The failover goes where the request was routed: the old origin, which still answers.
      const response = await answer
      assert.equal(response.status, 200)
      const text = await response.text()
      const contents = text.split('\n').filter((line) => line.startsWith('data: {') && JSON.parse(line.slice(6)).choices?.[0]?.delta?.content)
      assert.lengthOf(contents, 10, 'every chunk arrived')
      assert.isTrue(text.trimEnd().endsWith('data: [DONE]'), 'the stream ended cleanly')
      assert.lengthOf(before.requests, 1)
      const [row] = await usageRows(user.userId)
      assert.include(row, { status: 200, error_code: null, channel_id: second.id, attempts: 2 })

      // No shared pool was made for an origin no channel uses, and its connection did not stay open.
      assert.notInclude(pooledOrigins(), before.origin)
      assert.isTrue(await eventually(() => before.openConnections === 0), `${before.openConnections} connections still open to the old origin`)

      // The origin in use is pooled as ever.
      const next = await post('/v1/chat/completions', { model: 'race-a', messages: [{ role: 'user', content: 'hi' }] }, { authorization: `Bearer ${user.key}` })
      assert.equal(next.status, 200)
      await next.text()
      assert.include(pooledOrigins(), after.origin)
    } finally {
      ;(await gateway()).health.reset()
      await slowFailure.stop()
      await before.stop()
      await after.stop()
    }
  }).timeout(30_000)

  test('a deleted channel takes its pool with it; a channel left on the origin keeps it', async ({ assert }) => {
    const user = await seedUser({ balance: '10' })
    const auth = { authorization: `Bearer ${user.key}` }
    const gone = await seedChannel({ name: 'gone', baseUrl: oldHome.url, models: ['gone-*'] })
    await seedChannel({ name: 'staying', baseUrl: newHome.url, models: ['stay-*'] })
    for (const model of ['gone-a', 'stay-a']) {
      const r = await post('/v1/chat/completions', { model, messages: [{ role: 'user', content: 'hi' }] }, auth)
      assert.equal(r.status, 200)
      await r.text()
    }
    assert.includeMembers(pooledOrigins(), [oldHome.origin, newHome.origin])

    // No action deletes channels: an operator's psql does (the trigger's NOTIFY reaches the gateway).
    await db.from('channels').where('id', gone.id).delete()
    assert.isTrue(await eventually(() => !pooledOrigins().includes(oldHome.origin)), 'the deleted channel origin leaves the pools')
    assert.include(pooledOrigins(), newHome.origin)
  })
})
