import { test } from '@japa/runner'
import OpenAI from 'openai'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { baseUrl, post, resetDatabase, seedChannel, seedUser, startMock, usageRows } from '#tests/helpers'

/**
 * Clients set up for a LiteLLM proxy send fields only LiteLLM reads: Cline's
 * LiteLLM provider puts `drop_params: true` and `litellm_session_id` on every
 * chat request, and, with a thinking budget set, Anthropic's `thinking` too.
 * LiteLLM keeps its own fields from the provider and maps `thinking` to what
 * the provider takes; OpenAI refuses all three ("Unrecognized request
 * argument supplied"). The gateway does as LiteLLM does.
 */
test.group("LiteLLM clients' request fields", (group) => {
  let mock: MockUpstream
  let key: string
  let userId: number

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'openai', provider: 'openai', baseUrl: mock.url, models: ['o3-mini', 'gpt-4o'] })
    await seedChannel({ name: 'claude', provider: 'anthropic', baseUrl: mock.url, models: ['claude-*'] })
    await seedChannel({ name: 'vllm', provider: 'custom', baseUrl: mock.url, models: ['qwen-*'] })
    await seedChannel({ name: 'google', provider: 'google', baseUrl: `${mock.origin}/v1beta`, models: ['gemini-2*'] })
    await seedChannel({
      name: 'media',
      provider: 'openai',
      baseUrl: mock.url,
      models: ['text-embedding-3-small', 'dall-e-3', 'gpt-3.5-turbo-instruct', 'tts-1', 'omni-moderation-latest'],
    })
    await seedChannel({ name: 'rerankers', provider: 'custom', baseUrl: mock.url, models: ['jina-reranker-*'] })
    const user = await seedUser()
    key = user.key
    userId = user.userId
    return () => mock.stop()
  })

  const LITELLM = {
    drop_params: true,
    additional_drop_params: ['temperature'],
    num_retries: 2,
    litellm_session_id: 'cline-01J',
    litellm_trace_id: 'trace-1',
    litellm_metadata: { team: 'a' },
  }

  async function upstreamOf(path: string, body: Record<string, unknown>, headers: Record<string, string> = {}) {
    const answer = await post(path, body, { authorization: `Bearer ${key}`, ...headers })
    const text = await answer.text()
    return { status: answer.status, text, upstream: JSON.parse(mock.lastRequest()!.body) }
  }

  test('LiteLLM-only fields never reach the provider, in any wire format, streamed or not; the rest of the body does', async ({ assert }) => {
    const hello = [{ role: 'user', content: 'hi' }]
    for (const stream of [false, true]) {
      const { status, upstream } = await upstreamOf('/v1/chat/completions', { model: 'gpt-4o', messages: hello, stream, temperature: 0.3, user: 'u-7', ...LITELLM })
      assert.equal(status, 200)
      for (const field of Object.keys(LITELLM)) assert.notProperty(upstream, field)
      assert.equal(upstream.temperature, 0.3)
      assert.equal(upstream.user, 'u-7')
      assert.deepEqual(upstream.messages, hello)
    }
    let { status, upstream } = await upstreamOf('/v1/messages', { model: 'claude-x', max_tokens: 16, messages: hello, ...LITELLM }, { 'anthropic-version': '2023-06-01' })
    assert.equal(status, 200)
    for (const field of Object.keys(LITELLM)) assert.notProperty(upstream, field)
    assert.equal(upstream.max_tokens, 16)
    ;({ status, upstream } = await upstreamOf('/v1/responses', { model: 'gpt-4o', input: 'hi', ...LITELLM }))
    assert.equal(status, 200)
    for (const field of Object.keys(LITELLM)) assert.notProperty(upstream, field)
    assert.equal(upstream.input, 'hi')
    // A body without them still goes up as the client's own bytes.
    const plain = JSON.stringify({ model: 'gpt-4o', messages: hello })
    assert.equal((await post('/v1/chat/completions', plain, { authorization: `Bearer ${key}` })).status, 200)
    assert.equal(mock.lastRequest()!.body, plain)
  })

  test("chat's thinking reaches Claude as Anthropic's extended thinking (its reasoning comes back) and Gemini as its thinking budget", async ({ assert }) => {
    const { status, text, upstream } = await upstreamOf('/v1/chat/completions', {
      model: 'claude-sonnet',
      messages: [{ role: 'user', content: 'think' }],
      max_tokens: 8000,
      thinking: { type: 'enabled', budget_tokens: 4000 },
    })
    assert.equal(status, 200)
    assert.deepEqual(upstream.thinking, { type: 'enabled', budget_tokens: 4000 })
    assert.equal(upstream.max_tokens, 8000)
    assert.isAbove(JSON.parse(text).choices[0].message.reasoning_content.length, 0)

    // Streamed, the thinking arrives as reasoning_content deltas (what Cline's LiteLLM provider reads).
    const streamed = await upstreamOf('/v1/chat/completions', {
      model: 'claude-sonnet',
      messages: [{ role: 'user', content: 'think' }],
      stream: true,
      thinking: { type: 'enabled', budget_tokens: 2048 },
    })
    assert.deepEqual(streamed.upstream.thinking, { type: 'enabled', budget_tokens: 2048 })
    assert.include(streamed.text, '"reasoning_content"')

    const gemini = await upstreamOf('/v1/chat/completions', {
      model: 'gemini-2.5-pro',
      messages: [{ role: 'user', content: 'think' }],
      thinking: { type: 'enabled', budget_tokens: 3000 },
    })
    assert.equal(gemini.status, 200)
    assert.equal(gemini.upstream.generationConfig.thinkingConfig.thinkingBudget, 3000)

    const off = await upstreamOf('/v1/chat/completions', { model: 'claude-sonnet', messages: [{ role: 'user', content: 'hi' }], thinking: { type: 'disabled' } })
    assert.equal(off.status, 200)
    assert.notProperty(off.upstream, 'thinking')
  })

  test("on an OpenAI channel thinking becomes a reasoning model's reasoning_effort and is never sent as such", async ({ assert }) => {
    const think = (budget: number) => ({ type: 'enabled', budget_tokens: budget })
    const hello = [{ role: 'user', content: 'hi' }]
    let { status, upstream } = await upstreamOf('/v1/chat/completions', { model: 'o3-mini', messages: hello, thinking: think(6000) })
    assert.equal(status, 200)
    assert.notProperty(upstream, 'thinking')
    assert.equal(upstream.reasoning_effort, 'medium')
    ;({ upstream } = await upstreamOf('/v1/chat/completions', { model: 'o3-mini', messages: hello, stream: true, thinking: think(1024) }))
    assert.notProperty(upstream, 'thinking')
    assert.equal(upstream.reasoning_effort, 'low')
    assert.deepEqual(upstream.stream_options, { include_usage: true })
    // The client's own effort wins; a model that takes no effort gets none.
    ;({ upstream } = await upstreamOf('/v1/chat/completions', { model: 'o3-mini', messages: hello, reasoning_effort: 'high', thinking: think(1024) }))
    assert.equal(upstream.reasoning_effort, 'high')
    assert.notProperty(upstream, 'thinking')
    ;({ status, upstream } = await upstreamOf('/v1/chat/completions', { model: 'gpt-4o', messages: hello, thinking: think(6000) }))
    assert.equal(status, 200)
    assert.notProperty(upstream, 'thinking')
    assert.notProperty(upstream, 'reasoning_effort')
    // Servers that read thinking themselves (vLLM, Z.ai's GLM) get it as sent.
    ;({ upstream } = await upstreamOf('/v1/chat/completions', { model: 'qwen-3', messages: hello, thinking: think(6000) }))
    assert.deepEqual(upstream.thinking, think(6000))
  })

  test("Cline's LiteLLM provider, pointed at the gateway's bare host, streams from an OpenAI model", async ({ assert }) => {
    // What Cline's LiteLlmHandler sends (src/core/api/providers/litellm.ts), through the OpenAI SDK it uses.
    const client = new OpenAI({ apiKey: key, baseURL: baseUrl(), maxRetries: 0 })
    const stream = await client.chat.completions.create({
      model: 'o3-mini',
      messages: [
        { role: 'system', content: 'You are Cline.' },
        { role: 'user', content: 'hello' },
      ],
      stream: true,
      stream_options: { include_usage: true },
      drop_params: true,
      thinking: { type: 'enabled', budget_tokens: 2048 },
      litellm_session_id: 'cline-01JXYZ',
    } as OpenAI.Chat.ChatCompletionCreateParamsStreaming)
    let text = ''
    let usage: unknown = null
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? ''
      if (chunk.usage) usage = chunk.usage
    }
    assert.isAbove(text.length, 0)
    assert.isNotNull(usage)
    const upstream = JSON.parse(mock.lastRequest()!.body)
    assert.notProperty(upstream, 'drop_params')
    assert.notProperty(upstream, 'litellm_session_id')
    assert.notProperty(upstream, 'thinking')
    assert.equal(upstream.reasoning_effort, 'low')
    const rows = await usageRows(userId)
    assert.equal(rows.at(-1)!.status, 200)
  })

  test('the relayed endpoints (embeddings, images, completions, rerank, moderations, speech, count_tokens) send them up neither', async ({ assert }) => {
    const anthropic = { 'anthropic-version': '2023-06-01' }
    const cases: Array<[string, Record<string, unknown>, Record<string, string>?]> = [
      ['/v1/embeddings', { model: 'text-embedding-3-small', input: 'hi', dimensions: 8 }],
      ['/embeddings', { model: 'text-embedding-3-small', input: ['a', 'b'] }],
      ['/v1/images/generations', { model: 'dall-e-3', prompt: 'a cat', n: 1 }],
      ['/v1/completions', { model: 'gpt-3.5-turbo-instruct', prompt: 'def f(', suffix: 'return 1', max_tokens: 8 }],
      ['/v1/completions', { model: 'gpt-3.5-turbo-instruct', prompt: 'def f(', stream: true }],
      ['/v1/rerank', { model: 'jina-reranker-v2', query: 'q', documents: ['a', 'b'], top_n: 1 }],
      ['/rerank', { model: 'jina-reranker-v2', query: 'q', documents: ['a'] }],
      ['/v1/moderations', { model: 'omni-moderation-latest', input: 'hello' }],
      ['/v1/audio/speech', { model: 'tts-1', input: 'hello', voice: 'alloy' }],
      ['/v1/messages/count_tokens', { model: 'claude-x', messages: [{ role: 'user', content: 'hi' }] }, anthropic],
    ]
    for (const [path, body, headers] of cases) {
      const { status, text, upstream } = await upstreamOf(path, { ...body, ...LITELLM }, headers)
      assert.equal(status, 200, `${path}: ${text.slice(0, 200)}`)
      for (const field of Object.keys(LITELLM)) assert.notProperty(upstream, field, `${path} sent ${field}`)
      // The rest of the body as the client sent it (a stream also asks for its usage, as before).
      const { stream_options: _asked, ...sent } = upstream
      assert.deepEqual(sent, body, path)
      // Without them, the client's own bytes go up, not a serialisation of them.
      const plain = JSON.stringify(body)
      assert.equal((await post(path, plain, { authorization: `Bearer ${key}`, ...headers })).status, 200, path)
      if (body.stream !== true) assert.equal(mock.lastRequest()!.body, plain, path)
    }
    // What was refused is refused as before: a LiteLLM field does not hide the body's own problem.
    const bad = await post('/v1/completions', { model: 'gpt-3.5-turbo-instruct', prompt: 7, ...LITELLM }, { authorization: `Bearer ${key}` })
    assert.equal(bad.status, 400)
  })
})

