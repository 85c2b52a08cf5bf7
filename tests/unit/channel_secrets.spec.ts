import { test } from '@japa/runner'
import { GatewayError } from '#exceptions/gateway_error'
import { concealChannel, withoutChannelSecrets } from '#gateway/upstream/channel_secrets'
import { dropUpstreamCost, withoutUpstreamCost } from '#gateway/upstream/upstream_cost'
import type { ChannelInfo } from '#gateway/types'

function channel(overrides: Partial<ChannelInfo> = {}): ChannelInfo {
  return {
    id: 1,
    name: 'c',
    provider: 'custom',
    baseUrl: 'http://vllm.internal:8000/v1',
    apiKey: 'sk-live-0123456789',
    models: ['*'],
    modelMapping: {},
    extraHeaders: { 'x-proxy-token': 'proxy-token-0123456789', 'x-version': '2' },
    priority: 0,
    weight: 1,
    enabled: true,
    disabledReason: null,
    timeouts: { connect: 1000, firstByte: 1000, idle: 1000, total: 1000 },
    ...overrides,
  }
}

test.group('What of a channel an upstream error may not repeat', () => {
  test('the key, long extra header values, the base URL, origin and host', ({ assert }) => {
    const c = channel()
    const said = 'POST http://vllm.internal:8000/v1/chat/completions with Bearer sk-live-0123456789 and proxy-token-0123456789 (version 2) refused by vllm.internal'
    assert.equal(
      withoutChannelSecrets(said, c),
      'POST [upstream]/chat/completions with Bearer [redacted] and [redacted] (version 2) refused by [upstream]'
    )
    // Nothing to take: the same string
    assert.equal(withoutChannelSecrets('model not found', c), 'model not found')
    // A channel without a key
    assert.equal(withoutChannelSecrets('at vllm.internal:8000', channel({ apiKey: null })), 'at [upstream]')
  })

  test("a failure's message and logged body; a body without them is the same Buffer", ({ assert }) => {
    const c = channel()
    const error = new GatewayError(400, 'upstream_error', 'bad key sk-live-0123456789')
    const body = Buffer.from('{"error":{"message":"bad key sk-live-0123456789"}}')
    error.upstreamBody = body
    concealChannel(error, c)
    assert.equal(error.message, 'bad key [redacted]')
    assert.equal(error.upstreamBody!.toString(), '{"error":{"message":"bad key [redacted]"}}')
    const clean = new GatewayError(400, 'upstream_error', 'bad request')
    const cleanBody = Buffer.from('{"error":{"message":"bad request"}}')
    clean.upstreamBody = cleanBody
    concealChannel(clean, c)
    assert.strictEqual(clean.upstreamBody, cleanBody)
  })
})

test.group("OpenRouter's own bill in an answer's usage", () => {
  test('taken out, counts kept; absent: the same bytes', ({ assert }) => {
    const parsed = { usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5, cost: 0.1, cost_details: { upstream_inference_cost: 0.09 }, is_byok: false } }
    assert.isTrue(dropUpstreamCost(parsed))
    assert.deepEqual(parsed.usage, { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 } as any)
    const bytes = Buffer.from('{"usage":{"prompt_tokens":1}}')
    assert.strictEqual(withoutUpstreamCost(bytes, JSON.parse(bytes.toString())), bytes)
    assert.isFalse(dropUpstreamCost({ usage: null }))
    assert.isFalse(dropUpstreamCost({}))
  })
})
