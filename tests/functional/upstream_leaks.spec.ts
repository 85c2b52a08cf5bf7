import { test } from '@japa/runner'
import db from '@adonisjs/lucid/services/db'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { gateway, post, resetDatabase, seedChannel, seedUser, startMock } from '#tests/helpers'

/**
 * Operators resell access: what the client gets back of an upstream must
 * not tell it the operator's upstream account (its key, where it lives).
 * An upstream that repeats its request's credentials and host in an error
 * message (a careless proxy, a debugging server: the mock's
 * `echo_credentials`) must not pass them on, neither in a relayed 4xx nor
 * in the 502 after failover, in any wire format, nor in the request log the
 * user's portal shows.
 */
test.group('Upstream errors do not carry the channel key or base URL', (group) => {
  let mock: MockUpstream
  let key: string
  const KEYS = {
    chat: ['sk-upstream-chat-first-0123456789abcdef', 'sk-upstream-chat-second-0123456789abcdef'],
    anthropic: ['sk-ant-upstream-first-0123456789abcdef', 'sk-ant-upstream-second-0123456789abcdef'],
    google: ['AIzaUpstreamFirst0123456789abcdef', 'AIzaUpstreamSecond0123456789abcdef'],
  }
  const PROXY_SECRET = 'proxy-secret-value-0123456789'

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    for (const [i, apiKey] of KEYS.chat.entries()) {
      await seedChannel({ name: `leak-chat-${i}`, provider: 'custom', baseUrl: mock.url, apiKey, models: ['leak-chat'], extraHeaders: { 'x-proxy-auth': PROXY_SECRET } })
    }
    for (const [i, apiKey] of KEYS.anthropic.entries()) {
      await seedChannel({ name: `leak-claude-${i}`, provider: 'anthropic', baseUrl: mock.url, apiKey, models: ['claude-leak'] })
    }
    for (const [i, apiKey] of KEYS.google.entries()) {
      await seedChannel({ name: `leak-google-${i}`, provider: 'google', baseUrl: `${mock.origin}/v1beta`, apiKey, models: ['gemini-leak'] })
    }
    key = (await seedUser({ balance: '10' })).key
    const gw = await gateway()
    await gw.logBodies('errors', 64 * 1024)
    return async () => {
      await gw.logBodies('off')
      await mock.stop()
    }
  })

  const calls = [
    { format: 'chat', path: '/v1/chat/completions', headers: () => ({ authorization: `Bearer ${key}` }), body: { model: 'leak-chat', messages: [{ role: 'user', content: 'hi' }] } },
    {
      format: 'anthropic',
      path: '/v1/messages',
      headers: () => ({ 'x-api-key': key, 'anthropic-version': '2023-06-01' }),
      body: { model: 'claude-leak', max_tokens: 20, messages: [{ role: 'user', content: 'hi' }] },
    },
    { format: 'google', path: '/v1beta/models/gemini-leak:generateContent', headers: () => ({ 'x-goog-api-key': key }), body: { contents: [{ role: 'user', parts: [{ text: 'hi' }] }] } },
  ] as const

  function assertClean(assert: any, text: string, format: keyof typeof KEYS) {
    for (const secret of [...KEYS[format], PROXY_SECRET]) assert.notInclude(text, secret)
    assert.notInclude(text, mock.origin.replace('http://', ''))
    assert.notInclude(text, '127.0.0.1')
  }

  async function loggedResponse(requestId: string): Promise<string> {
    const gw = await gateway()
    await gw.meter.drain()
    await gw.requestLogs?.drain()
    return (await db.from('request_logs').where('request_id', requestId).first())?.response_body ?? ''
  }

  for (const call of calls) {
    test(`${call.format}: a relayed 400 that echoes the credentials and host`, async ({ assert }) => {
      mock.script({ status: 400, echo_credentials: true })
      const response = await post(call.path, call.body, call.headers())
      const text = await response.text()
      assert.equal(response.status, 400)
      // The upstream did say them: the test would prove nothing otherwise.
      const said = mock.lastRequest()!
      assert.isTrue(KEYS[call.format].some((k) => JSON.stringify(said.headers).includes(k)))
      assertClean(assert, text, call.format)
      // Still the upstream's message otherwise, in the client's format.
      assert.include(text, 'refused; it was sent with')
      assertClean(assert, await loggedResponse(response.headers.get('x-request-id')!), call.format)
    })

    test(`${call.format}: 5xx on every channel, failover, then a 502 that echoes neither`, async ({ assert }) => {
      mock.script({ status: 500, echo_credentials: true }).script({ status: 503, echo_credentials: true })
      const before = mock.requests.length
      const response = await post(call.path, call.body, call.headers())
      const text = await response.text()
      assert.equal(response.status, 502)
      assert.equal(mock.requests.length - before, 2)
      assertClean(assert, text, call.format)
      assert.include(text, 'refused; it was sent with')
      assertClean(assert, await loggedResponse(response.headers.get('x-request-id')!), call.format)
    })
  }
})
