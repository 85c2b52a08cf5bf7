import { test } from '@japa/runner'
import db from '@adonisjs/lucid/services/db'
import { setPrice } from '#actions/set_price'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import {
  balanceAndLedger,
  gateway,
  post,
  refreshCaches,
  resetDatabase,
  seedChannel,
  seedPrice,
  seedUser,
  startMock,
  usageRows,
  type SeededUser,
} from '#tests/helpers'

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

  test("translated Anthropic stream whose final count is unbelievable: billed by counting, not on message_start's partial count", async ({ assert }) => {
    const event = (type: string, o: Record<string, unknown>) => `event: ${type}\ndata: ${JSON.stringify({ type, ...o })}\n\n`
    const text = 'word '.repeat(40)
    const chunks = [
      event('message_start', { message: { id: 'm', type: 'message', role: 'assistant', model: 'x', content: [], usage: { input_tokens: 5, output_tokens: 1 } } }),
      event('content_block_start', { index: 0, content_block: { type: 'text', text: '' } }),
      event('content_block_delta', { index: 0, delta: { type: 'text_delta', text } }),
      event('content_block_stop', { index: 0 }),
      event('message_delta', { delta: { stop_reason: 'end_turn' }, usage: { output_tokens: -40 } }),
      event('message_stop', {}),
    ]
    const user = await seedUser({ balance: '10' })
    mock.script({ raw: { headers: SSE, chunks } })
    const response = await post('/v1/chat/completions', { model: 'uclaude-1', messages: hello, stream: true }, { authorization: `Bearer ${user.key}` })
    assert.include(await response.text(), 'word word')
    const row = await rowOf(user)
    assert.include(row, { status: 200, error_code: null, estimated: true })
    assert.isAbove(row.completion_tokens, 20)
  })

  test('rerank: a token count or search units no request can have are not believed', async ({ assert }) => {
    await setPrice({ model: 'u-rerank', input: '1', output: '0', perRequest: '0.002' })
    await refreshCaches()
    const user = await seedUser({ balance: '10' })
    const answer = '{"results":[{"index":0,"relevance_score":0.9}],"usage":{"prompt_tokens":1e300},"meta":{"billed_units":{"search_units":1e300}}}'
    const response = await post('/v1/rerank', { model: 'u-rerank', query: 'q', documents: ['a', 'b'], mock: { raw: { body: answer } } }, { authorization: `Bearer ${user.key}` })
    assert.equal(response.status, 200)
    const row = await rowOf(user)
    assert.include(row, { status: 200, estimated: true })
    assert.isBelow(row.prompt_tokens, 100)
    // The per-request price once (0.002) plus a few tokens at $1 per 1M.
    assert.isBelow(Number(row.cost), 0.0021)
  })

  test('one hostile row in a batch: every other row of the batch lands too', async ({ assert }) => {
    const user = await seedUser({ balance: '10' })
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

const anthropicEvent = (type: string, o: Record<string, unknown>) => `event: ${type}\ndata: ${JSON.stringify({ type, ...o })}\n\n`
const anthropicStart = anthropicEvent('message_start', {
  message: { id: 'm', type: 'message', role: 'assistant', model: 'x', content: [], usage: { input_tokens: 5, output_tokens: 1 } },
})
const anthropicText = (text: string) => [
  anthropicEvent('content_block_start', { index: 0, content_block: { type: 'text', text: '' } }),
  anthropicEvent('content_block_delta', { index: 0, delta: { type: 'text_delta', text } }),
]
const chatDelta = (content: string) => chatChunk({ choices: [{ index: 0, delta: { content }, finish_reason: null }] })
const chatFinish = chatChunk({ choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] })

/** The client's error, read in its wire format. */
function errorOf(format: 'openai' | 'anthropic' | 'gemini', body: any): string {
  if (format === 'anthropic') {
    assertShape(body?.type === 'error' && typeof body.error?.message === 'string', body)
    return body.error.type
  }
  assertShape(typeof body?.error?.message === 'string', body)
  return format === 'gemini' ? body.error.status : body.error.code
}
function assertShape(ok: boolean, body: unknown) {
  if (!ok) throw new Error(`not an error in the client's format: ${JSON.stringify(body)}`)
}

test.group('Upstream misbehaviour: answers of the wrong shape with a success status', (group) => {
  let mock: MockUpstream
  let user: SeededUser

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'chat', provider: 'custom', baseUrl: mock.url, models: ['s-*'] })
    await seedChannel({ name: 'claude', provider: 'anthropic', baseUrl: mock.url, models: ['sclaude-*'] })
    await seedChannel({ name: 'gemini', provider: 'google', baseUrl: `${mock.origin}/v1beta`, models: ['sgem-*'] })
    user = await seedUser()
    return () => mock.stop()
  })

  const auth = () => ({ 'authorization': `Bearer ${user.key}`, 'x-api-key': user.key })
  /** One call: the raw answer goes to whichever upstream the route picks (scripted: translated bodies carry no `mock`). */
  async function call(path: string, body: Record<string, unknown>, raw: Record<string, unknown>) {
    // A broken answer counts against the channel's health now (it fails over like a 5xx): each call starts closed.
    ;(await gateway()).health.reset()
    mock.script({ raw })
    const response = await post(path, body, auth())
    const text = await response.text()
    return { response, text, row: await rowOf(user) }
  }
  const chat = (model: string, stream = false) => ['/v1/chat/completions', { model, messages: hello, stream }] as const
  const messages = (model: string, stream = false) => ['/v1/messages', { model, max_tokens: 20, messages: hello, stream }] as const
  const gemini = (model: string) => [`/v1beta/models/${model}:generateContent`, { contents: [{ role: 'user', parts: [{ text: 'hi' }] }] }] as const

  test('JSON that is no answer, or an error body with 200: 502 provider_error in the client format, pass-through and translated', async ({ assert }) => {
    const bodies = ['null', '[1,2]', '42', '{"error":{"message":"quota exhausted","type":"insufficient_quota"}}']
    const calls: Array<[string, readonly [string, Record<string, unknown>], 'openai' | 'anthropic' | 'gemini']> = [
      ['chat pass-through', chat('s-1'), 'openai'],
      ['messages -> chat', messages('s-1'), 'anthropic'],
      ['gemini -> chat', gemini('s-1'), 'gemini'],
      ['chat -> anthropic', chat('sclaude-1'), 'openai'],
      ['responses -> chat', ['/v1/responses', { model: 's-1', input: 'hi' }] as const, 'openai'],
    ]
    for (const body of bodies) {
      for (const [label, [path, request], format] of calls) {
        const { response, text, row } = await call(path, request, { body })
        assert.equal(response.status, 502, `${label} ${body}: ${text}`)
        errorOf(format, JSON.parse(text))
        assert.include(row, { status: 502, error_code: 'provider_error' }, `${label} ${body}`)
        if (body.includes('quota')) assert.include(text, 'quota exhausted')
      }
    }
    // Anthropic's own error shape, with 200, to an Anthropic client
    const { response, row } = await call(...messages('sclaude-1'), { body: '{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}' })
    assert.equal(response.status, 502)
    assert.include(row, { status: 502, error_code: 'provider_error' })
  })

  test('an answer without its content member is a 502, not an empty answer, translated or passed through', async ({ assert }) => {
    const cases: Array<[string, readonly [string, Record<string, unknown>], string]> = [
      ['messages -> chat, no choices', messages('s-1'), '{"id":"x","object":"chat.completion"}'],
      ['messages -> chat, choices: []', messages('s-1'), '{"id":"x","choices":[]}'],
      ['chat -> anthropic, no content', chat('sclaude-1'), '{"id":"m","type":"message","role":"assistant"}'],
      ['chat -> gemini, no candidates', chat('sgem-1'), '{"modelVersion":"x"}'],
      ['messages -> chat, stream asked', messages('s-1', true), '{"id":"x","choices":[]}'],
    ]
    for (const [label, [path, request], body] of cases) {
      const { response, text, row } = await call(path, request, { body })
      assert.equal(response.status, 502, `${label}: ${text}`)
      assert.include(row, { status: 502, error_code: 'provider_error' }, label)
    }
    // A blocked Gemini prompt has no candidate and is an answer.
    const blocked = await call(...chat('sgem-1'), { body: '{"promptFeedback":{"blockReason":"SAFETY"},"usageMetadata":{"promptTokenCount":4}}' })
    assert.equal(blocked.response.status, 200)
    // Passed through too: the client's SDK would find no choice to read (the next channel would be tried).
    const passed = await call(...chat('s-1'), { body: '{"id":"x","choices":[]}' })
    assert.equal(passed.response.status, 502)
    assert.include(passed.row, { status: 502, error_code: 'provider_error' })
  })

  test('the other operations (completions, embeddings, rerank, images): an error body or a cut body with 200 is a 502 too', async ({ assert }) => {
    const requests: Array<[string, Record<string, unknown>]> = [
      ['/v1/completions', { model: 's-1', prompt: 'hi' }],
      ['/v1/embeddings', { model: 's-1', input: 'hi' }],
      ['/v1/rerank', { model: 's-1', query: 'q', documents: ['a', 'b'] }],
      ['/v1/images/generations', { model: 's-1', prompt: 'a cat' }],
    ]
    for (const [path, request] of requests) {
      for (const raw of [{ body: '{"error":{"message":"quota exhausted"}}' }, { body: '{"data":[{"embed', then: 'destroy' }, { body: 'null' }]) {
        const { response, text, row } = await call(path, request, raw)
        assert.equal(response.status, 502, `${path} ${raw.body}: ${text}`)
        errorOf('openai', JSON.parse(text))
        assert.include(row, { status: 502, error_code: 'provider_error' }, path)
      }
    }
    // Embeddings whose `data` is no list: a 502, not a TypeError's 500.
    const { response } = await call('/v1/embeddings', { model: 's-1', input: 'hi' }, { body: '{"object":"list","data":{"0":1}}' })
    assert.equal(response.status, 502)
  })

  test('members of the wrong type in a translated answer: 502, never a 500', async ({ assert }) => {
    const body = '{"id":"x","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[null,{"function":5}]},"finish_reason":"tool_calls"}]}'
    const { response, text, row } = await call(...messages('s-1'), { body })
    assert.equal(response.status, 502, text)
    assert.equal(errorOf('anthropic', JSON.parse(text)), 'api_error')
    assert.notInclude(text, 'TypeError')
    assert.include(row, { status: 502, error_code: 'provider_error' })
  })

  test('an answer nested too deeply to serialise again (a mapped model is rewritten in it): 502, never a 500', async ({ assert }) => {
    await seedChannel({ name: 'mapped', provider: 'custom', baseUrl: mock.url, models: ['deep-public'], modelMapping: { 'deep-public': 'deep-upstream' } })
    const deep = '['.repeat(200_000) + ']'.repeat(200_000)
    const body = `{"id":"x","model":"deep-upstream","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"extra":${deep}}`
    const { response, text, row } = await call('/v1/chat/completions', { model: 'deep-public', messages: hello }, { body })
    assert.equal(response.status, 502, text)
    assert.notInclude(text, 'stack')
    assert.include(row, { status: 502, error_code: 'provider_error' })
  })

  test("a streamed event the gateway's own code fails on says so generically, not with an engine message", async ({ assert }) => {
    await seedChannel({ name: 'mapped-stream', provider: 'custom', baseUrl: mock.url, models: ['deep-stream'], modelMapping: { 'deep-stream': 'deep-stream-upstream' } })
    const deep = '['.repeat(200_000) + ']'.repeat(200_000)
    const chunk = (content: string, extra = '') =>
      `data: {"id":"x","object":"chat.completion.chunk","model":"deep-stream-upstream","choices":[{"index":0,"delta":{"content":"${content}"},"finish_reason":null}]${extra}}\n\n`
    const raw = { headers: { 'content-type': 'text/event-stream' }, chunks: [chunk('hi '), chunk('there', `,"extra":${deep}`), 'data: [DONE]\n\n'] }
    const { response, text, row } = await call('/v1/chat/completions', { model: 'deep-stream', messages: hello, stream: true }, raw)
    assert.equal(response.status, 200)
    assert.include(text, '"content":"hi "')
    assert.include(text, 'The gateway could not relay the rest of the stream')
    assert.notInclude(text, 'call stack')
    assert.notInclude(text, 'RangeError')
    assert.include(row, { status: 200, error_code: 'stream_interrupted' })
  })

  test('the connection closed mid-JSON: 502 provider_error in each client format, never a 500', async ({ assert }) => {
    const raw = { body: '{"id":"x","choices":[{"index":0,"mess', then: 'destroy' }
    for (const [label, [path, request], format] of [
      ['chat pass-through', chat('s-1'), 'openai'],
      ['messages -> chat', messages('s-1'), 'anthropic'],
      ['messages pass-through', messages('sclaude-1'), 'anthropic'],
      ['gemini pass-through', gemini('sgem-1'), 'gemini'],
    ] as const) {
      const { response, text, row } = await call(path, request, raw)
      assert.equal(response.status, 502, `${label}: ${text}`)
      errorOf(format, JSON.parse(text))
      assert.include(text, 'before its end')
      assert.notInclude(text, '127.0.0.1')
      assert.include(row, { status: 502, error_code: 'provider_error' }, label)
    }
  })

  test("a stream with the upstream's own error event: relayed, and the row says the stream was interrupted", async ({ assert }) => {
    const chatError = { headers: SSE, chunks: [chatDelta('partial '), 'data: {"error":{"message":"overloaded mid-stream","type":"server_error"}}\n\n'] }
    let result = await call(...chat('s-1', true), chatError)
    assert.include(result.text, 'overloaded mid-stream')
    assert.include(result.row, { status: 200, error_code: 'stream_interrupted', estimated: true })

    const anthropicError = { headers: SSE, chunks: [anthropicStart, ...anthropicText('partial '), anthropicEvent('error', { error: { type: 'overloaded_error', message: 'Overloaded' } })] }
    result = await call(...messages('sclaude-1', true), anthropicError)
    assert.include(result.text, 'event: error')
    assert.include(result.row, { status: 200, error_code: 'stream_interrupted' })

    // Gemini's error chunk, to a Gemini client (pass-through) and to a chat client (translated).
    const geminiChunk = (o: Record<string, unknown>) => `data: ${JSON.stringify(o)}\n\n`
    const geminiError = {
      headers: SSE,
      chunks: [geminiChunk({ candidates: [{ content: { role: 'model', parts: [{ text: 'partial ' }] } }] }), geminiChunk({ error: { code: 500, message: 'Internal error encountered.', status: 'INTERNAL' } })],
    }
    result = await call('/v1beta/models/sgem-1:streamGenerateContent?alt=sse', { contents: [{ role: 'user', parts: [{ text: 'hi' }] }] }, geminiError)
    assert.include(result.text, 'Internal error encountered.')
    assert.include(result.row, { status: 200, error_code: 'stream_interrupted' })
    result = await call(...chat('sgem-1', true), geminiError)
    assert.include(result.text, 'Internal error encountered.')
    assert.include(result.row, { status: 200, error_code: 'stream_interrupted' })

    // Translated, the error is told in the client's format (the relay already did this).
    result = await call(...chat('sclaude-1', true), anthropicError)
    assert.include(result.text, 'Overloaded')
    assert.include(result.row, { status: 200, error_code: 'stream_interrupted' })
  })

  test('a stream that ends without [DONE] / message_stop: a translated client gets an error, not a clean end; the row says so', async ({ assert }) => {
    // Pass-through: the client has the upstream's bytes as they came; the row is not a success.
    let result = await call(...chat('s-1', true), { headers: SSE, chunks: [chatDelta('partial '), chatDelta('answer')] })
    assert.include(result.text, 'partial ')
    assert.include(result.row, { status: 200, error_code: 'stream_interrupted', estimated: true })
    result = await call(...messages('sclaude-1', true), { headers: SSE, chunks: [anthropicStart, ...anthropicText('partial ')] })
    assert.include(result.row, { status: 200, error_code: 'stream_interrupted' })

    // Translated: no finish reason came, so the gateway must not write message_stop / finish_reason "stop".
    result = await call(...messages('s-1', true), { headers: SSE, chunks: [chatDelta('partial '), chatDelta('answer')] })
    assert.include(result.text, 'partial ')
    assert.include(result.text, 'event: error')
    assert.notInclude(result.text, '"stop_reason":"end_turn"')
    assert.include(result.row, { status: 200, error_code: 'stream_interrupted' })
    result = await call('/v1/responses', { model: 's-1', input: 'hi', stream: true }, { headers: SSE, chunks: [chatDelta('partial ')] })
    assert.include(result.text, 'partial ')
    assert.notInclude(result.text, 'response.completed')
    assert.include(result.row, { status: 200, error_code: 'stream_interrupted' })
    result = await call(...chat('sclaude-1', true), { headers: SSE, chunks: [anthropicStart, ...anthropicText('partial ')] })
    assert.include(result.text, '"error"')
    assert.notInclude(result.text, '"finish_reason":"stop"')
    assert.include(result.row, { status: 200, error_code: 'stream_interrupted' })

    // A finish without [DONE] is a complete answer once translated.
    result = await call(...messages('s-1', true), { headers: SSE, chunks: [chatDelta('whole'), chatFinish] })
    assert.include(result.text, 'event: message_stop')
    assert.notInclude(result.text, 'event: error')
    assert.include(result.row, { status: 200, error_code: null })
  })

  test('events after [DONE] / message_stop are not part of the answer', async ({ assert }) => {
    let result = await call(...messages('s-1', true), { headers: SSE, chunks: [chatDelta('a'), chatFinish, 'data: [DONE]\n\n', chatDelta('AFTER'), chatFinish] })
    assert.notInclude(result.text, 'AFTER')
    assert.equal(result.text.split('event: message_stop').length, 2)
    assert.include(result.row, { status: 200, error_code: null })
    const stop = [anthropicEvent('content_block_stop', { index: 0 }), anthropicEvent('message_delta', { delta: { stop_reason: 'end_turn' }, usage: { output_tokens: 3 } }), anthropicEvent('message_stop', {})]
    result = await call(...chat('sclaude-1', true), { headers: SSE, chunks: [anthropicStart, ...anthropicText('a'), ...stop, ...anthropicText('AFTER')] })
    assert.notInclude(result.text, 'AFTER')
    assert.include(result.row, { status: 200, error_code: null, completion_tokens: 3 })
    result = await call(...chat('s-1', true), { headers: SSE, chunks: [chatDelta('a'), chatFinish, 'data: [DONE]\n\n', chatDelta('AFTER')] })
    assert.notInclude(result.text, 'AFTER')
  })

  test('a Content-Type that lies: JSON labelled as a stream, a stream labelled as JSON', async ({ assert }) => {
    const json = '{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1}}'
    // Not asked to stream: the JSON is read whatever its label says.
    let result = await call(...chat('s-1'), { headers: SSE, body: json })
    assert.equal(result.response.status, 200)
    assert.include(result.row, { status: 200, error_code: null, prompt_tokens: 3 })
    // Asked to stream: a complete body with no event in it is no answer, known before any byte went
    // to the client: the attempt fails (the next channel would be tried), never an empty success.
    for (const [path, request, format] of [[...chat('s-1', true), 'openai'], [...messages('s-1', true), 'anthropic']] as const) {
      result = await call(path, request, { headers: SSE, body: json })
      assert.equal(result.response.status, 502)
      errorOf(format, JSON.parse(result.text))
      assert.include(result.row, { status: 502, error_code: 'provider_error' }, path)
    }
    // Asked to stream, answered JSON (as JSON): the client of the same format gets a stream of that answer.
    for (const [path, request, marker] of [
      [...chat('s-1', true), 'data: [DONE]'],
      [...messages('sclaude-1', true), 'event: message_stop'],
    ] as const) {
      const body = path === '/v1/messages'
        ? '{"id":"m","type":"message","role":"assistant","model":"x","content":[{"type":"text","text":"hi"}],"stop_reason":"end_turn","usage":{"input_tokens":3,"output_tokens":1}}'
        : json
      result = await call(path, request, { body })
      assert.equal(result.response.status, 200)
      assert.include(result.response.headers.get('content-type') ?? '', 'text/event-stream')
      assert.include(result.text, marker)
      assert.include(result.text, 'hi')
      assert.include(result.row, { status: 200, error_code: null, prompt_tokens: 3, completion_tokens: 1, estimated: false })
    }
    // An event stream labelled application/json: a clear 502.
    result = await call(...chat('s-1'), { chunks: [chatDelta('a'), chatFinish, 'data: [DONE]\n\n'] })
    assert.equal(result.response.status, 502)
    assert.include(result.row, { status: 502, error_code: 'provider_error' })
  })
})

test.group('Upstream misbehaviour: status codes', (group) => {
  let mock: MockUpstream
  let elsewhere: MockUpstream
  let user: SeededUser
  const answer = chatAnswer('{"prompt_tokens":3,"completion_tokens":1}')

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    elsewhere = await startMock()
    user = await seedUser()
    return async () => {
      await mock.stop()
      await elsewhere.stop()
    }
  })
  group.each.setup(async () => (await gateway()).health.reset())

  const auth = () => ({ 'authorization': `Bearer ${user.key}`, 'x-api-key': user.key })
  const attemptsOf = (requestId: string) => db.from('request_attempts').where('request_id', requestId).orderBy('attempt')

  test('a redirect is never followed with the channel key, nor relayed: the next channel serves, the attempt says where it pointed', async ({ assert }) => {
    const primary = await seedChannel({ name: 'redirecting', provider: 'custom', baseUrl: mock.url, models: ['r-*'], priority: 10 })
    const backup = await seedChannel({ name: 'backup', provider: 'custom', baseUrl: elsewhere.url, models: ['r-*'], priority: 0 })
    for (const status of [301, 302, 307, 308]) {
      await (await gateway()).health.reset()
      const before = elsewhere.requests.length
      mock.script({ raw: { status, headers: { location: `${elsewhere.url}/stolen` }, body: answer } })
      const response = await post('/v1/chat/completions', { model: 'r-1', messages: hello }, auth())
      assert.equal(response.status, 200, String(status))
      const row = await rowOf(user)
      assert.include(row, { status: 200, channel_id: backup.id, attempts: 2 })
      // The backup's own request only: nothing went to the redirect's target path.
      assert.deepEqual(elsewhere.requests.slice(before).map((r) => r.path), ['/v1/chat/completions'])
      const [first] = await attemptsOf(row.request_id)
      assert.include(first, { channel_id: primary.id, status, outcome: 'http_error' })
      assert.include(first.error, '/stolen')
    }
    // Nowhere else to go: 502 in the client's format, without the target's address.
    await db.from('channels').where('id', backup.id).delete()
    await refreshCaches()
    mock.script({ raw: { status: 302, headers: { location: 'http://10.1.2.3:8080/v1/chat/completions' }, body: answer } })
    const response = await post('/v1/messages', { model: 'r-1', max_tokens: 5, messages: hello }, auth())
    const text = await response.text()
    assert.equal(response.status, 502)
    assert.equal(JSON.parse(text).error.type, 'api_error')
    assert.notInclude(text, '10.1.2.3')
    assert.include(await rowOf(user), { status: 502, error_code: 'provider_error' })
  })

  test('2xx other than 200 with an answer: the client gets 200 and the answer, the row says 200', async ({ assert }) => {
    await seedChannel({ name: 'odd-2xx', provider: 'custom', baseUrl: mock.url, models: ['two-*'] })
    for (const status of [201, 202, 205, 206, 299]) {
      for (const path of ['/v1/chat/completions', '/v1/messages']) {
        mock.script({ raw: { status, body: answer } })
        const response = await post(path, { model: 'two-1', max_tokens: 5, messages: hello }, auth())
        assert.equal(response.status, 200, `${status} ${path}`)
        assert.include(await response.text(), 'hi there')
        assert.include(await rowOf(user), { status: 200, error_code: null, prompt_tokens: 3 })
      }
    }
    // 204 carries no body: a clear 502.
    mock.script({ raw: { status: 204 } })
    const response = await post('/v1/chat/completions', { model: 'two-1', messages: hello }, auth())
    assert.equal(response.status, 502)
  })

  test('huge error messages are cut for the client, the attempt record and the channel', async ({ assert }) => {
    await seedChannel({ name: 'verbose', provider: 'custom', baseUrl: mock.url, models: ['v-*'] })
    const big = 'x'.repeat(200_000)
    for (const [status, clientStatus] of [[500, 502], [400, 400]]) {
      mock.script({ raw: { status, body: JSON.stringify({ error: { message: big, type: 'server_error' } }) } })
      const response = await post('/v1/messages', { model: 'v-1', max_tokens: 5, messages: hello }, auth())
      assert.equal(response.status, clientStatus)
      const body: any = await response.json()
      assert.isBelow(body.error.message.length, 2000)
      const row = await rowOf(user)
      const [attempt] = await attemptsOf(row.request_id)
      assert.isBelow(attempt.error.length, 2000)
    }
    // Not JSON (an HTML page of a proxy): cut as before.
    mock.script({ raw: { status: 503, headers: { 'content-type': 'text/html' }, body: `<html>${big}</html>` } })
    const response = await post('/v1/chat/completions', { model: 'v-1', messages: hello }, auth())
    assert.equal(response.status, 502)
    assert.isBelow((await response.text()).length, 2000)
  })

  test('odd Retry-After values and 1xx heads: sane answers (checked, already fine)', async ({ assert }) => {
    await seedChannel({ name: 'limited', provider: 'custom', baseUrl: mock.url, models: ['ra-*'] })
    for (const [value, expected] of [['-5', null], ['1e308', null], ['99999999999', '600'], ['Wed, 21 Oct 2015 07:28:00 GMT', null], ['soon', null], ['0.001', '1']] as const) {
      await (await gateway()).health.reset()
      mock.script({ raw: { status: 429, headers: { 'retry-after': value }, body: '{}' } })
      const response = await post('/v1/chat/completions', { model: 'ra-1', messages: hello }, auth())
      assert.equal(response.status, 429, value)
      assert.equal(response.headers.get('retry-after'), expected, value)
    }
    await (await gateway()).health.reset()
    mock.script({ raw: { informational: [103], body: answer } })
    assert.equal((await post('/v1/chat/completions', { model: 'ra-1', messages: hello }, auth())).status, 200)
    // An unsolicited 100 Continue: undici drops the connection (UND_ERR_SOCKET); a network error, failed over like one.
    mock.script({ raw: { informational: [100], body: answer } })
    const response = await post('/v1/chat/completions', { model: 'ra-1', messages: hello }, auth())
    assert.equal(response.status, 502)
    assert.include(await rowOf(user), { status: 502, error_code: 'provider_error' })
  })
})

test.group('Upstream misbehaviour: timing', (group) => {
  let mock: MockUpstream
  let user: SeededUser

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'slow', provider: 'custom', baseUrl: mock.url, models: ['t-*'] })
    await db.from('channels').update({ idle_timeout_ms: 300, total_timeout_ms: 1200 })
    await refreshCaches()
    user = await seedUser()
    return () => mock.stop()
  })

  const auth = () => ({ 'authorization': `Bearer ${user.key}`, 'x-api-key': user.key })

  test('headers, then silence: the idle limit ends it, 502 (non-stream) or an error event (stream), one row each', async ({ assert }) => {
    for (const [path, body] of [
      ['/v1/chat/completions', { model: 't-1', messages: hello }],
      ['/v1/messages', { model: 't-1', max_tokens: 5, messages: hello }],
    ] as const) {
      mock.script({ raw: { body: '{"id":"x",', then: 'hang' } })
      const started = Date.now()
      const response = await post(path, body, auth())
      const text = await response.text()
      assert.equal(response.status, 502, text)
      assert.include(text, 'idle timeout')
      assert.isBelow(Date.now() - started, 1100)
      assert.include(await rowOf(user), { status: 502, error_code: 'provider_error' })
    }
    mock.script({ raw: { headers: SSE, chunks: [chatDelta('partial ')], then: 'hang' } })
    const response = await post('/v1/messages', { model: 't-1', max_tokens: 5, messages: hello, stream: true }, auth())
    const text = await response.text()
    assert.include(text, 'event: error')
    assert.include(text, 'idle timeout')
    assert.include(await rowOf(user), { status: 200, error_code: 'stream_interrupted' })
  })

  test('a body that trickles forever: the total limit ends it', async ({ assert }) => {
    const trickle = Array.from({ length: 40 }, () => ' ')
    mock.script({ raw: { chunks: ['{"id":"x"', ...trickle], chunk_delay_ms: 100, then: 'hang' } })
    let started = Date.now()
    let response = await post('/v1/chat/completions', { model: 't-1', messages: hello }, auth())
    let text = await response.text()
    assert.equal(response.status, 502, text)
    assert.include(text, 'total timeout')
    assert.isBelow(Date.now() - started, 2500)
    assert.include(await rowOf(user), { status: 502, error_code: 'provider_error' })

    const comments = Array.from({ length: 40 }, () => ': keep-alive\n\n')
    mock.script({ raw: { headers: SSE, chunks: [chatDelta('partial '), ...comments], chunk_delay_ms: 100, then: 'hang' } })
    started = Date.now()
    response = await post('/v1/chat/completions', { model: 't-1', messages: hello, stream: true }, auth())
    text = await response.text()
    assert.include(text, 'total timeout')
    assert.isBelow(Date.now() - started, 2500)
    assert.include(await rowOf(user), { status: 200, error_code: 'stream_interrupted', estimated: true })
  })
})
