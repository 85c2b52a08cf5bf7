import { test } from '@japa/runner'
import db from '@adonisjs/lucid/services/db'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { chatJson, chatStream, type ScriptedAnswer } from '#tests/fixtures/upstream_scripts'
import { pngFile } from '#tests/fixtures/image_files'
import { baseUrl, gateway, multipartBody, post, resetDatabase, seedChannel, seedUser, startMock } from '#tests/helpers'

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

/**
 * OpenRouter states its own bill in every answer's usage (its docs: "Full
 * usage details are now always included automatically in every response";
 * `cost`, `cost_details.upstream_inference_cost`, `is_byok`): what the
 * OPERATOR pays OpenRouter. The client must not see it, whatever it asked;
 * when it asked for usage accounting (`usage: {include: true}`) its `cost`
 * is the gateway's bill (openrouter_fields.spec.ts). The token counts stay.
 */
test.group("OpenRouter's own cost fields are not relayed", (group) => {
  let mock: MockUpstream
  let key: string
  const OPENROUTER_COST = '"cost":0.0123,"is_byok":false,"cost_details":{"upstream_inference_cost":0.0119},'
  const withCost = (text: string) => text.replace('"usage":{', `"usage":{${OPENROUTER_COST}`)

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'router', provider: 'openrouter', baseUrl: mock.url, models: ['vendor/*'] })
    await seedChannel({ name: 'router-mapped', provider: 'openrouter', baseUrl: mock.url, models: ['mapped-model'], modelMapping: { 'mapped-model': 'vendor/real' } })
    key = (await seedUser({ balance: '10' })).key
    return () => mock.stop()
  })

  const auth = () => ({ authorization: `Bearer ${key}` })
  const answer: ScriptedAnswer = { text: 'Hello there.', stop: 'end_turn', usage: { input: 12, output: 5 } }
  const hello = [{ role: 'user', content: 'hi' }]

  function assertNoUpstreamCost(assert: any, text: string) {
    for (const field of ['"cost"', '"cost_details"', '"is_byok"', 'upstream_inference_cost']) assert.notInclude(text, field)
  }

  test('chat, whole: usage keeps its counts, not the upstream cost', async ({ assert }) => {
    for (const model of ['vendor/model', 'mapped-model']) {
      const raw = chatJson(answer)
      raw.body = withCost(raw.body!)
      mock.script({ raw })
      const response = await post('/v1/chat/completions', { model, messages: hello }, auth())
      const text = await response.text()
      assert.equal(response.status, 200)
      assertNoUpstreamCost(assert, text)
      assert.deepEqual(JSON.parse(text).usage, { prompt_tokens: 12, completion_tokens: 5, total_tokens: 17 })
    }
  })

  test('chat, streamed: the usage chunk asked for, and usage riding on the last choice chunk, lose the cost', async ({ assert }) => {
    for (const model of ['vendor/model', 'mapped-model']) {
      // The usage chunk the client asked for (stream_options.include_usage)
      const raw = chatStream(answer)
      raw.chunks = raw.chunks!.map(withCost)
      mock.script({ raw })
      let response = await post('/v1/chat/completions', { model, messages: hello, stream: true, stream_options: { include_usage: true } }, auth())
      let text = await response.text()
      assert.include(text, '"prompt_tokens":12')
      assert.include(text, 'data: [DONE]')
      assertNoUpstreamCost(assert, text)

      // OpenRouter may put usage on the chunk with finish_reason: relayed whether asked or not.
      const onLast = chatStream(answer)
      const chunks = onLast.chunks!
      const finishAt = chunks.findIndex((c) => c.includes('"finish_reason":"stop"'))
      const usage = JSON.parse(chunks[finishAt + 1].slice(6)).usage
      const finish = JSON.parse(chunks[finishAt].slice(6))
      chunks.splice(finishAt, 2, `data: ${withCost(JSON.stringify({ ...finish, usage }))}\n\n`)
      mock.script({ raw: onLast })
      response = await post('/v1/chat/completions', { model, messages: hello, stream: true }, auth())
      text = await response.text()
      assert.include(text, '"finish_reason":"stop"')
      assert.include(text, 'Hello there.'.slice(0, 4))
      assertNoUpstreamCost(assert, text)
    }
  })

  test('legacy completions, whole and streamed', async ({ assert }) => {
    const usage = '"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}'
    const whole = `{"id":"cmpl-1","object":"text_completion","created":1,"model":"vendor/model","choices":[{"text":"ok","index":0,"finish_reason":"stop"}],${usage}}`
    mock.script({ raw: { status: 200, body: withCost(whole) } })
    let response = await post('/v1/completions', { model: 'vendor/model', prompt: 'say ok' }, auth())
    let text = await response.text()
    assert.equal(response.status, 200)
    assert.include(text, '"total_tokens":5')
    assertNoUpstreamCost(assert, text)

    const chunk = '{"id":"cmpl-1","object":"text_completion","created":1,"model":"vendor/model","choices":[{"text":"ok","index":0,"finish_reason":null}]}'
    const last = `{"id":"cmpl-1","object":"text_completion","created":1,"model":"vendor/model","choices":[{"text":"","index":0,"finish_reason":"stop"}],${usage}}`
    mock.script({ raw: { status: 200, headers: { 'content-type': 'text/event-stream' }, chunks: [`data: ${chunk}\n\n`, `data: ${withCost(last)}\n\n`, 'data: [DONE]\n\n'] } })
    response = await post('/v1/completions', { model: 'vendor/model', prompt: 'say ok', stream: true }, auth())
    text = await response.text()
    assert.include(text, '"total_tokens":5')
    assertNoUpstreamCost(assert, text)
  })

  test('embeddings', async ({ assert }) => {
    const body = '{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1,0.2]}],"model":"vendor/embed","usage":{"prompt_tokens":4,"total_tokens":4}}'
    mock.script({ raw: { status: 200, body: withCost(body) } })
    const response = await post('/v1/embeddings', { model: 'vendor/embed', input: 'hello' }, auth())
    const text = await response.text()
    assert.equal(response.status, 200)
    assert.deepEqual(JSON.parse(text).usage, { prompt_tokens: 4, total_tokens: 4 })
    assertNoUpstreamCost(assert, text)
  })

  test('answers relayed as their bytes: rerank and images', async ({ assert }) => {
    const rerank = '{"id":"rr-1","results":[{"index":0,"relevance_score":0.9}],"usage":{"prompt_tokens":5,"total_tokens":5}}'
    mock.script({ raw: { status: 200, body: withCost(rerank) } })
    let response = await post('/v1/rerank', { model: 'vendor/rerank', query: 'q', documents: ['a'] }, auth())
    let text = await response.text()
    assert.equal(response.status, 200)
    assert.deepEqual(JSON.parse(text), { id: 'rr-1', results: [{ index: 0, relevance_score: 0.9 }], usage: { prompt_tokens: 5, total_tokens: 5 } })

    const images = '{"created":1,"data":[{"b64_json":"aGk="}],"usage":{"input_tokens":3,"output_tokens":9,"total_tokens":12}}'
    mock.script({ raw: { status: 200, body: withCost(images) } })
    response = await post('/v1/images/generations', { model: 'vendor/image', prompt: 'a cat' }, auth())
    text = await response.text()
    assert.equal(response.status, 200)
    assert.include(text, '"b64_json":"aGk="')
    assertNoUpstreamCost(assert, text)

    // An image edit (multipart upload), answered whole
    mock.script({ raw: { status: 200, body: withCost(images) } })
    const form = multipartBody([['model', 'vendor/image'], ['prompt', 'add a hat'], ['image', pngFile(4), 'a.png']])
    response = await fetch(`${baseUrl()}/v1/images/edits`, { method: 'POST', headers: { ...auth(), 'content-type': form.contentType }, body: form.body })
    text = await response.text()
    assert.equal(response.status, 200)
    assert.include(text, '"b64_json":"aGk="')
    assertNoUpstreamCost(assert, text)
  })

  test('an answer without them goes out as the upstream sent it', async ({ assert }) => {
    const raw = chatJson(answer)
    mock.script({ raw })
    const response = await post('/v1/chat/completions', { model: 'vendor/model', messages: hello }, auth())
    assert.equal(await response.text(), raw.body)
  })
})
