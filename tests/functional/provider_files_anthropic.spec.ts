import { test } from '@japa/runner'
import db from '@adonisjs/lucid/services/db'
import Anthropic, { toFile } from '@anthropic-ai/sdk'
import { toFile as toOpenAiFile } from 'openai'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { anthropic, failure } from '#tests/clients'
import { baseUrl, openai, resetDatabase, seedChannel, seedUser, startMock } from '#tests/helpers'

/**
 * Anthropic's Files API through the gateway, with @anthropic-ai/sdk's
 * beta.files: a file uploaded goes to an Anthropic channel (the first open
 * to the caller, or the one `x-gateway-model` routes to), is its uploader's
 * only, and a message naming it is sent to that channel alone. Each channel
 * is its own mock, which refuses a message naming a file it does not hold:
 * a message sent to the wrong channel fails the test. OpenAI's Files API at
 * the same paths is untouched.
 */

const PDF = Buffer.from('%PDF-1.4 a tiny document\n%%EOF\n')

async function upload(client: Anthropic, name = 'doc.pdf', options?: Anthropic.RequestOptions) {
  return client.beta.files.upload({ file: await toFile(PDF, name, { type: 'application/pdf' }) }, options)
}

/** A message naming the file in a document block. */
function ask(client: Anthropic, fileId: string, model = 'claude-sonnet-4') {
  return client.beta.messages.create({
    model,
    max_tokens: 20,
    betas: ['files-api-2025-04-14'],
    messages: [{ role: 'user', content: [{ type: 'document', source: { type: 'file', file_id: fileId } }, { type: 'text', text: 'Summarise' }] }],
  })
}

const messagesOn = (mock: MockUpstream) => mock.requests.filter((r) => r.method === 'POST' && r.path === '/v1/messages').length
const countsOn = (mock: MockUpstream) => mock.requests.filter((r) => r.method === 'POST' && r.path === '/v1/messages/count_tokens').length

test.group('Anthropic Files API', (group) => {
  let first: MockUpstream
  let second: MockUpstream
  let other: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    first = await startMock()
    second = await startMock()
    other = await startMock()
    // Same priority: a message's channel is drawn between them, unless a file pins it.
    await seedChannel({ name: 'claude-a', provider: 'anthropic', baseUrl: first.url, models: ['claude-sonnet-4'] })
    await seedChannel({ name: 'claude-b', provider: 'anthropic', baseUrl: second.url, models: ['claude-sonnet-4', 'claude-b-only'] })
    await seedChannel({ name: 'openai', provider: 'openai', baseUrl: other.url, models: ['gpt-4o-mini'] })
    return async () => {
      await first.stop()
      await second.stop()
      await other.stop()
    }
  })

  test('upload, list, retrieve, download and delete through the SDK; the file is the upstream id on the first channel', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const client = anthropic(user.key)
    const file = await upload(client)
    assert.match(file.id, /^file_mock[0-9a-f]{16}$/)
    assert.include(file, { type: 'file', filename: 'doc.pdf', mime_type: 'application/pdf', size_bytes: PDF.length })
    // The first channel (same priority: the oldest) holds it; the upload went up with the key and the beta.
    assert.isTrue(first.providerFiles.anthropic.has(file.id))
    assert.isFalse(second.providerFiles.anthropic.has(file.id))
    const sent = first.requests.find((r) => r.path === '/v1/files')!
    assert.equal(sent.headers['x-api-key'], 'upstream-secret')
    assert.include(String(sent.headers['anthropic-beta']), 'files-api-2025-04-14')
    const row = await db.from('provider_files').where('upstream_id', file.id).first()
    assert.include({ ...row, user_id: Number(row.user_id) }, { kind: 'anthropic_file', user_id: user.userId, status: 'active', filename: 'doc.pdf' })

    const second_ = await upload(client, 'notes.pdf')
    const listed = await client.beta.files.list()
    assert.deepEqual(listed.data.map((f) => f.id), [second_.id, file.id])
    const page = await client.beta.files.list({ limit: 1 })
    assert.deepEqual(page.data.map((f) => f.id), [second_.id])
    assert.equal(page.next_page, second_.id)
    const after = await client.beta.files.list({ limit: 1, page: page.next_page })
    assert.deepEqual(after.data.map((f) => f.id), [file.id])

    const meta = await client.beta.files.retrieveMetadata(file.id)
    assert.include(meta, { id: file.id, filename: 'doc.pdf', size_bytes: PDF.length })

    const content = await client.beta.files.download(file.id)
    assert.deepEqual(Buffer.from(await content.arrayBuffer()), PDF)

    const deleted = await client.beta.files.delete(file.id)
    assert.deepEqual(deleted, { id: file.id, type: 'file_deleted' })
    assert.isFalse(first.providerFiles.anthropic.has(file.id))
    assert.deepEqual((await client.beta.files.list()).data.map((f) => f.id), [second_.id])
    const gone = await failure(client.beta.files.retrieveMetadata(file.id))
    assert.equal(gone.status, 404)
    assert.deepEqual(gone.error, { type: 'error', error: { type: 'not_found_error', message: `File not found: ${file.id}` } })
    // A deleted file named in a message: its owner's 404, not a guess at a channel.
    const named = await failure(ask(client, file.id))
    assert.equal(named.status, 404)
    assert.equal(named.error.error.type, 'not_found_error')
  })

  test('x-gateway-model puts the file on a channel serving that model', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const client = anthropic(user.key)
    const file = await upload(client, 'b.pdf', { headers: { 'x-gateway-model': 'claude-b-only' } })
    assert.isTrue(second.providerFiles.anthropic.has(file.id))
    assert.isFalse(first.providerFiles.anthropic.has(file.id))
    const refused = await failure(upload(client, 'c.pdf', { headers: { 'x-gateway-model': 'gpt-4o-mini' } }))
    assert.equal(refused.status, 400)
    assert.equal(refused.error.type, 'error')
    assert.match(refused.error.error.message, /offers Anthropic's Files API/)
  })

  test('a message naming a file goes to the channel that holds it, out of two; one naming none is drawn as before', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const client = anthropic(user.key)
    const onFirst = await upload(client, 'one.pdf')
    const onSecond = await upload(client, 'two.pdf', { headers: { 'x-gateway-model': 'claude-b-only' } })
    const before = [messagesOn(first), messagesOn(second)]
    for (let i = 0; i < 6; i++) {
      const answer = await ask(client, i % 2 === 0 ? onFirst.id : onSecond.id)
      assert.equal(answer.type, 'message')
    }
    assert.deepEqual([messagesOn(first) - before[0], messagesOn(second) - before[1]], [3, 3])
    // container_upload blocks and files inside a tool result pin too.
    const nested = await client.beta.messages.create({
      model: 'claude-sonnet-4',
      max_tokens: 20,
      betas: ['files-api-2025-04-14'],
      messages: [{ role: 'user', content: [{ type: 'container_upload', file_id: onSecond.id }, { type: 'text', text: 'hi' }] }],
    })
    assert.equal(nested.type, 'message')
    // An escaped key still names the file (the byte search cannot be dodged).
    const escaped = `{"model":"claude-sonnet-4","max_tokens":20,"messages":[{"role":"user","content":[{"type":"document","source":{"type":"file","file\\u005fid":"${onFirst.id}"}}]}]}`
    const stranger = await seedUser({ balance: '1' })
    const refused = await fetch(`${baseUrl()}/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': stranger.key, 'anthropic-version': '2023-06-01' },
      body: escaped,
    })
    assert.equal(refused.status, 404)
    // A message naming no file: both channels still serve (the route is untouched).
    for (let i = 0; i < 4; i++) {
      const plain = await client.messages.create({ model: 'claude-sonnet-4', max_tokens: 10, messages: [{ role: 'user', content: 'hello' }] })
      assert.equal(plain.type, 'message')
    }
  })

  test('count_tokens naming a file: counted on the channel holding it, out of two; another user\'s file is a 404, nothing counted', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const client = anthropic(user.key)
    const onSecond = await upload(client, 'count.pdf', { headers: { 'x-gateway-model': 'claude-b-only' } })
    const count = (c: Anthropic) =>
      c.beta.messages.countTokens({
        model: 'claude-sonnet-4',
        betas: ['files-api-2025-04-14'],
        messages: [{ role: 'user', content: [{ type: 'document', source: { type: 'file', file_id: onSecond.id } }, { type: 'text', text: 'Summarise' }] }],
      })
    const before = [countsOn(first), countsOn(second)]
    for (let i = 0; i < 4; i++) assert.isAbove((await count(client)).input_tokens, 0)
    assert.deepEqual([countsOn(first) - before[0], countsOn(second) - before[1]], [0, 4])

    const stranger = anthropic((await seedUser({ balance: '1' })).key)
    const refused = await failure(count(stranger))
    assert.equal(refused.status, 404)
    assert.equal(refused.error.error.type, 'not_found_error')
    assert.deepEqual([countsOn(first) - before[0], countsOn(second) - before[1]], [0, 4])
  })

  test("another user's file is a 404 everywhere; a route without its channel a 400; a translated route cannot read it", async ({ assert }) => {
    const owner = await seedUser({ balance: '1' })
    const stranger = await seedUser({ balance: '1' })
    const file = await upload(anthropic(owner.key))
    const client = anthropic(stranger.key)
    // Thunks, started one at a time (promises awaited in turn reject unhandled first).
    for (const call of [() => client.beta.files.retrieveMetadata(file.id), () => client.beta.files.delete(file.id), () => client.beta.files.download(file.id), () => ask(client, file.id)]) {
      const refused = await failure(call())
      assert.equal(refused.status, 404)
      assert.equal(refused.error.error.type, 'not_found_error')
    }
    assert.lengthOf((await client.beta.files.list()).data, 0)
    assert.isTrue(first.providerFiles.anthropic.has(file.id), 'still there for its owner')

    // Its channel does not serve this model: Anthropic's 400, nothing sent.
    const sent = messagesOn(second)
    const elsewhere = await failure(ask(anthropic(owner.key), file.id, 'claude-b-only'))
    assert.equal(elsewhere.status, 400)
    assert.equal(elsewhere.error.error.type, 'invalid_request_error')
    assert.match(elsewhere.error.error.message, /held by a channel that does not serve 'claude-b-only'/)
    assert.equal(messagesOn(second), sent)
    // An OpenAI model through /v1/messages (translated): the file cannot go there.
    const translated = await failure(ask(anthropic(owner.key), file.id, 'gpt-4o-mini'))
    assert.equal(translated.status, 400)
    assert.equal(translated.error.type, 'error')
  })

  test("bad input and a bad key in Anthropic's shape; OpenAI's Files API on the same paths is OpenAI's", async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const headers = { 'x-api-key': user.key, 'anthropic-version': '2023-06-01', 'anthropic-beta': 'files-api-2025-04-14' }
    const form = new FormData()
    form.append('purpose', 'nothing')
    const noFile = await fetch(`${baseUrl()}/v1/files`, { method: 'POST', headers, body: form })
    assert.equal(noFile.status, 400)
    const body = (await noFile.json()) as any
    assert.equal(body.type, 'error')
    assert.equal(body.error.type, 'invalid_request_error')
    const badKey = await fetch(`${baseUrl()}/v1/files`, { headers: { ...headers, 'x-api-key': 'sk-wrong' } })
    assert.equal(badKey.status, 401)
    assert.equal(((await badKey.json()) as any).error.type, 'authentication_error')
    const badLimit = await fetch(`${baseUrl()}/v1/files?limit=0`, { headers })
    assert.equal(badLimit.status, 400)
    assert.equal(((await badLimit.json()) as any).type, 'error')

    // The OpenAI SDK: its files still go through the Batch API's path (gateway ids, an OpenAI channel).
    const jsonl = JSON.stringify({ custom_id: 'a', method: 'POST', url: '/v1/chat/completions', body: { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] } })
    const batchFile = await openai(user.key).files.create({ file: await toOpenAiFile(Buffer.from(jsonl + '\n'), 'in.jsonl'), purpose: 'batch' })
    assert.match(batchFile.id, /^file-gw/)
    assert.isTrue(other.requests.some((r) => r.path === '/v1/files' && r.method === 'POST'))
    const openaiList = await openai(user.key).files.list()
    assert.deepEqual(openaiList.data.map((f) => f.id), [batchFile.id])
    const openaiError = await fetch(`${baseUrl()}/v1/files/file-nope`, { headers: { authorization: `Bearer ${user.key}` } })
    assert.equal(openaiError.status, 404)
    assert.property(((await openaiError.json()) as any).error, 'code')
  })
})
