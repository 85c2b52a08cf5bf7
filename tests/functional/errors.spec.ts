import { test } from '@japa/runner'
import { DateTime } from 'luxon'
import ApiKey from '#models/api_key'
import Channel from '#models/channel'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { post, refreshCaches, resetDatabase, seedChannel, seedPrice, seedUser, startMock, usageRows } from '#tests/helpers'

const hello = [{ role: 'user', content: 'hi' }]

async function expectError(response: Response, status: number, code: string) {
  const body: any = await response.json()
  return { status: response.status, code: body?.error?.code, type: body?.error?.type, message: body?.error?.message, expected: { status, code }, body }
}

test.group('Error table (seed 000 + gateway codes), OpenAI error shape', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'mock', baseUrl: mock.url, models: ['mock-*', 'paid-*'] })
    await seedPrice('paid-*', '1', '1')
    return () => mock.stop()
  })

  test('401 invalid_api_key: missing, unknown, revoked, expired', async ({ assert }) => {
    const user = await seedUser()
    const variants: Record<string, string>[] = [{}, { authorization: 'Bearer sk-gw-nope' }, { 'x-api-key': 'sk-gw-nope' }]
    for (const headers of variants) {
      const r = await expectError(await post('/v1/chat/completions', { model: 'mock-a', messages: hello }, headers), 401, 'invalid_api_key')
      assert.equal(r.status, 401)
      assert.equal(r.code, 'invalid_api_key')
      assert.equal(r.type, 'authentication_error')
    }
    // X-API-Key is accepted like Bearer
    const ok = await post('/v1/chat/completions', { model: 'mock-a', messages: hello }, { 'x-api-key': user.key })
    assert.equal(ok.status, 200)

    await ApiKey.query().where('id', user.keyId).update({ revokedAt: DateTime.now().toSQL() })
    await refreshCaches()
    const revoked = await post('/v1/chat/completions', { model: 'mock-a', messages: hello }, { authorization: `Bearer ${user.key}` })
    assert.equal(revoked.status, 401)

    const other = await seedUser()
    await ApiKey.query().where('id', other.keyId).update({ expiresAt: DateTime.now().minus({ minutes: 1 }).toSQL() })
    await refreshCaches()
    const expired = await post('/v1/chat/completions', { model: 'mock-a', messages: hello }, { authorization: `Bearer ${other.key}` })
    assert.equal(expired.status, 401)
    assert.equal(((await expired.json()) as any).error.code, 'invalid_api_key')
  })

  test('400 invalid_json and 400 missing_model', async ({ assert }) => {
    const user = await seedUser()
    const auth = { authorization: `Bearer ${user.key}` }
    const bad = await expectError(await post('/v1/chat/completions', '{"model": "mock-a", ', auth), 400, 'invalid_json')
    assert.deepEqual([bad.status, bad.code, bad.type], [400, 'invalid_json', 'invalid_request_error'])
    const missing = await expectError(await post('/v1/chat/completions', { messages: hello }, auth), 400, 'missing_model')
    assert.deepEqual([missing.status, missing.code], [400, 'missing_model'])
    const noMessages = await post('/v1/chat/completions', { model: 'mock-a' }, auth)
    assert.equal(noMessages.status, 400)
    // Rejected requests are accounted too (one row each, no cost).
    const rows = await usageRows(user.userId)
    assert.deepEqual(rows.map((r) => [r.status, r.error_code]), [[400, 'invalid_json'], [400, 'missing_model'], [400, 'invalid_request']])
  })

  test('403 model_not_allowed by plan globs and by key globs', async ({ assert }) => {
    const planUser = await seedUser({ plan: { name: 'narrow', models: ['gpt-*'] } })
    const r = await expectError(
      await post('/v1/chat/completions', { model: 'mock-a', messages: hello }, { authorization: `Bearer ${planUser.key}` }),
      403,
      'model_not_allowed'
    )
    assert.deepEqual([r.status, r.code, r.type], [403, 'model_not_allowed', 'permission_error'])

    const keyUser = await seedUser({ keyModels: ['mock-only-*'] })
    const denied = await post('/v1/chat/completions', { model: 'mock-a', messages: hello }, { authorization: `Bearer ${keyUser.key}` })
    assert.equal(denied.status, 403)
    const allowed = await post('/v1/chat/completions', { model: 'mock-only-1', messages: hello }, { authorization: `Bearer ${keyUser.key}` })
    assert.equal(allowed.status, 200)
  })

  test('429 token_limit_exceeded once the monthly quota is used', async ({ assert }) => {
    // Each mock call consumes 12 input tokens: the 2nd call reaches 24 >= 20.
    const user = await seedUser({ plan: { name: 'tiny', monthlyInputTokens: 20 } })
    const auth = { authorization: `Bearer ${user.key}` }
    assert.equal((await post('/v1/chat/completions', { model: 'mock-a', messages: hello }, auth)).status, 200)
    assert.equal((await post('/v1/chat/completions', { model: 'mock-a', messages: hello }, auth)).status, 200)
    const r = await expectError(await post('/v1/chat/completions', { model: 'mock-a', messages: hello }, auth), 429, 'token_limit_exceeded')
    assert.deepEqual([r.status, r.code], [429, 'token_limit_exceeded'])
  })

  test('402 insufficient_balance for a priced model only', async ({ assert }) => {
    const user = await seedUser()
    const auth = { authorization: `Bearer ${user.key}` }
    const r = await expectError(await post('/v1/chat/completions', { model: 'paid-1', messages: hello }, auth), 402, 'insufficient_balance')
    assert.deepEqual([r.status, r.code], [402, 'insufficient_balance'])
    assert.equal((await post('/v1/chat/completions', { model: 'mock-free', messages: hello }, auth)).status, 200)
  })

  test('404 model_not_found when no channel or prefix rule serves the model', async ({ assert }) => {
    const user = await seedUser()
    // No channel lists it; the prefix table sends gpt-* to OpenAI, and there is no openai channel.
    const r = await expectError(await post('/v1/chat/completions', { model: 'gpt-4o', messages: hello }, { authorization: `Bearer ${user.key}` }), 404, 'model_not_found')
    assert.deepEqual([r.status, r.code], [404, 'model_not_found'])
  })

  test('503 no_available_channel when every channel for the model is disabled', async ({ assert }) => {
    const off = await seedChannel({ name: 'off', baseUrl: mock.url, models: ['offline-*'] })
    await Channel.query().where('id', off.id).update({ enabled: false })
    await refreshCaches()
    const user = await seedUser()
    const r = await expectError(await post('/v1/chat/completions', { model: 'offline-1', messages: hello }, { authorization: `Bearer ${user.key}` }), 503, 'no_available_channel')
    assert.deepEqual([r.status, r.code], [503, 'no_available_channel'])
  })

  test('502 provider_error on upstream 5xx and on connection refused', async ({ assert }) => {
    const user = await seedUser()
    const auth = { authorization: `Bearer ${user.key}` }
    const r = await expectError(await post('/v1/chat/completions', { model: 'mock-a', messages: hello, mock: { status: 500 } }, auth), 502, 'provider_error')
    assert.deepEqual([r.status, r.code], [502, 'provider_error'])
    assert.include(r.message, 'HTTP 500')

    await seedChannel({ name: 'dead', baseUrl: 'http://127.0.0.1:9/v1', models: ['dead-*'] })
    const refused = await expectError(await post('/v1/chat/completions', { model: 'dead-1', messages: hello }, auth), 502, 'provider_error')
    assert.deepEqual([refused.status, refused.code], [502, 'provider_error'])
    assert.notInclude(JSON.stringify(refused.body), '    at ')
  })

  test('upstream 4xx reaches the client with its status and message', async ({ assert }) => {
    const user = await seedUser()
    const response = await post('/v1/chat/completions', { model: 'mock-a', messages: hello, mock: { status: 422 } }, { authorization: `Bearer ${user.key}` })
    assert.equal(response.status, 422)
    const body: any = await response.json()
    assert.equal(body.error.message, 'mock upstream failure 422')
    assert.equal(body.error.code, 'mock_422')
  })

  test('unknown /v1 routes answer in the OpenAI error shape', async ({ assert }) => {
    const response = await fetch(`http://${process.env.HOST}:${process.env.PORT}/v1/nope`)
    assert.equal(response.status, 404)
    const body: any = await response.json()
    assert.equal(body.error.code, 'not_found')
  })
})

test.group('x-should-retry: errors a retry cannot cure say so, in every wire format', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'mock', baseUrl: mock.url, models: ['mock-*', 'paid-*'] })
    await seedChannel({ name: 'claude', provider: 'anthropic', baseUrl: mock.url, models: ['claude-*'] })
    await seedChannel({ name: 'google', provider: 'google', baseUrl: `${mock.origin}/v1beta`, models: ['gemini-*'] })
    await seedPrice('paid-*', '1', '1')
    return () => mock.stop()
  })

  const shouldRetry = (response: Response) => response.headers.get('x-should-retry')

  test('false on the key, the body, the permission, the balance, the monthly quota and an upstream 4xx', async ({ assert }) => {
    const chat = (body: unknown, headers: Record<string, string>) => post('/v1/chat/completions', body, headers)
    const user = await seedUser({ plan: { name: 'quota', monthlyInputTokens: 20 }, keyModels: ['mock-*', 'paid-*', 'claude-*', 'gemini-*'] })
    const auth = { authorization: `Bearer ${user.key}` }

    const answers: Array<[string, Response]> = [
      ['401 openai', await chat({ model: 'mock-a', messages: hello }, { authorization: 'Bearer sk-gw-nope' })],
      ['401 anthropic', await post('/v1/messages', { model: 'claude-x', max_tokens: 5, messages: hello }, { 'x-api-key': 'sk-gw-nope' })],
      ['401 google', await post('/v1beta/models/gemini-2.5-flash:generateContent', { contents: [] }, { 'x-goog-api-key': 'sk-gw-nope' })],
      ['400 json', await chat('{"model":', auth)],
      ['400 model', await chat({ messages: hello }, auth)],
      ['403', await chat({ model: 'other-1', messages: hello }, auth)],
      ['402', await chat({ model: 'paid-1', messages: hello }, auth)],
      ['upstream 422', await chat({ model: 'mock-a', messages: hello, mock: { status: 422 } }, auth)],
    ]
    for (const [name, response] of answers) {
      assert.isAtLeast(response.status, 400, name)
      assert.equal(shouldRetry(response), 'false', name)
    }

    assert.equal((await chat({ model: 'mock-a', messages: hello }, auth)).status, 200)
    assert.equal((await chat({ model: 'mock-a', messages: hello }, auth)).status, 200)
    const quota = await chat({ model: 'mock-a', messages: hello }, auth)
    assert.deepEqual([quota.status, shouldRetry(quota)], [429, 'false'])
  })

  test('absent where the SDKs retry by their own rules: a rate window, an upstream failure, a success', async ({ assert }) => {
    const user = await seedUser({ key: { rpm: 1 } })
    const auth = { authorization: `Bearer ${user.key}` }
    const ok = await post('/v1/chat/completions', { model: 'mock-a', messages: hello }, auth)
    assert.deepEqual([ok.status, shouldRetry(ok)], [200, null])
    const limited = await post('/v1/chat/completions', { model: 'mock-a', messages: hello }, auth)
    assert.equal(limited.status, 429)
    assert.isNull(shouldRetry(limited))
    assert.isNotNull(limited.headers.get('retry-after'))

    const other = await seedUser()
    const failed = await post('/v1/chat/completions', { model: 'mock-a', messages: hello, mock: { status: 500 } }, { authorization: `Bearer ${other.key}` })
    assert.deepEqual([failed.status, shouldRetry(failed)], [502, null])
  })
})
