import { test } from '@japa/runner'
import net from 'node:net'
import { gzipSync } from 'node:zlib'
import { createUser } from '#actions/create_user'
import { createApiKey } from '#actions/issue_api_key'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { baseUrl, post, refreshCaches, resetDatabase, seedChannel, seedUser, startMock, usageRows } from '#tests/helpers'

/**
 * A hostile-input audit of the client-facing API: what it found wrong, each
 * pinned here (the rest of the audit found the answers already right: see
 * hostile_bodies, hostile_misc, hostile_translation and fuzz).
 */

interface RawAnswer {
  head: string
  body: string
  /** ms from the request to the server closing the connection */
  closedAfterMs: number
}

/** One request on its own socket, written by hand (`Connection: close`), read until the server closes it. */
function rawExchange(method: string, path: string, headers: Record<string, string>, body: string | Buffer, giveUpMs = 8000): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const url = new URL(baseUrl())
    const socket = net.connect(Number(url.port), url.hostname)
    const chunks: Buffer[] = []
    const started = Date.now()
    const bytes = typeof body === 'string' ? Buffer.from(body) : body
    let head = `${method} ${path} HTTP/1.1\r\nHost: ${url.host}\r\nConnection: close\r\ncontent-length: ${bytes.length}\r\n`
    for (const [name, value] of Object.entries(headers)) head += `${name}: ${value}\r\n`
    const timer = setTimeout(() => socket.destroy(), giveUpMs)
    socket.on('data', (chunk) => chunks.push(chunk))
    socket.on('error', reject)
    socket.on('close', () => {
      clearTimeout(timer)
      const text = Buffer.concat(chunks).toString('utf8')
      const at = text.indexOf('\r\n\r\n')
      resolve({ head: text.slice(0, at), body: text.slice(at + 4), closedAfterMs: Date.now() - started })
    })
    socket.write(Buffer.concat([Buffer.from(`${head}\r\n`), bytes]))
  })
}

test.group('Input audit: the generation API', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'chat', provider: 'custom', baseUrl: mock.url, models: ['gpt-*'] })
    await seedChannel({ name: 'google', provider: 'google', baseUrl: mock.url, models: ['gemini-*'] })
    return () => mock.stop()
  })

  test('a stream asked for with Connection: close ends with the connection, not 5 s later', async ({ assert }) => {
    const user = await seedUser()
    const body = JSON.stringify({ model: 'gpt-x', stream: true, messages: [{ role: 'user', content: 'hi' }] })
    const answer = await rawExchange('POST', '/v1/chat/completions', { 'authorization': `Bearer ${user.key}`, 'content-type': 'application/json' }, body)
    assert.match(answer.head, /^HTTP\/1.1 200/)
    assert.include(answer.body, '[DONE]')
    // The stream used to say `connection: keep-alive` over the client's close: the socket then stayed
    // open for the server's keep-alive timeout after the last event.
    assert.notMatch(answer.head, /connection: keep-alive/i)
    assert.isBelow(answer.closedAfterMs, 2000)
  })

  test('a compressed body is a 415 in the endpoint format, accounted, and the upstream is not called', async ({ assert }) => {
    const user = await seedUser()
    const before = mock.requests.length
    const chat = JSON.stringify({ model: 'gpt-x', messages: [{ role: 'user', content: 'hi' }] })
    const cases = [
      { path: '/v1/chat/completions', headers: { authorization: `Bearer ${user.key}` }, check: (b: any) => assert.equal(b.error.code, 'unsupported_content_encoding') },
      { path: '/v1/messages', headers: { 'x-api-key': user.key }, check: (b: any) => assert.equal(b.type, 'error') },
      { path: '/v1beta/models/gemini-x:generateContent', headers: { 'x-goog-api-key': user.key }, check: (b: any) => assert.equal(b.error.status, 'INVALID_ARGUMENT') },
    ]
    for (const c of cases) {
      for (const [encoding, bytes] of [['gzip', gzipSync(chat)], ['br', Buffer.from(chat)]] as const) {
        const response = await fetch(`${baseUrl()}${c.path}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'content-encoding': encoding, ...c.headers },
          body: bytes,
        })
        assert.equal(response.status, 415, `${c.path} ${encoding}`)
        const body: any = await response.json()
        c.check(body)
        assert.include(JSON.stringify(body), `Content-Encoding '${encoding}' is not supported`)
      }
    }
    assert.equal(mock.requests.length, before)
    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 6)
    assert.isTrue(rows.every((row) => row.status === 415 && row.error_code === 'unsupported_content_encoding'))
    // identity is no encoding at all
    const plain = await post('/v1/chat/completions', chat, { 'authorization': `Bearer ${user.key}`, 'content-encoding': 'identity' })
    assert.equal(plain.status, 200)
  })

  test('a model that is not a string is named as such, not as missing', async ({ assert }) => {
    const user = await seedUser()
    for (const [model, kind] of [
      [5, 'a number'],
      [['gpt-x'], 'an array'],
      [{ id: 'gpt-x' }, 'an object'],
      [true, 'a boolean'],
    ] as const) {
      const response = await post('/v1/chat/completions', { model, messages: [{ role: 'user', content: 'hi' }] }, { authorization: `Bearer ${user.key}` })
      assert.equal(response.status, 400)
      const body: any = await response.json()
      assert.equal(body.error.code, 'invalid_model')
      assert.equal(body.error.message, `model: must be a string, the model's name (got ${kind})`)
    }
    const absent = await post('/v1/messages', { max_tokens: 5, messages: [] }, { 'x-api-key': user.key })
    assert.equal(((await absent.json()) as any).error.message, 'The model field is required')
  })

  test('a key sent in the wrong scheme, and a body with a byte order mark, are told what is wrong', async ({ assert }) => {
    const user = await seedUser()
    const chat = JSON.stringify({ model: 'gpt-x', messages: [{ role: 'user', content: 'hi' }] })
    for (const authorization of [user.key, `Basic ${Buffer.from(`x:${user.key}`).toString('base64')}`, 'Bearer ']) {
      const response = await post('/v1/chat/completions', chat, { authorization })
      assert.equal(response.status, 401)
      assert.include(((await response.json()) as any).error.message, "must be 'Bearer <key>'")
    }
    const none = await post('/v1/chat/completions', chat)
    assert.equal(((await none.json()) as any).error.message, 'Missing API key')

    const bom = await post('/v1/messages', `\ufeff${chat}`, { 'x-api-key': user.key })
    assert.equal(bom.status, 400)
    assert.include(((await bom.json()) as any).error.message, 'byte order mark')
  })

  test('GET /v1beta/models/{model}: 404 for a model nothing serves and 405 for a method path, like /v1/models/{model}', async ({ assert }) => {
    const user = await seedUser()
    const get = async (path: string) => {
      const response = await fetch(`${baseUrl()}${path}`, { headers: { 'x-goog-api-key': user.key } })
      return { status: response.status, body: (await response.json()) as any }
    }
    const served = await get('/v1beta/models/gemini-x')
    assert.equal(served.status, 200)
    assert.equal(served.body.name, 'models/gemini-x')
    // The batch methods the gateway serves are listed (SDKs and tools read the list before calling them).
    assert.includeMembers(served.body.supportedGenerationMethods, ['batchGenerateContent', 'asyncBatchEmbedContent'])
    const unserved = await get('/v1beta/models/nothing-serves-this')
    assert.equal(unserved.status, 404)
    assert.equal(unserved.body.error.status, 'NOT_FOUND')
    assert.equal((await fetch(`${baseUrl()}/v1/models/nothing-serves-this`, { headers: { authorization: `Bearer ${user.key}` } })).status, 404)
    const method = await get('/v1beta/models/gemini-x:generateContent')
    assert.equal(method.status, 405)
    assert.include(method.body.error.message, 'POST')
  })

  test('a blank model name is refused, not routed to a default channel by the prefix table', async ({ assert }) => {
    const user = await seedUser()
    const before = mock.requests.length
    const chat = await post('/v1/chat/completions', { model: '   ', messages: [{ role: 'user', content: 'hi' }] }, { authorization: `Bearer ${user.key}` })
    assert.equal(chat.status, 400)
    assert.equal(((await chat.json()) as any).error.code, 'invalid_model')
    const gemini = await post('/v1beta/models/%20:generateContent', { contents: [{ role: 'user', parts: [{ text: 'hi' }] }] }, { 'x-goog-api-key': user.key })
    assert.equal(gemini.status, 400)
    assert.equal(((await gemini.json()) as any).error.status, 'INVALID_ARGUMENT')
    assert.equal(mock.requests.length, before)
    const rows = await usageRows(user.userId)
    assert.deepEqual(
      rows.map((row) => [row.status, row.error_code]),
      [
        [400, 'invalid_model'],
        [400, 'invalid_model'],
      ]
    )
  })
})

test.group('Input audit: a request\'s own fallbacks', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'chat', provider: 'custom', baseUrl: mock.url, models: ['gpt-*'] })
    await seedChannel({ name: 'claude', provider: 'anthropic', baseUrl: mock.url, models: ['claude-*'] })
    return () => mock.stop()
  })

  test('fallback names follow the model name\'s rules: a blank or NUL fallback was served and named the answer', async ({ assert }) => {
    const user = await seedUser()
    const before = mock.requests.length
    for (const [field, names] of [
      ['fallbacks', ['gpt-\u0000x']],
      ['fallbacks', ['gpt-\ud800x']],
      ['models', ['deepseek-none', '   ']],
      ['fallbacks', ['gpt-' + 'x'.repeat(250)]],
    ] as const) {
      const response = await post('/v1/chat/completions', { model: 'deepseek-none', [field]: names, messages: [{ role: 'user', content: 'hi' }] }, { authorization: `Bearer ${user.key}` })
      assert.equal(response.status, 400, JSON.stringify(names))
      const body: any = await response.json()
      assert.equal(body.error.code, 'invalid_fallbacks')
      assert.include(body.error.message, `'${field}'`)
    }
    assert.equal(mock.requests.length, before)
    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 4)
    assert.isTrue(rows.every((row) => row.status === 400 && row.error_code === 'invalid_fallbacks'))
  })

  test('what no translation can carry is refused in a sentence that reads', async ({ assert }) => {
    const user = await seedUser()
    const response = await post('/v1/chat/completions', { model: 'claude-x', n: 2, messages: [{ role: 'user', content: 'hi' }] }, { authorization: `Bearer ${user.key}` })
    assert.equal(response.status, 400)
    const body: any = await response.json()
    assert.equal(body.error.message, "n > 1 is not supported for 'claude-x': it is served through another API format here, which answers with one choice; send n: 1")
  })
})

test.group('Input audit: requests the HTTP parser refuses', () => {
  /** Bytes written as they are: a header Node's parser refuses cannot be sent through fetch */
  function send(request: string): Promise<{ head: string; body: string }> {
    return new Promise((resolve, reject) => {
      const url = new URL(baseUrl())
      const socket = net.connect(Number(url.port), url.hostname)
      const chunks: Buffer[] = []
      const timer = setTimeout(() => socket.destroy(), 5000)
      socket.on('data', (chunk) => chunks.push(chunk))
      socket.on('error', reject)
      socket.on('close', () => {
        clearTimeout(timer)
        const text = Buffer.concat(chunks).toString('utf8')
        const at = text.indexOf('\r\n\r\n')
        resolve({ head: text.slice(0, at), body: text.slice(at + 4) })
      })
      socket.write(request)
    })
  }

  test('a malformed header or Content-Length: 400 in the format of the endpoint named, not a bare status line', async ({ assert }) => {
    const cases = [
      { path: '/v1/chat/completions', header: 'content-length: abc', check: (b: any) => assert.equal(b.error.code, 'invalid_http_request') },
      { path: '/v1/messages', header: 'x-api-key: a\rb', check: (b: any) => assert.equal(b.error.type, 'invalid_request_error') },
      { path: '/v1beta/models/gemini-x:generateContent', header: 'x-goog-api-key: a\u0000b', check: (b: any) => assert.equal(b.error.status, 'INVALID_ARGUMENT') },
    ]
    for (const c of cases) {
      const answer = await send(`POST ${c.path} HTTP/1.1\r\nHost: x\r\n${c.header}\r\n\r\n{}`)
      assert.match(answer.head, /^HTTP\/1.1 400 /, c.path)
      assert.match(answer.head, /x-should-retry: false/)
      c.check(JSON.parse(answer.body))
    }
  })

  test('headers over the size limit: 431 with an error body', async ({ assert }) => {
    const answer = await send(`POST /v1/messages HTTP/1.1\r\nHost: x\r\nx-api-key: ${'k'.repeat(40_000)}\r\ncontent-length: 2\r\n\r\n{}`)
    assert.match(answer.head, /^HTTP\/1.1 431 /)
    const body = JSON.parse(answer.body)
    assert.equal(body.type, 'error')
    assert.include(body.error.message, 'headers are too large')
  })

  test('a connection that never sends a byte is closed; one that spoke is not', async ({ assert }) => {
    const { silentSockets } = await import('#gateway/http/silent_sockets')
    const saved = silentSockets.timeoutMs
    silentSockets.timeoutMs = 300
    const url = new URL(baseUrl())
    const silent = net.connect(Number(url.port), url.hostname)
    const talker = net.connect(Number(url.port), url.hostname)
    try {
      const opened = Date.now()
      const silentClosed = new Promise<number>((resolve) => silent.on('close', () => resolve(Date.now() - opened)))
      silent.on('error', () => {})
      // Half a request line before the timer fires, the rest after it: the parser read bytes, so it is kept.
      let answer = ''
      talker.on('data', (chunk) => (answer += chunk.toString('utf8')))
      const talkerClosed = new Promise<void>((resolve) => talker.on('close', () => resolve()))
      await new Promise((resolve) => setTimeout(resolve, 100))
      talker.write('GET /health/liveliness HTT')
      await new Promise((resolve) => setTimeout(resolve, 600))
      talker.write('P/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
      await talkerClosed
      assert.match(answer, /^HTTP\/1.1 200 /)
      const closedAfter = await Promise.race([silentClosed, new Promise<number>((resolve) => setTimeout(() => resolve(-1), 3000))])
      assert.isAbove(closedAfter, 250, 'closed by the timer, not at once')
      assert.isBelow(closedAfter, 1500)
    } finally {
      silentSockets.timeoutMs = saved
      // Left open, a socket the fix failed to close would hold the server's shutdown forever.
      silent.destroy()
      talker.destroy()
    }
  })

  test('pages keep the plain answer', async ({ assert }) => {
    const answer = await send('GET /login HTTP/1.1\r\nHost: x\r\ncontent-length: abc\r\n\r\n')
    assert.match(answer.head, /^HTTP\/1.1 400 /)
    assert.equal(answer.body, '')
  })
})

test.group('Input audit: audio uploads', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'openai', provider: 'openai', baseUrl: mock.url, models: ['whisper-*'] })
    return () => mock.stop()
  })

  test('a form naming model, stream or file twice is refused: authorised as one model, an upstream could serve the other', async ({ assert }) => {
    const user = await seedUser({ keyModels: ['whisper-cheap'] })
    const before = mock.requests.length
    const audio = new Blob([Buffer.from('RIFF....WAVEfmt ')], { type: 'audio/wav' })
    const forms: Array<[string, FormData]> = []
    const twoModels = new FormData()
    twoModels.append('model', 'whisper-cheap')
    twoModels.append('model', 'whisper-dear')
    twoModels.append('file', audio, 'a.wav')
    forms.push(['model', twoModels])
    const twoStreams = new FormData()
    twoStreams.append('model', 'whisper-cheap')
    twoStreams.append('stream', 'true')
    twoStreams.append('stream', 'false')
    twoStreams.append('file', audio, 'a.wav')
    forms.push(['stream', twoStreams])
    const twoFiles = new FormData()
    twoFiles.append('model', 'whisper-cheap')
    twoFiles.append('file', audio, 'a.wav')
    twoFiles.append('file', audio, 'b.wav')
    forms.push(['file', twoFiles])
    for (const [field, form] of forms) {
      const response = await fetch(`${baseUrl()}/v1/audio/transcriptions`, { method: 'POST', headers: { authorization: `Bearer ${user.key}` }, body: form })
      assert.equal(response.status, 400, field)
      const body: any = await response.json()
      assert.equal(body.error.code, 'duplicate_field')
      assert.include(body.error.message, `'${field}'`)
    }
    assert.equal(mock.requests.length, before)
    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 3)
    assert.isTrue(rows.every((row) => row.status === 400 && row.error_code === 'duplicate_field'))

    // One of each is served.
    const fine = new FormData()
    fine.append('model', 'whisper-cheap')
    fine.append('timestamp_granularities[]', 'word')
    fine.append('timestamp_granularities[]', 'segment')
    fine.append('file', audio, 'a.wav')
    const served = await fetch(`${baseUrl()}/v1/audio/transcriptions`, { method: 'POST', headers: { authorization: `Bearer ${user.key}` }, body: fine })
    assert.equal(served.status, 200)
  })
})

test.group('Input audit: the management API', (group) => {
  let adminKey = ''

  group.setup(async () => {
    await resetDatabase()
    await createUser({ email: 'audit-ops@test.local', password: 'password123', role: 'admin' })
    adminKey = (await createApiKey({ userRef: 'audit-ops@test.local', name: 'audit', manage: true })).key
    await refreshCaches()
  })

  async function call(method: string, path: string, body?: string | Buffer, headers: Record<string, string> = {}) {
    const response = await fetch(`${baseUrl()}/api/admin${path}`, {
      method,
      headers: { 'authorization': `Bearer ${adminKey}`, 'content-type': 'application/json', ...headers },
      body,
    })
    return { status: response.status, body: (await response.json()) as any }
  }

  test('bodies the framework parser answered with a 500 are 400s and 415s', async ({ assert }) => {
    const deep = await call('POST', '/users', `{"email":${'['.repeat(100_000)}${']'.repeat(100_000)}}`)
    assert.equal(deep.status, 400)
    assert.equal(deep.body.error.code, 'json_too_deep')

    const lying = await call('POST', '/users', JSON.stringify({ email: 'gz@test.local', password: 'password123' }), { 'content-encoding': 'gzip' })
    assert.equal(lying.status, 415)
    assert.equal(lying.body.error.code, 'unsupported_content_encoding')

    for (const text of ['{"email":', 'null', '"x"', '[]']) {
      const refused = await call('POST', '/users', text)
      assert.equal(refused.status, 400, text)
      assert.equal(refused.body.error.code, 'invalid_json', text)
    }
    // `__proto__` is dropped, as Adonis's parser drops it.
    const poisoned = await call('POST', '/users', '{"email":"p@test.local","password":"password123","__proto__":{"role":"admin"}}')
    assert.equal(poisoned.status, 201)
    assert.notEqual(poisoned.body.role, 'admin')

    // A well-formed body still works, and an empty one is an empty object.
    const created = await call('POST', '/users', JSON.stringify({ email: 'fine@test.local', password: 'password123' }))
    assert.equal(created.status, 201, JSON.stringify(created.body))
    const empty = await call('POST', '/users', '')
    assert.equal(empty.status, 400)
    assert.equal(empty.body.error.code, 'invalid_field')
  })

  test('ids the database cannot read are the client\'s 400, not a 500', async ({ assert }) => {
    for (const path of ['/users/99999999999999999999', '/users/%00', '/users/%00/usage', '/keys/99999999999999999999', '/channels/99999999999999999999']) {
      const answer = await call('GET', path)
      assert.oneOf(answer.status, [400, 404], `${path}: ${JSON.stringify(answer.body)}`)
      assert.isString(answer.body.error.message)
    }
    const answer = await call('GET', '/users/99999999999999999999')
    assert.equal(answer.status, 400)
    assert.equal(answer.body.error.code, 'invalid_value')
  })
})

test.group('Input audit: Expect: 100-continue', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'chat', provider: 'custom', baseUrl: mock.url, models: ['gpt-*'] })
    return () => mock.stop()
  })

  /**
   * A client as curl is for large bodies: the headers with `Expect: 100-continue`, then the
   * body only once the server says `100 Continue`. Returns the status lines in the order they
   * came and whether the body was sent.
   */
  function expectContinue(path: string, headers: Record<string, string>, body: string, declaredLength = Buffer.byteLength(body)) {
    return new Promise<{ statuses: string[]; sentBody: boolean; final: string }>((resolve, reject) => {
      const url = new URL(baseUrl())
      const socket = net.connect(Number(url.port), url.hostname)
      let text = ''
      let sentBody = false
      const timer = setTimeout(() => socket.destroy(), 5000)
      let head = `POST ${path} HTTP/1.1\r\nHost: ${url.host}\r\nConnection: close\r\nExpect: 100-continue\r\ncontent-length: ${declaredLength}\r\n`
      for (const [name, value] of Object.entries(headers)) head += `${name}: ${value}\r\n`
      socket.on('data', (chunk) => {
        text += chunk.toString('utf8')
        if (!sentBody && text.startsWith('HTTP/1.1 100 ')) {
          sentBody = true
          socket.write(body)
        }
      })
      socket.on('error', reject)
      socket.on('close', () => {
        clearTimeout(timer)
        const statuses = [...text.matchAll(/^HTTP\/1\.1 (\d{3})/gm)].map((m) => m[1])
        resolve({ statuses, sentBody, final: text.slice(text.lastIndexOf('HTTP/1.1 ')) })
      })
      socket.write(`${head}\r\n`)
    })
  }

  const chat = JSON.stringify({ model: 'gpt-x', messages: [{ role: 'user', content: 'hi' }] })

  test('a request the headers refuse is answered without 100 Continue: the body is never uploaded', async ({ assert }) => {
    const user = await seedUser()
    const badKey = await expectContinue('/v1/chat/completions', { authorization: 'Bearer sk-nope', 'content-type': 'application/json' }, chat)
    assert.deepEqual(badKey.statuses, ['401'])
    assert.isFalse(badKey.sentBody)
    assert.include(badKey.final, 'invalid_api_key')

    // 60 MB declared on a 32 MB endpoint: refused on the declaration, in the endpoint's format.
    const tooLarge = await expectContinue('/v1/messages', { 'x-api-key': user.key, 'content-type': 'application/json' }, '', 60 * 1024 * 1024)
    assert.deepEqual(tooLarge.statuses, ['413'])
    assert.isFalse(tooLarge.sentBody)
    assert.include(tooLarge.final, '"type":"error"')
  })

  test('an accepted request gets 100 Continue, then its answer; pages too', async ({ assert }) => {
    const user = await seedUser()
    const served = await expectContinue('/v1/chat/completions', { authorization: `Bearer ${user.key}`, 'content-type': 'application/json' }, chat)
    assert.deepEqual(served.statuses, ['100', '200'])
    assert.include(served.final, '"choices"')
    assert.lengthOf(await usageRows(user.userId), 1)

    // Adonis reads these bodies itself: the 100 comes before it does.
    const login = await expectContinue('/login', { 'content-type': 'application/x-www-form-urlencoded' }, 'email=a%40b.c&password=x')
    assert.equal(login.statuses[0], '100')
    assert.isTrue(login.sentBody)
    assert.notEqual(login.statuses.at(-1), '100')
  })
})
