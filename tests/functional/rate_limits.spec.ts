import { test } from '@japa/runner'
import { createApiKey } from '#actions/issue_api_key'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { post, refreshCaches, resetDatabase, seedChannel, seedUser, startMock } from '#tests/helpers'

const hello = [{ role: 'user', content: 'hi' }]

test.group('Rate limits: RPM and TPM, per key and per plan', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'mock', baseUrl: mock.url, models: ['*'] })
    return () => mock.stop()
  })

  test('key RPM: the 4th request in a minute is 429 with Retry-After and x-ratelimit headers', async ({ assert }) => {
    const user = await seedUser({ key: { rpm: 3 } })
    const auth = { authorization: `Bearer ${user.key}` }
    const first = await post('/v1/chat/completions', { model: 'm', messages: hello }, auth)
    assert.equal(first.status, 200)
    assert.equal(first.headers.get('x-ratelimit-limit-requests'), '3')
    assert.equal(first.headers.get('x-ratelimit-remaining-requests'), '2')
    await post('/v1/chat/completions', { model: 'm', messages: hello }, auth)
    const third = await post('/v1/chat/completions', { model: 'm', messages: hello, stream: true }, auth)
    assert.equal(third.headers.get('x-ratelimit-remaining-requests'), '0')
    await third.text()
    const fourth = await post('/v1/chat/completions', { model: 'm', messages: hello }, auth)
    assert.equal(fourth.status, 429)
    const body: any = await fourth.json()
    assert.equal(body.error.code, 'rate_limit_exceeded')
    assert.equal(body.error.type, 'rate_limit_error')
    const retryAfter = Number(fourth.headers.get('retry-after'))
    assert.isAbove(retryAfter, 0)
    assert.isAtMost(retryAfter, 60)
    assert.equal(fourth.headers.get('x-ratelimit-remaining-requests'), '0')
    // Listing models is not rate limited.
    const models = await fetch(`http://${process.env.HOST}:${process.env.PORT}/v1/models`, { headers: auth })
    assert.equal(models.status, 200)
  })

  test("plan RPM (seed 003's free tier style) counts all of a user's keys together", async ({ assert }) => {
    const user = await seedUser({ plan: { name: 'free', rpm: 2 } })
    const { key: second } = await createApiKey({ userRef: user.email })
    await refreshCaches()
    assert.equal((await post('/v1/chat/completions', { model: 'm', messages: hello }, { authorization: `Bearer ${user.key}` })).status, 200)
    assert.equal((await post('/v1/chat/completions', { model: 'm', messages: hello }, { authorization: `Bearer ${second}` })).status, 200)
    const third = await post('/v1/chat/completions', { model: 'm', messages: hello }, { authorization: `Bearer ${second}` })
    assert.equal(third.status, 429)
    assert.equal(third.headers.get('x-ratelimit-limit-requests'), '2')
  })

  test('key TPM: refused once the minute tokens are spent, with token headers', async ({ assert }) => {
    // Each call uses 12 + 5 = 17 tokens; the limit 30 admits two calls.
    const user = await seedUser({ key: { tpm: 30 } })
    const auth = { authorization: `Bearer ${user.key}` }
    const first = await post('/v1/chat/completions', { model: 'm', messages: hello }, auth)
    assert.equal(first.headers.get('x-ratelimit-limit-tokens'), '30')
    assert.equal(first.headers.get('x-ratelimit-remaining-tokens'), '30')
    await new Promise((r) => setTimeout(r, 20))
    const second = await post('/v1/chat/completions', { model: 'm', messages: hello }, auth)
    assert.equal(second.status, 200)
    assert.equal(second.headers.get('x-ratelimit-remaining-tokens'), '13')
    await new Promise((r) => setTimeout(r, 20))
    const third = await post('/v1/chat/completions', { model: 'm', messages: hello }, auth)
    assert.equal(third.status, 429)
    assert.equal(third.headers.get('x-ratelimit-remaining-tokens'), '0')
    assert.equal(((await third.json()) as any).error.code, 'rate_limit_exceeded')
  })

  test('plan TPM', async ({ assert }) => {
    const user = await seedUser({ plan: { name: 'tpm-plan', tpm: 10 } })
    const auth = { authorization: `Bearer ${user.key}` }
    assert.equal((await post('/v1/chat/completions', { model: 'm', messages: hello }, auth)).status, 200)
    await new Promise((r) => setTimeout(r, 20))
    assert.equal((await post('/v1/chat/completions', { model: 'm', messages: hello }, auth)).status, 429)
  })
})

test.group('Rate limits in every wire format', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'anthropic', provider: 'anthropic', baseUrl: mock.url, models: ['claude-*'] })
    await seedChannel({ name: 'google', provider: 'google', baseUrl: `${mock.origin}/v1beta`, models: ['gemini-*'] })
    return () => mock.stop()
  })

  test('429 from /v1/messages is an Anthropic error, from /v1beta a Google one, both with Retry-After', async ({ assert }) => {
    const user = await seedUser({ key: { rpm: 1 } })
    const messages = (key: string) =>
      post('/v1/messages', { model: 'claude-x', max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] }, { 'x-api-key': key, 'anthropic-version': '2023-06-01' })
    assert.equal((await messages(user.key)).status, 200)
    const limited = await messages(user.key)
    assert.equal(limited.status, 429)
    assert.isNotNull(limited.headers.get('retry-after'))
    const body: any = await limited.json()
    assert.equal(body.type, 'error')
    assert.equal(body.error.type, 'rate_limit_error')

    const other = await seedUser({ key: { rpm: 1 } })
    const gemini = () =>
      post('/v1beta/models/gemini-x:generateContent', { contents: [{ role: 'user', parts: [{ text: 'hi' }] }] }, { 'x-goog-api-key': other.key })
    assert.equal((await gemini()).status, 200)
    const refused = await gemini()
    assert.equal(refused.status, 429)
    const googleBody: any = await refused.json()
    assert.equal(googleBody.error.status, 'RESOURCE_EXHAUSTED')
    assert.equal(googleBody.error.code, 429)
  })
})
