import { test } from '@japa/runner'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import app from '@adonisjs/core/services/app'
import OpenAI from 'openai'
import { withApiLane } from '#gateway/http/api_lane'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { baseUrl, post, resetDatabase, seedChannel, seedUser, startMock, usageRows } from '#tests/helpers'

/**
 * A team moving from LiteLLM keeps its clients' base URL as LiteLLM's docs
 * give it, `http://host:4000` without /v1: the OpenAI SDKs then call
 * `/chat/completions`, `/models`... at the root, which LiteLLM serves as it
 * serves `/v1/...`. Cline's LiteLLM provider, for one, defaults to such a base
 * URL and sends its key in LiteLLM's `x-litellm-api-key` header for the
 * model-info call. The gateway serves the same paths, with the same answers,
 * errors in OpenAI's shape and a usage row each.
 */
test.group('LiteLLM-style base URL: the OpenAI paths without /v1', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'mock', baseUrl: mock.url, models: ['mock-a', 'mock-*'] })
    return () => mock.stop()
  })

  test('the OpenAI SDK pointed at the bare host chats, streams, embeds and lists models', async ({ assert }) => {
    const user = await seedUser()
    const client = new OpenAI({ apiKey: user.key, baseURL: baseUrl(), maxRetries: 0 })

    const answer = await client.chat.completions.create({ model: 'mock-a', messages: [{ role: 'user', content: 'hi' }] })
    assert.isString(answer.choices[0].message.content)
    assert.equal(mock.lastRequest()!.path, '/v1/chat/completions')

    let streamed = ''
    const stream = await client.chat.completions.create({ model: 'mock-a', messages: [{ role: 'user', content: 'hi' }], stream: true })
    for await (const chunk of stream) streamed += chunk.choices[0]?.delta?.content ?? ''
    assert.isAbove(streamed.length, 0)

    const vectors = await client.embeddings.create({ model: 'mock-embed', input: 'hello' })
    assert.isAbove(vectors.data[0].embedding.length, 0)

    const models = await client.models.list()
    assert.include(
      models.data.map((m) => m.id),
      'mock-a'
    )
    const one = await client.models.retrieve('mock-a')
    assert.equal(one.id, 'mock-a')

    const rows = await usageRows(user.userId)
    assert.deepEqual(
      rows.map((r) => [r.endpoint, r.status]),
      [
        ['chat.completions', 200],
        ['chat.completions', 200],
        ['embeddings', 200],
      ]
    )
  })

  test('the Responses API and legacy completions answer at the root too', async ({ assert }) => {
    const user = await seedUser()
    const auth = { authorization: `Bearer ${user.key}` }
    const responses = await post('/responses', { model: 'mock-a', input: 'hi' }, auth)
    assert.equal(responses.status, 200)
    assert.equal(((await responses.json()) as any).object, 'response')
    const completions = await post('/completions', { model: 'mock-a', prompt: 'hi' }, auth)
    assert.equal(completions.status, 200)
    assert.equal(((await completions.json()) as any).object, 'text_completion')
  })

  test("OpenAI's legacy engine paths, under /v1 and without: the engine is the model, over the body's", async ({ assert }) => {
    const user = await seedUser()
    const auth = { authorization: `Bearer ${user.key}` }
    const sentModel = () => JSON.parse(mock.lastRequest()!.body).model

    const chat = await post('/v1/engines/mock-a/chat/completions', { messages: [{ role: 'user', content: 'hi' }] }, auth)
    assert.equal(chat.status, 200)
    assert.equal(((await chat.json()) as any).object, 'chat.completion')
    assert.equal(mock.lastRequest()!.path, '/v1/chat/completions')
    assert.equal(sentModel(), 'mock-a')
    const streamed = await post('/engines/mock-b/chat/completions?api-version=1', { model: 'mock-a', messages: [{ role: 'user', content: 'hi' }], stream: true }, auth)
    assert.equal(streamed.status, 200)
    assert.include(await streamed.text(), 'data: [DONE]')
    assert.equal(sentModel(), 'mock-b')
    const completion = await post('/v1/engines/mock-a/completions', { prompt: 'hi' }, auth)
    assert.equal(completion.status, 200)
    assert.equal(((await completion.json()) as any).object, 'text_completion')
    assert.equal(mock.lastRequest()!.path, '/v1/completions')
    const bare = await post('/engines/mock-a/completions', { prompt: 'hi' }, auth)
    assert.equal(bare.status, 200)
    const vectors = await post('/v1/engines/mock-embed/embeddings', { input: 'hello' }, auth)
    assert.equal(vectors.status, 200)
    assert.isAbove(((await vectors.json()) as any).data[0].embedding.length, 0)
    assert.equal(sentModel(), 'mock-embed')
    assert.equal((await post('/engines/mock-embed/embeddings', { input: 'hello' }, auth)).status, 200)

    // An operation engines never had, an empty engine: OpenAI's 404 in JSON; a malformed engine name: 400.
    for (const path of ['/v1/engines/mock-a/edits', '/engines//completions', '/v1/engines/mock-a/images/generations']) {
      const missing = await post(path, { prompt: 'hi' }, auth)
      assert.equal(missing.status, 404, path)
      assert.equal(((await missing.json()) as any).error.code, 'not_found', path)
    }
    const malformed = await post('/v1/engines/%zz/completions', { prompt: 'hi' }, auth)
    assert.equal(malformed.status, 400)
    assert.equal(((await malformed.json()) as any).error.code, 'invalid_url')

    const rows = await usageRows(user.userId)
    assert.deepEqual(
      rows.map((r) => [r.endpoint, r.model, r.status]),
      [
        ['chat.completions', 'mock-a', 200],
        ['chat.completions', 'mock-b', 200],
        ['completions', 'mock-a', 200],
        ['completions', 'mock-a', 200],
        ['embeddings', 'mock-embed', 200],
        ['embeddings', 'mock-embed', 200],
        ['completions', '(none)', 400],
      ]
    )
  })

  test("errors there are OpenAI's JSON, never the pages' HTML", async ({ assert }) => {
    const badKey = await post('/chat/completions', { model: 'mock-a', messages: [] }, { authorization: 'Bearer sk-gw-nope' })
    assert.equal(badKey.status, 401)
    assert.match(badKey.headers.get('content-type') ?? '', /application\/json/)
    assert.equal(((await badKey.json()) as any).error.code, 'invalid_api_key')

    const user = await seedUser()
    const notJson = await post('/chat/completions', '{"model":', { authorization: `Bearer ${user.key}` })
    assert.equal(notJson.status, 400)
    assert.equal(((await notJson.json()) as any).error.code, 'invalid_json')

    const unknownModel = await fetch(`${baseUrl()}/models/no-such-model-anywhere`, { headers: { authorization: `Bearer ${user.key}` } })
    assert.equal(unknownModel.status, 404)
    assert.equal(((await unknownModel.json()) as any).error.code, 'model_not_found')

    const noKey = await fetch(`${baseUrl()}/models`)
    assert.equal(noKey.status, 401)
    assert.equal(((await noKey.json()) as any).error.code, 'invalid_api_key')

    const badUrl = await fetch(`${baseUrl()}/models/%zz`, { headers: { authorization: `Bearer ${user.key}` } })
    assert.equal(badUrl.status, 400)
    assert.equal(((await badUrl.json()) as any).error.code, 'invalid_url')
  })

  test("LiteLLM's x-litellm-api-key header carries the key, with or without Bearer", async ({ assert }) => {
    const user = await seedUser()
    for (const value of [user.key, `Bearer ${user.key}`]) {
      const models = await fetch(`${baseUrl()}/v1/models`, { headers: { 'x-litellm-api-key': value } })
      assert.equal(models.status, 200)
      const chat = await post('/chat/completions', { model: 'mock-a', messages: [{ role: 'user', content: 'hi' }] }, { 'x-litellm-api-key': value })
      assert.equal(chat.status, 200)
    }
    const wrong = await post('/v1/chat/completions', { model: 'mock-a', messages: [] }, { 'x-litellm-api-key': 'sk-gw-wrong' })
    assert.equal(wrong.status, 401)
  })

  test('the router serves the same paths when the API lane is off', async ({ assert }) => {
    const server = await app.container.make('server')
    const handler = server.handle.bind(server) as (req: IncomingMessage, res: ServerResponse) => unknown
    const routed: Server = createServer(withApiLane(handler, false))
    await new Promise<void>((resolve) => routed.listen(0, '127.0.0.1', resolve))
    try {
      const url = `http://127.0.0.1:${(routed.address() as AddressInfo).port}`
      const user = await seedUser()
      const client = new OpenAI({ apiKey: user.key, baseURL: url, maxRetries: 0 })
      const answer = await client.chat.completions.create({ model: 'mock-a', messages: [{ role: 'user', content: 'hi' }] })
      assert.isString(answer.choices[0].message.content)
      const models = await client.models.list()
      assert.isAbove(models.data.length, 0)
      const badKey = await fetch(`${url}/embeddings`, { method: 'POST', headers: { authorization: 'Bearer sk-gw-nope' }, body: '{}' })
      assert.equal(badKey.status, 401)
      assert.equal(((await badKey.json()) as any).error.code, 'invalid_api_key')
      // The legacy engine paths, resolved by the router's routes as by the lane
      const headers = { 'authorization': `Bearer ${user.key}`, 'content-type': 'application/json' }
      for (const path of ['/v1/engines/mock-c/chat/completions', '/engines/mock-c/chat/completions']) {
        const engine = await fetch(`${url}${path}`, { method: 'POST', headers, body: JSON.stringify({ messages: [{ role: 'user', content: 'hi' }] }) })
        assert.equal(engine.status, 200, path)
        assert.equal(JSON.parse(mock.lastRequest()!.body).model, 'mock-c')
      }
      const unknown = await fetch(`${url}/v1/engines/mock-c/edits`, { method: 'POST', headers, body: '{}' })
      assert.equal(unknown.status, 404)
      assert.equal(((await unknown.json()) as any).error.code, 'not_found')
    } finally {
      await new Promise((resolve) => routed.close(resolve))
    }
  })
})
