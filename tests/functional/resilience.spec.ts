import { test } from '@japa/runner'
import db from '@adonisjs/lucid/services/db'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import {
  abortStreamAfter,
  balanceAndLedger,
  baseUrl,
  gateway,
  post,
  refreshCaches,
  resetDatabase,
  seedChannel,
  seedPrice,
  seedUser,
  startMock,
  usageRows,
} from '#tests/helpers'
import { until } from '#tests/instances_harness'

const hello = [{ role: 'user', content: 'hi' }]
let n = 0

/** Two channels for one fresh model: `primary` (priority 10) and `backup` (priority 0). */
async function pair(primaryUrl: string, backup: MockUpstream, timeouts: Record<string, number> = {}) {
  n++
  const model = `pair${n}-model`
  const primary = await seedChannel({ name: `primary-${n}`, baseUrl: primaryUrl, models: [model], priority: 10 })
  const second = await seedChannel({ name: `backup-${n}`, baseUrl: backup.url, models: [model], priority: 0 })
  if (Object.keys(timeouts).length) {
    await db.from('channels').where('id', primary.id).update(timeouts)
    await refreshCaches()
  }
  return { model, primary, backup: second }
}

async function attemptsOf(requestId: string) {
  return db.from('request_attempts').where('request_id', requestId).orderBy('attempt')
}

test.group('Failover before the first byte, circuit breaker, timeouts', (group) => {
  let good: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    good = await startMock()
    return () => good.stop()
  })
  group.each.setup(async () => (await gateway()).health.reset())

  test('upstream {$self} on the primary: served by the backup, both attempts recorded')
    .with([500, 502, 503, 529])
    .run(async ({ assert }, status) => {
      const failing = await startMock({ status })
      const { model, primary, backup } = await pair(failing.url, good)
      const user = await seedUser()
      const response = await post('/v1/chat/completions', { model, messages: hello }, { authorization: `Bearer ${user.key}` })
      assert.equal(response.status, 200)
      const [row] = await usageRows(user.userId)
      assert.include(row, { channel_id: backup.id, status: 200, attempts: 2 })
      const attempts = await attemptsOf(row.request_id)
      assert.deepEqual(
        attempts.map((a) => [a.attempt, a.channel_id, a.status, a.outcome]),
        [
          [1, primary.id, status, 'http_error'],
          [2, backup.id, 200, 'ok'],
        ]
      )
      await failing.stop()
    })

  test('connection refused on the primary fails over', async ({ assert }) => {
    const { model, backup } = await pair('http://127.0.0.1:9/v1', good)
    const user = await seedUser()
    const response = await post('/v1/chat/completions', { model, messages: hello, stream: true }, { authorization: `Bearer ${user.key}` })
    assert.equal(response.status, 200)
    assert.include(await response.text(), 'data: [DONE]')
    const [row] = await usageRows(user.userId)
    assert.equal(row.channel_id, backup.id)
    assert.equal((await attemptsOf(row.request_id))[0].outcome, 'network_error')
  })

  test('first-byte timeout on the primary fails over', async ({ assert }) => {
    const slow = await startMock({ latencyMs: 1000 })
    const { model, backup } = await pair(slow.url, good, { first_byte_timeout_ms: 100 })
    const user = await seedUser()
    const started = Date.now()
    const response = await post('/v1/chat/completions', { model, messages: hello }, { authorization: `Bearer ${user.key}` })
    assert.equal(response.status, 200)
    assert.isBelow(Date.now() - started, 900)
    const [row] = await usageRows(user.userId)
    assert.equal(row.channel_id, backup.id)
    assert.equal((await attemptsOf(row.request_id))[0].outcome, 'timeout')
    await slow.stop()
  })

  test('429 with Retry-After: fail over, and the (channel, model) cools down that long', async ({ assert }) => {
    const limited = await startMock({ status: 429, retryAfter: 30 })
    const { model, primary, backup } = await pair(limited.url, good)
    const user = await seedUser()
    const auth = { authorization: `Bearer ${user.key}` }
    assert.equal((await post('/v1/chat/completions', { model, messages: hello }, auth)).status, 200)
    const seenBefore = limited.requests.length
    assert.equal((await post('/v1/chat/completions', { model, messages: hello }, auth)).status, 200)
    assert.equal(limited.requests.length, seenBefore, 'the cooling channel is not tried')
    const rows = await usageRows(user.userId)
    assert.deepEqual(rows.map((r) => [r.channel_id, r.attempts]), [[backup.id, 2], [backup.id, 1]])
    const health = (await gateway()).health
    assert.equal(health.stateOf(primary.id).state, 'closed', 'a 429 is the model\'s, not the channel\'s')
    assert.closeTo(health.retryAt(primary.id, model)! - Date.now(), 30_000, 2_000)
    await limited.stop()
  })

  test('every candidate failing: 502; every candidate rate limited: 429 with Retry-After', async ({ assert }) => {
    const broken = await startMock({ status: 500 })
    const limited = await startMock({ status: 429, retryAfter: 7 })
    await seedChannel({ name: 'broken', baseUrl: broken.url, models: ['doomed-*'] })
    await seedChannel({ name: 'limited', baseUrl: limited.url, models: ['limited-*'] })
    const user = await seedUser()
    const auth = { authorization: `Bearer ${user.key}` }
    const failed = await post('/v1/chat/completions', { model: 'doomed-1', messages: hello }, auth)
    assert.equal(failed.status, 502)
    assert.equal(((await failed.json()) as any).error.code, 'provider_error')
    const throttled = await post('/v1/chat/completions', { model: 'limited-1', messages: hello }, auth)
    assert.equal(throttled.status, 429)
    assert.equal(throttled.headers.get('retry-after'), '7')
    await broken.stop()
    await limited.stop()
  })

  test('an upstream 529 (overloaded): 529 overloaded_error to Anthropic clients, 503 to the others; metered as sent', async ({ assert, cleanup }) => {
    const overloaded = await startMock({ status: 529 })
    cleanup(() => overloaded.stop())
    await seedChannel({ name: 'overloaded', provider: 'anthropic', baseUrl: overloaded.url, models: ['busy-*'] })
    const user = await seedUser()
    const health = (await gateway()).health

    // Anthropic's SDKs and Claude Code retry a 529 specifically; the gateway said 502 api_error.
    const messages = await post(
      '/v1/messages',
      { model: 'busy-claude', max_tokens: 10, messages: hello },
      { 'x-api-key': user.key, 'anthropic-version': '2023-06-01' }
    )
    assert.equal(messages.status, 529)
    assert.isNull(messages.headers.get('x-should-retry'))
    const anthropic = (await messages.json()) as any
    assert.equal(anthropic.type, 'error')
    assert.equal(anthropic.error.type, 'overloaded_error')
    assert.include(anthropic.error.message, 'overloaded (HTTP 529)')

    health.reset()
    const chat = await post('/v1/chat/completions', { model: 'busy-claude', messages: hello }, { authorization: `Bearer ${user.key}` })
    assert.equal(chat.status, 503)
    assert.include(((await chat.json()) as any).error, { type: 'service_unavailable', code: 'upstream_overloaded' })

    health.reset()
    const gemini = await post('/v1beta/models/busy-claude:generateContent', { contents: [{ role: 'user', parts: [{ text: 'hi' }] }] }, { 'x-goog-api-key': user.key })
    assert.equal(gemini.status, 503)
    assert.include(((await gemini.json()) as any).error, { code: 503, status: 'UNAVAILABLE' })

    assert.equal(overloaded.requests.length, 3)
    const rows = await usageRows(user.userId)
    assert.deepEqual(
      rows.map((r) => [r.endpoint, r.status, r.error_code]),
      [
        ['messages', 529, 'upstream_overloaded'],
        ['chat.completions', 503, 'upstream_overloaded'],
        ['gemini.generateContent', 503, 'upstream_overloaded'],
      ]
    )
    const attempts = await attemptsOf(rows[0].request_id)
    assert.deepEqual(attempts.map((a) => [a.status, a.outcome]), [[529, 'http_error']])
  })

  test('circuit breaker: opens after repeated failures (503 while cooling), a trial closes it', async ({ assert }) => {
    const gw = await gateway()
    gw.health.options.baseCooldownMs = 300
    const flaky = await startMock({ status: 500 })
    const channel = await seedChannel({ name: 'flaky', baseUrl: flaky.url, models: ['flaky-*'] })
    const user = await seedUser()
    const auth = { authorization: `Bearer ${user.key}` }
    for (let i = 0; i < 3; i++) {
      assert.equal((await post('/v1/chat/completions', { model: 'flaky-1', messages: hello }, auth)).status, 502)
    }
    const cooling = await post('/v1/chat/completions', { model: 'flaky-1', messages: hello }, auth)
    assert.equal(cooling.status, 503)
    assert.equal(((await cooling.json()) as any).error.code, 'no_available_channel')
    assert.equal(flaky.requests.length, 3)
    const status: any = await (await fetch(`${baseUrl()}/api/status`)).json()
    assert.equal(status.channels.cooling_down, 1)
    // Mirrored for admins (written in the background: waited for, not given a fixed 50 ms)
    const stored = await until(() => db.from('channels').where('id', channel.id).first(), (row) => row.health === 'open' && String(row.last_error).includes('HTTP 500'))
    assert.equal(stored.health, 'open')
    assert.include(stored.last_error, 'HTTP 500')

    flaky.options.status = undefined
    await new Promise((r) => setTimeout(r, 350))
    assert.equal((await post('/v1/chat/completions', { model: 'flaky-1', messages: hello }, auth)).status, 200)
    assert.equal(gw.health.stateOf(channel.id).state, 'closed')
    gw.health.options.baseCooldownMs = 30_000
    await flaky.stop()
  })

  test('an upstream 401 disables the channel with the reason, traffic moves on', async ({ assert }) => {
    const badKey = await startMock({ status: 401 })
    const { model, primary, backup } = await pair(badKey.url, good)
    const user = await seedUser()
    const auth = { authorization: `Bearer ${user.key}` }
    assert.equal((await post('/v1/chat/completions', { model, messages: hello }, auth)).status, 200)
    assert.equal((await post('/v1/chat/completions', { model, messages: hello }, auth)).status, 200)
    assert.equal(badKey.requests.length, 1)
    // The disabling is written in the background: waited for, not given a fixed 50 ms.
    const stored = await until(() => db.from('channels').where('id', primary.id).first(), (row) => row.enabled === false && String(row.disabled_reason).includes('HTTP 401'))
    assert.isFalse(stored.enabled)
    assert.include(stored.disabled_reason, 'HTTP 401')
    const rows = await usageRows(user.userId)
    assert.deepEqual(rows.map((r) => r.channel_id), [backup.id, backup.id])
    await badKey.stop()
  })

  test('malformed SSE is relayed, and its text counted as estimated usage', async ({ assert }) => {
    const user = await seedUser()
    await seedChannel({ name: 'garbled', baseUrl: good.url, models: ['garbled-*'] })
    const response = await post('/v1/chat/completions', { model: 'garbled-1', messages: hello, stream: true, mock: { malformed: true, usage: false } }, { authorization: `Bearer ${user.key}` })
    assert.equal(response.status, 200)
    assert.include(await response.text(), 'tok1')
    const [row] = await usageRows(user.userId)
    assert.include(row, { status: 200, estimated: true })
  })

  test('idle timeout between stream chunks: error event to the client, partial usage billed', async ({ assert }) => {
    const channel = await seedChannel({ name: 'sleepy', baseUrl: good.url, models: ['sleepy-*'] })
    await db.from('channels').where('id', channel.id).update({ idle_timeout_ms: 150 })
    await refreshCaches()
    await seedPrice('sleepy-*', '1', '1')
    const user = await seedUser({ balance: '1' })
    const response = await post('/v1/chat/completions', { model: 'sleepy-1', messages: hello, stream: true, mock: { chunks: 4, chunk_delay_ms: 400 } }, { authorization: `Bearer ${user.key}` })
    const text = await response.text()
    assert.equal(response.status, 200)
    assert.include(text, '"code":"provider_error"')
    const [row] = await usageRows(user.userId)
    assert.include(row, { error_code: 'stream_interrupted', estimated: true })
    const money = await balanceAndLedger(user.userId)
    assert.equal(money.balance, money.ledger)
    assert.isBelow(Number(money.balance), 1)
  })
})

test.group('Accounting under aborts and concurrency', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'mock', baseUrl: mock.url, models: ['*'] })
    await seedPrice('costly-*', '100', '100')
    return () => mock.stop()
  })

  test('client aborts at random points: one row each, ledger = balance, no reservation left open', async ({ assert }) => {
    const user = await seedUser({ balance: '50' })
    const aborts = Array.from({ length: 20 }, (_, i) =>
      abortStreamAfter(user.key, { model: 'costly-a', messages: hello, stream: true, mock: { chunks: 30, chunk_delay_ms: 5 } }, [0, 1, 200, 700, 1500][i % 5])
    )
    await Promise.all(aborts)
    const gw = await gateway()
    let rows: any[] = []
    for (let i = 0; i < 100 && rows.length < 20; i++) {
      await new Promise((r) => setTimeout(r, 30))
      rows = await usageRows(user.userId)
    }
    assert.lengthOf(rows, 20)
    assert.lengthOf(new Set(rows.map((r) => r.request_id)), 20)
    const money = await balanceAndLedger(user.userId)
    assert.equal(money.balance, money.ledger)
    assert.equal((await gw.catalog.user(user.userId))!.reservedPico, 0n)
  })

  test('100 concurrent calls on a balance that covers a few: overdraw bounded by one estimate', async ({ assert }) => {
    // Each call costs 12 x $100/M + 5 x $100/M = $0.0017. The reservation estimate of a call with
    // max_tokens 10 and a ~120-byte body: 40 x $100/M + 10 x $100/M = $0.005.
    const user = await seedUser({ balance: '0.01' })
    const statuses = await Promise.all(
      Array.from({ length: 100 }, () =>
        post('/v1/chat/completions', { model: 'costly-b', messages: hello, max_tokens: 10, mock: { latency_ms: 50 } }, { authorization: `Bearer ${user.key}` }).then(async (r) => {
          await r.arrayBuffer()
          return r.status
        })
      )
    )
    const served = statuses.filter((s) => s === 200).length
    const refused = statuses.filter((s) => s === 402).length
    assert.equal(served + refused, 100)
    assert.isAtLeast(served, 1)
    // Without reservations all 100 would pass the balance check while in flight.
    assert.isAtLeast(refused, 90, 'admissions stop once reservations cover the balance')
    const money = await balanceAndLedger(user.userId)
    assert.equal(money.balance, money.ledger)
    assert.isAtLeast(Number(money.balance), -0.005)
    assert.equal((await (await gateway()).catalog.user(user.userId))!.reservedPico, 0n)
  })

  test('a key spend cap: 402 spend_limit_exceeded once reached', async ({ assert }) => {
    const user = await seedUser({ balance: '10', key: { spendLimit: '0.002' } })
    const auth = { authorization: `Bearer ${user.key}` }
    assert.equal((await post('/v1/chat/completions', { model: 'costly-c', messages: hello }, auth)).status, 200)
    assert.equal((await post('/v1/chat/completions', { model: 'costly-c', messages: hello }, auth)).status, 200)
    const capped = await post('/v1/chat/completions', { model: 'costly-c', messages: hello }, auth)
    assert.equal(capped.status, 402)
    assert.equal(((await capped.json()) as any).error.code, 'spend_limit_exceeded')
  })
})
