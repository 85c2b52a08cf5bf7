import { test } from '@japa/runner'
import db from '@adonisjs/lucid/services/db'
import { setModelFallbacks } from '#actions/set_model_fallbacks'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import type { RawAnswer } from '#tests/fixtures/mock_upstream/raw_answer'
import { balanceAndLedger, gateway, post, refreshCaches, resetDatabase, seedChannel, seedPrice, seedUser, startMock, usageRows } from '#tests/helpers'
import { ledgerProblems } from '#tests/money_checks'

/**
 * An upstream's 2xx answer that is no answer (not JSON, an error body, no
 * content, cut off mid-body) is the upstream's failure as much as its 502:
 * the attempt fails, the channel's health counts it, and the next channel or
 * fallback model is tried. Only when every candidate fails does the client
 * get the 502, with one usage row and no charge.
 */
const hello = [{ role: 'user', content: 'hi' }]

/** The broken answers, as the mock's `raw` scripts them, and what the attempt's error says of each */
const BROKEN: Array<[string, RawAnswer, string]> = [
  ['not JSON', { headers: { 'content-type': 'text/html' }, body: '<html>502 Bad Gateway</html>' }, 'not valid JSON'],
  ['an error body with 200', { body: '{"error":{"message":"quota exhausted","type":"insufficient_quota"}}' }, 'quota exhausted'],
  ['no content', { body: '{"id":"x","object":"chat.completion","model":"m","choices":[]}' }, 'without its content'],
  ['cut mid-body', { body: '{"id":"x","object":"chat.completion","choices":[{"index":0,"mess', then: 'destroy' }, 'before its end'],
]

const SSE = { 'content-type': 'text/event-stream' }
const chatChunk = (o: Record<string, unknown>) => `data: ${JSON.stringify({ id: 'c', object: 'chat.completion.chunk', model: 'm', ...o })}\n\n`
const chat = (model: string) => ['/v1/chat/completions', { model, messages: hello }] as const
const messages = (model: string) => ['/v1/messages', { model, max_tokens: 20, messages: hello }] as const
const gemini = (model: string) => [`/v1beta/models/${model}:generateContent`, { contents: [{ role: 'user', parts: [{ text: 'hi' }] }] }] as const

async function attemptsOf(requestId: string) {
  return db.from('request_attempts').where('request_id', requestId).orderBy('attempt')
}

test.group('Answer failover: a 2xx that is no answer fails over like a 5xx', (group) => {
  let bad: MockUpstream
  let good: MockUpstream
  /** What the broken upstream answers to every request */
  let broken: RawAnswer = BROKEN[0][1]
  let n = 0

  group.setup(async () => {
    await resetDatabase()
    bad = await startMock({ faults: () => ({ raw: broken }) })
    good = await startMock({ text: 'from the backup' })
    return async () => {
      ;(await gateway()).health.reset()
      await bad.stop()
      await good.stop()
    }
  })
  group.each.setup(async () => (await gateway()).health.reset())

  /** A fresh model served by the broken channel first (priority 10), then by `second` */
  async function pair(second: MockUpstream) {
    n++
    const model = `af${n}-model`
    const primary = await seedChannel({ name: `broken-${n}`, baseUrl: bad.url, models: [model], priority: 10 })
    const backup = await seedChannel({ name: `backup-${n}`, baseUrl: second.url, models: [model], priority: 0 })
    await seedPrice(model, '1', '2')
    return { model, primary, backup }
  }

  test('{$self}: the client gets the next channel\'s answer; the attempt log names the failure; the channel\'s health counts it')
    .with(BROKEN.map(([label]) => label))
    .run(async ({ assert }, label) => {
      const [, raw, error] = BROKEN.find(([l]) => l === label)!
      broken = raw
      for (const [path, request, format] of [[...chat(''), 'openai'], [...messages(''), 'anthropic']] as const) {
        ;(await gateway()).health.reset()
        const { model, primary, backup } = await pair(good)
        const user = await seedUser({ balance: '10' })
        const response = await post(path, { ...request, model }, { 'authorization': `Bearer ${user.key}`, 'x-api-key': user.key })
        const text = await response.text()
        assert.equal(response.status, 200, `${format}: ${text}`)
        assert.include(text, 'from the backup')
        const rows = await usageRows(user.userId)
        assert.lengthOf(rows, 1)
        assert.include(rows[0], { channel_id: backup.id, status: 200, error_code: null, attempts: 2 })
        assert.isAbove(Number(rows[0].cost), 0)
        const attempts = await attemptsOf(rows[0].request_id)
        assert.deepEqual(
          attempts.map((a) => [a.attempt, a.channel_id, a.status, a.outcome]),
          [
            [1, primary.id, 200, 'invalid_answer'],
            [2, backup.id, 200, 'ok'],
          ],
          format
        )
        assert.include(attempts[0].error, error, format)
        // Counted like a 502 of the upstream's: a failure on the breaker, the backup's success its own.
        const health = (await gateway()).health
        assert.equal(health.stateOf(primary.id).failures, 1, format)
        assert.equal(health.stateOf(backup.id).failures, 0, format)
        const money = await balanceAndLedger(user.userId)
        assert.equal(money.balance, money.ledger)
      }
      assert.deepEqual(await ledgerProblems(), [])
    })

  test('repeated broken answers open the channel\'s circuit, as repeated 5xx do', async ({ assert }) => {
    broken = BROKEN[1][1]
    const { model, primary } = await pair(good)
    const user = await seedUser({ balance: '10' })
    const health = (await gateway()).health
    const threshold = health.options.failureThreshold
    for (let i = 0; i < threshold; i++) {
      assert.equal((await post(...chat(model), { authorization: `Bearer ${user.key}` }).then((r) => r.status)), 200)
    }
    assert.equal(health.stateOf(primary.id).state, 'open')
    const seen = bad.requests.length
    assert.equal((await post(...chat(model), { authorization: `Bearer ${user.key}` })).status, 200)
    assert.equal(bad.requests.length, seen, 'the open circuit is not tried')
  })

  test('a fallback model serves when the model\'s only channel answers no answer; held, billed once, at its price', async ({ assert }) => {
    broken = BROKEN[2][1]
    n++
    const model = `af${n}-big`
    const fallback = `af${n}-small`
    const primary = await seedChannel({ name: `broken-only-${n}`, baseUrl: bad.url, models: [model] })
    const backup = await seedChannel({ name: `fallback-${n}`, baseUrl: good.url, models: [fallback] })
    await seedPrice(model, '10', '10')
    await seedPrice(fallback, '1', '2')
    await setModelFallbacks({ model, fallbacks: [fallback] })
    await refreshCaches()
    const user = await seedUser({ balance: '10' })
    const response = await post(...chat(model), { authorization: `Bearer ${user.key}` })
    assert.equal(response.status, 200)
    const body: any = await response.json()
    assert.equal(body.model, fallback)
    assert.equal(body.choices[0].message.content, 'from the backup')
    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 1)
    assert.include(rows[0], { model: fallback, requested_model: model, channel_id: backup.id, status: 200, attempts: 2 })
    const attempts = await attemptsOf(rows[0].request_id)
    assert.deepEqual(attempts.map((a) => [a.channel_id, a.outcome]), [[primary.id, 'invalid_answer'], [backup.id, 'ok']])
    // Billed at the fallback's price (1/2 per 1M), charged once.
    const money = await balanceAndLedger(user.userId)
    assert.equal(money.balance, money.ledger)
    assert.closeTo(10 - Number(money.balance), Number(rows[0].cost), 1e-12)
    assert.isBelow(Number(rows[0].cost), 0.001)
    assert.deepEqual(await ledgerProblems(), [])
  })

  test('a fallback model that would need money the balance lacks is not tried: the 502 stays, no charge', async ({ assert }) => {
    broken = BROKEN[0][1]
    n++
    const model = `af${n}-free`
    const fallback = `af${n}-paid`
    await seedChannel({ name: `broken-free-${n}`, baseUrl: bad.url, models: [model] })
    await seedChannel({ name: `paid-${n}`, baseUrl: good.url, models: [fallback] })
    await seedPrice(fallback, '1', '2')
    await setModelFallbacks({ model, fallbacks: [fallback] })
    await refreshCaches()
    const user = await seedUser()
    const seen = good.requests.length
    const response = await post(...chat(model), { authorization: `Bearer ${user.key}` })
    assert.equal(response.status, 502)
    assert.equal(good.requests.length, seen, 'the priced fallback was not admitted (admitFallback)')
    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 1)
    assert.include(rows[0], { status: 502, error_code: 'provider_error', attempts: 1 })
    assert.equal(Number(rows[0].cost), 0)
  })

  test('every candidate broken: the 502 in the client\'s format ({$self}), one row, attempts 2, no charge')
    .with(['openai', 'anthropic', 'gemini'] as const)
    .run(async ({ assert }, format) => {
      for (const [label, raw, error] of BROKEN) {
        broken = raw
        ;(await gateway()).health.reset()
        n++
        const model = `af${n}-doomed`
        const first = await seedChannel({ name: `doomed-a-${n}`, baseUrl: bad.url, models: [model], priority: 10 })
        const second = await seedChannel({ name: `doomed-b-${n}`, baseUrl: bad.url, models: [model], priority: 0 })
        await seedPrice(model, '1', '2')
        const user = await seedUser({ balance: '10' })
        const [path, request] = format === 'openai' ? chat(model) : format === 'anthropic' ? messages(model) : gemini(model)
        const response = await post(path, request, { 'authorization': `Bearer ${user.key}`, 'x-api-key': user.key, 'x-goog-api-key': user.key })
        assert.equal(response.status, 502, label)
        const body: any = await response.json()
        if (format === 'anthropic') {
          assert.equal(body.type, 'error', label)
          assert.equal(body.error.type, 'api_error', label)
        } else if (format === 'gemini') {
          assert.equal(body.error.code, 502, label)
          assert.isString(body.error.status, label)
        } else {
          assert.equal(body.error.code, 'provider_error', label)
        }
        const rows = await usageRows(user.userId)
        assert.lengthOf(rows, 1, label)
        assert.include(rows[0], { status: 502, error_code: 'provider_error', attempts: 2 }, label)
        assert.equal(Number(rows[0].cost), 0, label)
        const attempts = await attemptsOf(rows[0].request_id)
        assert.deepEqual(attempts.map((a) => [a.channel_id, a.outcome]), [[first.id, 'invalid_answer'], [second.id, 'invalid_answer']], label)
        assert.include(attempts[1].error, error, label)
        const money = await balanceAndLedger(user.userId)
        assert.equal(Number(money.balance), 10, label)
      }
      assert.deepEqual(await ledgerProblems(), [])
    })

  test('a stream that fails before its first event ({$self}) fails over: nothing had reached the client')
    .with(['an error event first', 'no event at all', 'JSON labelled as a stream'])
    .run(async ({ assert }, label) => {
      broken = {
        'an error event first': { headers: SSE, chunks: ['data: {"error":{"message":"quota exhausted","type":"insufficient_quota"}}\n\n'] },
        'no event at all': { headers: SSE, body: '' },
        'JSON labelled as a stream': { headers: SSE, body: '{"id":"x","object":"chat.completion","choices":[]}' },
      }[label]!
      const cases = [
        ['/v1/chat/completions', { messages: hello, stream: true }, 'data: [DONE]'],
        ['/v1/messages', { max_tokens: 20, messages: hello, stream: true }, 'event: message_stop'],
        ['/v1/completions', { prompt: 'hi', stream: true }, 'data: [DONE]'],
      ] as const
      for (const [path, request, end] of cases) {
        ;(await gateway()).health.reset()
        const { model, primary, backup } = await pair(good)
        const user = await seedUser({ balance: '10' })
        const response = await post(path, { ...request, model }, { 'authorization': `Bearer ${user.key}`, 'x-api-key': user.key })
        const text = await response.text()
        assert.equal(response.status, 200, `${path}: ${text}`)
        assert.include(text, end, path)
        assert.notInclude(text, 'quota exhausted', path)
        const [row] = await usageRows(user.userId)
        assert.include(row, { channel_id: backup.id, status: 200, error_code: null, attempts: 2 }, path)
        const attempts = await attemptsOf(row.request_id)
        assert.deepEqual(attempts.map((a) => [a.channel_id, a.status, a.outcome]), [[primary.id, 200, 'invalid_answer'], [backup.id, 200, 'ok']], path)
        assert.match(attempts[0].error, label === 'an error event first' ? /began with an error: quota exhausted/ : /ended before its first event/, path)
        assert.equal((await gateway()).health.stateOf(primary.id).failures, 1, path)
      }
    })

  test('an Anthropic stream that opens with its own `event: error` fails over, passed through and translated', async ({ assert }) => {
    broken = { headers: SSE, chunks: ['event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'] }
    for (const [path, request, end] of [
      ['/v1/messages', { max_tokens: 20, messages: hello, stream: true }, 'event: message_stop'],
      ['/v1/chat/completions', { messages: hello, stream: true }, 'data: [DONE]'],
    ] as const) {
      ;(await gateway()).health.reset()
      n++
      const model = `af${n}-claude`
      const primary = await seedChannel({ name: `claude-broken-${n}`, provider: 'anthropic', baseUrl: bad.url, models: [model], priority: 10 })
      const backup = await seedChannel({ name: `claude-backup-${n}`, provider: 'anthropic', baseUrl: good.url, models: [model], priority: 0 })
      const user = await seedUser()
      const response = await post(path, { ...request, model }, { 'authorization': `Bearer ${user.key}`, 'x-api-key': user.key })
      const text = await response.text()
      assert.equal(response.status, 200, `${path}: ${text}`)
      assert.include(text, end, path)
      assert.notInclude(text, 'Overloaded', path)
      const [row] = await usageRows(user.userId)
      assert.include(row, { channel_id: backup.id, status: 200, error_code: null, attempts: 2 }, path)
      const attempts = await attemptsOf(row.request_id)
      assert.deepEqual(attempts.map((a) => [a.channel_id, a.outcome]), [[primary.id, 'invalid_answer'], [backup.id, 'ok']], path)
      assert.include(attempts[0].error, 'began with an error: Overloaded', path)
    }
  })

  test('a stream refused at its opening that stays open upstream: its upstream request is ended, not left paused', async ({ assert }) => {
    const hanging = await startMock({
      faults: () => ({ raw: { headers: SSE, chunks: ['data: {"error":{"message":"quota exhausted","type":"insufficient_quota"}}\n\n'], then: 'hang' } }),
    })
    try {
      n++
      const model = `af${n}-hang`
      await seedChannel({ name: `hanging-${n}`, baseUrl: hanging.url, models: [model], priority: 10 })
      const backup = await seedChannel({ name: `backup-${n}`, baseUrl: good.url, models: [model], priority: 0 })
      const user = await seedUser({ balance: '10' })
      const response = await post('/v1/chat/completions', { model, messages: hello, stream: true }, { authorization: `Bearer ${user.key}` })
      assert.include(await response.text(), 'data: [DONE]')
      const [row] = await usageRows(user.userId)
      assert.equal(row.channel_id, backup.id)
      // Before: the refused body stayed open with its timers gone: the connection held until the upstream hung up.
      for (let i = 0; i < 50 && hanging.openConnections > 0; i++) await new Promise((r) => setTimeout(r, 20))
      assert.equal(hanging.openConnections, 0, 'the hanging upstream connection was closed')
    } finally {
      await hanging.stop()
    }
  })

  test('a stream that fails after its first event stays the relay\'s: relayed, interrupted, not retried', async ({ assert }) => {
    broken = { headers: SSE, chunks: [chatChunk({ choices: [{ index: 0, delta: { content: 'partial ' } }] }), 'data: {"error":{"message":"overloaded mid-stream"}}\n\n'] }
    const { model, primary } = await pair(good)
    const user = await seedUser({ balance: '10' })
    const seen = good.requests.length
    const response = await post('/v1/chat/completions', { model, messages: hello, stream: true }, { authorization: `Bearer ${user.key}` })
    const text = await response.text()
    assert.equal(response.status, 200)
    assert.include(text, 'partial ')
    assert.include(text, 'overloaded mid-stream')
    assert.equal(good.requests.length, seen, 'the backup was not called: bytes had reached the client')
    const [row] = await usageRows(user.userId)
    assert.include(row, { channel_id: primary.id, status: 200, error_code: 'stream_interrupted', attempts: 1 })
  })

  test('a stream that opens with a keep-alive comment is relayed from its channel, not judged by it', async ({ assert }) => {
    broken = { headers: SSE, chunks: [': keep-alive\n\n', chatChunk({ choices: [{ index: 0, delta: { content: 'kept alive' }, finish_reason: 'stop' }] }), 'data: [DONE]\n\n'], chunk_delay_ms: 400 }
    const { model, primary } = await pair(good)
    const user = await seedUser({ balance: '10' })
    const response = await post('/v1/chat/completions', { model, messages: hello, stream: true }, { authorization: `Bearer ${user.key}` })
    // The comment reaches the client on its own, 400 ms before the first event: the opening check did not hold it.
    const reader = response.body!.getReader()
    const decoder = new TextDecoder()
    const first = decoder.decode((await reader.read()).value)
    assert.include(first, ': keep-alive')
    assert.notInclude(first, 'kept alive')
    let text = first
    for (let r = await reader.read(); !r.done; r = await reader.read()) text += decoder.decode(r.value)
    assert.include(text, 'kept alive')
    const [row] = await usageRows(user.userId)
    assert.include(row, { channel_id: primary.id, status: 200, error_code: null, attempts: 1 })
  })

  test('legacy completions, embeddings, rerank and moderations fail over the same way', async ({ assert }) => {
    broken = BROKEN[1][1]
    const requests: Array<[string, Record<string, unknown>]> = [
      ['/v1/completions', { prompt: 'hi' }],
      ['/v1/embeddings', { input: 'hi' }],
      ['/v1/rerank', { query: 'q', documents: ['a', 'b'] }],
      ['/v1/moderations', { input: 'hi' }],
    ]
    for (const [path, request] of requests) {
      ;(await gateway()).health.reset()
      const { model, primary, backup } = await pair(good)
      const user = await seedUser({ balance: '10' })
      const response = await post(path, { ...request, model }, { authorization: `Bearer ${user.key}` })
      assert.equal(response.status, 200, `${path}: ${await response.clone().text()}`)
      const rows = await usageRows(user.userId)
      assert.lengthOf(rows, 1, path)
      assert.include(rows[0], { channel_id: backup.id, status: 200, attempts: 2 }, path)
      const attempts = await attemptsOf(rows[0].request_id)
      assert.deepEqual(attempts.map((a) => [a.channel_id, a.outcome]), [[primary.id, 'invalid_answer'], [backup.id, 'ok']], path)
    }
    // An embeddings answer with no list of vectors is no answer either.
    broken = { body: '{"object":"list","model":"m"}' }
    ;(await gateway()).health.reset()
    const { model, backup } = await pair(good)
    const user = await seedUser({ balance: '10' })
    assert.equal((await post('/v1/embeddings', { model, input: 'hi' }, { authorization: `Bearer ${user.key}` })).status, 200)
    assert.include((await usageRows(user.userId))[0], { channel_id: backup.id, attempts: 2 })
    assert.deepEqual(await ledgerProblems(), [])
  })
})
