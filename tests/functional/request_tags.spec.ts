import { test } from '@japa/runner'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { post, resetDatabase, seedChannel, seedPrice, seedUser, startMock, usageRows, type SeededUser } from '#tests/helpers'

const chat = (extra: Record<string, unknown> = {}) => ({ model: 'tag-model', messages: [{ role: 'user', content: 'hi' }], ...extra })
const bearer = (user: SeededUser, headers: Record<string, string> = {}) => ({ authorization: `Bearer ${user.key}`, ...headers })
const anthropic = (user: SeededUser, headers: Record<string, string> = {}) => ({
  'x-api-key': user.key,
  'anthropic-version': '2023-06-01',
  ...headers,
})

test.group('Request tags: recorded on the usage row', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'tag-mock', baseUrl: mock.url, models: ['tag-*'] })
    await seedPrice('tag-model', '1', '2')
    return () => mock.stop()
  })

  test('x-gateway-tags and x-litellm-tags land on the row, trimmed, case kept; untagged rows are NULL', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    await (await post('/v1/chat/completions', chat(), bearer(user, { 'x-gateway-tags': ' Team-A, feature:search ,,' }))).text()
    await (await post('/v1/chat/completions', chat(), bearer(user, { 'x-litellm-tags': 'prod/eu' }))).text()
    await (await post('/v1/chat/completions', chat(), bearer(user, { 'x-gateway-tags': 'a,b', 'x-litellm-tags': 'b,c' }))).text()
    await (await post('/v1/chat/completions', chat(), bearer(user))).text()
    const rows = await usageRows(user.userId)
    assert.deepEqual(
      rows.map((r) => r.tags),
      [['Team-A', 'feature:search'], ['prod/eu'], ['a', 'b', 'c'], null]
    )
    assert.isTrue(rows.every((r) => r.status === 200))
  })

  test('a chat body\'s metadata.tags are recorded and the body reaches the upstream with its metadata', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const answer = await post('/v1/chat/completions', chat({ metadata: { tags: ['cust:42', 'batch'] } }), bearer(user, { 'x-gateway-tags': 'hdr' }))
    assert.equal(answer.status, 200)
    await answer.text()
    const sent = JSON.parse(mock.lastRequest()!.body.toString())
    assert.deepEqual(sent.metadata, { tags: ['cust:42', 'batch'] })
    const [row] = await usageRows(user.userId)
    assert.deepEqual(row.tags, ['hdr', 'cust:42', 'batch'])
  })

  test('an Anthropic-format call with the header, and streams, are tagged', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const messages = await post(
      '/v1/messages',
      { model: 'tag-model', max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] },
      anthropic(user, { 'x-gateway-tags': 'anthropic-client' })
    )
    assert.equal(messages.status, 200)
    await messages.text()
    const stream = await post('/v1/chat/completions', chat({ stream: true }), bearer(user, { 'x-gateway-tags': 'streamed' }))
    assert.equal(stream.status, 200)
    assert.include(await stream.text(), '[DONE]')
    const rows = await usageRows(user.userId)
    assert.deepEqual(rows.map((r) => [r.endpoint, r.stream, r.tags]), [
      ['messages', false, ['anthropic-client']],
      ['chat.completions', true, ['streamed']],
    ])
  })

  test('a bad tag is a 400 invalid_tags in the endpoint\'s wire format, with a usage row', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const before = mock.requests.length
    const openaiShape = await post('/v1/chat/completions', chat(), bearer(user, { 'x-gateway-tags': 'ok,not ok' }))
    assert.equal(openaiShape.status, 400)
    const openaiError: any = await openaiShape.json()
    assert.equal(openaiError.error.code, 'invalid_tags')
    assert.equal(openaiError.error.type, 'invalid_request_error')
    assert.include(openaiError.error.message, 'not ok')

    const anthropicShape = await post(
      '/v1/messages',
      { model: 'tag-model', max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] },
      anthropic(user, { 'x-litellm-tags': 'x'.repeat(65) })
    )
    assert.equal(anthropicShape.status, 400)
    const anthropicError: any = await anthropicShape.json()
    assert.equal(anthropicError.type, 'error')
    assert.equal(anthropicError.error.type, 'invalid_request_error')
    assert.include(anthropicError.error.message, 'x-litellm-tags')

    const tooMany = await post('/v1/chat/completions', chat({ metadata: { tags: Array.from({ length: 11 }, (_, i) => `t${i}`) } }), bearer(user))
    assert.equal(tooMany.status, 400)
    assert.equal(((await tooMany.json()) as any).error.code, 'invalid_tags')
    assert.equal(mock.requests.length, before, 'nothing reached the upstream')

    const rows = await usageRows(user.userId)
    assert.deepEqual(rows.map((r) => [r.status, r.error_code, r.tags, Number(r.cost)]), [
      [400, 'invalid_tags', null, 0],
      [400, 'invalid_tags', null, 0],
      [400, 'invalid_tags', null, 0],
    ])
  })
})
