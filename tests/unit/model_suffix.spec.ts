import { test } from '@japa/runner'
import { parseModelSuffix } from '#gateway/routing/model_suffix'
import { ChannelRouter } from '#gateway/routing/channel_router'
import type { ChannelInfo } from '#gateway/types'

function channel(id: number, overrides: Partial<ChannelInfo>): ChannelInfo {
  return {
    id,
    name: `c${id}`,
    provider: 'custom',
    baseUrl: 'http://127.0.0.1:1/v1',
    apiKey: null,
    models: [],
    modelMapping: {},
    extraHeaders: {},
    priority: 0,
    weight: 1,
    enabled: true,
    disabledReason: null,
    timeouts: { connect: 1000, firstByte: 1000, idle: 1000, total: 1000 },
    ...overrides,
  }
}

test.group('Model-name thinking suffixes', () => {
  test('the suffixes new-api reads, and names that only look like them', ({ assert }) => {
    assert.deepEqual(parseModelSuffix('claude-sonnet-4-5-thinking'), { base: 'claude-sonnet-4-5', reasoning: {}, kind: 'thinking' })
    assert.deepEqual(parseModelSuffix('gemini-2.5-flash-thinking-8192'), { base: 'gemini-2.5-flash', reasoning: { budgetTokens: 8192 }, kind: 'thinking' })
    assert.deepEqual(parseModelSuffix('gemini-2.5-flash-thinking-0'), { base: 'gemini-2.5-flash', reasoning: { budgetTokens: 0 }, kind: 'thinking' })
    assert.deepEqual(parseModelSuffix('gemini-2.5-flash-NoThinking'), { base: 'gemini-2.5-flash', reasoning: { budgetTokens: 0 }, kind: 'thinking' })
    assert.deepEqual(parseModelSuffix('o3-mini-high'), { base: 'o3-mini', reasoning: { effort: 'high' }, kind: 'effort' })
    assert.deepEqual(parseModelSuffix('gpt-5-medium'), { base: 'gpt-5', reasoning: { effort: 'medium' }, kind: 'effort' })
    assert.deepEqual(parseModelSuffix('o4-mini-low'), { base: 'o4-mini', reasoning: { effort: 'low' }, kind: 'effort' })
    for (const name of ['-thinking', '-high', 'thinking', 'gpt-4o', 'm-thinking-', 'm-thinking-08', 'm-thinking-12345678', 'm-thinking-1e3', 'm-highest', 'mhigh', 'm-4096']) {
      assert.isNull(parseModelSuffix(name), name)
    }
  })

  test('a name a channel serves itself is never taken apart; a glob that takes its base too says nothing', ({ assert }) => {
    const router = new ChannelRouter([
      channel(1, { provider: 'anthropic', models: ['vendor-*'] }),
      channel(2, { models: ['real-high', 'real'] }),
      channel(3, { models: ['only-*-low'] }),
      channel(4, { models: ['base'], modelMapping: { 'mapped-high': 'upstream-mapped' } }),
    ])
    const suffixed = router.resolve('vendor-x-thinking-2048')
    assert.isTrue(typeof suffixed === 'object' && suffixed.suffix?.base === 'vendor-x')
    assert.deepEqual(router.candidatesOf(suffixed, 'vendor-x-thinking-2048')[0], {
      channel: router.route('vendor-x')[0].channel,
      upstreamModel: 'vendor-x',
      reasoning: { budgetTokens: 2048 },
    })
    // Other operations (embeddings, images) route the name as it is.
    assert.deepEqual(router.route('vendor-x-thinking-2048')[0], { channel: router.route('vendor-x')[0].channel, upstreamModel: 'vendor-x-thinking-2048' })
    for (const name of ['real-high', 'only-x-low', 'mapped-high']) {
      const plan = router.resolve(name)
      assert.isTrue(typeof plan === 'object' && plan.suffix === undefined, name)
    }
    assert.equal(router.candidatesOf(router.resolve('mapped-high'), 'mapped-high')[0].upstreamModel, 'upstream-mapped')
    // Its base unserved, the name routes as it would have (here: refused).
    assert.equal(router.resolve('unknown-high'), 'model_not_found')
  })

  test('a suffix applies only on the kinds of channel it is made for: OpenRouter and self-hosted names stay whole', ({ assert }) => {
    const router = new ChannelRouter([
      channel(1, { provider: 'openrouter', models: ['openai/*', 'moonshotai/*'] }),
      channel(2, { provider: 'custom', models: ['local-*'] }),
      channel(3, { provider: 'gemini', models: ['gemini-*'] }),
    ])
    // OpenRouter has real `openai/o3-mini-high` and `moonshotai/kimi-k2-thinking` models.
    for (const name of ['openai/o3-mini-high', 'moonshotai/kimi-k2-thinking', 'local-kimi-k2-thinking']) {
      const plan = router.resolve(name)
      assert.isTrue(typeof plan === 'object' && plan.suffix === undefined, name)
      assert.equal(router.candidatesOf(plan, name)[0].upstreamModel, name)
    }
    // Efforts on a self-hosted server (gpt-oss on vLLM takes reasoning_effort); thinking on Google's OpenAI-compatible endpoint.
    for (const [name, base] of [['local-gpt-oss-high', 'local-gpt-oss'], ['gemini-2.5-flash-nothinking', 'gemini-2.5-flash']]) {
      const plan = router.resolve(name)
      assert.equal(typeof plan === 'object' ? plan.suffix?.base : plan, base)
    }
  })
})
