import { test } from '@japa/runner'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { post, resetDatabase, seedChannel, seedUser, startMock } from '#tests/helpers'

/**
 * OpenAI's reasoning models refuse `max_tokens` ("Use 'max_completion_tokens'
 * instead"); most clients and tools still send it. Through an OpenAI (or
 * Azure) channel the gateway sends it as `max_completion_tokens` for those
 * models, as LiteLLM does; other models and other vendors keep the body as
 * it came.
 */
test.group('max_tokens for OpenAI reasoning models', (group) => {
  let mock: MockUpstream
  let key: string

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'openai', provider: 'openai', baseUrl: mock.url, models: ['o3-mini', 'gpt-4o', 'gpt-5-chat-latest'] })
    await seedChannel({ name: 'other', provider: 'custom', baseUrl: mock.url, models: ['o3-custom'] })
    key = (await seedUser({ balance: '1' })).key
    return () => mock.stop()
  })

  async function sent(body: Record<string, unknown>) {
    const answer = await post('/v1/chat/completions', { messages: [{ role: 'user', content: 'hi' }], ...body }, { authorization: `Bearer ${key}` })
    await answer.text()
    return { status: answer.status, upstream: JSON.parse(mock.lastRequest()!.body) }
  }

  test('an o-series model on an OpenAI channel gets max_completion_tokens, streamed or not', async ({ assert }) => {
    for (const stream of [false, true]) {
      const { status, upstream } = await sent({ model: 'o3-mini', max_tokens: 50, stream })
      assert.equal(status, 200)
      assert.equal(upstream.max_completion_tokens, 50)
      assert.notProperty(upstream, 'max_tokens')
      assert.equal(upstream.model, 'o3-mini')
    }
  })

  test('other models, a client that sent max_completion_tokens, and other vendors keep the body as it came', async ({ assert }) => {
    let { upstream } = await sent({ model: 'gpt-4o', max_tokens: 50 })
    assert.equal(upstream.max_tokens, 50)
    assert.notProperty(upstream, 'max_completion_tokens')
    ;({ upstream } = await sent({ model: 'gpt-5-chat-latest', max_tokens: 40 }))
    assert.equal(upstream.max_tokens, 40)
    ;({ upstream } = await sent({ model: 'o3-mini', max_tokens: 50, max_completion_tokens: 60 }))
    assert.equal(upstream.max_completion_tokens, 60)
    assert.equal(upstream.max_tokens, 50)
    ;({ upstream } = await sent({ model: 'o3-custom', max_tokens: 50 }))
    assert.equal(upstream.max_tokens, 50)
    assert.notProperty(upstream, 'max_completion_tokens')
  })
})
