import { test } from '@japa/runner'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { countTokens } from '#gateway/metering/tokenizer'
import { post, resetDatabase, seedChannel, seedUser, startMock, usageRows } from '#tests/helpers'

/**
 * Issue 8, item 1: the fallback tokenizer was quadratic on unbroken text
 * (40,000 emoji held the event loop 12.7 s; 600k characters, minutes). Long
 * inputs through the endpoints that count with it must leave the gateway
 * responsive. The event loop's delay is measured, not the wall clock.
 */
test.group('Issue 8: token counting of long unbroken text', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    // A native Gemini channel: its embeddings report no usage, and it cannot count Anthropic prompts.
    await seedChannel({ name: 'google', provider: 'google', baseUrl: mock.url, models: ['gemini-*'] })
    return () => mock.stop()
  })

  test('80k emoji and 600k characters through /v1/embeddings and count_tokens: counted, loop stays responsive', async ({ assert }) => {
    const user = await seedUser()
    const inputs = ['😀'.repeat(40_000), 'x'.repeat(600_000), '😀a'.repeat(200_000)]
    // The encoder's tables are parsed once per process, on first use: not what is measured here.
    await countTokens('warm up')
    const delay = monitorEventLoopDelay({ resolution: 10 })
    delay.enable()
    for (const input of inputs) {
      const embedded = await post('/v1/embeddings', { model: 'gemini-embedding-x', input }, { authorization: `Bearer ${user.key}` })
      assert.equal(embedded.status, 200)
      const embedding: any = await embedded.json()
      assert.isAbove(embedding.usage.prompt_tokens, 0)
      const counted = await post(
        '/v1/messages/count_tokens',
        { model: 'gemini-x', messages: [{ role: 'user', content: input }] },
        { 'x-api-key': user.key }
      )
      assert.equal(counted.status, 200)
      assert.isAbove(((await counted.json()) as any).input_tokens, 0)
    }
    delay.disable()
    // Was 12,700 ms for the first input alone; tens of ms per slice now .
    assert.isBelow(delay.max / 1e6, 1000)
    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, inputs.length * 2)
    assert.isTrue(rows.filter((r) => r.endpoint === 'embeddings').every((r) => r.estimated && r.prompt_tokens > 0))
  })

  test('ordinary text counts as the whole-text encoder does; huge texts are estimated from samples', async ({ assert }) => {
    const { countTokens: exact } = await import('gpt-tokenizer/encoding/o200k_base')
    const prose = 'The quick brown fox jumps over the lazy dog.\nIt was not amused; neither was the cat.\n'.repeat(500)
    const code = 'function add(a, b) {\n  return a + b // sum\n}\n'.repeat(500)
    for (const text of [prose, code, 'hello', '']) {
      const ours = await countTokens(text)
      const whole = exact(text)
      assert.isAtLeast(ours, whole)
      assert.isAtMost(ours, whole * 1.01 + 1)
    }
    // Beyond the exact bound (4 MB of prose): within a few percent of the per-copy count.
    const sentence = 'lorem ipsum dolor sit amet, consectetur adipiscing elit. '
    const huge = sentence.repeat(80_000)
    const estimate = await countTokens(huge)
    const reference = exact(sentence.repeat(2000)) * 40
    assert.closeTo(estimate, reference, reference * 0.03)
  })
})
