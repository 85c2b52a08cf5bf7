import { test } from '@japa/runner'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import app from '@adonisjs/core/services/app'
import OpenAI from 'openai'
import { withApiLane } from '#gateway/http/api_lane'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { baseUrl, post, resetDatabase, seedChannel, seedUser, startMock, usageRows } from '#tests/helpers'

/**
 * Clients set up for Gemini through the OpenAI SDKs use Google's OpenAI
 * compatibility base, `https://generativelanguage.googleapis.com/v1beta/openai/`,
 * and keep it with only the host changed: the gateway serves the /v1
 * endpoints there, OpenAI's shapes and errors (not Google's, as elsewhere
 * under /v1beta), the key as Bearer.
 */
test.group("Google's OpenAI compatibility base: /v1beta/openai/", (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'mock', baseUrl: mock.url, models: ['mock-a', 'mock-*'] })
    await seedChannel({ name: 'openai', provider: 'openai', baseUrl: mock.url, models: ['gpt-image-*'] })
    return () => mock.stop()
  })

  test('the OpenAI SDK with the Gemini base URL chats (streamed and not), embeds, draws and lists models', async ({ assert }) => {
    const user = await seedUser()
    const client = new OpenAI({ apiKey: user.key, baseURL: `${baseUrl()}/v1beta/openai/`, maxRetries: 0 })

    const answer = await client.chat.completions.create({ model: 'mock-a', messages: [{ role: 'user', content: 'hi' }] })
    assert.isString(answer.choices[0].message.content)
    assert.equal(mock.lastRequest()!.path, '/v1/chat/completions')

    let streamed = ''
    const stream = await client.chat.completions.create({ model: 'mock-a', messages: [{ role: 'user', content: 'hi' }], stream: true })
    for await (const chunk of stream) streamed += chunk.choices[0]?.delta?.content ?? ''
    assert.equal(streamed, 'tok0 tok1 tok2 tok3 tok4 ')

    const vectors = await client.embeddings.create({ model: 'mock-embed', input: 'hello' })
    assert.isAbove(vectors.data[0].embedding.length, 0)

    const image = await client.images.generate({ model: 'gpt-image-1', prompt: 'a cat' })
    assert.isAbove(image.data!.length, 0)

    const listed = []
    for await (const model of client.models.list()) listed.push(model.id)
    assert.include(listed, 'mock-a')
    assert.equal((await client.models.retrieve('mock-a')).id, 'mock-a')

    const rows = await usageRows(user.userId)
    assert.deepEqual(
      rows.map((r) => [r.endpoint, r.model, r.status, r.stream]),
      [
        ['chat.completions', 'mock-a', 200, false],
        ['chat.completions', 'mock-a', 200, true],
        ['embeddings', 'mock-embed', 200, false],
        ['images.generations', 'gpt-image-1', 200, false],
      ]
    )
  })

  test("errors there are OpenAI's JSON, as the OpenAI SDKs read them, never Google's", async ({ assert }) => {
    const badKey = await post('/v1beta/openai/chat/completions', { model: 'mock-a', messages: [] }, { authorization: 'Bearer sk-gw-nope' })
    assert.equal(badKey.status, 401)
    assert.deepInclude(((await badKey.json()) as any).error, { code: 'invalid_api_key', type: 'authentication_error' })

    const user = await seedUser()
    const auth = { authorization: `Bearer ${user.key}` }
    const notJson = await post('/v1beta/openai/embeddings', '{"model":', auth)
    assert.equal(notJson.status, 400)
    assert.deepInclude(((await notJson.json()) as any).error, { code: 'invalid_json', type: 'invalid_request_error' })

    const upstream = await post('/v1beta/openai/chat/completions', { model: 'mock-a', messages: [{ role: 'user', content: 'hi' }], mock: { status: 400 } }, auth)
    assert.equal(upstream.status, 400)
    assert.deepEqual(((await upstream.json()) as any).error, { message: 'mock upstream failure 400', type: 'invalid_request_error', code: 'mock_400', param: null })

    const badUrl = await fetch(`${baseUrl()}/v1beta/openai/models/%zz`, { headers: auth })
    assert.equal(badUrl.status, 400)
    assert.deepInclude(((await badUrl.json()) as any).error, { code: 'invalid_url', type: 'invalid_request_error' })

    const noKey = await fetch(`${baseUrl()}/v1beta/openai/models`)
    assert.equal(noKey.status, 401)
    assert.equal(((await noKey.json()) as any).error.code, 'invalid_api_key')

    const unknown = await fetch(`${baseUrl()}/v1beta/openai/files`, { headers: auth })
    assert.equal(unknown.status, 404)
    const unknownError = ((await unknown.json()) as any).error
    assert.isString(unknownError.type)
    assert.notProperty(unknownError, 'status')

    // Gemini's own paths under /v1beta keep Google's shape.
    const native = await fetch(`${baseUrl()}/v1beta/models`)
    assert.equal(((await native.json()) as any).error.status, 'UNAUTHENTICATED')
  })

  test('the router serves the same paths when the API lane is off', async ({ assert }) => {
    const server = await app.container.make('server')
    const handler = server.handle.bind(server) as (req: IncomingMessage, res: ServerResponse) => unknown
    const routed: Server = createServer(withApiLane(handler, false))
    await new Promise<void>((resolve) => routed.listen(0, '127.0.0.1', resolve))
    try {
      const url = `http://127.0.0.1:${(routed.address() as AddressInfo).port}`
      const user = await seedUser()
      const client = new OpenAI({ apiKey: user.key, baseURL: `${url}/v1beta/openai/`, maxRetries: 0 })
      const answer = await client.chat.completions.create({ model: 'mock-a', messages: [{ role: 'user', content: 'hi' }] })
      assert.isString(answer.choices[0].message.content)
      const vectors = await client.embeddings.create({ model: 'mock-embed', input: 'hello' })
      assert.isAbove(vectors.data.length, 0)
      const image = await client.images.generate({ model: 'gpt-image-1', prompt: 'a cat' })
      assert.isAbove(image.data!.length, 0)
      assert.isAbove((await client.models.list()).data.length, 0)
      const badKey = await fetch(`${url}/v1beta/openai/chat/completions`, { method: 'POST', headers: { authorization: 'Bearer sk-gw-nope' }, body: '{}' })
      assert.equal(badKey.status, 401)
      assert.equal(((await badKey.json()) as any).error.code, 'invalid_api_key')
      const rows = await usageRows(user.userId)
      assert.deepEqual(
        rows.map((r) => [r.endpoint, r.status]),
        [
          ['chat.completions', 200],
          ['embeddings', 200],
          ['images.generations', 200],
        ]
      )
    } finally {
      await new Promise((resolve) => routed.close(resolve))
    }
  })
})
