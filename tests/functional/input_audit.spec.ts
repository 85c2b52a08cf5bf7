import { test } from '@japa/runner'
import net from 'node:net'
import { gzipSync } from 'node:zlib'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { baseUrl, post, resetDatabase, seedChannel, seedUser, startMock, usageRows } from '#tests/helpers'

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
