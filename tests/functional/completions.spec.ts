import { test } from '@japa/runner'
import db from '@adonisjs/lucid/services/db'
import { setModelFallbacks } from '#actions/set_model_fallbacks'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import {
  abortStreamAfter,
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
} from '#tests/helpers'

/** The data of each SSE event of a stream's text. */
function events(text: string): string[] {
  return text
    .split('\n\n')
    .filter((block) => block.startsWith('data: '))
    .map((block) => block.slice('data: '.length))
}

/** The text a completions stream carried. */
function streamedText(text: string): string {
  return events(text)
    .filter((data) => data !== '[DONE]')
    .map((data) => JSON.parse(data).choices?.[0]?.text ?? '')
    .join('')
}

async function waitFor(check: () => Promise<boolean>, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await check()) return
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
  throw new Error('condition not met in time')
}

test.group('POST /v1/completions', (group) => {
  let mock: MockUpstream
  let failing: MockUpstream
  let healthyId = 0

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    failing = await startMock({ status: 500 })
    await seedChannel({
      name: 'openai',
      provider: 'openai',
      baseUrl: mock.url,
      models: ['fim-*'],
      modelMapping: { 'fim-mapped': 'fim-upstream' },
    })
    await seedChannel({ name: 'deepseek', provider: 'deepseek', baseUrl: mock.url, models: ['deepseek-*'] })
    await seedChannel({ name: 'claude', provider: 'anthropic', baseUrl: mock.url, models: ['claude-*'] })
    await seedChannel({ name: 'broken', provider: 'custom', baseUrl: failing.url, models: ['fo-*'], priority: 5 })
    healthyId = (await seedChannel({ name: 'healthy', provider: 'custom', baseUrl: mock.url, models: ['fo-*'], priority: 1 })).id
    await seedPrice('fim-priced', '1', '2')
    return async () => {
      await mock.stop()
      await failing.stop()
    }
  })

  test('non-stream: the client bytes go upstream and the upstream bytes come back; usage and exact cost metered', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    // Odd spacing and fields the gateway does not own: all must reach the upstream as sent.
    const sent = '{ "model":"fim-priced",  "prompt":"def f(", "suffix":"    return x", "max_tokens":16, "echo":false, "logprobs":null, "n":1, "stop":["\\n\\n"], "temperature":0.2, "vendor_field":{"a":[1,2]} }'
    const response = await post('/v1/completions', sent, { authorization: `Bearer ${user.key}` })
    assert.equal(response.status, 200)
    const request = mock.lastRequest()!
    assert.equal(request.path, '/v1/completions')
    assert.equal(request.body, sent)
    const text = await response.text()
    // The mock answers indented JSON: a relay of its bytes keeps the indentation.
    assert.match(text, /^\{\n "id": "cmpl-mock/)
    const answer = JSON.parse(text)
    assert.equal(answer.object, 'text_completion')
    assert.equal(answer.choices[0].text, '[def f(|    return x] tok0 tok1 tok2 tok3 tok4 ')
    assert.deepEqual(answer.usage, { prompt_tokens: 14, completion_tokens: 6, total_tokens: 20 })
    assert.equal(response.headers.get('x-request-id') !== null, true)

    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 1)
    // 14 × $1/M + 6 × $2/M
    assert.include(rows[0], {
      endpoint: 'completions',
      model: 'fim-priced',
      status: 200,
      stream: false,
      prompt_tokens: 14,
      completion_tokens: 6,
      estimated: false,
      cost: '0.000026000000',
    })
    const money = await balanceAndLedger(user.userId)
    assert.equal(money.balance, '0.999974000000')
    assert.equal(money.ledger, money.balance)
  })

  test('stream: chunks relayed as they come, usage asked of the upstream and its chunk not shown to a client that did not ask', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const response = await post(
      '/v1/completions',
      { model: 'fim-priced', prompt: 'x', stream: true, mock: { chunk_delay_ms: 150 } },
      { authorization: `Bearer ${user.key}` }
    )
    assert.equal(response.status, 200)
    assert.match(response.headers.get('content-type')!, /^text\/event-stream/)
    // Relayed without buffering: the first text arrives long before the stream ends (6 pieces, 150 ms apart).
    const reader = response.body!.getReader()
    const decoder = new TextDecoder()
    let text = ''
    let firstAt = 0
    for (;;) {
      const { done, value } = await reader.read()
      if (done) break
      const piece = decoder.decode(value, { stream: true })
      if (!firstAt && piece.includes('"text"')) firstAt = Date.now()
      text += piece
    }
    assert.isAbove(Date.now() - firstAt, 400)

    assert.equal(JSON.parse(mock.lastRequest()!.body).stream_options.include_usage, true)
    assert.equal(streamedText(text), '[x|] tok0 tok1 tok2 tok3 tok4 ')
    assert.isFalse(text.includes('"usage"'))
    assert.isTrue(text.endsWith('data: [DONE]\n\n'))

    const [row] = await usageRows(user.userId)
    // 10 × $1/M + 6 × $2/M
    assert.include(row, { endpoint: 'completions', stream: true, status: 200, prompt_tokens: 10, completion_tokens: 6, estimated: false, cost: '0.000022000000' })
  })

  test('stream with include_usage: the client gets the usage chunk, and its body goes up as sent', async ({ assert }) => {
    const user = await seedUser()
    const sent = JSON.stringify({ model: 'fim-free', prompt: ['a', 'b'], stream: true, stream_options: { include_usage: true } })
    const response = await post('/v1/completions', sent, { authorization: `Bearer ${user.key}` })
    const text = await response.text()
    assert.equal(mock.lastRequest()!.body, sent)
    const usage = events(text).filter((d) => d !== '[DONE]').map((d) => JSON.parse(d)).find((e) => e.usage)
    assert.deepEqual(usage.choices, [])
    assert.deepEqual(usage.usage, { prompt_tokens: 13, completion_tokens: 6, total_tokens: 19 })
    assert.equal(streamedText(text), '[a+b|] tok0 tok1 tok2 tok3 tok4 ')
    const [row] = await usageRows(user.userId)
    assert.include(row, { prompt_tokens: 13, completion_tokens: 6, estimated: false })
  })

  test('model mapping rewrites only the model, both ways', async ({ assert }) => {
    const user = await seedUser()
    const body = { model: 'fim-mapped', prompt: 'p', suffix: 's', temperature: 0.5, logit_bias: { '50256': -100 }, echo: true, best_of: 2 }
    const response = await post('/v1/completions', body, { authorization: `Bearer ${user.key}` })
    assert.equal(response.status, 200)
    assert.deepEqual(JSON.parse(mock.lastRequest()!.body), { ...body, model: 'fim-upstream' })
    const answer = (await response.json()) as any
    assert.equal(answer.model, 'fim-mapped')
    assert.equal(answer.choices[0].text, '[p|s] tok0 tok1 tok2 tok3 tok4 ')
    const [row] = await usageRows(user.userId)
    assert.include(row, { model: 'fim-mapped', served_model: 'fim-upstream', prompt_tokens: 14 })
  })

  test('a mapped stream names the client model in every chunk', async ({ assert }) => {
    const user = await seedUser()
    const response = await post('/v1/completions', { model: 'fim-mapped', prompt: 'p', stream: true }, { authorization: `Bearer ${user.key}` })
    const chunks = events(await response.text()).filter((d) => d !== '[DONE]').map((d) => JSON.parse(d))
    assert.isAbove(chunks.length, 5)
    assert.isTrue(chunks.every((c) => c.model === 'fim-mapped'))
    assert.equal(JSON.parse(mock.lastRequest()!.body).model, 'fim-upstream')
  })

  test('DeepSeek channels are addressed at /beta/completions (FIM), outside their /v1 base', async ({ assert }) => {
    const user = await seedUser()
    const response = await post('/v1/completions', { model: 'deepseek-chat', prompt: 'def fib(a):', suffix: '    return fib(a-1) + fib(a-2)', max_tokens: 128 }, { authorization: `Bearer ${user.key}` })
    assert.equal(response.status, 200)
    assert.equal(mock.lastRequest()!.path, '/beta/completions')
    assert.equal(JSON.parse(mock.lastRequest()!.body).suffix, '    return fib(a-1) + fib(a-2)')
    const answer = (await response.json()) as any
    assert.isTrue(answer.choices[0].text.startsWith('[def fib(a):|    return fib(a-1) + fib(a-2)]'))
    const [row] = await usageRows(user.userId)
    assert.include(row, { provider: 'deepseek', status: 200, prompt_tokens: 14 })
  })

  test('a model served only by an anthropic channel: 400 unsupported_endpoint', async ({ assert }) => {
    const user = await seedUser()
    const before = mock.requests.length
    const response = await post('/v1/completions', { model: 'claude-x', prompt: 'p' }, { authorization: `Bearer ${user.key}` })
    assert.equal(response.status, 400)
    assert.equal(((await response.json()) as any).error.code, 'unsupported_endpoint')
    assert.equal(mock.requests.length, before)
    const [row] = await usageRows(user.userId)
    assert.include(row, { endpoint: 'completions', status: 400, error_code: 'unsupported_endpoint' })
  })

  test('bad input: 400 in OpenAI error shape, one usage row each, nothing sent upstream', async ({ assert }) => {
    const user = await seedUser()
    const before = mock.requests.length
    const cases: Array<[unknown, string]> = [
      [{ model: 'fim-free', prompt: { text: 'x' } }, 'prompt'],
      [{ model: 'fim-free', prompt: [1, 'a'] }, 'prompt'],
      [{ model: 'fim-free', prompt: [[1, 2], []] }, 'prompt'],
      [{ model: 'fim-free', prompt: [] }, 'prompt'],
      [{ model: 'fim-free' }, 'prompt'],
      [{ model: 'fim-free', prompt: 'x', suffix: 3 }, 'suffix'],
      [{ prompt: 'x' }, 'model'],
      ['{"model":"fim-free","prompt":', 'JSON'],
    ]
    for (const [body, word] of cases) {
      const response = await post('/v1/completions', body, { authorization: `Bearer ${user.key}` })
      assert.equal(response.status, 400, JSON.stringify(body))
      const answer = (await response.json()) as any
      assert.deepEqual(Object.keys(answer), ['error'])
      assert.include(answer.error.message, word)
      assert.isString(answer.error.type)
      assert.isString(answer.error.code)
    }
    assert.equal(mock.requests.length, before)
    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, cases.length)
    assert.isTrue(rows.every((r) => r.status === 400 && r.endpoint === 'completions' && r.prompt_tokens === 0))
  })

  test('a priced model with an empty balance: 402, metered', async ({ assert }) => {
    const user = await seedUser()
    const before = mock.requests.length
    const response = await post('/v1/completions', { model: 'fim-priced', prompt: 'p' }, { authorization: `Bearer ${user.key}` })
    assert.equal(response.status, 402)
    assert.isString(((await response.json()) as any).error.message)
    assert.equal(mock.requests.length, before)
    const [row] = await usageRows(user.userId)
    assert.include(row, { endpoint: 'completions', status: 402 })
  })

  test('an upstream without usage: estimated with the tokenizer (token-id prompts counted as given)', async ({ assert }) => {
    const user = await seedUser()
    const json = await post('/v1/completions', { model: 'fim-free', prompt: [[1, 2, 3], [4, 5]], mock: { usage: false } }, { authorization: `Bearer ${user.key}` })
    assert.isUndefined(((await json.json()) as any).usage)
    const stream = await post('/v1/completions', { model: 'fim-free', prompt: 'hello there', stream: true, mock: { usage: false } }, { authorization: `Bearer ${user.key}` })
    assert.equal(streamedText(await stream.text()), '[hello there|] tok0 tok1 tok2 tok3 tok4 ')
    const rows = await usageRows(user.userId)
    assert.include(rows[0], { status: 200, estimated: true, prompt_tokens: 5 })
    assert.isAbove(rows[0].completion_tokens, 5)
    assert.include(rows[1], { status: 200, stream: true, estimated: true })
    assert.isAbove(rows[1].prompt_tokens, 0)
    assert.isAbove(rows[1].completion_tokens, 5)
  })

  test('a 500 from the first channel fails over to the next before any byte', async ({ assert }) => {
    const user = await seedUser()
    const before = failing.requests.length
    const response = await post('/v1/completions', { model: 'fo-model', prompt: 'p' }, { authorization: `Bearer ${user.key}` })
    assert.equal(response.status, 200)
    assert.equal(((await response.json()) as any).choices[0].text, '[p|] tok0 tok1 tok2 tok3 tok4 ')
    assert.equal(failing.requests.length, before + 1)
    assert.equal(failing.lastRequest()!.path, '/v1/completions')
    const [row] = await usageRows(user.userId)
    assert.include(row, { status: 200, channel_id: healthyId, attempts: 2, prompt_tokens: 10 })
  })

  test('an upstream 4xx is relayed in OpenAI shape and metered', async ({ assert }) => {
    const user = await seedUser()
    const response = await post('/v1/completions', { model: 'fim-free', prompt: 'p', mock: { status: 400 } }, { authorization: `Bearer ${user.key}` })
    assert.equal(response.status, 400)
    assert.isString(((await response.json()) as any).error.message)
    const [row] = await usageRows(user.userId)
    assert.include(row, { endpoint: 'completions', status: 400 })
  })

  test('a client that hangs up mid-stream is billed for what it got', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    await abortStreamAfter(user.key, { model: 'fim-priced', prompt: 'p', stream: true, mock: { chunks: 200, chunk_delay_ms: 10 } }, 600, '/v1/completions')
    await waitFor(async () => (await usageRows(user.userId)).length === 1)
    const [row] = await usageRows(user.userId)
    assert.include(row, { status: 499, error_code: 'client_closed', estimated: true, stream: true })
    assert.isAbove(row.completion_tokens, 0)
    assert.isBelow(row.completion_tokens, 200)
    assert.isAbove(row.prompt_tokens, 0)
    assert.notEqual(row.cost, '0.000000000000')
    const money = await balanceAndLedger(user.userId)
    assert.equal(money.ledger, money.balance)
  })

  test('the response cache serves an identical request (x-gateway-cache-ttl), without a provider call or a charge', async ({ assert }) => {
    ;(await gateway()).service.responseCache!.clear()
    const user = await seedUser({ balance: '1' })
    const body = { model: 'fim-priced', prompt: 'cache me' }
    const headers = { 'authorization': `Bearer ${user.key}`, 'x-gateway-cache-ttl': '60' }
    const first = await post('/v1/completions', body, headers)
    assert.equal(first.headers.get('x-gateway-cache'), 'MISS')
    const firstText = await first.text()
    const before = mock.requests.length
    const second = await post('/v1/completions', body, headers)
    assert.equal(second.headers.get('x-gateway-cache'), 'HIT')
    assert.equal(await second.text(), firstText)
    assert.equal(mock.requests.length, before)
    const rows = await usageRows(user.userId)
    assert.include(rows[1], { cache_hit: true, cost: '0.000000000000', prompt_tokens: 0 })
    assert.notEqual(rows[0].cost, '0.000000000000')
  })

  test('operator fallbacks: when every channel fails, the fallback model answers as itself, billed as itself', async ({ assert }) => {
    await seedChannel({ name: 'broken-only', provider: 'custom', baseUrl: failing.url, models: ['big-fim'] })
    await setModelFallbacks({ model: 'big-fim', fallbacks: ['fim-priced'] })
    await refreshCaches()
    const user = await seedUser({ balance: '1' })
    const response = await post('/v1/completions', { model: 'big-fim', prompt: 'p' }, { authorization: `Bearer ${user.key}` })
    assert.equal(response.status, 200)
    assert.equal(((await response.json()) as any).model, 'fim-priced')
    assert.equal(JSON.parse(mock.lastRequest()!.body).model, 'fim-priced')
    const [row] = await usageRows(user.userId)
    assert.include(row, { model: 'fim-priced', requested_model: 'big-fim', status: 200, prompt_tokens: 10, cost: '0.000022000000' })
  })

  test('LOG_BODIES keeps the client bytes and exactly what it got, JSON and stream', async ({ assert }) => {
    const gw = await gateway()
    await gw.logBodies('all', 64 * 1024)
    try {
      const user = await seedUser()
      const logOf = async (requestId: string) => {
        await gw.meter.drain()
        await gw.requestLogs?.drain()
        return db.from('request_logs').where('request_id', requestId).first()
      }
      for (const body of [{ model: 'fim-free', prompt: 'log me' }, { model: 'fim-free', prompt: 'log me', stream: true }]) {
        const response = await post('/v1/completions', body, { authorization: `Bearer ${user.key}` })
        const text = await response.text()
        const row = await logOf(response.headers.get('x-request-id')!)
        assert.equal(row.request_body, JSON.stringify(body))
        assert.equal(row.response_body, text)
      }
    } finally {
      await gw.logBodies('off')
    }
  })
})
