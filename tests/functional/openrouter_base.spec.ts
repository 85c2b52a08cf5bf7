import { test } from '@japa/runner'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import app from '@adonisjs/core/services/app'
import Anthropic from '@anthropic-ai/sdk'
import OpenAI from 'openai'
import { withApiLane } from '#gateway/http/api_lane'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { baseUrl, post, resetDatabase, seedChannel, seedPrice, seedUser, startMock, usageRows } from '#tests/helpers'

/**
 * OpenRouter's base URL is `https://openrouter.ai/api/v1`. Its SDKs, the AI
 * SDK's OpenRouter provider and the OpenRouter providers of Cline, Roo Code
 * and Kilo Code take a custom base URL and users keep OpenRouter's path with
 * the host changed; OpenRouter's Claude Code guide sets
 * `ANTHROPIC_BASE_URL=https://openrouter.ai/api`, and Claude Code appends
 * `/v1/messages`. The gateway serves its /v1 endpoints there, with each
 * endpoint's own error shape.
 */
test.group("OpenRouter's base: /api/v1/", (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'mock', baseUrl: mock.url, models: ['mock-a', 'mock-*'] })
    await seedChannel({ name: 'claude', provider: 'anthropic', baseUrl: mock.url, models: ['claude-*'] })
    await seedPrice('mock-a', '2', '8')
    return () => mock.stop()
  })

  test('the OpenAI SDK with base URL /api/v1 chats (streamed and not), completes, embeds, calls Responses, lists models and looks up a generation', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const client = new OpenAI({ apiKey: user.key, baseURL: `${baseUrl()}/api/v1`, maxRetries: 0 })

    const { data: answer, response } = await client.chat.completions
      .create({ model: 'mock-a', messages: [{ role: 'user', content: 'hi' }], usage: { include: true } } as any)
      .withResponse()
    assert.equal(answer.choices[0].message.content, 'tok0 tok1 tok2 tok3 tok4 ')
    assert.equal(mock.lastRequest()!.path, '/v1/chat/completions')
    // OpenRouter's usage accounting: 12 x $2/M + 5 x $8/M
    assert.equal((answer.usage as any).cost, 0.000064)

    let streamed = ''
    const stream = await client.chat.completions.create({ model: 'mock-a', messages: [{ role: 'user', content: 'hi' }], stream: true })
    for await (const chunk of stream) streamed += chunk.choices[0]?.delta?.content ?? ''
    assert.equal(streamed, 'tok0 tok1 tok2 tok3 tok4 ')

    const completion = await client.completions.create({ model: 'mock-a', prompt: 'Say' })
    assert.isString(completion.choices[0].text)
    assert.equal(mock.lastRequest()!.path, '/v1/completions')

    const vectors = await client.embeddings.create({ model: 'mock-embed', input: 'hello' })
    assert.isAbove(vectors.data[0].embedding.length, 0)

    const responded = await client.responses.create({ model: 'mock-a', input: 'hi', store: false })
    assert.isString(responded.output_text)

    const listed = []
    for await (const model of client.models.list()) listed.push(model.id)
    assert.includeMembers(listed, ['mock-a'])
    const one = (await client.models.retrieve('mock-a')) as any
    assert.equal(one.id, 'mock-a')
    assert.equal(one.pricing.prompt, '0.000002')

    // OpenRouter's generation lookup, as Cline's OpenRouter provider asks it for a request's cost
    const lookup = await fetch(`${baseUrl()}/api/v1/generation?id=${response.headers.get('x-request-id')}`, {
      headers: { authorization: `Bearer ${user.key}` },
    })
    assert.equal(lookup.status, 200)
    assert.include(((await lookup.json()) as any).data, { model: 'mock-a', tokens_prompt: 12, tokens_completion: 5, total_cost: 0.000064 })

    const rows = await usageRows(user.userId)
    assert.deepEqual(
      rows.map((r) => [r.endpoint, r.model, r.status, r.stream]),
      [
        ['chat.completions', 'mock-a', 200, false],
        ['chat.completions', 'mock-a', 200, true],
        ['completions', 'mock-a', 200, false],
        ['embeddings', 'mock-embed', 200, false],
        ['responses', 'mock-a', 200, false],
      ]
    )
  })

  test("Claude Code's set-up from OpenRouter's guide (base URL /api, the key as Bearer): messages native and translated, streamed, counted, models in Anthropic's shape", async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    // ANTHROPIC_AUTH_TOKEN: Claude Code sends it as Authorization: Bearer
    const client = new Anthropic({ authToken: user.key, apiKey: null, baseURL: `${baseUrl()}/api`, maxRetries: 0 })

    const native = await client.messages.create({ model: 'claude-sonnet-4-5', max_tokens: 64, messages: [{ role: 'user', content: 'Hello!' }] })
    assert.equal((native.content[0] as any).text, 'tok0 tok1 tok2 tok3 tok4 ')
    assert.equal(mock.lastRequest()!.path, '/v1/messages')
    assert.equal(mock.lastRequest()!.headers['x-api-key'], 'upstream-secret')

    const stream = client.messages.stream({ model: 'mock-a', max_tokens: 64, messages: [{ role: 'user', content: 'Hello!' }] })
    const translated = await stream.finalMessage()
    assert.equal((translated.content[0] as any).text, 'tok0 tok1 tok2 tok3 tok4 ')
    assert.equal(mock.lastRequest()!.path, '/v1/chat/completions')

    const counted = await client.messages.countTokens({ model: 'claude-sonnet-4-5', messages: [{ role: 'user', content: 'Hello!' }] })
    assert.isAbove(counted.input_tokens, 0)

    // Claude Code's gateway model discovery: GET {base}/v1/models with anthropic-version
    const models = await client.models.list()
    assert.include(
      models.data.map((m) => m.id),
      'mock-a'
    )
    assert.equal(models.data[0].type, 'model')

    const rows = await usageRows(user.userId)
    assert.deepEqual(
      rows.map((r) => [r.endpoint, r.model, r.provider, r.status, r.stream]),
      [
        ['messages', 'claude-sonnet-4-5', 'anthropic', 200, false],
        ['messages', 'mock-a', 'custom', 200, true],
        ['messages.count_tokens', 'claude-sonnet-4-5', 'anthropic', 200, false],
      ]
    )
  })

  test("errors are each endpoint's own: Anthropic's under /api/v1/messages, OpenAI's elsewhere", async ({ assert }) => {
    const badKey = await post('/api/v1/messages', { model: 'claude-sonnet-4-5', max_tokens: 8, messages: [] }, { authorization: 'Bearer sk-gw-nope' })
    assert.equal(badKey.status, 401)
    assert.deepEqual(await badKey.json(), { type: 'error', error: { type: 'authentication_error', message: 'Invalid API key' } })

    const user = await seedUser({ balance: '1' })
    const auth = { authorization: `Bearer ${user.key}` }
    const notJson = await post('/api/v1/messages/count_tokens', '{"model":', auth)
    assert.equal(notJson.status, 400)
    assert.equal(((await notJson.json()) as any).error.type, 'invalid_request_error')

    const upstream = await post('/api/v1/messages', { model: 'claude-sonnet-4-5', max_tokens: 8, messages: [{ role: 'user', content: 'hi' }], mock: { status: 400 } }, auth)
    assert.equal(upstream.status, 400)
    assert.equal(((await upstream.json()) as any).type, 'error')

    const chatKey = await post('/api/v1/chat/completions', { model: 'mock-a', messages: [] }, { authorization: 'Bearer sk-gw-nope' })
    assert.equal(chatKey.status, 401)
    assert.deepInclude(((await chatKey.json()) as any).error, { code: 'invalid_api_key', type: 'authentication_error' })

    const unknownModel = await post('/api/v1/chat/completions', { model: 'nobody-serves-this', messages: [{ role: 'user', content: 'hi' }] }, auth)
    assert.equal(unknownModel.status, 404)
    assert.equal(((await unknownModel.json()) as any).error.code, 'model_not_found')

    const noKey = await fetch(`${baseUrl()}/api/v1/models`)
    assert.equal(noKey.status, 401)
    assert.equal(((await noKey.json()) as any).error.code, 'invalid_api_key')

    // The management API keeps its own prefix and auth: a user key there is refused, not served as a model call.
    const admin = await fetch(`${baseUrl()}/api/admin/users`, { headers: auth })
    assert.equal(admin.status, 403)
  })

  test('the router serves the same paths when the API lane is off', async ({ assert }) => {
    const server = await app.container.make('server')
    const handler = server.handle.bind(server) as (req: IncomingMessage, res: ServerResponse) => unknown
    const routed: Server = createServer(withApiLane(handler, false))
    await new Promise<void>((resolve) => routed.listen(0, '127.0.0.1', resolve))
    try {
      const url = `http://127.0.0.1:${(routed.address() as AddressInfo).port}`
      const user = await seedUser({ balance: '1' })
      const client = new OpenAI({ apiKey: user.key, baseURL: `${url}/api/v1`, maxRetries: 0 })
      assert.isString((await client.chat.completions.create({ model: 'mock-a', messages: [{ role: 'user', content: 'hi' }] })).choices[0].message.content)
      assert.isString((await client.completions.create({ model: 'mock-a', prompt: 'Say' })).choices[0].text)
      assert.isAbove((await client.embeddings.create({ model: 'mock-embed', input: 'hello' })).data.length, 0)
      assert.isString((await client.responses.create({ model: 'mock-a', input: 'hi', store: false })).output_text)
      const claude = new Anthropic({ authToken: user.key, apiKey: null, baseURL: `${url}/api`, maxRetries: 0 })
      assert.equal(((await claude.messages.create({ model: 'claude-sonnet-4-5', max_tokens: 64, messages: [{ role: 'user', content: 'Hi' }] })).content[0] as any).type, 'text')
      assert.isAbove((await claude.messages.countTokens({ model: 'claude-sonnet-4-5', messages: [{ role: 'user', content: 'Hi' }] })).input_tokens, 0)
      const badKey = await fetch(`${url}/api/v1/messages`, { method: 'POST', headers: { authorization: 'Bearer sk-gw-nope' }, body: '{}' })
      assert.equal(badKey.status, 401)
      assert.equal(((await badKey.json()) as any).error.type, 'authentication_error')
      const rows = await usageRows(user.userId)
      assert.deepEqual(
        rows.map((r) => [r.endpoint, r.status]),
        [
          ['chat.completions', 200],
          ['completions', 200],
          ['embeddings', 200],
          ['responses', 200],
          ['messages', 200],
          ['messages.count_tokens', 200],
        ]
      )
    } finally {
      await new Promise((resolve) => routed.close(resolve))
    }
  })
})
