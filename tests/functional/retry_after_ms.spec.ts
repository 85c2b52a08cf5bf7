import { test } from '@japa/runner'
import OpenAI from 'openai'
import Anthropic from '@anthropic-ai/sdk'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { baseUrl, gateway, post, resetDatabase, seedChannel, seedUser, startMock } from '#tests/helpers'

const hello = [{ role: 'user', content: 'hi' }]

/**
 * `retry-after-ms` beside every Retry-After the gateway sends. The OpenAI
 * and Anthropic SDKs read it before Retry-After (node_modules/openai
 * client.js retryRequest), so with it they come back when the window or the
 * cool-down ends, not up to a second later (Retry-After is whole seconds).
 */
test.group('retry-after-ms', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'limited', baseUrl: mock.url, models: ['rl-*'] })
    return () => mock.stop()
  })
  group.each.setup(async () => (await gateway()).health.reset())

  /** The two headers agree: Retry-After is the exact wait rounded up to whole seconds. */
  function waitOf(answer: Response, most: number): number {
    const exact = Number(answer.headers.get('retry-after-ms'))
    const seconds = Number(answer.headers.get('retry-after'))
    if (!(exact >= 1 && exact <= most)) throw new Error(`retry-after-ms ${answer.headers.get('retry-after-ms')} not in 1..${most}`)
    if (seconds !== Math.ceil(exact / 1000)) throw new Error(`retry-after ${seconds} is not ${exact} ms rounded up`)
    return exact
  }

  test("the key's own rate limit: the exact time left in its window, in every wire format", async ({ assert }) => {
    const user = await seedUser({ key: { rpm: 1 } })
    const auth = { authorization: `Bearer ${user.key}` }
    assert.equal((await post('/v1/chat/completions', { model: 'rl-a', messages: hello }, auth)).status, 200)
    const refused = await post('/v1/chat/completions', { model: 'rl-a', messages: hello }, auth)
    assert.equal(refused.status, 429)
    const exact = waitOf(refused, 60_000)
    // Not a rounded second: the window opened a moment ago, so a little less than a minute is left.
    assert.isBelow(exact, 60_000)
    assert.equal(refused.headers.get('x-ratelimit-reset-requests'), `${refused.headers.get('retry-after')}s`)
    const anthropic = await post('/v1/messages', { model: 'rl-a', max_tokens: 8, messages: hello }, { ...auth, 'anthropic-version': '2023-06-01' })
    assert.equal(anthropic.status, 429)
    waitOf(anthropic, 60_000)
  })

  test("an upstream's 429: its own retry-after-ms is the cool-down and reaches the client, and the OpenAI SDK waits exactly that", async ({ assert }) => {
    const user = await seedUser()
    const auth = { authorization: `Bearer ${user.key}` }
    const limited = { raw: { status: 429, headers: { 'retry-after': '1', 'retry-after-ms': '350' }, body: '{"error":{"message":"slow down","type":"rate_limit_error"}}' } }
    const answer = await post('/v1/chat/completions', { model: 'rl-a', messages: hello, mock: limited }, auth)
    assert.equal(answer.status, 429)
    assert.equal(answer.headers.get('retry-after-ms'), '350')
    assert.equal(answer.headers.get('retry-after'), '1')

    // The SDK's retry comes back after 350 ms, when the (channel, model) cool-down is over, and is served.
    await (await gateway()).health.reset()
    mock.script(limited)
    const client = new OpenAI({ apiKey: user.key, baseURL: `${baseUrl()}/v1`, maxRetries: 1 })
    const started = Date.now()
    const completion = await client.chat.completions.create({ model: 'rl-b', messages: [{ role: 'user', content: 'hi' }] })
    const elapsed = Date.now() - started
    assert.isAbove(completion.choices[0].message.content!.length, 0)
    assert.isAtLeast(elapsed, 340)
    // Retry-After alone (1 s) would have held it a whole second.
    assert.isBelow(elapsed, 900)
  })

  test('every channel cooling down: 429 upstream_rate_limited with the exact time to the soonest, which the Anthropic SDK waits', async ({ assert }) => {
    const user = await seedUser()
    const auth = { authorization: `Bearer ${user.key}` }
    const first = await post('/v1/chat/completions', { model: 'rl-c', messages: hello, mock: { status: 429, retry_after: 1 } }, auth)
    assert.equal(first.status, 429)
    await new Promise((resolve) => setTimeout(resolve, 600))
    const cooling = await post('/v1/chat/completions', { model: 'rl-c', messages: hello }, auth)
    assert.equal(cooling.status, 429)
    assert.equal(((await cooling.json()) as any).error.code, 'upstream_rate_limited')
    const exact = waitOf(cooling, 1000)
    assert.isBelow(exact, 450)

    // The Anthropic SDK (Claude Code's) waits the rest of the cool-down, then is served.
    const client = new Anthropic({ apiKey: user.key, baseURL: baseUrl(), maxRetries: 1 })
    const started = Date.now()
    const message = await client.messages.create({ model: 'rl-c', max_tokens: 8, messages: [{ role: 'user', content: 'hi' }] })
    assert.equal(message.type, 'message')
    assert.isBelow(Date.now() - started, 900)
  })
})
