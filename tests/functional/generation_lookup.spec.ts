import { test } from '@japa/runner'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { createUser } from '#actions/create_user'
import { PanelClient, textOf } from '#tests/panel_client'
import { baseUrl, post, resetDatabase, seedChannel, seedPrice, seedUser, startMock, usageRows } from '#tests/helpers'

async function lookup(key: string | null, id: string) {
  const response = await fetch(`${baseUrl()}/v1/generation?id=${encodeURIComponent(id)}`, { headers: key ? { authorization: `Bearer ${key}` } : {} })
  return { status: response.status, json: (await response.json()) as any }
}

test.group('GET /v1/generation: one request\'s accounting (OpenRouter\'s shape)', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'gen-mock', baseUrl: mock.url, models: ['gen-*'] })
    await seedPrice('gen-priced', '1', '2')
    return () => mock.stop()
  })

  test('the x-request-id of a call gives its tokens, exact cost, latency and how it ended', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const auth = { authorization: `Bearer ${user.key}` }
    const answer = await post('/v1/chat/completions', { model: 'gen-priced', messages: [{ role: 'user', content: 'hi' }] }, auth)
    await answer.text()
    const id = answer.headers.get('x-request-id')!
    const { status, json } = await lookup(user.key, id)
    assert.equal(status, 200)
    const [row] = await usageRows(user.userId)
    assert.equal(json.data.id, id)
    assert.equal(json.data.model, 'gen-priced')
    assert.equal(json.data.tokens_prompt, row.prompt_tokens)
    assert.equal(json.data.tokens_completion, row.completion_tokens)
    assert.equal(json.data.cost, '0.000022')
    assert.equal(json.data.total_cost, 0.000022)
    assert.isFalse(json.data.streamed)
    assert.isFalse(json.data.cancelled)
    assert.equal(json.data.status, 200)
    assert.equal(json.data.provider_name, 'custom')
    assert.isNumber(json.data.latency)

    const streamed = await post('/v1/chat/completions', { model: 'gen-priced', stream: true, messages: [{ role: 'user', content: 'hi' }] }, auth)
    await streamed.text()
    const streamedInfo = await lookup(user.key, streamed.headers.get('x-request-id')!)
    assert.isTrue(streamedInfo.json.data.streamed)
    assert.isNumber(streamedInfo.json.data.time_to_first_token)
  })

  test("another account's request is a 404; a malformed id a 400; no key a 401, in OpenAI's error shape", async ({ assert }) => {
    const owner = await seedUser({ balance: '1' })
    const other = await seedUser()
    const answer = await post('/v1/chat/completions', { model: 'gen-priced', messages: [{ role: 'user', content: 'hi' }] }, { authorization: `Bearer ${owner.key}` })
    await answer.text()
    const id = answer.headers.get('x-request-id')!
    const foreign = await lookup(other.key, id)
    assert.equal(foreign.status, 404)
    assert.equal(foreign.json.error.code, 'not_found')
    const malformed = await lookup(owner.key, 'chatcmpl-123')
    assert.equal(malformed.status, 400)
    assert.include(malformed.json.error.message, 'x-request-id')
    assert.equal((await lookup(null, id)).status, 401)
  })

  test('an admin opens a request a user quotes by its id from the Usage page', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const answer = await post('/v1/chat/completions', { model: 'gen-priced', messages: [{ role: 'user', content: 'hi' }] }, { authorization: `Bearer ${user.key}` })
    await answer.text()
    const id = answer.headers.get('x-request-id')!
    const [row] = await usageRows(user.userId)
    const email = `gen-admin-${Date.now()}@test.local`
    await createUser({ email, password: 'password123', role: 'admin' })
    const admin = new PanelClient()
    await admin.login(email, 'password123')
    const found = await admin.get(`/admin/usage?request_id=${id.toUpperCase()}`)
    assert.equal(found.status, 302)
    assert.equal(found.location, `/admin/usage/${row.id}`)
    const missing = await admin.get('/admin/usage?request_id=01937b2e-0000-7000-8000-000000000000')
    assert.equal(missing.location, '/admin/usage')
    assert.include(textOf((await admin.get('/admin/usage')).html), 'No request 01937b2e-0000-7000-8000-000000000000')
  })
})
