import { test } from '@japa/runner'
import db from '@adonisjs/lucid/services/db'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { chatJson, chatStream, midStreamError, type ScriptedAnswer } from '#tests/fixtures/upstream_scripts'
import { pngFile } from '#tests/fixtures/image_files'
import { wavFile } from '#tests/fixtures/audio_files'
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
      await seedChannel({ name: `leak-chat-${i}`, provider: 'custom', baseUrl: mock.url, apiKey, models: i === 0 ? ['leak-chat', 'solo-chat'] : ['leak-chat'], extraHeaders: { 'x-proxy-auth': PROXY_SECRET } })
    }
    for (const [i, apiKey] of KEYS.anthropic.entries()) {
      await seedChannel({ name: `leak-claude-${i}`, provider: 'anthropic', baseUrl: mock.url, apiKey, models: i === 0 ? ['claude-leak', 'claude-solo'] : ['claude-leak'] })
    }
    for (const [i, apiKey] of KEYS.google.entries()) {
      await seedChannel({ name: `leak-google-${i}`, provider: 'google', baseUrl: `${mock.origin}/v1beta`, apiKey, models: i === 0 ? ['gemini-leak', 'gemini-solo'] : ['gemini-leak'] })
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

  const streamed = {
    chat: { ...calls[0], body: { ...calls[0].body, stream: true } },
    anthropic: { ...calls[1], body: { ...calls[1].body, stream: true } },
    google: { ...calls[2], path: '/v1beta/models/gemini-leak:streamGenerateContent?alt=sse' },
  }

  test('an error event mid-stream, passed through or translated, loses the key and the address', async ({ assert }) => {
    const kinds = { chat: 'chat', anthropic: 'anthropic', google: 'gemini' } as const
    for (const client of Object.values(streamed)) {
      for (const upstream of Object.keys(kinds) as Array<keyof typeof kinds>) {
        const said = `overloaded at ${mock.url}/x (sent with Bearer ${KEYS[upstream][0]})`
        mock.script({ raw: midStreamError(kinds[upstream], 'Hello there', said) })
        // A model only the first channel of that format serves: the one whose key the upstream repeats.
        const model = { chat: 'solo-chat', anthropic: 'claude-solo', google: 'gemini-solo' }[upstream]
        const body = client.path.startsWith('/v1beta') ? client.body : { ...client.body, model }
        const path = client.path.startsWith('/v1beta') ? client.path.replace('gemini-leak', model) : client.path
        const response = await post(path, body, client.headers())
        const text = await response.text()
        const where = `${client.format} client, ${upstream} upstream`
        assert.equal(response.status, 200, where)
        assert.include(text, 'Hel', where)
        assert.include(text, 'overloaded at', `${where}: the upstream's words still reach the client`)
        for (const secret of [...KEYS.chat, ...KEYS.anthropic, ...KEYS.google]) assert.notInclude(text, secret, where)
        assert.notInclude(text, mock.origin.replace('http://', ''), where)
      }
    }
    // Legacy completions' stream is passed through the same way.
    mock.script({ raw: midStreamError('chat', 'Hello there', `overloaded at ${mock.url} (Bearer ${KEYS.chat[0]})`) })
    const response = await post('/v1/completions', { model: 'solo-chat', prompt: 'hi', stream: true }, calls[0].headers())
    const text = await response.text()
    assert.include(text, 'overloaded at')
    assert.notInclude(text, KEYS.chat[0])
    assert.notInclude(text, mock.origin.replace('http://', ''))
  })

  test("an upstream 429 gives the client the wait, not the operator account's limits", async ({ assert }) => {
    const said = {
      chat: 'Rate limit reached for gpt-4o in organization org-OPERATOR0123 on tokens per min (TPM): Limit 30000, Used 29500, Requested 900.',
      anthropic: 'This request would exceed the rate limit for your organization (9f1c0ffe-0000-4000-8000-operator0123) of 50,000 input tokens per minute.',
      google: 'Quota exceeded for quota metric GenerateContent requests per minute of project projects/operator-project-0123.',
    }
    const solo = { chat: 'solo-chat', anthropic: 'claude-solo', google: 'gemini-solo' }
    for (const call of calls) {
      const body = call.format === 'google' ? { error: { code: 429, message: said.google, status: 'RESOURCE_EXHAUSTED' } }
        : call.format === 'anthropic' ? { type: 'error', error: { type: 'rate_limit_error', message: said.anthropic } }
        : { error: { message: said.chat, type: 'tokens', code: 'rate_limit_exceeded' } }
      mock.script({ raw: { status: 429, headers: { 'retry-after': '1' }, body: JSON.stringify(body) } })
      const path = call.path.replace('gemini-leak', solo.google)
      const sent = call.format === 'google' ? call.body : { ...call.body, model: solo[call.format] }
      const response = await post(path, sent, call.headers())
      const text = await response.text()
      assert.equal(response.status, 429, call.format)
      assert.equal(response.headers.get('retry-after'), '1')
      assert.include(text, 'rate limiting')
      for (const word of ['org-OPERATOR0123', 'operator0123', 'operator-project-0123', 'Limit 30000', '50,000']) {
        assert.notInclude(text, word, call.format)
        assert.notInclude(await loggedResponse(response.headers.get('x-request-id')!), word, `${call.format}: the request log`)
      }
      if (call.format === 'chat') assert.equal(JSON.parse(text).error.code, 'upstream_rate_limited')
    }
  })

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

/**
 * An upstream's response headers describe the operator's account with the
 * provider (OpenAI's organization and project, its rate limits and those of
 * Anthropic, Anthropic's organization id), the provider's infrastructure
 * (Cloudflare's ray, cookies, server, via) and its request ids. None is the
 * client's: its rate limits are the gateway's own x-ratelimit-* for its key
 * (an SDK would otherwise pace itself by the operator's account), its request
 * id the gateway's. Every endpoint, answered or refused, in each format.
 */
test.group("The upstream's response headers are not relayed", (group) => {
  let mock: MockUpstream
  let key: string
  const UPSTREAM_HEADERS: Record<string, string> = {
    'openai-organization': 'org-operator-account',
    'openai-project': 'proj_operator',
    'openai-processing-ms': '4321',
    'openai-version': '2020-10-01',
    'x-ratelimit-limit-requests': '77777',
    'x-ratelimit-remaining-requests': '77776',
    'x-ratelimit-limit-tokens': '8888888',
    'x-ratelimit-reset-requests': '7ms',
    'anthropic-ratelimit-requests-limit': '66666',
    'anthropic-ratelimit-tokens-remaining': '6666666',
    'anthropic-organization-id': 'anthropic-org-operator',
    'request-id': 'req_upstream_0001',
    'x-request-id': 'upstream-request-0001',
    'cf-ray': '8f0c0ffee-SJC',
    'cf-cache-status': 'DYNAMIC',
    'set-cookie': '__cf_bm=operator-cookie; path=/',
    'server': 'cloudflare',
    'via': '1.1 upstream-proxy',
    'x-envoy-upstream-service-time': '321',
    'x-litellm-response-cost': '0.0123',
    'x-generation-id': 'gen-operator-0001',
    'strict-transport-security': 'max-age=31536000',
    'alt-svc': 'h3=":443"; ma=86400',
  }

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'hdr-openai', provider: 'openai', baseUrl: mock.url, models: ['hdr-*', 'tts-1', 'whisper-1'] })
    await seedChannel({ name: 'hdr-claude', provider: 'anthropic', baseUrl: mock.url, models: ['claude-hdr'] })
    await seedChannel({ name: 'hdr-google', provider: 'google', baseUrl: `${mock.origin}/v1beta`, models: ['gemini-hdr'] })
    key = (await seedUser({ balance: '10' })).key
    return () => mock.stop()
  })

  const bearer = () => ({ authorization: `Bearer ${key}` })
  const anthropic = () => ({ 'x-api-key': key, 'anthropic-version': '2023-06-01' })
  const chat = { model: 'hdr-chat', messages: [{ role: 'user', content: 'hi' }] }
  const messages = { model: 'claude-hdr', max_tokens: 20, messages: [{ role: 'user', content: 'hi' }] }
  const gemini = { contents: [{ role: 'user', parts: [{ text: 'hi' }] }] }

  const calls: Array<{ name: string; path: string; body: unknown; headers: () => Record<string, string>; status?: number; mock?: Record<string, unknown> }> = [
    { name: 'chat', path: '/v1/chat/completions', body: chat, headers: bearer },
    { name: 'chat stream', path: '/v1/chat/completions', body: { ...chat, stream: true }, headers: bearer },
    { name: 'chat translated to Anthropic', path: '/v1/chat/completions', body: { ...chat, model: 'claude-hdr' }, headers: bearer },
    { name: 'responses stream', path: '/v1/responses', body: { model: 'hdr-chat', input: 'hi', stream: true }, headers: bearer },
    { name: 'messages', path: '/v1/messages', body: messages, headers: anthropic },
    { name: 'messages stream', path: '/v1/messages', body: { ...messages, stream: true }, headers: anthropic },
    { name: 'count_tokens', path: '/v1/messages/count_tokens', body: { model: 'claude-hdr', messages: messages.messages }, headers: anthropic },
    { name: 'gemini', path: '/v1beta/models/gemini-hdr:generateContent', body: gemini, headers: () => ({ 'x-goog-api-key': key }) },
    { name: 'gemini stream', path: '/v1beta/models/gemini-hdr:streamGenerateContent?alt=sse', body: gemini, headers: () => ({ 'x-goog-api-key': key }) },
    { name: 'completions', path: '/v1/completions', body: { model: 'hdr-chat', prompt: 'hi' }, headers: bearer },
    { name: 'embeddings', path: '/v1/embeddings', body: { model: 'hdr-embed', input: 'hi' }, headers: bearer },
    { name: 'images', path: '/v1/images/generations', body: { model: 'hdr-image', prompt: 'a cat' }, headers: bearer },
    { name: 'rerank', path: '/v1/rerank', body: { model: 'hdr-rerank', query: 'q', documents: ['a', 'b'] }, headers: bearer },
    { name: 'moderations', path: '/v1/moderations', body: { model: 'hdr-moderation', input: 'hi' }, headers: bearer },
    { name: 'speech', path: '/v1/audio/speech', body: { model: 'tts-1', input: 'hello', voice: 'alloy' }, headers: bearer },
    { name: 'a relayed 400', path: '/v1/chat/completions', body: chat, headers: bearer, status: 400, mock: { status: 400 } },
    { name: 'an Anthropic 400', path: '/v1/messages', body: messages, headers: anthropic, status: 400, mock: { status: 400 } },
    // Last: the model then cools down for a second.
    { name: 'a 429 after every channel', path: '/v1/chat/completions', body: chat, headers: bearer, status: 429, mock: { status: 429, retry_after: 1 } },
  ]

  function assertNoneRelayed(assert: any, response: Response, name: string) {
    for (const [header, value] of Object.entries(UPSTREAM_HEADERS)) {
      assert.notEqual(response.headers.get(header), value, `${name}: the upstream's ${header} reached the client`)
    }
    assert.isNull(response.headers.get('set-cookie'), `${name}: a cookie of the upstream's`)
    assert.isNull(response.headers.get('server'), name)
    assert.isNull(response.headers.get('via'), name)
  }

  test('every endpoint, answered or refused', async ({ assert }) => {
    // The upstream does send them (else the test proves nothing).
    const sent = await fetch(`${mock.url}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ...chat, mock: { answer_headers: UPSTREAM_HEADERS } }),
    })
    await sent.arrayBuffer()
    assert.equal(sent.headers.get('openai-organization'), UPSTREAM_HEADERS['openai-organization'])
    assert.equal(sent.headers.get('x-ratelimit-limit-requests'), UPSTREAM_HEADERS['x-ratelimit-limit-requests'])
    for (const call of calls) {
      mock.script({ ...call.mock, answer_headers: UPSTREAM_HEADERS })
      const before = mock.requests.length
      const response = await post(call.path, call.body, call.headers())
      await response.arrayBuffer()
      assert.equal(response.status, call.status ?? 200, call.name)
      assert.isAbove(mock.requests.length, before, `${call.name}: the upstream was called`)
      assertNoneRelayed(assert, response, call.name)
    }
    // The client's own rate-limit headers and request id are the gateway's.
    const response = await post('/v1/chat/completions', chat, bearer())
    assert.match(response.headers.get('x-request-id') ?? '', /^[0-9a-f-]{36}$/)
  })

  test('an audio upload, answered whole', async ({ assert }) => {
    mock.script({ answer_headers: UPSTREAM_HEADERS })
    const form = multipartBody([['file', wavFile(1500), 'a.wav'], ['model', 'whisper-1']])
    const response = await fetch(`${baseUrl()}/v1/audio/transcriptions`, { method: 'POST', headers: { ...bearer(), 'content-type': form.contentType }, body: form.body })
    await response.arrayBuffer()
    assert.equal(response.status, 200)
    assertNoneRelayed(assert, response, 'transcription')
  })
})
