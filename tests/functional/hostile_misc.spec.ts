import { test } from '@japa/runner'
import http from 'node:http'
import db from '@adonisjs/lucid/services/db'
import { DateTime } from 'luxon'
import ApiKey from '#models/api_key'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { baseUrl, gateway, post, refreshCaches, resetDatabase, seedChannel, seedUser, startMock, usageRows } from '#tests/helpers'

/** Issue 8, item 9: what error answers must not say, and say in the right format. */
const hello = [{ role: 'user', content: 'hi' }]

/** A POST with the path sent byte for byte (fetch would normalise it). */
function rawPost(path: string, headers: Record<string, string>, body: string): Promise<{ status: number; type: string; retry: unknown; body: any }> {
  return new Promise((resolve, reject) => {
    const url = new URL(baseUrl())
    const req = http.request({ host: url.hostname, port: url.port, path, method: 'POST', headers: { 'content-type': 'application/json', ...headers } }, (res) => {
      let text = ''
      res.on('data', (chunk) => (text += chunk))
      res.on('end', () => resolve({ status: res.statusCode!, type: String(res.headers['content-type']), retry: res.headers['x-should-retry'], body: JSON.parse(text) }))
    })
    req.on('error', reject)
    req.end(body)
  })
}

test.group('Issue 8: error answers', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'mock', baseUrl: mock.url, models: ['mock-*'] })
    await seedChannel({ name: 'dead', baseUrl: 'http://127.0.0.1:9/v1', models: ['dead-*'] })
    return () => mock.stop()
  })

  test('a 502 does not tell the client where the upstream lives; the attempt record does', async ({ assert }) => {
    const user = await seedUser()
    const openai = await post('/v1/chat/completions', { model: 'dead-1', messages: hello }, { authorization: `Bearer ${user.key}` })
    const anthropic = await post('/v1/messages', { model: 'dead-2', max_tokens: 5, messages: hello }, { 'x-api-key': user.key })
    for (const response of [openai, anthropic]) {
      assert.equal(response.status, 502)
      const text = await response.text()
      assert.include(text, 'ECONNREFUSED')
      assert.notInclude(text, '127.0.0.1')
      assert.notInclude(text, ':9')
    }
    const [row] = await usageRows(user.userId)
    const attempts = await db.from('request_attempts').where('request_id', row.request_id)
    assert.isTrue(attempts.some((a) => String(a.error).includes('127.0.0.1:9')))
    ;(await gateway()).health.reset()
  })

  test('a malformed % in the path is a 400 in the format of the endpoint it names', async ({ assert }) => {
    const user = await seedUser()
    const openai = await rawPost('/v1/chat/completions%zz', { authorization: `Bearer ${user.key}` }, '{}')
    assert.equal(openai.status, 400)
    assert.include(openai.type, 'application/json')
    assert.deepEqual([openai.body.error.code, openai.body.error.type], ['invalid_url', 'invalid_request_error'])
    assert.equal(openai.retry, 'false')
    const anthropic = await rawPost('/v1/messages%E0%A4%A', { 'x-api-key': user.key }, '{}')
    assert.equal(anthropic.status, 400)
    assert.deepEqual([anthropic.body.type, anthropic.body.error.type], ['error', 'invalid_request_error'])
    const google = await rawPost('/v1beta/models/gemini%C0%80x:generateContent', { 'x-goog-api-key': user.key }, '{"contents":[]}')
    assert.equal(google.status, 400)
    assert.deepEqual([google.body.error.code, google.body.error.status], [400, 'INVALID_ARGUMENT'])
    // A literal '%' reaching the Gemini model segment (sent as %25) is refused the same way, not a 500.
    const literal = await rawPost('/v1beta/models/mock-%25zz:generateContent', { 'x-goog-api-key': user.key }, '{"contents":[]}')
    assert.equal(literal.status, 400)
    assert.equal(literal.body.error.status, 'INVALID_ARGUMENT')
  })

  test('a revoked or expired key gets the same answer as an unknown one', async ({ assert }) => {
    const revoked = await seedUser()
    const expired = await seedUser()
    await ApiKey.query().where('id', revoked.keyId).update({ revokedAt: DateTime.now().toSQL() })
    await ApiKey.query().where('id', expired.keyId).update({ expiresAt: DateTime.now().minus({ minutes: 1 }).toSQL() })
    await refreshCaches()
    const bodies = []
    for (const key of ['sk-gw-never-issued', revoked.key, expired.key]) {
      const response = await post('/v1/chat/completions', { model: 'mock-a', messages: hello }, { authorization: `Bearer ${key}` })
      assert.equal(response.status, 401)
      bodies.push(await response.json())
    }
    assert.deepEqual(bodies[1], bodies[0])
    assert.deepEqual(bodies[2], bodies[0])
  })

  test('the mock upstream answers odd bodies instead of falling over', async ({ assert }) => {
    for (const body of [{ contents: 5, tools: 5 }, { contents: [{ parts: 5 }], tools: [{ functionDeclarations: 5 }] }, { requests: 5 }]) {
      const response = await fetch(`${mock.origin}/v1beta/models/x:generateContent`, { method: 'POST', body: JSON.stringify(body) })
      assert.oneOf(response.status, [200, 400])
      await response.arrayBuffer()
    }
    const chat = await fetch(`${mock.url}/chat/completions`, { method: 'POST', body: JSON.stringify({ messages: 5, tools: 5 }) })
    assert.oneOf(chat.status, [200, 400])
    await chat.arrayBuffer()
    const anthropic = await fetch(`${mock.url}/messages`, { method: 'POST', body: JSON.stringify({ messages: 5 }) })
    assert.oneOf(anthropic.status, [200, 400])
    await anthropic.arrayBuffer()
    const alive = await fetch(`${mock.url}/chat/completions`, { method: 'POST', body: JSON.stringify({ model: 'm', messages: hello }) })
    assert.equal(alive.status, 200)
  })
})
