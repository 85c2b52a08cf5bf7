import { test } from '@japa/runner'
import http from 'node:http'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { baseUrl, gateway, post, resetDatabase, seedChannel, seedUser, startMock, usageRows } from '#tests/helpers'
import { bodyBudget, bodyTiming } from '#gateway/http/body_limits'

/**
 * Issue 8: hostile and careless bodies (sizes, slow senders, deep nesting,
 * duplicate keys, model names the usage row cannot store) are refused in the
 * endpoint's own error format before any upstream is called.
 */
const hello = [{ role: 'user', content: 'hi' }]

interface RawAnswer {
  status: number
  headers: http.IncomingHttpHeaders
  body: any
}

/** A request whose body is sent in pieces (or not at all) under the caller's control. */
function rawRequest(
  path: string,
  headers: Record<string, string>,
  send: (req: http.ClientRequest) => void
): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const url = new URL(`${baseUrl()}${path}`)
    const req = http.request({ host: url.hostname, port: url.port, path: url.pathname + url.search, method: 'POST', headers }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk) => (text += chunk))
      res.on('end', () => {
        let body: any = text
        try {
          body = JSON.parse(text)
        } catch {}
        resolve({ status: res.statusCode!, headers: res.headers, body })
      })
    })
    // Writing into a socket the server closed after answering is expected here.
    req.on('error', (error) => (error as any).code === 'EPIPE' || (error as any).code === 'ECONNRESET' ? undefined : reject(error))
    send(req)
  })
}

test.group('Issue 8: request body limits (413 before the body is read, budget, timeout)', (group) => {
  let mock: MockUpstream
  let key: string
  let userId: number

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'mock', baseUrl: mock.url, models: ['mock-*', 'gpt-*', 'gemini-*'] })
    const user = await seedUser()
    key = user.key
    userId = user.userId
    return () => mock.stop()
  })

  test('a declared Content-Length over the limit is refused at once, in each endpoint format', async ({ assert }) => {
    const cases = [
      { path: '/v1/chat/completions', check: (b: any) => assert.equal(b.error.code, 'request_too_large') },
      { path: '/v1/messages', check: (b: any) => assert.deepEqual([b.type, b.error.type], ['error', 'request_too_large']) },
      { path: '/v1beta/models/gemini-x:generateContent', check: (b: any) => assert.equal(b.error.code, 413) },
      { path: '/v1/images/generations', check: (b: any) => assert.equal(b.error.code, 'request_too_large'), bytes: 2 * 1024 * 1024 },
      // Rerank takes the embeddings limit (16 MB), not the generation one.
      { path: '/v2/rerank', check: (b: any) => assert.equal(b.error.code, 'request_too_large'), bytes: 20 * 1024 * 1024 },
    ]
    for (const c of cases) {
      // 100 MB announced, 10 bytes sent: the answer must not wait for the rest.
      const answer = await rawRequest(
        c.path,
        { 'authorization': `Bearer ${key}`, 'content-type': 'application/json', 'content-length': String(c.bytes ?? 100 * 1024 * 1024) },
        (req) => req.write('{"model":"')
      )
      assert.equal(answer.status, 413, c.path)
      assert.equal(answer.headers.connection, 'close')
      assert.equal(answer.headers['x-should-retry'], 'false', c.path)
      assert.match(JSON.stringify(answer.body), /at most/)
      c.check(answer.body)
    }
    assert.equal(mock.requests.length, 0)
    const rows = await usageRows(userId)
    assert.isTrue(rows.filter((r) => r.status === 413).length >= cases.length)
  })

  test('a chunked body that grows over the limit is cut off with 413', async ({ assert }) => {
    const piece = Buffer.alloc(256 * 1024, 'a')
    const answer = await rawRequest(
      '/v1/images/generations',
      { 'authorization': `Bearer ${key}`, 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
      (req) => {
        req.write('{"model":"gpt-image","prompt":"')
        for (let i = 0; i < 6; i++) req.write(piece)
        req.end('"}')
      }
    )
    assert.equal(answer.status, 413)
    assert.equal(answer.body.error.code, 'request_too_large')
  })

  test('bodies beyond the instance-wide budget get 503 overloaded; the budget is given back', async ({ assert }) => {
    const capacity = bodyBudget.capacity
    bodyBudget.capacity = bodyBudget.used + 64 * 1024
    try {
      // The first request holds the 40 KB it has sent while it uploads the rest slowly.
      let finish!: () => void
      const first = rawRequest(
        '/v1/chat/completions',
        { 'authorization': `Bearer ${key}`, 'content-type': 'application/json', 'content-length': String(48 * 1024) },
        (req) => {
          const body = JSON.stringify({ model: 'mock-a', messages: hello, pad: '' })
          const padded = body.slice(0, -2) + 'x'.repeat(48 * 1024 - body.length) + '"}'
          req.write(padded.slice(0, 40 * 1024))
          finish = () => req.end(padded.slice(40 * 1024))
        }
      )
      await new Promise((resolve) => setTimeout(resolve, 100))
      // The second's 40 KB, as they arrive, go past what is left.
      const second = await rawRequest(
        '/v1/messages',
        { 'authorization': `Bearer ${key}`, 'content-type': 'application/json', 'content-length': String(40 * 1024) },
        (req) => req.write('{' + ' '.repeat(40 * 1024 - 1))
      )
      assert.equal(second.status, 503)
      assert.equal(second.body.type, 'error')
      assert.equal(second.body.error.type, 'overloaded_error')
      finish()
      assert.equal((await first).status, 200)
      await new Promise((resolve) => setTimeout(resolve, 50))
      const after = await post('/v1/chat/completions', { model: 'mock-a', messages: hello, pad: 'x'.repeat(40 * 1024) }, { authorization: `Bearer ${key}` })
      assert.equal(after.status, 200)
    } finally {
      bodyBudget.capacity = capacity
    }
  })

  test('a body announced but not sent holds none of the budget: slow senders cannot lock everyone out', async ({ assert }) => {
    // Eight connections announcing 32 MB and sending a byte held the whole 256 MB budget, so every
    // other request with a body was a 503 until the body timeout (and again as they reconnected).
    const capacity = bodyBudget.capacity
    bodyBudget.capacity = bodyBudget.used + 64 * 1024
    const stalled: http.ClientRequest[] = []
    try {
      for (let i = 0; i < 4; i++) {
        void rawRequest(
          '/v1/chat/completions',
          // Together they announce the whole budget (the test's 64 KB, as eight 32 MB bodies do 256 MB).
          { 'authorization': `Bearer ${key}`, 'content-type': 'application/json', 'content-length': String(16 * 1024) },
          (req) => {
            req.write('{')
            stalled.push(req)
          }
        ).catch(() => {})
      }
      await new Promise((resolve) => setTimeout(resolve, 100))
      const served = await post('/v1/chat/completions', { model: 'mock-a', messages: hello, pad: 'x'.repeat(8 * 1024) }, { authorization: `Bearer ${key}` })
      assert.equal(served.status, 200)
    } finally {
      for (const req of stalled) req.destroy()
      bodyBudget.capacity = capacity
    }
  })

  test('requests still sending their body do not take the in-flight slots (MAX_INFLIGHT)', async ({ assert }) => {
    // 8,192 connections of one key, each sending a byte of its body, held every slot for the body
    // timeout: every other request was a 503 overloaded. Here: three slots, three slow senders.
    const service = (await gateway()).service
    const saved = service.maxInFlight
    // The earlier tests' hung-up uploads are accounted a moment after they close.
    for (let i = 0; i < 200 && service.inFlight > 0; i++) await new Promise((resolve) => setTimeout(resolve, 10))
    const base = service.inFlight
    service.maxInFlight = base + 3
    const stalled: http.ClientRequest[] = []
    try {
      for (let i = 0; i < 3; i++) {
        void rawRequest(
          i === 0 ? '/v1/audio/transcriptions' : '/v1/chat/completions',
          {
            'authorization': `Bearer ${key}`,
            'content-type': i === 0 ? 'multipart/form-data; boundary=x' : 'application/json',
            'content-length': '1000',
          },
          (req) => {
            req.write(i === 0 ? '--x' : '{')
            stalled.push(req)
          }
        ).catch(() => {})
      }
      // Wait until the three are admitted (their accounts open, their bodies awaited).
      for (let i = 0; i < 50 && service.inFlight < base + 3; i++) await new Promise((resolve) => setTimeout(resolve, 10))
      const served = await post('/v1/chat/completions', { model: 'mock-a', messages: hello }, { authorization: `Bearer ${key}` })
      assert.equal(served.status, 200)
      // The cap still holds for requests whose body is in.
      service.maxInFlight = 0
      const refused = await post('/v1/chat/completions', { model: 'mock-a', messages: hello }, { authorization: `Bearer ${key}` })
      assert.equal(refused.status, 503)
      assert.equal(((await refused.json()) as any).error.code, 'overloaded')
    } finally {
      for (const req of stalled) req.destroy()
      service.maxInFlight = saved
    }
  })

  test('a slow sender is cut off by the body timeout with 408 in the endpoint format', async ({ assert }) => {
    const timeout = bodyTiming.timeoutMs
    bodyTiming.timeoutMs = 300
    try {
      const started = performance.now()
      const answer = await rawRequest(
        '/v1beta/models/gemini-x:generateContent',
        { 'x-goog-api-key': key, 'content-type': 'application/json', 'content-length': '1000' },
        (req) => req.write('{"contents":[')
      )
      assert.equal(answer.status, 408)
      assert.deepEqual(answer.body.error, { code: 408, message: answer.body.error.message, status: 'DEADLINE_EXCEEDED' })
      assert.isBelow(performance.now() - started, 5000)
      // The model is in the path: the row names it (it said '(none)').
      const rows = await usageRows(userId)
      assert.include(rows.at(-1), { model: 'gemini-x', status: 408, error_code: 'request_timeout' })
    } finally {
      bodyTiming.timeoutMs = timeout
    }
  })
})

test.group('Issue 8: nesting, duplicate keys and model names', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'mock', baseUrl: mock.url, models: ['*'] })
    return () => mock.stop()
  })

  test('8,000 levels of nesting are a 400 json_too_deep, not a 500', async ({ assert }) => {
    const user = await seedUser()
    const deep = '['.repeat(8000) + ']'.repeat(8000)
    const auth = { authorization: `Bearer ${user.key}` }
    const chat = await post('/v1/chat/completions', `{"model":"mock-a","messages":${deep}}`, auth)
    assert.equal(chat.status, 400)
    assert.equal(((await chat.json()) as any).error.code, 'json_too_deep')
    const messages = await post('/v1/messages', `{"model":"mock-a","max_tokens":5,"messages":[{"role":"user","content":"hi","x":${deep}}]}`, auth)
    assert.equal(messages.status, 400)
    assert.equal(((await messages.json()) as any).error.type, 'invalid_request_error')
    const gemini = await post('/v1beta/models/mock-a:generateContent', `{"contents":${deep}}`, { 'x-goog-api-key': user.key })
    assert.equal(gemini.status, 400)
    assert.equal(((await gemini.json()) as any).error.status, 'INVALID_ARGUMENT')
    // Ordinary nesting (a tool schema a few levels deep) is fine.
    const nested = { type: 'object', properties: { a: { type: 'object', properties: { b: { type: 'array', items: { type: 'string' } } } } } }
    const ok = await post('/v1/chat/completions', { model: 'mock-a', messages: hello, tools: [{ type: 'function', function: { name: 'f', parameters: nested } }] }, auth)
    assert.equal(ok.status, 200)
    assert.equal(mock.requests.filter((r) => JSON.stringify(r.body).includes('[[[[')).length, 0)
  })

  test('duplicate top-level keys are refused: one model authorised, another served', async ({ assert }) => {
    const user = await seedUser({ keyModels: ['mock-allowed'] })
    const before = mock.requests.length
    const auth = { authorization: `Bearer ${user.key}` }
    const forged = await post('/v1/chat/completions', '{"model":"mock-secret","model":"mock-allowed","messages":[{"role":"user","content":"hi"}]}', auth)
    assert.equal(forged.status, 400)
    const body: any = await forged.json()
    assert.equal(body.error.code, 'duplicate_key')
    assert.include(body.error.message, "'model'")
    // An escaped spelling of the same key is the same key.
    const escaped = await post('/v1/messages', '{"model":"mock-secret","mod\\u0065l":"mock-allowed","max_tokens":5,"messages":[]}', auth)
    assert.equal(escaped.status, 400)
    assert.equal(((await escaped.json()) as any).type, 'error')
    assert.equal(mock.requests.length, before)
    // The same key in nested objects, or as a string value, is fine.
    const fine = await post('/v1/chat/completions', '{"model":"mock-allowed","messages":[{"role":"user","content":"model"},{"role":"user","content":"x, \\"model\\": 1"}],"x":{"model":1,"y":{"model":2}}}', auth)
    assert.equal(fine.status, 200)
  })

  test('model names the usage row cannot store are refused before the upstream, and the refusal is metered', async ({ assert }) => {
    const user = await seedUser()
    const before = mock.requests.length
    const auth = { authorization: `Bearer ${user.key}` }
    const names = ['m'.repeat(201), 'mock-\u0000a', 'mock-\ud800', 'x'.repeat(1024 * 1024)]
    for (const model of names) {
      const chat = await post('/v1/chat/completions', { model, messages: hello }, auth)
      assert.equal(chat.status, 400)
      assert.equal(((await chat.json()) as any).error.code, 'invalid_model')
      const messages = await post('/v1/messages', { model, max_tokens: 5, messages: hello }, auth)
      assert.equal(messages.status, 400)
      assert.equal(((await messages.json()) as any).error.type, 'invalid_request_error')
      const embeddings = await post('/v1/embeddings', { model, input: 'x' }, auth)
      assert.equal(embeddings.status, 400)
    }
    const gemini = await post(`/v1beta/models/${encodeURIComponent('g'.repeat(300))}:generateContent`, { contents: [] }, { 'x-goog-api-key': user.key })
    assert.equal(gemini.status, 400)
    assert.equal(((await gemini.json()) as any).error.status, 'INVALID_ARGUMENT')
    assert.equal(mock.requests.length, before)
    // A 200-character name is served and billed like any other.
    const longest = await post('/v1/chat/completions', { model: 'm'.repeat(200), messages: hello }, auth)
    assert.equal(longest.status, 200)
    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, names.length * 3 + 2)
    assert.deepEqual(rows.slice(0, -1).map((r) => [r.status, r.model]), rows.slice(0, -1).map(() => [400, '(none)']))
    assert.include(rows.at(-1), { status: 200, model: 'm'.repeat(200) })
  })
})
