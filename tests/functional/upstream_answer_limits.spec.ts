import { test } from '@japa/runner'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { answerBudget, answerLimits } from '#gateway/upstream/answer_limits'
import { closePools } from '#gateway/upstream/upstream_pool'
import db from '@adonisjs/lucid/services/db'
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
  /** `pair-N` answers wait for each other: the first waits for the second, then both are written piece by piece together */
  let pairWaiting: (() => void) | null = null
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
      } else if (model.startsWith('pair-')) {
        // A valid answer of N MB; two such calls are read by the gateway at the same time.
        if (pairWaiting === null) await new Promise<void>((resolve) => (pairWaiting = resolve))
        else {
          pairWaiting()
          pairWaiting = null
        }
        res.writeHead(200, { 'content-type': 'application/json' })
        res.write('{"id":"chatcmpl-big","object":"chat.completion","created":0,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"')
        for (let i = 0; i < Number(model.split('-').at(-1)) * 16 && !res.destroyed; i++) {
          if (!res.write(piece)) await new Promise((resolve) => res.once('drain', resolve))
          await new Promise((resolve) => setTimeout(resolve, 2))
        }
        if (!res.destroyed) res.end('"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":5,"total_tokens":8}}')
      } else if (model.startsWith('endless-')) {
        // A stream that reports no usage and goes on and on (`endless-N`: N MB of text), then ends.
        res.writeHead(200, { 'content-type': 'text/event-stream' })
        const event = `data: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', created: 0, model, choices: [{ index: 0, delta: { content: piece }, finish_reason: null }] })}\n\n`
        await write(event, Number(model.split('-').at(-1)) * 16)
        if (res.destroyed) return
        res.write(`data: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', created: 0, model, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] })}\n\n`)
        res.end('data: [DONE]\n\n')
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

  test('a stream without usage longer than a string can be: billed by its length, not a 500 row charged nothing', async ({ assert }) => {
    // 600 MB of text, past V8's longest string (~512 M characters): the relays kept all of it (the
    // process's memory grew by as much) and joining it to count it threw, so the row was a 500
    // internal_error with nothing charged, for an answer the client had whole. Passed through
    // and translated (to an Anthropic client): each keeps the start of the text and its length.
    for (const [path, body] of [
      ['/v1/chat/completions', { model: 'endless-600', messages: hello, stream: true }],
      ['/v1/messages', { model: 'endless-600', max_tokens: 10, messages: hello, stream: true }],
    ] as const) {
      const before = (await usageRows(user.userId)).length
      const response = await post(path, body, auth())
      assert.equal(response.status, 200)
      let bytes = 0
      let tail = ''
      for await (const chunk of response.body!) {
        bytes += chunk.length
        tail = (tail + Buffer.from(chunk).toString()).slice(-200)
      }
      assert.isAbove(bytes, 600 * MB)
      assert.match(tail, path === '/v1/messages' ? /message_stop/ : /\[DONE\]/)
      // The row is written once the text is counted, a moment after the client has its end.
      let rows = await usageRows(user.userId)
      for (let i = 0; i < 100 && rows.length === before; i++) {
        await new Promise((resolve) => setTimeout(resolve, 50))
        rows = await usageRows(user.userId)
      }
      const row = rows.at(-1)
      assert.include(row, { model: 'endless-600', status: 200, error_code: null, estimated: true }, path)
      // 'x' x 600 M: a token per ~8 characters counted whole, scaled from the kept start.
      assert.isAbove(row.completion_tokens, 600 * MB / 64, path)
    }
  }).timeout(180_000)

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

test.group('Whole upstream answers read at once', (group) => {
  let upstream: Awaited<ReturnType<typeof brokenUpstream>>
  let user: SeededUser
  const saved = { ...answerLimits }

  group.setup(async () => {
    await resetDatabase()
    upstream = await brokenUpstream()
    await seedChannel({ name: 'big-answers', baseUrl: upstream.url, models: ['*'] })
    user = await seedUser()
    answerLimits.bodyBytes = 8 * MB
    // Each 3 MB answer holds 2 MB past its free first MB: one fits, two at once do not.
    answerLimits.inflightBytes = 3 * MB
    return async () => {
      Object.assign(answerLimits, saved)
      await closePools()
      await upstream.stop()
    }
  })

  test('past the instance-wide budget an answer is a 503 overloaded, not the channel\'s failure; the budget is given back', async ({ assert }) => {
    // Twenty 100 MB answers read at once took the gateway to 4 GB and a light call's p99 to 10 s.
    const auth = { authorization: `Bearer ${user.key}` }
    const call = () => post('/v1/chat/completions', { model: 'pair-3', messages: hello }, auth)
    const answers = await Promise.all([call(), call()])
    const statuses = answers.map((r) => r.status).sort()
    assert.deepEqual(statuses, [200, 503])
    const refused = answers.find((r) => r.status === 503)!
    assert.equal(refused.headers.get('retry-after'), '1')
    const body = (await refused.json()) as { error: { code: string; type: string; message: string } }
    assert.equal(body.error.code, 'overloaded')
    assert.equal(body.error.type, 'service_unavailable')
    const served = answers.find((r) => r.status === 200)!
    assert.isAbove((await served.arrayBuffer()).byteLength, 3 * MB)
    assert.equal(answerBudget.used, 0)
    const rows = await usageRows(user.userId)
    assert.sameMembers(
      rows.map((r) => `${r.status} ${r.error_code}`),
      ['200 null', '503 overloaded']
    )
    const refusedRow = rows.find((r) => r.status === 503)
    const attempts = await db.from('request_attempts').where('request_id', refusedRow.request_id)
    assert.deepEqual(
      attempts.map((a) => [a.outcome, a.status]),
      [['overloaded', 200]]
    )
    // The gateway's own bound, not the channel's failure: three more refusals (CIRCUIT_FAILURES)
    // leave its circuit closed, and a call alone is served.
    for (let round = 0; round < 3; round++) {
      const again = await Promise.all([call(), call()])
      assert.deepEqual(again.map((r) => r.status).sort(), [200, 503])
      await Promise.all(again.map((r) => r.arrayBuffer()))
    }
    assert.equal(answerBudget.used, 0)
    const alone = post('/v1/chat/completions', { model: 'pair-3', messages: hello }, auth)
    // The pair answer waits for a second call: a cheap one releases it and is itself answered.
    const partner = post('/v1/chat/completions', { model: 'pair-0', messages: hello }, auth)
    assert.deepEqual([(await alone).status, (await partner).status], [200, 200])
  }).timeout(60_000)
})
