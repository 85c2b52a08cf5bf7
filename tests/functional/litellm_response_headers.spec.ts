import { test } from '@japa/runner'
import { setModelFallbacks } from '#actions/set_model_fallbacks'
import { setPrice } from '#actions/set_price'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { gateway, post, refreshCaches, resetDatabase, seedChannel, seedPrice, seedUser, startMock, usageRows } from '#tests/helpers'

/**
 * LiteLLM's proxy answers every call with x-litellm-* headers its users'
 * tooling reads (the call's cost, the key's spend, the call id, retries and
 * fallbacks): https://docs.litellm.ai/docs/proxy/response_headers. The
 * gateway writes the ones it knows on generations in every wire format.
 */
test.group('LiteLLM response headers', (group) => {
  let mock: MockUpstream
  let down: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    down = await startMock({ status: 503 })
    await seedChannel({ name: 'openai', provider: 'openai', baseUrl: mock.url, models: ['gpt-4o', 'small'], priority: 1 })
    await seedChannel({ name: 'claude', provider: 'anthropic', baseUrl: mock.url, apiKey: 'anthropic-secret', models: ['claude-*'] })
    await seedChannel({ name: 'google', provider: 'google', baseUrl: `${mock.origin}/v1beta`, models: ['gemini-*'] })
    // Tried first for gpt-4o (priority 2) and down: the request's one retry.
    await seedChannel({ name: 'down', provider: 'openai', baseUrl: down.url, models: ['gpt-4o', 'big'], priority: 2 })
    await seedPrice('gpt-4o', '2', '8')
    await seedPrice('claude-*', '3', '15')
    await seedPrice('gemini-*', '1', '4')
    await seedPrice('small', '1', '1')
    return async () => {
      ;(await gateway()).health.reset()
      await mock.stop()
      await down.stop()
    }
  })

  const hello = [{ role: 'user', content: 'hi' }]

  test('a whole answer states its row’s cost, the call id, the model asked for, the key’s spend before it; a retry is counted', async ({ assert }) => {
    const user = await seedUser({ balance: '10', key: { spendLimit: '5' } })
    const answer = await post('/v1/chat/completions', { model: 'gpt-4o', messages: hello }, { authorization: `Bearer ${user.key}` })
    assert.equal(answer.status, 200)
    await answer.json()
    const [row] = await usageRows(user.userId)
    assert.isAbove(Number(row.cost), 0)
    assert.equal(Number(answer.headers.get('x-litellm-response-cost')), Number(row.cost))
    assert.equal(answer.headers.get('x-litellm-call-id'), row.request_id)
    assert.equal(answer.headers.get('x-litellm-call-id'), answer.headers.get('x-request-id'))
    // The model that answered is the one asked for: no model group (the body names it).
    assert.isNull(answer.headers.get('x-litellm-model-group'))
    assert.equal(answer.headers.get('x-litellm-key-spend'), '0')
    assert.equal(answer.headers.get('x-litellm-key-max-budget'), '5')
    assert.match(answer.headers.get('x-litellm-response-duration-ms')!, /^\d+$/)
    // The down channel (priority 2) first, then the one that answered: one retry, no fallback.
    assert.equal(answer.headers.get('x-litellm-attempted-retries'), '1')
    assert.isNull(answer.headers.get('x-litellm-attempted-fallbacks'))
    // The deployment's headers are off by default: the operator's upstream is not named.
    assert.isNull(answer.headers.get('x-litellm-model-id'))
    assert.isNull(answer.headers.get('x-litellm-model-api-base'))

    // The next call states the key's spend with the first one in it.
    const again = await post('/v1/chat/completions', { model: 'gpt-4o', messages: hello }, { authorization: `Bearer ${user.key}` })
    await again.json()
    assert.equal(Number(again.headers.get('x-litellm-key-spend')), Number(row.cost))
  })

  test('a stream carries them without the cost (unknown when its headers go out, as LiteLLM does)', async ({ assert }) => {
    const user = await seedUser({ balance: '10' })
    const answer = await post('/v1/chat/completions', { model: 'small', messages: hello, stream: true }, { authorization: `Bearer ${user.key}` })
    assert.equal(answer.status, 200)
    await answer.text()
    const [row] = await usageRows(user.userId)
    assert.equal(answer.headers.get('x-litellm-call-id'), row.request_id)
    assert.isNull(answer.headers.get('x-litellm-response-cost'))
    assert.isNull(answer.headers.get('x-litellm-key-max-budget'))
    assert.isNull(answer.headers.get('x-litellm-attempted-retries'))
  })

  test('Anthropic and Gemini answers carry them too, translated or passed through', async ({ assert }) => {
    const user = await seedUser({ balance: '10' })
    const anthropic = { 'x-api-key': user.key, 'anthropic-version': '2023-06-01' }
    for (const model of ['claude-sonnet-4', 'gemini-2.5-flash']) {
      const answer = await post('/v1/messages', { model, max_tokens: 50, messages: hello }, anthropic)
      assert.equal(answer.status, 200, model)
      await answer.json()
      assert.isAbove(Number(answer.headers.get('x-litellm-response-cost')), 0)
    }
    const gemini = await post('/v1beta/models/gemini-2.5-flash:generateContent', { contents: [{ role: 'user', parts: [{ text: 'hi' }] }] }, { 'x-goog-api-key': user.key })
    assert.equal(gemini.status, 200)
    await gemini.json()
    const rows = await usageRows(user.userId)
    assert.equal(Number(gemini.headers.get('x-litellm-response-cost')), Number(rows.at(-1).cost))
    assert.equal(gemini.headers.get('x-litellm-call-id'), rows.at(-1).request_id)
  })

  test('a fallback model that answers is counted as one attempted fallback, the model group stays the one asked for', async ({ assert }) => {
    await setModelFallbacks({ model: 'big', fallbacks: ['small'] })
    await refreshCaches()
    const user = await seedUser({ balance: '10' })
    const answer = await post('/v1/chat/completions', { model: 'big', messages: hello }, { authorization: `Bearer ${user.key}` })
    assert.equal(answer.status, 200)
    assert.equal(((await answer.json()) as any).model, 'small')
    assert.equal(answer.headers.get('x-litellm-attempted-fallbacks'), '1')
    assert.isNull(answer.headers.get('x-litellm-attempted-retries'))
    assert.equal(answer.headers.get('x-litellm-model-group'), 'big')
  })

  test('a model asked for by a name Node refuses in a header (non-Latin-1) is answered and billed, the group percent-encoded', async ({ assert }) => {
    const user = await seedUser({ balance: '10' })
    const anthropic = { 'x-api-key': user.key, 'anthropic-version': '2023-06-01' }
    // A thinking suffix on a glob channel's client-chosen name: the model group is the name as sent.
    const model = 'claude-模型-\u2028ü-thinking'
    for (const stream of [false, true]) {
      const answer = await post('/v1/messages', { model, max_tokens: 50, messages: hello, stream }, anthropic)
      assert.equal(answer.status, 200, `stream: ${stream}`)
      await answer.text()
      assert.equal(answer.headers.get('x-litellm-model-group'), encodeURIComponent(model))
      assert.equal(decodeURIComponent(answer.headers.get('x-litellm-model-group')!), model)
    }
    // Through Gemini's path too (the name decoded from the URL).
    const gemini = await post(`/v1beta/models/${encodeURIComponent('claude-模型-thinking')}:generateContent`, { contents: [{ role: 'user', parts: [{ text: 'hi' }] }] }, { 'x-goog-api-key': user.key })
    assert.equal(gemini.status, 200)
    await gemini.json()
    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 3)
    assert.isTrue(rows.every((row: any) => Number(row.cost) > 0 && row.status === 200))
    // A plain ASCII group is written as it is.
    const plain = await post('/v1/messages', { model: 'claude-x-thinking', max_tokens: 50, messages: hello }, anthropic)
    await plain.text()
    assert.equal(plain.headers.get('x-litellm-model-group'), 'claude-x-thinking')
  })

  test('with LITELLM_DEPLOYMENT_HEADERS the channel is named, its base URL', async ({ assert }) => {
    // (A base URL cannot hold credentials or a query: channel_base_url refuses them; the header would leave them out.)
    const channel = await seedChannel({ name: 'named', provider: 'openai', baseUrl: `${mock.url}/`, models: ['secret-model'] })
    const service = (await gateway()).service
    service.deploymentHeaders = true
    try {
      const user = await seedUser({ balance: '10' })
      const answer = await post('/v1/chat/completions', { model: 'secret-model', messages: hello }, { authorization: `Bearer ${user.key}` })
      await answer.text()
      assert.equal(answer.headers.get('x-litellm-model-id'), String(channel.id))
      const base = answer.headers.get('x-litellm-model-api-base')!
      assert.equal(base, mock.url.replace(/\/+$/, ''))
    } finally {
      service.deploymentHeaders = false
    }
  })

  test('LITELLM_HEADERS=false sends none', async ({ assert }) => {
    const service = (await gateway()).service
    service.litellmHeaders = false
    try {
      const user = await seedUser({ balance: '10' })
      const answer = await post('/v1/chat/completions', { model: 'small', messages: hello }, { authorization: `Bearer ${user.key}` })
      await answer.text()
      assert.isNotNull(answer.headers.get('x-request-id'))
      for (const name of answer.headers.keys()) assert.notMatch(name, /^x-litellm-/)
    } finally {
      service.litellmHeaders = true
    }
  })
})

/**
 * LiteLLM's proxy writes the same headers on its other endpoints: the
 * gateway does on every metered answer it relays, the cost when it is known
 * as the headers go out (a whole answer whose usage is reported or counted
 * before it is sent), never on a stream (speech's audio is one).
 */
test.group('LiteLLM response headers on the other metered endpoints', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    const models = ['text-embedding-3-small', 'gpt-3.5-turbo-instruct', 'gpt-image-1', 'tts-1', 'omni-moderation-latest']
    await seedChannel({ name: 'openai', provider: 'openai', baseUrl: mock.url, models })
    await seedChannel({ name: 'rerankers', provider: 'custom', baseUrl: mock.url, models: ['jina-reranker-*'] })
    await setPrice({ model: 'text-embedding-3-small', input: '0.02', output: '0' })
    await setPrice({ model: 'gpt-3.5-turbo-instruct', input: '1.5', output: '2' })
    await setPrice({ model: 'gpt-image-1', input: '0', output: '0', perImage: '0.04' })
    await setPrice({ model: 'tts-1', input: '0', output: '0', perCharacter: '0.000015' })
    await setPrice({ model: 'omni-moderation-latest', input: '1', output: '0' })
    await setPrice({ model: 'jina-reranker-*', input: '2', output: '0' })
    await refreshCaches()
    return () => mock.stop()
  })

  test('embeddings, legacy completions, images and rerank state the row’s cost and the call id; moderations counted afterwards carry no cost', async ({ assert }) => {
    const user = await seedUser({ balance: '10', key: { spendLimit: '5' } })
    const auth = { authorization: `Bearer ${user.key}` }
    const calls: [string, Record<string, unknown>][] = [
      ['/v1/embeddings', { model: 'text-embedding-3-small', input: 'hello there', encoding_format: 'float' }],
      ['/v1/completions', { model: 'gpt-3.5-turbo-instruct', prompt: 'Say hi' }],
      ['/v1/images/generations', { model: 'gpt-image-1', prompt: 'a cat', n: 2 }],
      ['/v1/rerank', { model: 'jina-reranker-v2-base', query: 'capital', documents: ['Paris', 'Rome'] }],
    ]
    for (const [path, body] of calls) {
      const answer = await post(path, body, auth)
      assert.equal(answer.status, 200, path)
      await answer.text()
      const row = (await usageRows(user.userId)).at(-1)
      assert.isAbove(Number(row.cost), 0, path)
      assert.equal(Number(answer.headers.get('x-litellm-response-cost')), Number(row.cost), path)
      assert.equal(answer.headers.get('x-litellm-call-id'), row.request_id, path)
      assert.equal(answer.headers.get('x-litellm-key-max-budget'), '5', path)
      assert.match(answer.headers.get('x-litellm-response-duration-ms')!, /^\d+$/, path)
    }
    // The key's spend before a call: the four calls above.
    const spent = (await usageRows(user.userId)).reduce((sum: number, row: any) => sum + Number(row.cost), 0)
    const next = await post('/v1/embeddings', calls[0][1], auth)
    await next.text()
    assert.closeTo(Number(next.headers.get('x-litellm-key-spend')), spent, 1e-12)

    // OpenAI's moderations report no usage: counted by the tokenizer once the answer is out, so no cost header.
    const moderation = await post('/v1/moderations', { model: 'omni-moderation-latest', input: 'hello' }, auth)
    assert.equal(moderation.status, 200)
    await moderation.text()
    const row = (await usageRows(user.userId)).at(-1)
    assert.equal(row.endpoint, 'moderations')
    assert.equal(moderation.headers.get('x-litellm-call-id'), row.request_id)
    assert.isNull(moderation.headers.get('x-litellm-response-cost'))
  })

  test('a stream (legacy completions, speech audio) carries them without the cost; LITELLM_HEADERS=false sends none', async ({ assert }) => {
    const user = await seedUser({ balance: '10' })
    const auth = { authorization: `Bearer ${user.key}` }
    const streamed = await post('/v1/completions', { model: 'gpt-3.5-turbo-instruct', prompt: 'Say hi', stream: true }, auth)
    assert.equal(streamed.status, 200)
    await streamed.text()
    const speech = await post('/v1/audio/speech', { model: 'tts-1', input: 'Hello there', voice: 'alloy' }, auth)
    assert.equal(speech.status, 200)
    await speech.arrayBuffer()
    const rows = await usageRows(user.userId)
    assert.deepEqual(rows.map((r: any) => r.endpoint), ['completions', 'audio.speech'])
    for (const [answer, row] of [[streamed, rows[0]], [speech, rows[1]]] as const) {
      assert.equal(answer.headers.get('x-litellm-call-id'), row.request_id)
      assert.isNull(answer.headers.get('x-litellm-response-cost'))
      assert.equal(answer.headers.get('x-litellm-key-spend'), row === rows[0] ? '0' : String(Number(rows[0].cost)))
    }

    const service = (await gateway()).service
    service.litellmHeaders = false
    try {
      const answer = await post('/v1/embeddings', { model: 'text-embedding-3-small', input: 'hi' }, auth)
      await answer.text()
      assert.isNotNull(answer.headers.get('x-request-id'))
      for (const name of answer.headers.keys()) assert.notMatch(name, /^x-litellm-/)
    } finally {
      service.litellmHeaders = true
    }
  })
})
