import { test } from '@japa/runner'
import { setPrice } from '#actions/set_price'
import { countTokens } from '#gateway/metering/tokenizer'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { balanceAndLedger, post, refreshCaches, resetDatabase, seedChannel, seedUser, startMock, usageRows } from '#tests/helpers'

const auth = (key: string) => ({ authorization: `Bearer ${key}` })

test.group('POST /v1/rerank (Jina / Cohere)', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({
      name: 'rerankers',
      provider: 'custom',
      baseUrl: mock.url,
      models: ['jina-reranker-*', 'cohere-rerank-*', 'bge-reranker-*', 'alias-reranker'],
      modelMapping: { 'alias-reranker': 'jina-reranker-v2-base' },
    })
    await seedChannel({ name: 'claude', provider: 'anthropic', baseUrl: mock.url, models: ['claude-*'] })
    // $2 per 1M tokens: 2,000,000 pico-USD a token.
    await setPrice({ model: 'jina-reranker-*', input: '2', output: '0' })
    await setPrice({ model: 'alias-reranker', input: '2', output: '0' })
    await setPrice({ model: 'cohere-rerank-*', input: '0', output: '0', perRequest: '0.002' })
    await refreshCaches()
    return () => mock.stop()
  })

  test("the client's bytes go up, the upstream's bytes come back; billed from the reported tokens", async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    // Odd spacing and an unknown field: a pass-through sends these bytes as they are.
    const raw = '{"model": "jina-reranker-v2-base",  "query": "capital of France", "documents": ["Paris is the capital", {"text": "Berlin"}, "Rome"], "top_n": 2, "return_documents": true, "truncation": true}'
    const answer = await post('/v1/rerank', raw, auth(user.key))
    assert.equal(answer.status, 200)
    assert.equal(mock.lastRequest()!.path, '/v1/rerank')
    assert.equal(mock.lastRequest()!.body, raw)
    const text = await answer.text()
    const expected = {
      id: 'rerank-mock',
      model: 'jina-reranker-v2-base',
      results: [
        { index: 0, relevance_score: 1, document: { text: 'Paris is the capital' } },
        { index: 1, relevance_score: 0.75, document: { text: 'Berlin' } },
      ],
      usage: { prompt_tokens: 35, total_tokens: 35 },
    }
    assert.equal(text, JSON.stringify(expected))
    assert.match(answer.headers.get('x-request-id')!, /^[0-9a-f-]{36}$/)

    const [row] = await usageRows(user.userId)
    assert.include(row, { endpoint: 'rerank', model: 'jina-reranker-v2-base', status: 200, prompt_tokens: 35, completion_tokens: 0, estimated: false })
    // 35 tokens x $2 / 1M
    assert.equal(row.cost, '0.000070000000')
    assert.equal((await balanceAndLedger(user.userId)).balance, '0.999930000000')
  })

  test("a mapped model: only `model` is rewritten for the upstream", async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const answer = await post('/v1/rerank', { model: 'alias-reranker', query: 'q', documents: ['a'], top_n: 1 }, auth(user.key))
    assert.equal(answer.status, 200)
    assert.deepEqual(JSON.parse(mock.lastRequest()!.body), { model: 'jina-reranker-v2-base', query: 'q', documents: ['a'], top_n: 1 })
    const [row] = await usageRows(user.userId)
    assert.include(row, { model: 'alias-reranker', served_model: 'jina-reranker-v2-base', prompt_tokens: 15, cost: '0.000030000000' })
  })

  test("Cohere's search units times the per-request price; tokens estimated when only search units are billed", async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const body = { model: 'cohere-rerank-v3.5', query: 'q', documents: ['one', 'two'], mock: { search_units: 3 } }
    const answer = await post('/v1/rerank', body, auth(user.key))
    assert.equal(answer.status, 200)
    assert.deepEqual(((await answer.json()) as any).meta.billed_units, { search_units: 3 })
    const single = await post('/v1/rerank', { model: 'cohere-rerank-v3.5', query: 'q', documents: ['one'] }, auth(user.key))
    assert.equal(single.status, 200)

    const rows = await usageRows(user.userId)
    assert.include(rows[0], { endpoint: 'rerank', estimated: true, cost: '0.006000000000' })
    assert.equal(rows[0].prompt_tokens, await countTokens('q\none\ntwo'))
    assert.include(rows[1], { cost: '0.002000000000' })
    assert.equal((await balanceAndLedger(user.userId)).balance, '0.992000000000')
  })

  test('an upstream that reports no usage: tokens counted over the query and documents, marked estimated', async ({ assert }) => {
    const user = await seedUser()
    const documents = ['The quick brown fox', { text: 'jumps over the lazy dog' }]
    const answer = await post('/v1/rerank', { model: 'bge-reranker-nousage', query: 'which animal jumps?', documents }, auth(user.key))
    assert.equal(answer.status, 200)
    assert.notProperty((await answer.json()) as any, 'usage')
    const [row] = await usageRows(user.userId)
    const expected = await countTokens('which animal jumps?\nThe quick brown fox\njumps over the lazy dog')
    assert.isAbove(expected, 5)
    assert.include(row, { endpoint: 'rerank', prompt_tokens: expected, estimated: true, cost: '0.000000000000' })
  })

  test("/v2/rerank (Cohere's v2 SDK) and /rerank are the same endpoint", async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    for (const path of ['/v2/rerank', '/rerank']) {
      const answer = await post(path, { model: 'jina-reranker-v2-base', query: 'q', documents: ['a', 'b'] }, auth(user.key))
      assert.equal(answer.status, 200, path)
      assert.lengthOf(((await answer.json()) as any).results, 2)
      assert.equal(mock.lastRequest()!.path, '/v1/rerank')
    }
    // Errors there are OpenAI-shaped JSON too, not an HTML page.
    const refused = await post('/v2/rerank', { model: 'jina-reranker-v2-base', documents: ['a'] }, auth(user.key))
    assert.equal(refused.status, 400)
    assert.equal(((await refused.json()) as any).error.code, 'invalid_request')
    const rows = await usageRows(user.userId)
    assert.deepEqual(rows.map((r) => [r.endpoint, r.status, r.prompt_tokens]), [['rerank', 200, 25], ['rerank', 200, 25], ['rerank', 400, 0]])
  })

  test('a malformed body is a 400 in the OpenAI shape, with a usage row, and no upstream call', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const before = mock.requests.length
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ model: 'jina-reranker-v2-base', documents: ['a'] }, /^query: /],
      [{ model: 'jina-reranker-v2-base', query: 'q', documents: [] }, /^documents: /],
      [{ model: 'jina-reranker-v2-base', query: 'q', documents: [42] }, /^documents\.0: /],
      [{ model: 'jina-reranker-v2-base', query: 'q', documents: ['a'], top_n: 0 }, /^top_n: /],
      [{ model: 'jina-reranker-v2-base', query: 'q', documents: 'a' }, /^documents: /],
      [{ query: 'q', documents: ['a'] }, /model/],
    ]
    for (const [body, message] of cases) {
      const answer = await post('/v1/rerank', body, auth(user.key))
      assert.equal(answer.status, 400, JSON.stringify(body))
      const error = ((await answer.json()) as any).error
      assert.match(error.message, message)
      assert.equal(error.type, 'invalid_request_error')
    }
    assert.equal(mock.requests.length, before)
    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, cases.length)
    assert.isTrue(rows.every((r) => r.endpoint === 'rerank' && r.status === 400 && r.cost === '0.000000000000'))
  })

  test('a model only Anthropic channels serve: 400 unsupported_endpoint', async ({ assert }) => {
    const user = await seedUser()
    const answer = await post('/v1/rerank', { model: 'claude-sonnet-4', query: 'q', documents: ['a'] }, auth(user.key))
    assert.equal(answer.status, 400)
    const error = ((await answer.json()) as any).error
    assert.equal(error.code, 'unsupported_endpoint')
    assert.include(error.message, 'rerank')
    const [row] = await usageRows(user.userId)
    assert.include(row, { endpoint: 'rerank', status: 400, error_code: 'unsupported_endpoint' })
  })
})

test.group('POST /v1/moderations', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'openai', provider: 'openai', baseUrl: mock.url, models: ['omni-moderation-*', 'text-moderation-*'] })
    await seedChannel({ name: 'claude', provider: 'anthropic', baseUrl: mock.url, models: ['claude-*'] })
    return () => mock.stop()
  })

  test('no model: omni-moderation-latest is routed and asked for; the answer relayed; tokens estimated for the row', async ({ assert }) => {
    const user = await seedUser()
    const answer = await post('/v1/moderations', { input: 'I will kill the process' }, auth(user.key))
    assert.equal(answer.status, 200)
    const body = (await answer.json()) as any
    assert.isTrue(body.results[0].flagged)
    assert.equal(body.model, 'omni-moderation-latest')
    assert.equal(mock.lastRequest()!.path, '/v1/moderations')
    assert.deepEqual(JSON.parse(mock.lastRequest()!.body), { input: 'I will kill the process', model: 'omni-moderation-latest' })

    const multimodal = [
      { type: 'text', text: 'a friendly cat' },
      { type: 'image_url', image_url: { url: 'https://example.com/cat.png' } },
    ]
    const raw = JSON.stringify({ model: 'text-moderation-stable', input: multimodal })
    const second = await post('/v1/moderations', raw, auth(user.key))
    assert.equal(second.status, 200)
    assert.equal(mock.lastRequest()!.body, raw)
    assert.lengthOf(((await second.json()) as any).results, 2)

    const rows = await usageRows(user.userId)
    assert.include(rows[0], { endpoint: 'moderations', model: 'omni-moderation-latest', status: 200, estimated: true, cost: '0.000000000000' })
    assert.equal(rows[0].prompt_tokens, await countTokens('I will kill the process'))
    assert.include(rows[1], { model: 'text-moderation-stable', estimated: true })
    assert.equal(rows[1].prompt_tokens, await countTokens('a friendly cat'))
  })

  test('priced: tokens x input price + the per-request price', async ({ assert }) => {
    await setPrice({ model: 'omni-moderation-*', input: '1', output: '0', perRequest: '0.001' })
    await refreshCaches()
    const user = await seedUser({ balance: '1' })
    const answer = await post('/v1/moderations', { input: ['hello', 'world'] }, auth(user.key))
    assert.equal(answer.status, 200)
    const [row] = await usageRows(user.userId)
    const tokens = await countTokens('hello\nworld')
    assert.equal(row.prompt_tokens, tokens)
    // tokens x $1 / 1M = tokens x 1,000,000 pico; + $0.001
    assert.equal(row.cost, (0.001 + tokens / 1e6).toFixed(12))
  })

  test('bad input and a model without a moderations channel are 400s with rows', async ({ assert }) => {
    const user = await seedUser()
    const bad = await post('/v1/moderations', { input: 5 }, auth(user.key))
    assert.equal(bad.status, 400)
    assert.match(((await bad.json()) as any).error.message, /^input: /)
    const empty = await post('/v1/moderations', { model: '', input: 'x' }, auth(user.key))
    assert.equal(empty.status, 400)
    const claude = await post('/v1/moderations', { model: 'claude-sonnet-4', input: 'x' }, auth(user.key))
    assert.equal(claude.status, 400)
    assert.equal(((await claude.json()) as any).error.code, 'unsupported_endpoint')
    const rows = await usageRows(user.userId)
    assert.deepEqual(rows.map((r) => [r.endpoint, r.status]), [['moderations', 400], ['moderations', 400], ['moderations', 400]])
    assert.equal(rows[0].model, 'omni-moderation-latest')
  })
})
