import { test } from '@japa/runner'
import db from '@adonisjs/lucid/services/db'
import { toFile } from '@anthropic-ai/sdk'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { anthropic, genai } from '#tests/clients'
import { baseUrl, resetDatabase, seedChannel, seedPrice, seedUser, startMock } from '#tests/helpers'

/**
 * Another user's provider file or cache reached by ways the pin's first
 * version did not look at: a JSON-escaped slash (`files\/abc`), a URL part
 * of another wire (OpenAI's `image_url`, Anthropic's `source.url`) that the
 * translation hands Google as `fileData.fileUri`, a Message Batch naming a
 * `file_id`. Each is its owner's only (the endpoint's 404, nothing sent).
 * Also: a resumable start's garbage declared length, and a body naming
 * thousands of ids (one read, not one per id).
 */

const TEXT = Buffer.from('A private text file.\n')

const generationsOn = (mock: MockUpstream) => mock.requests.filter((r) => r.method === 'POST' && /:(stream)?generateContent|\/chat\/completions$|\/messages$/.test(r.path)).length

test.group('Provider files: hostile references', (group) => {
  let google: MockUpstream
  let claude: MockUpstream
  let owner: Awaited<ReturnType<typeof seedUser>>
  let stranger: Awaited<ReturnType<typeof seedUser>>
  let file: { name: string; uri: string }

  group.setup(async () => {
    await resetDatabase()
    google = await startMock()
    claude = await startMock()
    await seedChannel({ name: 'google', provider: 'google', baseUrl: `${google.origin}/v1beta`, models: ['gemini-2.5-flash'] })
    await seedChannel({ name: 'claude', provider: 'anthropic', baseUrl: claude.url, models: ['claude-sonnet-4'] })
    await seedPrice('claude-sonnet-4', '3', '15')
    owner = await seedUser({ balance: '5' })
    stranger = await seedUser({ balance: '5' })
    const uploaded = await genai(owner.key).files.upload({ file: new Blob([TEXT], { type: 'text/plain' }), config: { mimeType: 'text/plain' } })
    file = { name: uploaded.name!, uri: uploaded.uri! }
    return async () => {
      await google.stop()
      await claude.stop()
    }
  })

  test('a JSON-escaped slash (files\\/id, the URI with \\/) is the same name: another user\'s 404, nothing sent', async ({ assert }) => {
    const before = generationsOn(google)
    for (const uri of [file.name, file.uri]) {
      const escaped = JSON.stringify({ contents: [{ role: 'user', parts: [{ fileData: { fileUri: uri, mimeType: 'text/plain' } }, { text: 'Read it' }] }] }).replaceAll('/', '\\/')
      assert.include(escaped, 'files\\/')
      const response = await fetch(`${baseUrl()}/v1beta/models/gemini-2.5-flash:generateContent`, {
        method: 'POST',
        headers: { 'x-goog-api-key': stranger.key, 'content-type': 'application/json' },
        body: escaped,
      })
      assert.equal(response.status, 404, await response.clone().text())
      assert.include(((await response.json()) as any).error, { code: 404, status: 'NOT_FOUND' })
    }
    // A file in the system instruction is read too: looked at as well.
    const system = await fetch(`${baseUrl()}/v1beta/models/gemini-2.5-flash:generateContent`, {
      method: 'POST',
      headers: { 'x-goog-api-key': stranger.key, 'content-type': 'application/json' },
      body: JSON.stringify({ systemInstruction: { parts: [{ fileData: { fileUri: file.uri, mimeType: 'text/plain' } }] }, contents: [{ role: 'user', parts: [{ text: 'x' }] }] }),
    })
    assert.equal(system.status, 404)
    assert.equal(generationsOn(google), before)
  })

  test('OpenAI and Anthropic URL parts naming a Gemini file on a google route: another user\'s 404 in their wire, the owner\'s goes through', async ({ assert }) => {
    const before = generationsOn(google)
    const chat = (key: string) =>
      fetch(`${baseUrl()}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'gemini-2.5-flash', messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: file.uri } }, { type: 'text', text: 'Read it' }] }] }),
      })
    const refused = await chat(stranger.key)
    assert.equal(refused.status, 404)
    assert.include(((await refused.json()) as any).error, { type: 'not_found_error', code: 'file_not_found' })

    const message = await fetch(`${baseUrl()}/v1/messages`, {
      method: 'POST',
      headers: { 'x-api-key': stranger.key, 'anthropic-version': '2023-06-01', 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gemini-2.5-flash', max_tokens: 20, messages: [{ role: 'user', content: [{ type: 'image', source: { type: 'url', url: file.uri } }, { type: 'text', text: 'x' }] }] }),
    })
    assert.equal(message.status, 404)
    assert.include(((await message.json()) as any), { type: 'error' })

    const responses = await fetch(`${baseUrl()}/v1/responses`, {
      method: 'POST',
      headers: { authorization: `Bearer ${stranger.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gemini-2.5-flash', input: [{ role: 'user', content: [{ type: 'input_file', file_url: file.uri }, { type: 'input_text', text: 'x' }] }] }),
    })
    assert.equal(responses.status, 404)
    assert.equal(generationsOn(google), before)

    // A page's URL whose path has /files/{the same id}.png is no Gemini file: not the owner's 404, sent as before
    // (the mock, which takes any `files/` in a URI for its own, refuses it as the upstream).
    const page = await fetch(`${baseUrl()}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${stranger.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gemini-2.5-flash', messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: `https://example.com/files/${file.name.slice(6)}.png` } }] }] }),
    })
    assert.equal(((await page.json()) as any).error.code, 'upstream_error')
    const own = await chat(owner.key)
    assert.equal(own.status, 200, await own.clone().text())
    assert.equal(generationsOn(google), before + 2)
  })

  test('a Message Batch naming another user\'s Anthropic file: 404, no batch upstream', async ({ assert }) => {
    const mine = await anthropic(owner.key).beta.files.upload({ file: await toFile(Buffer.from('%PDF-1.4\n%%EOF\n'), 'a.pdf', { type: 'application/pdf' }) })
    const requests = [
      {
        custom_id: 'r1',
        params: { model: 'claude-sonnet-4', max_tokens: 10, messages: [{ role: 'user', content: [{ type: 'document', source: { type: 'file', file_id: mine.id } }] }] },
      },
    ]
    const batchesBefore = claude.messageBatches.batches.size
    const refused = await fetch(`${baseUrl()}/v1/messages/batches`, {
      method: 'POST',
      headers: { 'x-api-key': stranger.key, 'anthropic-version': '2023-06-01', 'content-type': 'application/json' },
      body: JSON.stringify({ requests }),
    })
    assert.equal(refused.status, 404)
    assert.deepInclude(((await refused.json()) as any), { type: 'error' })
    assert.equal(claude.messageBatches.batches.size, batchesBefore)
    // The owner's batch goes.
    const own = await anthropic(owner.key).messages.batches.create({ requests } as any)
    assert.match(own.id, /^msgbatch_/)
    assert.equal(claude.messageBatches.batches.size, batchesBefore + 1)
  })

  test('a resumable start declaring a length that is not a whole number of bytes: Google\'s 400, no row', async ({ assert }) => {
    const rowsBefore = Number((await db.from('provider_files').count('* as n').first()).n)
    for (const declared of ['1.5', '-4', '1e3', '0x10', 'abc']) {
      const response = await fetch(`${baseUrl()}/upload/v1beta/files`, {
        method: 'POST',
        headers: {
          'x-goog-api-key': owner.key,
          'x-goog-upload-protocol': 'resumable',
          'x-goog-upload-command': 'start',
          'x-goog-upload-header-content-length': declared,
          'content-type': 'application/json',
        },
        body: JSON.stringify({ file: { displayName: 'x' } }),
      })
      assert.equal(response.status, 400, `${declared}: ${await response.clone().text()}`)
      assert.include(((await response.json()) as any).error, { code: 400, status: 'INVALID_ARGUMENT' })
    }
    assert.equal(Number((await db.from('provider_files').count('* as n').first()).n), rowsBefore)
  })

  test('file ids longer than any recorded one are not looked up nor remembered (memory held per request)', async ({ assert }) => {
    const queries: string[] = []
    const listener = (query: { sql: string }) => {
      if (query.sql.includes('provider_files')) queries.push(query.sql)
    }
    const client = db.connection().getReadClient() as any
    client.on('query', listener)
    global.gc?.()
    const heapBefore = process.memoryUsage().heapUsed
    try {
      for (let round = 0; round < 20; round++) {
        const content = Array.from({ length: 20 }, (_, i) => ({ type: 'document', source: { type: 'file', file_id: `file_${round}_${i}_${'x'.repeat(50_000)}` } }))
        const response = await fetch(`${baseUrl()}/v1/messages`, {
          method: 'POST',
          headers: { 'x-api-key': stranger.key, 'anthropic-version': '2023-06-01', 'content-type': 'application/json' },
          body: JSON.stringify({ model: 'claude-sonnet-4', max_tokens: 5, messages: [{ role: 'user', content }] }),
        })
        // The upstream's own 404 for ids it does not hold (the mock's): nothing of the gateway's.
        assert.equal(response.status, 404)
        await response.arrayBuffer()
      }
    } finally {
      client.off('query', listener)
    }
    global.gc?.()
    console.log(`400 ids of 50 KB: ${queries.length} reads, heap +${Math.round((process.memoryUsage().heapUsed - heapBefore) / 1048576)} MB`)
    assert.lengthOf(queries, 0)
  })

  test('a body naming 3,000 ids no row names costs one read of the table, not one per id', async ({ assert }) => {
    const parts = Array.from({ length: 3000 }, (_, i) => ({ fileData: { fileUri: `files/unknown${i}`, mimeType: 'text/plain' } }))
    const queries: string[] = []
    const listener = (query: { sql: string }) => {
      if (query.sql.includes('provider_files')) queries.push(query.sql)
    }
    const client = db.connection().getReadClient() as any
    client.on('query', listener)
    const started = performance.now()
    try {
      const response = await fetch(`${baseUrl()}/v1beta/models/gemini-2.5-flash:generateContent`, {
        method: 'POST',
        headers: { 'x-goog-api-key': stranger.key, 'content-type': 'application/json' },
        body: JSON.stringify({ contents: [{ role: 'user', parts }] }),
      })
      // None is recorded: the body goes as it came (the upstream refuses the files it does not hold).
      assert.equal(response.status, 404)
    } finally {
      client.off('query', listener)
    }
    console.log(`3,000 unknown ids: ${Math.round(performance.now() - started)} ms, ${queries.length} reads of provider_files`)
    assert.isAtMost(queries.length, 3)
  })
})
