import { test } from '@japa/runner'
import { setPrice } from '#actions/set_price'
import { toPico } from '#gateway/metering/money'
import { forgetTokens } from '#gateway/providers/vertex/google_token'
import { MockVertex, MOCK_PROJECT } from '#tests/fixtures/mock_vertex'
import { genai } from '#tests/clients'
import { balanceAndLedger, gateway, openai, post, refreshCaches, resetDatabase, seedChannel, seedUser, usageRows } from '#tests/helpers'

const MODELS = `/v1/projects/${MOCK_PROJECT}/locations/us-central1/publishers/google/models`
// $0.10 per 1M input tokens
const PER_TOKEN = 100_000n

/**
 * Embeddings on `vertex` channels: OpenAI's /v1/embeddings and Gemini's
 * embedContent / batchEmbedContents through Vertex's `:predict`
 * (`instances`, `predictions[].embeddings`), against the mock Vertex
 * (tests/fixtures/mock_vertex.ts), billed by Vertex's token counts.
 */
test.group('Vertex AI embeddings (:predict)', (group) => {
  let mock: MockVertex

  group.setup(async () => {
    await resetDatabase()
    forgetTokens()
    mock = new MockVertex()
    await mock.start()
    await seedChannel({
      name: 'vertex-embed',
      provider: 'vertex',
      baseUrl: `${mock.origin}/v1?location=us-central1`,
      apiKey: mock.serviceAccount(),
      models: ['text-embedding-005', 'text-multilingual-embedding-002', 'gemini-embedding-001'],
    })
    for (const model of ['text-embedding-005', 'text-multilingual-embedding-002', 'gemini-embedding-001']) await setPrice({ model, input: '0.1', output: '0' })
    await refreshCaches()
    return () => mock.stop()
  })

  test('OpenAI SDK: instances and outputDimensionality sent, predictions answered as floats and base64, billed by statistics.token_count', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const client = openai(user.key)
    const floats = await client.embeddings.create({ model: 'text-embedding-005', input: ['one two three', 'four five'], dimensions: 4, encoding_format: 'float' })
    const sent = mock.lastRequest()
    assert.equal(sent.path, `${MODELS}/text-embedding-005:predict`)
    assert.deepEqual(JSON.parse(sent.body), { instances: [{ content: 'one two three' }, { content: 'four five' }], parameters: { outputDimensionality: 4 } })
    assert.deepEqual(
      floats.data.map((d) => [d.index, d.embedding.length, d.embedding[0]]),
      [
        [0, 4, 0.5],
        [1, 4, 1.5],
      ]
    )
    assert.deepEqual(floats.usage, { prompt_tokens: 5, total_tokens: 5 })
    // The SDK's default: base64, decoded by the SDK back to the same numbers
    const decoded = await client.embeddings.create({ model: 'text-embedding-005', input: 'one two three' })
    assert.equal(decoded.data[0].embedding.length, 3)
    assert.equal(decoded.data[0].embedding[0], 0.5)
    assert.closeTo(decoded.data[0].embedding[1], -0.125, 1e-7)
    assert.notProperty(JSON.parse(mock.lastRequest().body), 'parameters')

    const rows = await usageRows(user.userId)
    assert.deepEqual(rows.map((r) => [r.endpoint, r.model, r.provider, r.prompt_tokens, r.estimated]), [
      ['embeddings', 'text-embedding-005', 'vertex', 5, false],
      ['embeddings', 'text-embedding-005', 'vertex', 3, false],
    ])
    assert.equal(toPico(rows[0].cost), 5n * PER_TOKEN)
    const money = await balanceAndLedger(user.userId)
    assert.equal(money.balance, money.ledger)
    assert.equal(toPico(money.balance), toPico('1') - 8n * PER_TOKEN)
  })

  test("Gemini SDK: embedContent and batchEmbedContents with taskType and title as each instance's task_type and title", async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const ai = genai(user.key)
    const one = await ai.models.embedContent({ model: 'text-multilingual-embedding-002', contents: 'hola mundo', config: { taskType: 'RETRIEVAL_DOCUMENT', title: 'Saludo' } })
    assert.deepEqual(JSON.parse(mock.lastRequest().body), { instances: [{ content: 'hola mundo', task_type: 'RETRIEVAL_DOCUMENT', title: 'Saludo' }] })
    assert.equal(mock.lastRequest().path, `${MODELS}/text-multilingual-embedding-002:predict`)
    assert.deepEqual(one.embeddings?.map((e) => e.values?.length), [3])
    const many = await ai.models.embedContent({ model: 'text-multilingual-embedding-002', contents: ['uno', 'dos tres'], config: { taskType: 'RETRIEVAL_QUERY', outputDimensionality: 2 } })
    assert.deepEqual(JSON.parse(mock.lastRequest().body), {
      instances: [
        { content: 'uno', task_type: 'RETRIEVAL_QUERY' },
        { content: 'dos tres', task_type: 'RETRIEVAL_QUERY' },
      ],
      parameters: { outputDimensionality: 2 },
    })
    assert.deepEqual(many.embeddings?.map((e) => e.values), [
      [0.5, -0.125],
      [1.5, -0.125],
    ])
    const rows = await usageRows(user.userId)
    assert.deepEqual(rows.map((r) => [r.prompt_tokens, r.estimated]), [
      [2, false],
      [3, false],
    ])
  })

  test('gemini-embedding-001 takes one input a request: one served, several refused with the reason before Vertex is asked, nothing billed', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const client = openai(user.key)
    const one = await client.embeddings.create({ model: 'gemini-embedding-001', input: 'just one', encoding_format: 'float' })
    assert.lengthOf(one.data, 1)
    assert.equal(mock.lastRequest().path, `${MODELS}/gemini-embedding-001:predict`)
    const asked = mock.requests.length
    const response = await post('/v1/embeddings', { model: 'gemini-embedding-001', input: ['a', 'b'] }, { authorization: `Bearer ${user.key}` })
    assert.equal(response.status, 400)
    const error = ((await response.json()) as any).error
    assert.include(error.message, 'one input per request')
    assert.equal(error.type, 'invalid_request_error')
    assert.equal(error.code, 'too_many_inputs')
    // More than Vertex's 250 instances, refused alike
    const tooMany = await post('/v1/embeddings', { model: 'text-embedding-005', input: Array.from({ length: 251 }, () => 'x') }, { authorization: `Bearer ${user.key}` })
    assert.equal(tooMany.status, 400)
    assert.include(((await tooMany.json()) as any).error.message, 'at most 250 inputs')
    assert.equal(mock.requests.length, asked)
    const rows = await usageRows(user.userId)
    assert.equal(rows.filter((r) => r.status === 200).length, 1)
    const money = await balanceAndLedger(user.userId)
    assert.equal(toPico(money.balance), toPico('1') - 2n * PER_TOKEN)
  })

  test('predictions without statistics: the inputs counted by the gateway (estimated)', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    mock.embedCounts = false
    try {
      const answer = await openai(user.key).embeddings.create({ model: 'text-embedding-005', input: 'count these words please', encoding_format: 'float' })
      assert.isAbove(answer.usage.prompt_tokens, 0)
      const rows = await usageRows(user.userId)
      assert.include(rows[0], { prompt_tokens: answer.usage.prompt_tokens, estimated: true, status: 200 })
    } finally {
      mock.embedCounts = true
    }
  })

  test('a hostile Vertex: predictions short of the inputs or without values are no answer (502, nothing billed); token counts negative, NaN or 1e300 not believed', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const ask = () => post('/v1/embeddings', { model: 'text-embedding-005', input: ['one two', 'three four five'], encoding_format: 'float' }, { authorization: `Bearer ${user.key}` })
    try {
      for (const hostile of [
        (p: any[]) => p.slice(0, 1),
        (p: any[]) => [...p, p[0]],
        (p: any[]) => [p[0], { embeddings: { statistics: { token_count: 3 } } }],
        (p: any[]) => [p[0], { embeddings: { values: ['0.5', null], statistics: { token_count: 3 } } }],
      ]) {
        mock.embedPredictions = hostile
        // Each failure counts against the channel: its circuit is closed again for the next case
        await (await gateway()).health.reset()
        const response = await ask()
        assert.equal(response.status, 502)
        const body = (await response.json()) as any
        assert.equal(body.error.code, 'provider_error')
      }
      const failed = await usageRows(user.userId)
      assert.isTrue(failed.every((row) => row.cost === '0.000000000000'))

      for (const count of [-5, 'NaN', 1e300]) {
        mock.embedPredictions = (p) => p.map((prediction, i) => (i === 0 ? { embeddings: { ...prediction.embeddings, statistics: { token_count: count } } } : prediction))
        const response = await ask()
        assert.equal(response.status, 200)
        const body = (await response.json()) as any
        assert.lengthOf(body.data, 2)
        assert.isBelow(body.usage.prompt_tokens, 100)
        assert.include((await usageRows(user.userId)).at(-1), { estimated: true, status: 200 })
      }
    } finally {
      mock.embedPredictions = null
      await (await gateway()).health.reset()
    }
  })
})
