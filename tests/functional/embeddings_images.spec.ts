import { test } from '@japa/runner'
import { setPrice } from '#actions/set_price'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { MOCK_VECTOR } from '#tests/fixtures/mock_upstream/openai_media'
import { genai } from '#tests/clients'
import { balanceAndLedger, openai, post, refreshCaches, resetDatabase, seedChannel, seedUser, startMock, usageRows } from '#tests/helpers'

test.group('POST /v1/embeddings and Gemini embedContent', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'openai', provider: 'openai', baseUrl: mock.url, models: ['text-embedding-*', 'gpt-image-*', 'dall-e-*'] })
    await seedChannel({ name: 'google', provider: 'google', baseUrl: `${mock.origin}/v1beta`, models: ['gemini-embedding-*'] })
    return () => mock.stop()
  })

  test('the openai SDK default (base64) is honoured, also when the upstream answers floats', async ({ assert }) => {
    const user = await seedUser()
    const client = openai(user.key)
    const native = await client.embeddings.create({ model: 'text-embedding-3-small', input: 'hello' })
    assert.equal(JSON.parse(mock.lastRequest()!.body).encoding_format, 'base64')
    assert.deepEqual(native.data[0].embedding, MOCK_VECTOR)

    const converted = await client.embeddings.create({ model: 'text-embedding-3-small', input: ['a', 'b'], mock: { floats_only: true } } as any)
    assert.lengthOf(converted.data, 2)
    assert.deepEqual(converted.data[1].embedding, MOCK_VECTOR)
    assert.deepEqual(converted.usage, { prompt_tokens: 6, total_tokens: 6 })

    const raw = await post('/v1/embeddings', { model: 'text-embedding-3-small', input: 'x', encoding_format: 'float' }, { authorization: `Bearer ${user.key}` })
    assert.deepEqual(((await raw.json()) as any).data[0].embedding, MOCK_VECTOR)
    const rows = await usageRows(user.userId)
    assert.deepEqual(rows.map((r) => [r.endpoint, r.prompt_tokens]), [['embeddings', 3], ['embeddings', 6], ['embeddings', 3]])
  })

  test('OpenAI embeddings from a native Gemini channel, and Gemini embedContent from an OpenAI channel', async ({ assert }) => {
    const user = await seedUser()
    const fromGemini = await openai(user.key).embeddings.create({ model: 'gemini-embedding-001', input: ['one', 'two'] })
    assert.equal(mock.lastRequest()!.path, '/v1beta/models/gemini-embedding-001:batchEmbedContents')
    assert.deepEqual(fromGemini.data.map((d) => d.embedding), [MOCK_VECTOR, MOCK_VECTOR])

    const ai = genai(user.key)
    const fromOpenAi = await ai.models.embedContent({ model: 'text-embedding-3-large', contents: ['hello', 'world'] })
    assert.equal(mock.lastRequest()!.path, '/v1/embeddings')
    assert.deepEqual(JSON.parse(mock.lastRequest()!.body).input, ['hello', 'world'])
    assert.deepEqual(fromOpenAi.embeddings!.map((e) => e.values), [MOCK_VECTOR, MOCK_VECTOR])
    const rows = await usageRows(user.userId)
    assert.include(rows[0], { endpoint: 'embeddings', provider: 'google', estimated: true })
    assert.include(rows[1], { provider: 'openai', prompt_tokens: 6, estimated: false })
    assert.match(rows[1].endpoint, /^gemini\.(batchEmbedContents|embedContent)$/)
  })

  test("a Gemini client's taskType and title reach a google channel with each request", async ({ assert }) => {
    const user = await seedUser()
    await genai(user.key).models.embedContent({ model: 'gemini-embedding-001', contents: ['one', 'two'], config: { taskType: 'RETRIEVAL_DOCUMENT', title: 'Doc' } })
    const sent = JSON.parse(mock.lastRequest()!.body)
    assert.deepEqual(
      sent.requests.map((r: any) => [r.content.parts[0].text, r.taskType, r.title]),
      [
        ['one', 'RETRIEVAL_DOCUMENT', 'Doc'],
        ['two', 'RETRIEVAL_DOCUMENT', 'Doc'],
      ]
    )
  })
})

test.group('POST /v1/images/generations', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'openai', provider: 'openai', baseUrl: mock.url, models: ['gpt-image-*', 'dall-e-*'] })
    await setPrice({ model: 'gpt-image-*', input: '0', output: '0', perImage: '0.04' })
    await refreshCaches()
    return () => mock.stop()
  })

  test('b64_json and url answers through the openai SDK; billed per image', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const client = openai(user.key)
    const b64 = await client.images.generate({ model: 'gpt-image-1', prompt: 'a cat', size: '1024x1024', n: 2 })
    assert.deepEqual(b64.data!.map((d) => d.b64_json), ['aW1hZ2U=', 'aW1hZ2U='])
    const url = await client.images.generate({ model: 'dall-e-3', prompt: 'a dog', response_format: 'url' })
    assert.equal(url.data![0].url, 'https://mock.example/img0.png')

    const rows = await usageRows(user.userId)
    assert.include(rows[0], { endpoint: 'images.generations', images: 2, cost: '0.080000000000' })
    assert.include(rows[1], { images: 1, cost: '0.000000000000' })
    const money = await balanceAndLedger(user.userId)
    assert.equal(money.balance, '0.920000000000')
  })

  test('a model whose channels have no images endpoint is refused', async ({ assert }) => {
    await seedChannel({ name: 'claude', provider: 'anthropic', baseUrl: mock.url, models: ['claude-*'] })
    const user = await seedUser()
    const response = await post('/v1/images/generations', { model: 'claude-x', prompt: 'p' }, { authorization: `Bearer ${user.key}` })
    assert.equal(response.status, 400)
    assert.equal(((await response.json()) as any).error.code, 'unsupported_endpoint')
  })
})
