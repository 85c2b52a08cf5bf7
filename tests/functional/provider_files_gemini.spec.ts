import { test } from '@japa/runner'
import db from '@adonisjs/lucid/services/db'
import { GoogleGenAI } from '@google/genai'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { failure, genai } from '#tests/clients'
import { baseUrl, resetDatabase, seedChannel, seedUser, startMock } from '#tests/helpers'

/**
 * Gemini's Files API and cachedContents through the gateway, with
 * @google/genai: uploads by Google's resumable protocol (the SDK's) and the
 * multipart one, gets, lists, deletes, caches made, read, updated and
 * deleted, each its maker's only; a generateContent naming a file's URI or
 * a cache goes to the channel holding it, out of two (each channel its own
 * mock, which refuses what it does not hold).
 */

const TEXT = Buffer.from('A short text file the model reads.\n')

const generationsOn = (mock: MockUpstream) => mock.requests.filter((r) => r.method === 'POST' && r.path.includes(':generateContent')).length
const countsOn = (mock: MockUpstream) => mock.requests.filter((r) => r.method === 'POST' && r.path.includes(':countTokens')).length

function countTokens(key: string, body: unknown) {
  return fetch(`${baseUrl()}/v1beta/models/gemini-2.5-flash:countTokens`, {
    method: 'POST',
    headers: { 'x-goog-api-key': key, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  })
}

function uploadText(ai: GoogleGenAI, displayName = 'notes') {
  return ai.files.upload({ file: new Blob([TEXT], { type: 'text/plain' }), config: { mimeType: 'text/plain', displayName } })
}

test.group('Gemini Files API and cachedContents', (group) => {
  let first: MockUpstream
  let second: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    first = await startMock()
    second = await startMock()
    await seedChannel({ name: 'google-a', provider: 'google', baseUrl: `${first.origin}/v1beta`, models: ['gemini-2.5-flash'] })
    await seedChannel({ name: 'google-b', provider: 'google', baseUrl: `${second.origin}/v1beta`, models: ['gemini-2.5-flash', 'gemini-b-only'] })
    return async () => {
      await first.stop()
      await second.stop()
    }
  })

  test('files.upload (resumable), get, list, delete; the file is the upstream name on the first channel; another user gets 404', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const ai = genai(user.key)
    const file = await uploadText(ai)
    assert.match(file.name!, /^files\/[0-9a-f]{12}$/)
    assert.equal(file.sizeBytes, String(TEXT.length))
    assert.isTrue(first.providerFiles.gemini.has(file.name!))
    assert.deepEqual(first.providerFiles.gemini.get(file.name!)!.bytes, TEXT)
    // The session went up with the channel's key; the client's upload URL was the gateway's.
    const start = first.requests.find((r) => r.path === '/upload/v1beta/files')!
    assert.equal(start.headers['x-goog-api-key'], 'upstream-secret')
    assert.equal(start.headers['x-goog-upload-command'], 'start')
    const row = await db.from('provider_files').where('upstream_id', file.name!).first()
    assert.include(row, { kind: 'gemini_file', status: 'active', upload_url: null, filename: 'notes' })

    const got = await ai.files.get({ name: file.name! })
    assert.include(got, { name: file.name, state: 'ACTIVE', uri: file.uri })
    const other = await uploadText(ai, 'second')
    const listed: string[] = []
    for await (const f of await ai.files.list()) listed.push(f.name!)
    assert.deepEqual(listed, [other.name, file.name])

    const stranger = genai((await seedUser({ balance: '1' })).key)
    // Thunks, started one at a time: promises built up front and awaited in turn reject
    // before they are awaited, an unhandled rejection that fails the run.
    for (const call of [() => stranger.files.get({ name: file.name! }), () => stranger.files.delete({ name: file.name! })]) {
      const refused = await failure(call())
      assert.equal(refused.status, 404)
      assert.include(refused.message, 'NOT_FOUND')
    }
    await ai.files.delete({ name: file.name! })
    assert.isFalse(first.providerFiles.gemini.has(file.name!))
    assert.equal((await failure(ai.files.get({ name: file.name! }))).status, 404)
  })

  test("a resumable upload's query answers what the session holds (x-goog-upload-size-received); a cancel ends it at once, no longer one in progress", async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const headers = (command: string, extra: Record<string, string> = {}) => ({ 'x-goog-api-key': user.key, 'x-goog-upload-command': command, ...extra })
    const start = await fetch(`${baseUrl()}/upload/v1beta/files`, {
      method: 'POST',
      headers: headers('start', { 'x-goog-upload-protocol': 'resumable', 'x-goog-upload-header-content-length': '10', 'content-type': 'application/json' }),
      body: '{"file":{"displayName":"resumed"}}',
    })
    assert.equal(start.status, 200)
    const session = start.headers.get('x-goog-upload-url')!
    const open = first.providerFiles.openUploads
    const chunk = await fetch(session, { method: 'POST', headers: headers('upload', { 'x-goog-upload-offset': '0' }), body: 'abcd' })
    assert.equal(chunk.status, 200)
    const query = await fetch(session, { method: 'POST', headers: headers('query') })
    assert.equal(query.status, 200)
    assert.equal(query.headers.get('x-goog-upload-status'), 'active')
    assert.equal(query.headers.get('x-goog-upload-size-received'), '4')
    const inProgress = async () => Number((await db.from('provider_files').where({ user_id: user.userId, status: 'uploading' }).count('* as n').first()).n)
    assert.equal(await inProgress(), 1)

    const cancel = await fetch(session, { method: 'POST', headers: headers('cancel') })
    assert.equal(cancel.status, 200)
    assert.equal(cancel.headers.get('x-goog-upload-status'), 'cancelled')
    assert.equal(first.providerFiles.openUploads, open - 1, 'cancelled upstream too')
    assert.equal(await inProgress(), 0, 'no longer counted against the cap')
    const after = await fetch(session, { method: 'POST', headers: headers('upload, finalize', { 'x-goog-upload-offset': '4' }), body: 'efghij' })
    assert.equal(after.status, 404)
  })

  test('the multipart protocol; bad uploads in Google\'s shape', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const boundary = 'b0und4ry'
    const body = Buffer.concat([
      Buffer.from(`--${boundary}\r\ncontent-type: application/json\r\n\r\n${JSON.stringify({ file: { displayName: 'multi' } })}\r\n`),
      Buffer.from(`--${boundary}\r\ncontent-type: text/plain\r\n\r\n`),
      TEXT,
      Buffer.from(`\r\n--${boundary}--\r\n`),
    ])
    const response = await fetch(`${baseUrl()}/upload/v1beta/files`, {
      method: 'POST',
      headers: { 'x-goog-api-key': user.key, 'x-goog-upload-protocol': 'multipart', 'content-type': `multipart/related; boundary=${boundary}` },
      body,
    })
    assert.equal(response.status, 200)
    const { file } = (await response.json()) as any
    assert.equal(file.displayName, 'multi')
    assert.deepEqual(first.providerFiles.gemini.get(file.name)!.bytes, TEXT)

    const noProtocol = await fetch(`${baseUrl()}/upload/v1beta/files`, { method: 'POST', headers: { 'x-goog-api-key': user.key }, body: '{}' })
    assert.equal(noProtocol.status, 400)
    assert.include(((await noProtocol.json()) as any).error, { code: 400, status: 'INVALID_ARGUMENT' })
    const unknownSession = await fetch(`${baseUrl()}/upload/v1beta/files?upload_id=nope`, {
      method: 'POST',
      headers: { 'x-goog-api-key': user.key, 'x-goog-upload-command': 'upload, finalize', 'x-goog-upload-offset': '0' },
      body: 'x',
    })
    assert.equal(unknownSession.status, 404)
    assert.equal(((await unknownSession.json()) as any).error.status, 'NOT_FOUND')
    const badKey = await fetch(`${baseUrl()}/upload/v1beta/files`, { method: 'POST', headers: { 'x-goog-api-key': 'nope' }, body: '{}' })
    assert.equal(badKey.status, 401)
    assert.equal(((await badKey.json()) as any).error.status, 'UNAUTHENTICATED')
  })

  test('generateContent naming a file goes to the channel holding it, out of two; another user\'s file is a 404', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const ai = genai(user.key)
    // The model hint: the file lands on a channel serving that model.
    const hinted = new GoogleGenAI({ apiKey: user.key, httpOptions: { baseUrl: baseUrl(), headers: { 'x-gateway-model': 'gemini-b-only' } } })
    const onSecond = await uploadText(hinted)
    assert.isTrue(second.providerFiles.gemini.has(onSecond.name!))
    const before = [generationsOn(first), generationsOn(second)]
    for (let i = 0; i < 4; i++) {
      const answer = await ai.models.generateContent({
        model: 'gemini-2.5-flash',
        contents: [{ role: 'user', parts: [{ fileData: { fileUri: onSecond.uri!, mimeType: 'text/plain' } }, { text: 'Summarise' }] }],
      })
      assert.isString(answer.text)
    }
    assert.deepEqual([generationsOn(first) - before[0], generationsOn(second) - before[1]], [0, 4])
    const stranger = genai((await seedUser({ balance: '1' })).key)
    const refused = await failure(
      stranger.models.generateContent({ model: 'gemini-2.5-flash', contents: [{ role: 'user', parts: [{ fileData: { fileUri: onSecond.uri!, mimeType: 'text/plain' } }] }] })
    )
    assert.equal(refused.status, 404)
    assert.include(refused.message, 'NOT_FOUND')
  })

  test('countTokens naming a file or a cache (plain or inside generateContentRequest): counted on the holding channel only; another user\'s is a 404, nothing counted', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const hinted = new GoogleGenAI({ apiKey: user.key, httpOptions: { baseUrl: baseUrl(), headers: { 'x-gateway-model': 'gemini-b-only' } } })
    const file = await uploadText(hinted)
    const cache = await genai(user.key).caches.create({ model: 'gemini-b-only', config: { contents: [{ role: 'user', parts: [{ text: 'Context.' }] }], ttl: '600s' } })
    const contents = [{ role: 'user', parts: [{ fileData: { fileUri: file.uri!, mimeType: 'text/plain' } }, { text: 'Summarise' }] }]
    const bodies = [
      { contents },
      { generateContentRequest: { model: 'models/gemini-2.5-flash', contents } },
      { generateContentRequest: { model: 'models/gemini-2.5-flash', cachedContent: cache.name, contents: [{ role: 'user', parts: [{ text: 'Go on' }] }] } },
      { generate_content_request: { cached_content: cache.name, contents: [{ role: 'user', parts: [{ text: 'Go on' }] }] } },
    ]
    const before = [countsOn(first), countsOn(second)]
    for (const body of bodies) {
      for (let i = 0; i < 2; i++) {
        const counted = await countTokens(user.key, body)
        assert.equal(counted.status, 200, await counted.clone().text())
        assert.isNumber(((await counted.json()) as any).totalTokens)
      }
    }
    assert.deepEqual([countsOn(first) - before[0], countsOn(second) - before[1]], [0, 8])

    const stranger = (await seedUser({ balance: '1' })).key
    for (const body of bodies) {
      const refused = await countTokens(stranger, body)
      assert.equal(refused.status, 404, JSON.stringify(body))
      assert.include(((await refused.json()) as any).error, { code: 404, status: 'NOT_FOUND' })
    }
    assert.deepEqual([countsOn(first) - before[0], countsOn(second) - before[1]], [0, 8])
  })

  test('caches: create on the model\'s channel, get, list, update, delete; generateContent with the cache pinned to its channel', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const ai = genai(user.key)
    const cache = await ai.caches.create({
      model: 'gemini-b-only',
      config: { contents: [{ role: 'user', parts: [{ text: 'A long shared context.' }] }], displayName: 'ctx', ttl: '600s' },
    })
    assert.match(cache.name!, /^cachedContents\/[0-9a-f]{12}$/)
    assert.isTrue(second.providerFiles.caches.has(cache.name!))
    const row = await db.from('provider_files').where('upstream_id', cache.name!).first()
    assert.include(row, { kind: 'gemini_cache', model: 'models/gemini-b-only', status: 'active' })
    assert.isNotNull(row.expires_at)

    const before = [generationsOn(first), generationsOn(second)]
    for (let i = 0; i < 4; i++) {
      const answer = await ai.models.generateContent({ model: 'gemini-2.5-flash', contents: 'Go on', config: { cachedContent: cache.name! } })
      assert.isString(answer.text)
    }
    assert.deepEqual([generationsOn(first) - before[0], generationsOn(second) - before[1]], [0, 4])

    const got = await ai.caches.get({ name: cache.name! })
    assert.equal(got.name, cache.name)
    const listed: string[] = []
    for await (const c of await ai.caches.list()) listed.push(c.name!)
    assert.deepEqual(listed, [cache.name])
    const updated = await ai.caches.update({ name: cache.name!, config: { ttl: '7200s' } })
    assert.isAbove(Date.parse(updated.expireTime!), Date.parse(cache.expireTime!))

    const stranger = genai((await seedUser({ balance: '1' })).key)
    assert.equal((await failure(stranger.caches.get({ name: cache.name! }))).status, 404)
    const pinnedElsewhere = await failure(stranger.models.generateContent({ model: 'gemini-2.5-flash', contents: 'x', config: { cachedContent: cache.name! } }))
    assert.equal(pinnedElsewhere.status, 404)

    await ai.caches.delete({ name: cache.name! })
    assert.isFalse(second.providerFiles.caches.has(cache.name!))
    assert.equal((await failure(ai.models.generateContent({ model: 'gemini-2.5-flash', contents: 'x', config: { cachedContent: cache.name! } }))).status, 404)
    // A plain generation is routed as before (both channels serve it).
    const plain = await ai.models.generateContent({ model: 'gemini-2.5-flash', contents: 'hello' })
    assert.isString(plain.text)
  })
})
