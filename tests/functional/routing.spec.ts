import { test } from '@japa/runner'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { post, resetDatabase, seedChannel, seedUser, startMock } from '#tests/helpers'

const hello = [{ role: 'user', content: 'hi' }]
/** Each channel's path on the mock, in its kind's canonical form (gemini: Google's /v1beta/openai) */
const basePath = (provider: string) => (provider === 'gemini' ? '/gemini/v1beta/openai' : `/${provider}/v1`)

test.group('Routing: seed 000 prefix table and channel priority', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    // One channel per provider kind, each behind its own path on the mock, serving no listed models:
    // only the prefix table can send traffic to them.
    for (const provider of ['openai', 'gemini', 'deepseek', 'openrouter', 'zai'] as const) {
      await seedChannel({ name: provider, provider, baseUrl: `${mock.origin}${basePath(provider)}`, models: [] })
    }
    return () => mock.stop()
  })

  const table: Array<[string, string, string]> = [
    ['gpt-4o', 'openai', 'gpt-4o'],
    ['o3-mini', 'openai', 'o3-mini'],
    ['chatgpt-4o-latest', 'openai', 'chatgpt-4o-latest'],
    ['gemini-2.5-flash', 'gemini', 'gemini-2.5-flash'],
    ['google/gemini-2.0', 'gemini', 'gemini-2.0'],
    ['deepseek-chat', 'deepseek', 'deepseek-chat'],
    ['deepseek/deepseek-r1', 'deepseek', 'deepseek-r1'],
    ['openrouter/auto', 'openrouter', 'auto'],
    ['nex-agi/nex-n2-pro:free', 'openrouter', 'nex-agi/nex-n2-pro:free'],
    ['zai/glm-4.6', 'zai', 'glm-4.6'],
    ['some-local-model', 'openai', 'some-local-model'],
  ]

  test('{0} goes to the {1} channel as "{2}"')
    .with(table)
    .run(async ({ assert }, [model, provider, upstreamModel]) => {
      const user = await seedUser()
      const response = await post('/v1/chat/completions', { model, messages: hello }, { authorization: `Bearer ${user.key}` })
      assert.equal(response.status, 200)
      const seen = mock.lastRequest()!
      assert.equal(seen.path, `${basePath(provider)}/chat/completions`)
      assert.equal(JSON.parse(seen.body).model, upstreamModel)
    })

  test('a channel that lists the model wins over the prefix table; higher priority first', async ({ assert }) => {
    await seedChannel({ name: 'low', baseUrl: `${mock.origin}/low/v1`, models: ['gpt-4o*'], priority: 1 })
    await seedChannel({ name: 'high', baseUrl: `${mock.origin}/high/v1`, models: ['gpt-4o*'], priority: 5 })
    const user = await seedUser()
    for (let i = 0; i < 5; i++) {
      await post('/v1/chat/completions', { model: 'gpt-4o-mini', messages: hello }, { authorization: `Bearer ${user.key}` })
      assert.equal(mock.lastRequest()!.path, '/high/v1/chat/completions')
    }
  })
})
