import { test } from '@japa/runner'
import db from '@adonisjs/lucid/services/db'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { closePools } from '#gateway/upstream/upstream_pool'
import { post, refreshCaches, resetDatabase, seedChannel, seedUser, startMock, usageRows } from '#tests/helpers'

const hello = [{ role: 'user', content: 'hi' }]

/**
 * An upstream that answers nothing until `expected` requests are open at the
 * same time (or `holdMs` passed), then answers them all: it tells how many
 * requests the gateway could have in flight to one origin at once.
 */
async function holdingUpstream(expected: number, holdMs: number) {
  const held: http.ServerResponse[] = []
  let peak = 0
  let timer: NodeJS.Timeout | null = null
  const release = () => {
    if (timer) clearTimeout(timer)
    timer = null
    for (const res of held.splice(0)) {
      const body = JSON.stringify({
        id: 'chatcmpl-held',
        object: 'chat.completion',
        created: 0,
        model: 'held',
        choices: [{ index: 0, message: { role: 'assistant', content: 'ok' }, finish_reason: 'stop' }],
        usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 },
      })
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
      res.end(body)
    }
  }
  const server = http.createServer((req, res) => {
    req.resume()
    req.on('end', () => {
      held.push(res)
      peak = Math.max(peak, held.length)
      timer ??= setTimeout(release, holdMs)
      if (held.length >= expected) release()
    })
  })
  server.maxConnections = 10_000
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}/v1`,
    peak: () => peak,
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())).then(() => server.closeAllConnections()),
  }
}

test.group('Upstream connections', (group) => {
  group.setup(async () => {
    await resetDatabase()
  })
  group.each.teardown(async () => {
    delete process.env.UPSTREAM_MAX_CONNECTIONS
    await closePools()
  })

  test('600 requests to one origin are all in flight at once (no 512-connection cap)', async ({ assert }) => {
    const streams = 600
    const upstream = await holdingUpstream(streams, 8000)
    try {
      await seedChannel({ name: 'held', baseUrl: upstream.url, models: ['held-model'] })
      const user = await seedUser()
      const responses = await Promise.all(
        Array.from({ length: streams }, () =>
          post('/v1/chat/completions', { model: 'held-model', messages: hello }, { authorization: `Bearer ${user.key}` }).then(
            async (r) => (await r.text(), r.status)
          )
        )
      )
      assert.equal(upstream.peak(), streams, 'every request reached the upstream before any was answered')
      assert.deepEqual([...new Set(responses)], [200])
      assert.lengthOf(await usageRows(user.userId), streams)
    } finally {
      await upstream.stop()
    }
  }).timeout(60_000)

  test('with UPSTREAM_MAX_CONNECTIONS, waiting for a connection counts against the first-byte timeout, and says so', async ({
    assert,
  }) => {
    process.env.UPSTREAM_MAX_CONNECTIONS = '1'
    await closePools()
    const mock = await startMock()
    try {
      const channel = await seedChannel({ name: 'capped', baseUrl: mock.url, models: ['capped-model'] })
      await db.from('channels').where('id', channel.id).update({ first_byte_timeout_ms: 300 })
      await refreshCaches()
      const user = await seedUser()
      const auth = { authorization: `Bearer ${user.key}` }
      // A stream that answers at once but holds the only connection for ~1.2 s.
      const holder = post(
        '/v1/chat/completions',
        { model: 'capped-model', stream: true, messages: hello, mock: { chunks: 4, chunk_delay_ms: 300 } },
        auth
      ).then(async (r) => (await r.text(), r.status))
      await new Promise((resolve) => setTimeout(resolve, 100))
      const started = Date.now()
      const waiting = await post('/v1/chat/completions', { model: 'capped-model', messages: hello }, auth)
      const elapsed = Date.now() - started
      const body = (await waiting.json()) as any
      assert.equal(waiting.status, 502)
      assert.equal(body.error.message, 'Upstream request failed: first byte timeout while waiting for a free upstream connection')
      assert.isBelow(elapsed, 1000, 'the wait was cut by the first-byte timeout, not by the end of the holding stream')
      assert.equal(await holder, 200)
      const rows = await usageRows(user.userId)
      const failed = rows.find((r) => r.status === 502)
      const [attempt] = await db.from('request_attempts').where('request_id', failed.request_id)
      assert.equal(attempt.outcome, 'timeout')
      assert.match(attempt.error, /waiting for a free upstream connection \(every connection allowed by UPSTREAM_MAX_CONNECTIONS was busy\)/)
    } finally {
      await mock.stop()
    }
  })
})
