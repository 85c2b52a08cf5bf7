import { test } from '@japa/runner'
import http from 'node:http'
import { createHook } from 'node:async_hooks'
import { randomBytes } from 'node:crypto'
import { baseUrl, gateway, post, resetDatabase, seedChannel, seedPrice, seedUser, startMock, usageRows, type SeededUser } from '#tests/helpers'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { heldOnKey } from '#gateway/metering/key_reservations'
import { poolFor, closePools } from '#gateway/upstream/upstream_pool'
import type { OriginPool } from '#gateway/upstream/origin_pool'
import { bodyBudget } from '#gateway/http/body_limits'

/**
 * A long-running gateway whose requests take their error paths: clients gone
 * before and after the first byte, upstream 500/429/timeouts/resets, refused
 * requests, many keys and many (hostile) model names. Once it settles, what
 * the requests held must be gone: holds, in-flight records, per-request
 * timers, and the upstream connections that died.
 */

const hello = [{ role: 'user', content: 'hi' }]

/** A client that sends the request and hangs up after `ms`, before the (late) answer's first byte. */
function hangUpAfter(key: string, body: unknown, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const url = new URL(`${baseUrl()}/v1/chat/completions`)
    const req = http.request(
      { host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers: { 'authorization': `Bearer ${key}`, 'content-type': 'application/json' } },
      (res) => {
        res.resume()
        res.on('close', () => resolve())
      }
    )
    req.on('error', () => resolve())
    req.on('close', () => resolve())
    req.end(JSON.stringify(body))
    setTimeout(() => req.destroy(), ms)
  })
}

/** A client that declares a body, sends part of it, and hangs up. */
function partialUpload(key: string): Promise<void> {
  return new Promise((resolve) => {
    const url = new URL(`${baseUrl()}/v1/chat/completions`)
    const req = http.request({
      host: url.hostname,
      port: url.port,
      path: url.pathname,
      method: 'POST',
      headers: { 'authorization': `Bearer ${key}`, 'content-type': 'application/json', 'content-length': '4000' },
    })
    req.on('error', () => resolve())
    req.on('close', () => resolve())
    req.write('{"model": "leak-0", "messages": [{"role": "user", "content": "')
    setTimeout(() => req.destroy(), 20)
  })
}

/** A streaming client that reads `afterBytes` bytes of the answer, then hangs up. */
function cutStreamAfter(key: string, body: unknown, afterBytes: number): Promise<void> {
  return new Promise((resolve) => {
    const url = new URL(`${baseUrl()}/v1/chat/completions`)
    let received = 0
    const req = http.request(
      { host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers: { 'authorization': `Bearer ${key}`, 'content-type': 'application/json' } },
      (res) => {
        res.on('data', (chunk) => {
          received += chunk.length
          if (received >= afterBytes) req.destroy()
        })
        res.on('close', () => resolve())
      }
    )
    req.on('error', () => resolve())
    req.end(JSON.stringify(body))
  })
}

async function send(key: string, body: unknown, headers: Record<string, string> = {}) {
  const response = await post('/v1/chat/completions', body, { authorization: `Bearer ${key}`, ...headers })
  await response.arrayBuffer()
  return response.status
}

async function settle(check: () => boolean, ms = 5000) {
  const until = Date.now() + ms
  while (!check() && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 20))
}

test.group('Error paths leave nothing behind', (group) => {
  let mock: MockUpstream
  let savedThreshold = 0

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock({ chunks: 20, chunkDelayMs: 2 })
    const gw = await gateway()
    // Thousands of upstream failures on purpose: the breaker must not turn them into 503s without an attempt.
    savedThreshold = gw.health.options.failureThreshold
    gw.health.options.failureThreshold = 1e9
    return async () => {
      gw.health.options.failureThreshold = savedThreshold
      gw.health.reset()
      await closePools()
      await mock.stop()
    }
  })

  test('a few thousand failing requests: holds, in-flight records, timers and dead connections all go', async ({ assert }) => {
    const gw = await gateway()
    await seedChannel({ baseUrl: mock.url, models: ['leak-*', 'hostile-*'] })
    await seedChannel({ baseUrl: mock.url, models: ['slow-*'], firstByteTimeoutMs: 100, idleTimeoutMs: 100 })
    await seedPrice('*', '1', '2')
    const users: SeededUser[] = []
    for (let i = 0; i < 12; i++) users.push(await seedUser({ balance: '100' }))
    const broke = await seedUser({ balance: '0.0000001' })
    const limited = await seedUser({ balance: '100', key: { rpm: 2 } })
    const capped = await seedUser({ balance: '100', key: { spendLimit: '0.0000001' } })
    const everyone = [...users, broke, limited, capped]

    // Timers made while the requests run, and still pending once everything settled.
    const timers = new Map<number, string>()
    const hook = createHook({
      init(id, type) {
        if (type !== 'Timeout') return
        // Only the gateway's own timers: keep-alive timers of idle sockets are per connection (checked below).
        const stack = new Error().stack!.split('\n').slice(4, 16)
        const own = stack.find((frame) => frame.includes('/app/'))
        if (own) timers.set(id, own.trim())
      },
      destroy(id) {
        timers.delete(id)
      },
    })

    const kinds = 21
    const total = 2000
    let sent = 0
    const run = async (i: number) => {
      const user = users[i % users.length]
      const model = `leak-${i % 5}`
      switch (i % kinds) {
        case 0: return send(user.key, { model, messages: hello })
        case 1: return send(user.key, { model, messages: hello, stream: true })
        case 2: return send(user.key, { model, messages: hello, mock: { status: 500 } })
        case 3: return send(user.key, { model: `hostile-${i}`, messages: hello, mock: { status: 429, retry_after: i % 40 === 3 ? 60 : undefined } })
        case 4: return send(user.key, { model, messages: hello, stream: true, mock: { reset_after: 3 } })
        case 5: return send(user.key, { model: `slow-${i % 3}`, messages: hello, mock: { latency_ms: 400 } })
        case 6: return send(user.key, { model: `slow-${i % 3}`, messages: hello, stream: true, mock: { chunk_delay_ms: 300, chunks: 3 } })
        case 7: return hangUpAfter(user.key, { model, messages: hello, mock: { latency_ms: 200 } }, 30)
        case 8: return cutStreamAfter(user.key, { model, messages: hello, stream: true, mock: { chunk_delay_ms: 10, chunks: 40 } }, 150)
        case 9: return send(`sk-${randomBytes(12).toString('hex')}`, { model, messages: hello })
        case 10: return send(broke.key, { model, messages: hello })
        case 11: return send(limited.key, { model, messages: hello })
        case 12: return send(capped.key, { model, messages: hello })
        case 13: return send(user.key, '{"model": "leak-1", "messages": [')
        case 14: return send(user.key, { model, messages: 'not a list' })
        case 15: return send(user.key, { model: `nowhere-${i}`, messages: hello })
        case 16: return send(user.key, { model: `hostile-${i}`, messages: hello, mock: { status: 503 } }, { 'x-gateway-cache-ttl': '60' })
        case 17: return send(user.key, { model: `hostile-${i}`, messages: hello, stream: true, mock: { reset_after: 1 } }, { 'x-gateway-cache-ttl': '60' })
        case 18: return hangUpAfter(user.key, { model: `slow-${i}`, messages: hello, stream: true, mock: { latency_ms: 50, chunk_delay_ms: 50 } }, 120)
        case 19: return send(user.key, { model, messages: hello, mock: { status: 400 } })
        default: return partialUpload(user.key)
      }
    }

    // Answers other test files cached stay cached: only this run's count.
    const cachedBefore = gw.service.responseCache?.entries ?? 0
    hook.enable()
    const concurrency = 24
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (sent < total) await run(sent++)
      })
    )
    await settle(() => gw.service.inFlight === 0)
    await gw.meter.drain()
    // The mock's slow answers finish writing, and the connections they closed are seen closed.
    await new Promise((resolve) => setTimeout(resolve, 600))
    hook.disable()

    assert.equal(gw.service.inFlight, 0, 'requests still counted in flight')
    assert.equal(bodyBudget.used, 0, 'body bytes still counted as held')
    for (const user of everyone) {
      const state = gw.catalog.cachedUser(user.userId)
      assert.equal(state?.reservedPico ?? 0n, 0n, `user ${user.userId} still holds money`)
      assert.equal(state?.reservedInputTokens ?? 0, 0, `user ${user.userId} still holds input tokens`)
      assert.equal(state?.reservedOutputTokens ?? 0, 0, `user ${user.userId} still holds output tokens`)
      assert.equal(heldOnKey(user.keyId), 0n, `key ${user.keyId} still holds money`)
      const pending = gw.meter.pendingFor(user.userId)
      assert.equal(pending.costPico, 0n)
    }
    // Every admitted request has its row (a sanity check that the mix really ran its paths).
    let rows = 0
    for (const user of everyone) rows += (await usageRows(user.userId)).length
    assert.isAbove(rows, total / 2)

    // Nothing cached from a failure (only the failing calls sent x-gateway-cache-ttl).
    assert.isAtMost(gw.service.responseCache?.entries ?? 0, cachedBefore, 'failures cached')
    // Timers: the gateway's own (meter flush, sweeps) may be pending; none per request.
    const byPlace = new Map<string, number>()
    for (const place of timers.values()) byPlace.set(place, (byPlace.get(place) ?? 0) + 1)
    assert.isBelow(timers.size, 5, `timers left from ${total} requests: ${JSON.stringify([...byPlace])}`)

    // The upstream connections: every one the pool keeps is one the mock still has open.
    const pool = poolFor(mock.origin) as OriginPool
    await settle(() => pool.size <= mock.openConnections, 2000)
    assert.isAtMost(pool.size, mock.openConnections, `pool keeps ${pool.size} connections, ${mock.openConnections} open`)

    // Per (channel, model) cool-downs of 400 hostile names: kept few.
    const coolingEntries = gw.catalog.channels.reduce((n, c) => n + gw.health.modelCooldowns(c.id, 0).length, 0)
    assert.isAtMost(coolingEntries, 256, `${coolingEntries} model cool-downs kept`)
  }).timeout(180_000)
})
