import { test } from '@japa/runner'
import http from 'node:http'
import net, { type AddressInfo } from 'node:net'
import db from '@adonisjs/lucid/services/db'
import { DiscardingFiles } from '#tests/fixtures/mock_upstream/discarding_files'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { baseUrl, gateway, resetDatabase, seedChannel, seedUser, startMock } from '#tests/helpers'

/**
 * Hostile input on the streamed provider file uploads (Anthropic's
 * `POST /v1/files`, Gemini's multipart and resumable uploads) merged last
 * pass: a client that pauses mid-upload failed the channel at its
 * first-byte limit (three such uploads opened its circuit for everyone), a
 * client slower than the channel's total limit too; an upstream's 404 to a
 * streamed upload was a 500 (the dispatcher rebuilt the request to describe
 * it, and a streamed body cannot be built twice); a NUL the upstream echoed
 * (a part's content type, a displayName) made the row's insert fail after
 * the upstream had stored the file: left there, nobody's.
 */

const BOUNDARY = 'hostile-upload'
const FILLER = Buffer.alloc(64 * 1024, 0x61)
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

interface Answer {
  status: number
  headers: http.IncomingHttpHeaders
  body: any
}

/** A POST whose body `send` writes at its own pace; a refusal that closes the connection mid-body is expected. */
function post(path: string, headers: Record<string, string>, send: (req: http.ClientRequest) => void | Promise<void>): Promise<Answer> {
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
    req.on('error', (error) => ((error as any).code === 'EPIPE' || (error as any).code === 'ECONNRESET' ? undefined : reject(error)))
    Promise.resolve(send(req)).catch(() => {})
  })
}

function formHead(contentType = 'application/octet-stream') {
  return `--${BOUNDARY}\r\ncontent-disposition: form-data; name="file"; filename="f.bin"\r\ncontent-type: ${contentType}\r\n\r\n`
}
const FORM_TAIL = `\r\n--${BOUNDARY}--\r\n`

/** A form of `chunks` 64 KB chunks, written `gapMs` apart (the client's pauses) */
function pacedForm(chunks: number, gapMs: number) {
  const length = Buffer.byteLength(formHead()) + chunks * FILLER.length + FORM_TAIL.length
  const send = async (req: http.ClientRequest) => {
    req.write(formHead())
    for (let i = 0; i < chunks; i++) {
      if (i > 0) await sleep(gapMs)
      if (req.destroyed) return
      req.write(FILLER)
    }
    req.end(FORM_TAIL)
  }
  return { length, send }
}

function anthropicHeaders(key: string, model: string, extra: Record<string, string> = {}) {
  return {
    'x-api-key': key,
    'anthropic-version': '2023-06-01',
    'x-gateway-model': model,
    'content-type': `multipart/form-data; boundary=${BOUNDARY}`,
    ...extra,
  }
}

/**
 * An upstream whose Files API reads each upload whole, then answers 404
 * (Anthropic's `/v1/files`, a Gemini resumable session it no longer has)
 * or, `stall`, nothing at all.
 */
class RefusingFiles {
  stall = false
  readonly #server = http.createServer((req, res) => {
    req.resume()
    req.on('end', () => {
      if (this.stall) return
      const [path, query = ''] = (req.url ?? '').split('?')
      if (path === '/v1/files') {
        res.writeHead(404, { 'content-type': 'application/json' })
        return res.end(JSON.stringify({ type: 'error', error: { type: 'not_found_error', message: 'Not found: the files endpoint' } }))
      }
      if (req.headers['x-goog-upload-command'] === 'start') {
        res.writeHead(200, { 'x-goog-upload-url': `${this.origin}/upload/v1beta/files?upload_id=gone`, 'x-goog-upload-status': 'active', 'content-length': 0 })
        return res.end()
      }
      res.writeHead(404, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ error: { code: 404, message: `Upload session ${new URLSearchParams(query).get('upload_id')} not found`, status: 'NOT_FOUND' } }))
    })
  })

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve))
    return this
  }

  get origin(): string {
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`
  }

  stop(): Promise<void> {
    this.#server.closeAllConnections()
    return new Promise((resolve) => this.#server.close(() => resolve()))
  }
}

const rowCount = async (kind: string) => Number((await db.from('provider_files').where('kind', kind).count('* as n').first()).n)

test.group('Streamed provider file uploads against a hostile client', (group) => {
  let sink: DiscardingFiles
  let refusing: RefusingFiles
  let mock: MockUpstream
  let key: string
  let userId: number

  group.setup(async () => {
    await resetDatabase()
    sink = await new DiscardingFiles().start()
    refusing = await new RefusingFiles().start()
    mock = await startMock()
    const user = await seedUser({ balance: '1' })
    key = user.key
    userId = user.userId
    return async () => {
      await sink.stop()
      await refusing.stop()
      await mock.stop()
    }
  })

  test("a client pausing mid-upload longer than the channel's first-byte limit: its upload goes through, the channel is not failed (three such opened its circuit)", async ({ assert }) => {
    const channel = await seedChannel({ name: 'strict-first-byte', provider: 'anthropic', baseUrl: `${sink.origin}/v1`, models: ['claude-strict'], firstByteTimeoutMs: 300 })
    const gw = await gateway()
    for (let n = 0; n < 3; n++) {
      const form = pacedForm(3, 700)
      const answer = await post('/v1/files', anthropicHeaders(key, 'claude-strict', { 'content-length': String(form.length) }), form.send)
      assert.equal(answer.status, 200, JSON.stringify(answer.body))
      assert.equal(sink.stored.get(answer.body.id), form.length)
      assert.deepInclude(gw.health.stateOf(channel.id), { state: 'closed', failures: 0 })
    }
    assert.equal(await db.from('provider_files').where('channel_id', channel.id).count('* as n').first().then((r) => Number(r.n)), 3)
  }).timeout(20_000)

  test("the channel's total limit running out while the client still sends: the client's 408, the channel not failed, the upstream cut, no row", async ({ assert }) => {
    const channel = await seedChannel({ name: 'strict-total', provider: 'anthropic', baseUrl: `${sink.origin}/v1`, models: ['claude-total'], totalTimeoutMs: 800 })
    const gw = await gateway()
    const rows = await rowCount('anthropic_file')
    for (let n = 0; n < 3; n++) {
      const cut = sink.cut
      const form = pacedForm(8, 250)
      const answer = await post('/v1/files', anthropicHeaders(key, 'claude-total', { 'content-length': String(form.length) }), form.send)
      assert.equal(answer.status, 408, JSON.stringify(answer.body))
      assert.deepEqual([answer.body.type, answer.body.error.type], ['error', 'timeout_error'])
      assert.equal(answer.headers.connection, 'close')
      const end = Date.now() + 3000
      while (sink.cut === cut && Date.now() < end) await sleep(10)
      assert.equal(sink.cut, cut + 1)
      assert.deepInclude(gw.health.stateOf(channel.id), { state: 'closed', failures: 0 })
    }
    assert.equal(await rowCount('anthropic_file'), rows)
  }).timeout(20_000)

  test('an upstream that answers nothing after the whole body still fails the attempt at its first-byte limit: the channel\'s failure', async ({ assert }) => {
    refusing.stall = true
    const channel = await seedChannel({ name: 'stalling', provider: 'anthropic', baseUrl: `${refusing.origin}/v1`, models: ['claude-stall'], firstByteTimeoutMs: 300 })
    const gw = await gateway()
    const form = pacedForm(2, 0)
    const started = performance.now()
    const answer = await post('/v1/files', anthropicHeaders(key, 'claude-stall', { 'content-length': String(form.length) }), form.send)
    assert.equal(answer.status, 502, JSON.stringify(answer.body))
    assert.include(answer.body.error.message, 'first byte timeout')
    assert.isBelow(performance.now() - started, 3000)
    assert.deepInclude(gw.health.stateOf(channel.id), { failures: 1 })
    refusing.stall = false
  })

  test("an upstream's 404 to a streamed upload is the client's 404 in its wire (Anthropic's file, Gemini's resumable chunk), not a 500", async ({ assert }) => {
    await seedChannel({ name: 'refusing-anthropic', provider: 'anthropic', baseUrl: `${refusing.origin}/v1`, models: ['claude-404'] })
    const form = pacedForm(2, 0)
    const anthropic = await post('/v1/files', anthropicHeaders(key, 'claude-404', { 'content-length': String(form.length) }), form.send)
    assert.equal(anthropic.status, 404, JSON.stringify(anthropic.body))
    assert.deepEqual([anthropic.body.type, anthropic.body.error.type], ['error', 'not_found_error'])

    await seedChannel({ name: 'refusing-google', provider: 'google', baseUrl: `${refusing.origin}/v1beta`, models: ['gemini-404'] })
    const start = await fetch(`${baseUrl()}/upload/v1beta/files`, {
      method: 'POST',
      headers: {
        'x-goog-api-key': key,
        'x-gateway-model': 'gemini-404',
        'x-goog-upload-protocol': 'resumable',
        'x-goog-upload-command': 'start',
        'x-goog-upload-header-content-length': String(FILLER.length),
        'content-type': 'application/json',
      },
      body: '{"file":{"displayName":"expired"}}',
    })
    assert.equal(start.status, 200)
    const session = new URL(start.headers.get('x-goog-upload-url')!)
    const chunk = await post(
      `${session.pathname}${session.search}`,
      { 'x-goog-api-key': key, 'x-goog-upload-command': 'upload, finalize', 'x-goog-upload-offset': '0', 'content-length': String(FILLER.length) },
      (req) => void req.end(FILLER)
    )
    assert.equal(chunk.status, 404, JSON.stringify(chunk.body))
    assert.deepInclude(chunk.body.error, { code: 404, status: 'NOT_FOUND' })
    assert.include(chunk.body.error.message, 'not found')
  })

  test('a NUL the upstream echoes (a part\'s content type, a displayName): the file it stored is recorded without it, listed, deletable', async ({ assert }) => {
    await seedChannel({ name: 'echoing-anthropic', provider: 'anthropic', baseUrl: `${mock.origin}/v1`, models: ['claude-echo'] })
    await seedChannel({ name: 'echoing-google', provider: 'google', baseUrl: `${mock.origin}/v1beta`, models: ['gemini-echo'] })
    const body = `${formHead('text/plain\u0000x')}hello${FORM_TAIL}`
    const anthropic = await post('/v1/files', anthropicHeaders(key, 'claude-echo', { 'content-length': String(Buffer.byteLength(body)) }), (req) => void req.end(body))
    assert.equal(anthropic.status, 200, JSON.stringify(anthropic.body))
    assert.isTrue(mock.providerFiles.anthropic.has(anthropic.body.id))
    const row = await db.from('provider_files').where('upstream_id', anthropic.body.id).first()
    assert.include(row, { user_id: userId, mime_type: 'text/plainx', status: 'active' })
    assert.equal(row.object.mime_type, 'text/plainx')
    const headers = { 'x-api-key': key, 'anthropic-version': '2023-06-01' }
    const listed = (await (await fetch(`${baseUrl()}/v1/files`, { headers })).json()) as { data: Array<{ id: string }> }
    assert.include(listed.data.map((f) => f.id), anthropic.body.id)
    const deleted = await fetch(`${baseUrl()}/v1/files/${anthropic.body.id}`, { method: 'DELETE', headers })
    assert.equal(deleted.status, 200)
    assert.isFalse(mock.providerFiles.anthropic.has(anthropic.body.id))

    const related = Buffer.from(
      `--rel\r\ncontent-type: application/json\r\n\r\n${JSON.stringify({ file: { displayName: 'a\u0000b' } })}\r\n--rel\r\ncontent-type: text/plain\r\n\r\nhello\r\n--rel--\r\n`
    )
    const gemini = await post(
      '/upload/v1beta/files',
      {
        'x-goog-api-key': key,
        'x-gateway-model': 'gemini-echo',
        'x-goog-upload-protocol': 'multipart',
        'content-type': 'multipart/related; boundary=rel',
        'content-length': String(related.length),
      },
      (req) => void req.end(related)
    )
    assert.equal(gemini.status, 200, JSON.stringify(gemini.body))
    const file = await db.from('provider_files').where('upstream_id', gemini.body.file.name).first()
    assert.include(file, { user_id: userId, filename: 'ab', status: 'active' })
    assert.equal(file.object.displayName, 'ab')
    const shown = await fetch(`${baseUrl()}/v1beta/${gemini.body.file.name}`, { headers: { 'x-goog-api-key': key } })
    assert.equal(shown.status, 200)

    // Half a surrogate pair, which jsonb refuses as an escape too: recorded as U+FFFD.
    const half = Buffer.from(
      `--rel\r\ncontent-type: application/json\r\n\r\n${JSON.stringify({ file: { displayName: 'c\ud800d' } })}\r\n--rel\r\ncontent-type: text/plain\r\n\r\nhello\r\n--rel--\r\n`
    )
    const halfPair = await post(
      '/upload/v1beta/files',
      {
        'x-goog-api-key': key,
        'x-gateway-model': 'gemini-echo',
        'x-goog-upload-protocol': 'multipart',
        'content-type': 'multipart/related; boundary=rel',
        'content-length': String(half.length),
      },
      (req) => void req.end(half)
    )
    assert.equal(halfPair.status, 200, JSON.stringify(halfPair.body))
    const halfRow = await db.from('provider_files').where('upstream_id', halfPair.body.file.name).first()
    assert.equal(halfRow.object.displayName, 'c\ufffdd')
  })

  test('an upload refused on its headers (no key, a bad key, no upload protocol, an unknown upload_id) closes the connection: its body is not read on', async ({ assert }) => {
    const url = new URL(baseUrl())
    const cases = [
      { name: 'no key', head: `POST /upload/v1beta/files HTTP/1.1\r\nhost: x\r\nx-goog-upload-protocol: multipart\r\ncontent-type: multipart/related; boundary=b\r\n` },
      { name: 'a bad key', head: `POST /v1/files HTTP/1.1\r\nhost: x\r\nx-api-key: sk-nobody\r\nanthropic-version: 2023-06-01\r\ncontent-type: multipart/form-data; boundary=b\r\n` },
      { name: 'no upload protocol', head: `POST /upload/v1beta/files HTTP/1.1\r\nhost: x\r\nx-goog-api-key: ${key}\r\n` },
      { name: 'an unknown upload_id', head: `POST /upload/v1beta/files?upload_id=nobodys HTTP/1.1\r\nhost: x\r\nx-goog-api-key: ${key}\r\nx-goog-upload-command: upload\r\n` },
    ]
    for (const c of cases) {
      const socket = net.connect(Number(url.port), url.hostname)
      let answer = ''
      socket.on('data', (data) => (answer += data))
      socket.on('error', () => {})
      const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()))
      // A 2 GB body announced, sent a chunk every 50 ms: read and thrown away, it held the connection until Node's
      // request timeout (5 minutes), whatever the client's key.
      socket.write(`${c.head}content-length: ${2 * 1024 ** 3}\r\n\r\n`)
      const sending = setInterval(() => socket.writable && socket.write(FILLER), 50)
      const result = await Promise.race([closed.then(() => 'closed'), sleep(2000).then(() => 'open')])
      clearInterval(sending)
      socket.destroy()
      assert.match(answer, /^HTTP\/1\.1 4\d\d /, c.name)
      assert.match(answer, /connection: close/i, c.name)
      assert.equal(result, 'closed', c.name)
    }
  })

  test("a resumable session: another user's chunk is a 404 with nothing relayed; three finalizes at once make one file and one row, the others Google's 404; a finished session is gone", async ({ assert }) => {
    await seedChannel({ name: 'sessions-google', provider: 'google', baseUrl: `${mock.origin}/v1beta`, models: ['gemini-sessions'] })
    const start = await fetch(`${baseUrl()}/upload/v1beta/files`, {
      method: 'POST',
      headers: {
        'x-goog-api-key': key,
        'x-gateway-model': 'gemini-sessions',
        'x-goog-upload-protocol': 'resumable',
        'x-goog-upload-command': 'start',
        'x-goog-upload-header-content-length': '10',
        'content-type': 'application/json',
      },
      body: '{"file":{"displayName":"raced"}}',
    })
    assert.equal(start.status, 200)
    const session = new URL(start.headers.get('x-goog-upload-url')!)
    const chunk = (apiKey: string) =>
      fetch(`${baseUrl()}${session.pathname}${session.search}`, {
        method: 'POST',
        headers: { 'x-goog-api-key': apiKey, 'x-goog-upload-command': 'upload, finalize', 'x-goog-upload-offset': '0' },
        body: '0123456789',
      })
    const held = mock.providerFiles.gemini.size
    const stranger = await chunk((await seedUser({ balance: '1' })).key)
    assert.equal(stranger.status, 404)
    assert.equal(((await stranger.json()) as any).error.status, 'NOT_FOUND')

    const raced = await Promise.all([chunk(key), chunk(key), chunk(key)])
    const statuses = raced.map((r) => r.status).sort()
    // The mock's session ends with its first finalize; the others were a 500 (the 404 rebuilt the streamed request).
    assert.deepEqual(statuses, [200, 404, 404])
    for (const answer of raced) if (answer.status === 404) assert.equal(((await answer.json()) as any).error.status, 'NOT_FOUND')
    assert.equal(mock.providerFiles.gemini.size, held + 1)
    const rows = await db.from('provider_files').where({ user_id: userId, kind: 'gemini_file', filename: 'raced' })
    assert.lengthOf(rows, 1)
    assert.include(rows[0], { status: 'active', upload_token: null })
    const again = await chunk(key)
    assert.equal(again.status, 404)
    assert.equal(((await again.json()) as any).error.message, 'No upload in progress has this upload_id')
  })
})
