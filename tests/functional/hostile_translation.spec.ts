import { test } from '@japa/runner'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { gateway, post, resetDatabase, seedChannel, seedUser, startMock, usageRows } from '#tests/helpers'

/**
 * Issue 8, item 2: a body the translation cannot read is the client's 400,
 * in the client's format, and never a failure of the channel it was being
 * translated for (three of them used to cool a healthy channel down).
 */
test.group('Issue 8: malformed bodies on translated routes', (group) => {
  let mock: MockUpstream
  let chatChannel: number
  let anthropicChannel: number
  let geminiChannel: number

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    chatChannel = (await seedChannel({ name: 'chat', provider: 'custom', baseUrl: mock.url, models: ['gpt-*'] })).id
    anthropicChannel = (await seedChannel({ name: 'claude', provider: 'anthropic', baseUrl: mock.url, models: ['claude-*'] })).id
    geminiChannel = (await seedChannel({ name: 'google', provider: 'google', baseUrl: mock.url, models: ['gemini-*'] })).id
    return () => mock.stop()
  })

  group.each.setup(async () => (await gateway()).health.reset())

  test('tools: {} on /v1/messages to an OpenAI-chat channel: 400 in Anthropic format, channel untouched', async ({ assert }) => {
    const user = await seedUser()
    const auth = { 'x-api-key': user.key }
    const before = mock.requests.length
    for (let i = 0; i < 5; i++) {
      const response = await post('/v1/messages', { model: 'gpt-x', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }], tools: {} }, auth)
      assert.equal(response.status, 400)
      const body: any = await response.json()
      assert.equal(body.type, 'error')
      assert.equal(body.error.type, 'invalid_request_error')
      assert.include(body.error.message, 'tools')
    }
    assert.equal(mock.requests.length, before)
    const health = (await gateway()).health.stateOf(chatChannel)
    assert.deepEqual([health.state, health.failures], ['closed', 0])
    const ok = await post('/v1/messages', { model: 'gpt-x', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] }, auth)
    assert.equal(ok.status, 200)
  })

  test('shapes past the envelope that the decoders cannot read: 400 in each client format, no channel failure', async ({ assert }) => {
    const user = await seedUser()
    const cases: Array<{ path: string; body: unknown; headers: Record<string, string>; check: (b: any) => void }> = [
      {
        // chat -> anthropic: tool_calls that is not a list
        path: '/v1/chat/completions',
        body: { model: 'claude-x', messages: [{ role: 'assistant', content: 'x', tool_calls: { a: 1 } }, { role: 'user', content: 'hi' }] },
        headers: { authorization: `Bearer ${user.key}` },
        check: (b) => assert.equal(b.error.type, 'invalid_request_error'),
      },
      {
        // messages -> gemini: content blocks of the wrong kind
        path: '/v1/messages',
        body: { model: 'gemini-x', max_tokens: 5, messages: [{ role: 'user', content: [{ type: 'tool_result', tool_use_id: 'a', content: 5 }] }], system: [5] },
        headers: { 'x-api-key': user.key },
        check: (b) => assert.equal(b.type, 'error'),
      },
      {
        // gemini -> chat: parts that is not a list
        path: '/v1beta/models/gpt-x:generateContent',
        body: { contents: [{ role: 'user', parts: 5 }] },
        headers: { 'x-goog-api-key': user.key },
        check: (b) => assert.equal(b.error.status, 'INVALID_ARGUMENT'),
      },
      {
        // responses -> anthropic: input items that are not items
        path: '/v1/responses',
        body: { model: 'claude-x', input: [{ type: 'message', role: 'user', content: 7 }, 5, null, { type: 'function_call_output', output: {} }] },
        headers: { authorization: `Bearer ${user.key}` },
        check: (b) => assert.equal(b.error.type, 'invalid_request_error'),
      },
      {
        // embeddings -> gemini wire: inputs that are neither text nor token ids
        path: '/v1/embeddings',
        body: { model: 'gemini-embed', input: [{ text: 'x' }] },
        headers: { authorization: `Bearer ${user.key}` },
        check: (b) => assert.equal(b.error.code, 'invalid_request'),
      },
    ]
    for (const c of cases) {
      const response = await post(c.path, c.body, c.headers)
      const body: any = await response.json()
      // The Anthropic -> Gemini codecs tolerate this one (served); the others cannot be translated.
      const expected = c.path === '/v1/messages' ? [200, 400] : [400]
      assert.oneOf(response.status, expected, `${c.path}: ${JSON.stringify(body)}`)
      if (response.status === 400) c.check(body)
    }
    const { health } = await gateway()
    for (const id of [chatChannel, anthropicChannel, geminiChannel]) assert.equal(health.stateOf(id).failures, 0)
    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, cases.length)
    assert.isTrue(rows.every((r) => r.status < 500))
  })
})
