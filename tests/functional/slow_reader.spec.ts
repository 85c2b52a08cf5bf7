import { test } from '@japa/runner'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { closePools } from '#gateway/upstream/upstream_pool'
import { baseUrl, resetDatabase, seedChannel, seedUser, usageRows } from '#tests/helpers'

/**
 * A client that stops reading a stream for a while (a laptop lid, a busy
 * agent): the gateway stops reading the upstream (back-pressure), so the
 * upstream falls silent because of the client, not itself. Its idle limit
 * must not cut the stream then.
 */
const CHUNKS = 400
const PIECE = 'x'.repeat(64 * 1024)

async function fastStreamingUpstream() {
  const server = http.createServer((req, res) => {
    req.resume()
    req.on('end', async () => {
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      const event = (content: string) =>
        `data: ${JSON.stringify({ id: 'c', object: 'chat.completion.chunk', created: 0, model: 'm', choices: [{ index: 0, delta: { content }, finish_reason: null }] })}\n\n`
      // 25 MB as fast as the gateway reads it: more than the sockets between it and the client hold.
      for (let i = 0; i < CHUNKS && !res.destroyed; i++) {
        if (!res.write(event(PIECE))) await new Promise((resolve) => res.once('drain', resolve))
      }
      res.write(`data: ${JSON.stringify({ id: 'c', object: 'chat.completion.chunk', created: 0, model: 'm', choices: [], usage: { prompt_tokens: 3, completion_tokens: CHUNKS, total_tokens: CHUNKS + 3 } })}\n\n`)
      res.end('data: [DONE]\n\n')
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`, server }
}

test.group('A client that stops reading a stream', (group) => {
  group.setup(async () => {
    await resetDatabase()
  })

  test("is not cut by the upstream's idle limit while the gateway holds the upstream back for it", async ({ assert }) => {
    const upstream = await fastStreamingUpstream()
    try {
      await seedChannel({ name: 'fast', baseUrl: upstream.url, models: ['*'], idleTimeoutMs: 1000 })
      const user = await seedUser()
      const { port } = new URL(baseUrl())
      const text = await new Promise<string>((resolve, reject) => {
        const req = http.request(
          { host: '127.0.0.1', port, method: 'POST', path: '/v1/chat/completions', headers: { 'authorization': `Bearer ${user.key}`, 'content-type': 'application/json' } },
          (res) => {
            // Three idle limits without reading a byte, then read on.
            res.pause()
            setTimeout(() => {
              let body = ''
              res.setEncoding('utf8')
              res.on('data', (chunk) => (body += chunk))
              res.on('end', () => resolve(body))
              res.resume()
            }, 3000)
          }
        )
        req.on('error', reject)
        req.end(JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }], stream: true }))
      })
      assert.notInclude(text, 'idle timeout')
      assert.include(text, 'data: [DONE]')
      assert.equal(text.split(PIECE).length - 1, CHUNKS, 'every chunk arrived')
      const [row] = await usageRows(user.userId)
      assert.include(row, { status: 200, error_code: null, completion_tokens: CHUNKS })
    } finally {
      await closePools()
      upstream.server.closeAllConnections()
      upstream.server.close()
    }
  }).timeout(60_000)
})
