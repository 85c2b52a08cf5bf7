import { test } from '@japa/runner'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { answerLimits } from '#gateway/upstream/answer_limits'
import { closePools } from '#gateway/upstream/upstream_pool'
import { post, resetDatabase, seedChannel, seedUser, usageRows, type SeededUser } from '#tests/helpers'

const hello = [{ role: 'user', content: 'hi' }]
const MB = 1024 * 1024

/** The upstream sees the hang-up shortly after the gateway answers its client. */
async function eventually(check: () => boolean) {
  for (let i = 0; i < 100 && !check(); i++) await new Promise((resolve) => setTimeout(resolve, 20))
  return check()
}

/**
 * A broken upstream, one behaviour per model name: answers that never stop
 * growing (a JSON body, an error body, an SSE line). `closedEarly` counts
 * answers the gateway hung up on before they were written whole.
 */
async function brokenUpstream() {
  let closedEarly = 0
  const server = http.createServer((req, res) => {
    let raw = ''
    req.on('data', (chunk) => (raw += chunk))
    req.on('end', async () => {
      const model = JSON.parse(raw).model as string
      res.on('close', () => {
        if (!res.writableFinished) closedEarly++
      })
      const write = async (piece: string, times: number) => {
        for (let i = 0; i < times && !res.destroyed; i++) {
          if (!res.write(piece)) await new Promise((resolve) => res.once('drain', resolve))
        }
      }
      const piece = 'x'.repeat(64 * 1024)
      if (model === 'cut') {
        // Headers, the start of the JSON, then the connection drops.
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': '1000' })
        res.write('{"id":"chatcmpl-cut","choices":[')
        setTimeout(() => res.socket?.destroy(), 20)
      } else if (model === 'huge-json') {
        res.writeHead(200, { 'content-type': 'application/json' })
        res.write('{"id":"chatcmpl-huge","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"')
        // 64 MB, far past the test's 1 MB bound and more than loopback's socket buffers hold (tcp_rmem can
        // grow to 32 MB): the upstream is still writing when the gateway hangs up.
        await write(piece, 1024)
        res.end('"},"finish_reason":"stop"}]}')
      } else if (model === 'huge-error') {
        res.writeHead(400, { 'content-type': 'application/json' })
        res.write('{"error":{"message":"bad things happened ","type":"invalid_request_error","code":"bad"},"pad":"')
        await write(piece, 16 * 64) // 64 MB: the gateway reads only the first 64 KB
        res.end('"}')
      } else {
        // An SSE stream: one normal event, then a data line of `long-line-N` (N x 64 KB), whole or not.
        res.writeHead(200, { 'content-type': 'text/event-stream' })
        const chunk = (content: string) =>
          JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', created: 0, model, choices: [{ index: 0, delta: { content }, finish_reason: null }] })
        res.write(`data: ${chunk('first ')}\n\n`)
        const pieces = Number(model.split('-').at(-1))
        // The line's content is written as it goes (a 64 MB line is not built first), in 16 KB writes:
        // the line reaches the gateway in many chunks.
        const [head, tail] = chunk('@@').split('@@')
        res.write(`data: ${head}`)
        await write('x'.repeat(16 * 1024), pieces * 4)
        if (res.destroyed) return
        res.write(`${tail}\n\n`)
        res.write(`data: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', created: 0, model, choices: [], usage: { prompt_tokens: 3, completion_tokens: 7, total_tokens: 10 } })}\n\n`)
        res.end('data: [DONE]\n\n')
      }
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}/v1`,
    closedEarly: () => closedEarly,
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())).then(() => server.closeAllConnections()),
  }
}

test.group('Upstream answers past the gateway\'s bounds', (group) => {
  let upstream: Awaited<ReturnType<typeof brokenUpstream>>
  let user: SeededUser
  const saved = { ...answerLimits }

  group.setup(async () => {
    await resetDatabase()
    upstream = await brokenUpstream()
    await seedChannel({ name: 'broken', baseUrl: upstream.url, models: ['*'] })
    user = await seedUser()
    answerLimits.bodyBytes = MB
    answerLimits.eventChars = MB
    return async () => {
      Object.assign(answerLimits, saved)
      await closePools()
      await upstream.stop()
    }
  })

  const auth = () => ({ authorization: `Bearer ${user.key}` })

  test('a non-streamed answer past the bound is a 502 for the client, metered, and the upstream is hung up on', async ({ assert }) => {
    const before = upstream.closedEarly()
    const response = await post('/v1/chat/completions', { model: 'huge-json', messages: hello }, auth())
    assert.equal(response.status, 502)
    const body = (await response.json()) as { error: { code: string; message: string } }
    assert.equal(body.error.code, 'provider_error')
    assert.include(body.error.message, 'larger than 1 MB')
    assert.isTrue(await eventually(() => upstream.closedEarly() === before + 1))
    const rows = await usageRows(user.userId)
    assert.include(rows.at(-1), { model: 'huge-json', status: 502, error_code: 'provider_error' })
  })

  test("an error answer is read for its message only: the rest of a huge body is not waited for", async ({ assert }) => {
    const before = upstream.closedEarly()
    const response = await post('/v1/chat/completions', { model: 'huge-error', messages: hello }, auth())
    assert.equal(response.status, 400)
    const body = (await response.json()) as { error: { code: string; message: string } }
    // The message comes from the first 64 KB; the JSON around it is cut, so the gateway says what it could read.
    assert.include(body.error.message, 'bad things happened')
    assert.isTrue(await eventually(() => upstream.closedEarly() === before + 1))
    const rows = await usageRows(user.userId)
    assert.include(rows.at(-1), { model: 'huge-error', status: 400 })
  })

  test('an SSE line that spans many chunks arrives whole when it is within the bound', async ({ assert }) => {
    const response = await post('/v1/chat/completions', { model: 'long-line-15', messages: hello, stream: true }, auth())
    assert.equal(response.status, 200)
    const text = await response.text()
    const contents = text
      .split('\n\n')
      .filter((e) => e.startsWith('data: {'))
      .map((e) => JSON.parse(e.slice(6)).choices[0]?.delta?.content)
      .filter((c) => c !== undefined)
    assert.deepEqual(
      contents.map((c: string) => c.length),
      ['first '.length, 15 * 64 * 1024]
    )
    assert.include(text, 'data: [DONE]')
    const rows = await usageRows(user.userId)
    assert.include(rows.at(-1), { model: 'long-line-15', status: 200, error_code: null, completion_tokens: 7 })
  })

  test('an SSE line past the bound ends the stream with an error event, metered as interrupted', async ({ assert }) => {
    const before = upstream.closedEarly()
    // 64 MB: more than loopback's socket buffers hold, so the upstream is still writing when the gateway hangs up.
    const response = await post('/v1/chat/completions', { model: 'long-line-1024', messages: hello, stream: true }, auth())
    assert.equal(response.status, 200)
    const text = await response.text()
    assert.include(text, '"content":"first "')
    assert.match(text, /data: \{"error":\{"message":"Upstream stream failed: A line of the upstream's stream is larger than 1 MB/)
    assert.notInclude(text, '[DONE]')
    assert.isTrue(await eventually(() => upstream.closedEarly() === before + 1))
    const rows = await usageRows(user.userId)
    assert.include(rows.at(-1), { model: 'long-line-1024', status: 200, error_code: 'stream_interrupted' })
  })

  test('an answer cut mid-body is a 502 in the client\'s format (not a 500), metered', async ({ assert }) => {
    const chat = await post('/v1/chat/completions', { model: 'cut', messages: hello }, auth())
    assert.equal(chat.status, 502)
    const chatBody = (await chat.json()) as { error: { code: string; message: string } }
    assert.equal(chatBody.error.code, 'provider_error')
    assert.match(chatBody.error.message, /^Upstream answer failed before its end: UND_ERR_SOCKET/)
    const messages = await post('/v1/messages', { model: 'cut', max_tokens: 10, messages: hello }, auth())
    assert.equal(messages.status, 502)
    const messagesBody = (await messages.json()) as { type: string; error: { type: string; message: string } }
    assert.equal(messagesBody.type, 'error')
    assert.match(messagesBody.error.message, /^Upstream answer failed before its end/)
    const rows = await usageRows(user.userId)
    assert.deepEqual(
      rows.slice(-2).map((r) => [r.endpoint, r.status, r.error_code]),
      [
        ['chat.completions', 502, 'provider_error'],
        ['messages', 502, 'provider_error'],
      ]
    )
  })
})
