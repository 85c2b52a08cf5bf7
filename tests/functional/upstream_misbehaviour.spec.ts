import { test } from '@japa/runner'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { balanceAndLedger, post, resetDatabase, seedChannel, seedPrice, seedUser, startMock, usageRows, type SeededUser } from '#tests/helpers'

/**
 * Upstreams are remote services and proxies that can be buggy or compromised:
 * whatever they answer, the gateway must not crash, hang, leak a stack trace,
 * lose a usage row or mis-bill. The mock's `raw` answers (raw_answer.ts) send
 * exactly the bytes of each misbehaviour.
 */
const hello = [{ role: 'user', content: 'hi' }]
const SSE = { 'content-type': 'text/event-stream' }

const chatAnswer = (usage: string) =>
  `{"id":"c1","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi there"},"finish_reason":"stop"}],"usage":${usage}}`
const chatUsage = (v: string) => `{"prompt_tokens":${v},"completion_tokens":${v},"total_tokens":${v},"prompt_tokens_details":{"cached_tokens":${v}}}`
const anthropicAnswer = (usage: string) =>
  `{"id":"m1","type":"message","role":"assistant","model":"x","content":[{"type":"text","text":"hi there"}],"stop_reason":"end_turn","usage":${usage}}`
const geminiAnswer = (usage: string) =>
  `{"candidates":[{"content":{"role":"model","parts":[{"text":"hi there"}]},"finishReason":"STOP"}],"usageMetadata":${usage}}`
const chatChunk = (o: Record<string, unknown>) => `data: ${JSON.stringify({ id: 'c', object: 'chat.completion.chunk', model: 'm', ...o })}\n\n`

async function rowOf(user: SeededUser) {
  const rows = await usageRows(user.userId)
  return rows[rows.length - 1]
}

test.group('Upstream misbehaviour: usage numbers', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'chat', provider: 'custom', baseUrl: mock.url, models: ['u-*'] })
    await seedChannel({ name: 'azure', provider: 'azure', baseUrl: `${mock.origin}/openai`, models: ['uaz-*'] })
    await seedChannel({ name: 'claude', provider: 'anthropic', baseUrl: mock.url, models: ['uclaude-*'] })
    await seedChannel({ name: 'gemini', provider: 'google', baseUrl: `${mock.origin}/v1beta`, models: ['ugem-*'] })
    for (const model of ['u-*', 'uaz-*', 'uclaude-*', 'ugem-*']) await seedPrice(model, '1', '2')
    return () => mock.stop()
  })

  test('hostile counts from an OpenAI-compatible or Azure channel: a row each, never a credit, never a refused batch')
    .with(['u-1', 'uaz-1'])
    .run(async ({ assert }, model) => {
      const values = ['-5', '1.5', '"12"', 'null', '"NaN"', '1e308', '9007199254740993', '3000000000', '"abc"', '{}']
      for (const value of values) {
        const user = await seedUser({ balance: '10' })
        const response = await post('/v1/chat/completions', { model, messages: hello, mock: { raw: { body: chatAnswer(chatUsage(value)) } } }, { authorization: `Bearer ${user.key}` })
        assert.equal(response.status, 200, value)
        // The client of the same format gets the upstream's own answer.
        assert.include(await response.text(), 'hi there')
        const rows = await usageRows(user.userId)
        assert.lengthOf(rows, 1, `one usage row for ${value}`)
        const row = rows[0]
        for (const column of ['prompt_tokens', 'completion_tokens', 'total_tokens', 'cached_tokens']) {
          assert.isTrue(Number.isInteger(row[column]) && row[column] >= 0, `${column} for ${value}: ${row[column]}`)
        }
        assert.isAtLeast(Number(row.cost), 0, value)
        assert.isAtMost(row.cached_tokens, row.prompt_tokens, value)
        const money = await balanceAndLedger(user.userId)
        assert.equal(money.balance, money.ledger)
        assert.isAtMost(Number(money.balance), 10, `no credit for ${value}`)
        if (['-5', '1e308', '9007199254740993', '3000000000'].includes(value)) {
          // An unbelievable report is not billed: the gateway counts the request itself.
          assert.include(row, { estimated: true }, value)
          assert.isBelow(Number(row.cost), 0.001, value)
        }
        if (value === '"12"') assert.include(row, { prompt_tokens: 12, completion_tokens: 12, estimated: false })
        if (value === '1.5') assert.include(row, { prompt_tokens: 1, completion_tokens: 1 })
      }
    })

  test('translated: Anthropic and Gemini counts that are negative, huge, or parts larger than the whole', async ({ assert }) => {
    const cases: Array<[string, string, (u: string) => string, string]> = [
      ['uclaude-1', '-5', anthropicAnswer, '{"input_tokens":-5,"output_tokens":3}'],
      ['uclaude-1', 'huge', anthropicAnswer, '{"input_tokens":1e308,"output_tokens":1e308,"cache_read_input_tokens":1e308}'],
      ['uclaude-1', 'sum beyond the cap', anthropicAnswer, '{"input_tokens":900000000,"output_tokens":3,"cache_read_input_tokens":900000000}'],
      ['ugem-1', 'cached > prompt', geminiAnswer, '{"promptTokenCount":10,"candidatesTokenCount":3,"cachedContentTokenCount":500,"thoughtsTokenCount":2}'],
      ['ugem-1', 'fractional string', geminiAnswer, '{"promptTokenCount":"10.7","candidatesTokenCount":3.2}'],
    ]
    for (const [model, label, answer, usage] of cases) {
      const user = await seedUser({ balance: '10' })
      mock.script({ raw: { body: answer(usage) } })
      const response = await post('/v1/chat/completions', { model, messages: hello }, { authorization: `Bearer ${user.key}` })
      assert.equal(response.status, 200, label)
      const answerBody: any = await response.json()
      assert.equal(answerBody.choices[0].message.content, 'hi there')
      if (answerBody.usage) {
        for (const v of [answerBody.usage.prompt_tokens, answerBody.usage.completion_tokens, answerBody.usage.total_tokens]) {
          assert.isTrue(Number.isInteger(v) && v >= 0 && v < 2 ** 31, `${label}: client usage ${JSON.stringify(answerBody.usage)}`)
        }
      }
      const row = await rowOf(user)
      assert.exists(row, label)
      assert.isAtLeast(Number(row.cost), 0, label)
      assert.isAtMost(row.cached_tokens, row.prompt_tokens, label)
      assert.isAtMost(row.reasoning_tokens, row.completion_tokens, label)
      if (label === 'cached > prompt') assert.include(row, { prompt_tokens: 10, cached_tokens: 10, completion_tokens: 5, reasoning_tokens: 2 })
      if (label === 'fractional string') assert.include(row, { prompt_tokens: 10, completion_tokens: 3, estimated: false })
      if (['-5', 'huge', 'sum beyond the cap'].includes(label)) assert.include(row, { estimated: true }, label)
      const money = await balanceAndLedger(user.userId)
      assert.equal(money.balance, money.ledger)
    }
  })

  test('a streamed usage chunk with hostile counts: pass-through and translated clients', async ({ assert }) => {
    const stream = [
      chatChunk({ choices: [{ index: 0, delta: { role: 'assistant', content: 'hi there' }, finish_reason: null }] }),
      chatChunk({ choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] }),
      chatChunk({ choices: [], usage: { prompt_tokens: -7, completion_tokens: 1e308, total_tokens: 3.5 } }),
      'data: [DONE]\n\n',
    ]
    for (const path of ['/v1/chat/completions', '/v1/messages']) {
      const user = await seedUser({ balance: '10' })
      mock.script({ raw: { headers: SSE, chunks: stream } })
      const response = await post(path, { model: 'u-1', max_tokens: 50, messages: hello, stream: true }, { authorization: `Bearer ${user.key}`, 'x-api-key': user.key })
      assert.equal(response.status, 200)
      const text = await response.text()
      assert.include(text, 'hi there')
      assert.notInclude(text, 'e+308')
      const row = await rowOf(user)
      assert.include(row, { status: 200, estimated: true }, path)
      assert.isAtLeast(Number(row.cost), 0)
      assert.isBelow(row.completion_tokens, 100)
    }
  })

  test('one hostile row in a batch: every other row of the batch lands too', async ({ assert }) => {
    const user = await seedUser({ balance: '10' })
    const gateway = (await import('#tests/helpers')).gateway
    const meter = (await gateway()).meter
    // Hold the meter's writes so the requests share one batch.
    const bodies = Array.from({ length: 6 }, (_, i) =>
      i === 3
        ? { model: 'u-1', messages: hello, mock: { raw: { body: chatAnswer('{"prompt_tokens":3000000000,"completion_tokens":1.5}') } } }
        : { model: 'u-1', messages: hello }
    )
    const responses = await Promise.all(bodies.map((b) => post('/v1/chat/completions', b, { authorization: `Bearer ${user.key}` })))
    assert.deepEqual(responses.map((r) => r.status), [200, 200, 200, 200, 200, 200])
    await meter.drain()
    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 6)
    const money = await balanceAndLedger(user.userId)
    assert.equal(money.balance, money.ledger)
  })
})
