import { test } from '@japa/runner'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { THINKING_TEXT } from '#tests/fixtures/mock_upstream/scenario'
import { chatJson, chatStream, type ScriptedAnswer } from '#tests/fixtures/upstream_scripts'
import { openai, post, resetDatabase, seedChannel, seedPrice, seedUser, startMock, usageRows } from '#tests/helpers'

/**
 * Apps written against OpenRouter (the openai SDK with OpenRouter's base
 * URL) send fields only OpenRouter reads: `reasoning` ({effort, max_tokens,
 * exclude, enabled}), `provider`, `transforms`, `plugins`, `route`, and
 * `usage: {include: true}` (usage accounting), and read reasoning back as
 * `reasoning`. OpenAI refuses those fields with a 400; Claude and Gemini
 * have their own reasoning controls. https://openrouter.ai/docs
 */
test.group("OpenRouter clients' chat fields", (group) => {
  let mock: MockUpstream
  let key: string
  let userId: number

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'openai', provider: 'openai', baseUrl: mock.url, models: ['o3-mini', 'gpt-4o'] })
    await seedChannel({ name: 'claude', provider: 'anthropic', baseUrl: mock.url, models: ['claude-*'] })
    await seedChannel({ name: 'google', provider: 'google', baseUrl: `${mock.origin}/v1beta`, models: ['gemini-2*'] })
    await seedChannel({ name: 'router', provider: 'openrouter', baseUrl: mock.url, models: ['nex/*'] })
    await seedChannel({ name: 'deepseek', provider: 'deepseek', baseUrl: mock.url, models: ['deepseek-*'] })
    // $2 / $8 per 1M tokens: the cost the answer must state is the usage row's.
    await seedPrice('gpt-4o', '2', '8')
    await seedPrice('claude-*', '3', '15')
    await seedPrice('nex/*', '1', '4')
    const user = await seedUser({ balance: '100' })
    key = user.key
    userId = user.userId
    return () => mock.stop()
  })

  const hello = [{ role: 'user', content: 'hi' }]

  async function upstreamOf(body: Record<string, unknown>) {
    const answer = await post('/v1/chat/completions', body, { authorization: `Bearer ${key}` })
    const text = await answer.text()
    return { status: answer.status, text, upstream: JSON.parse(mock.lastRequest()!.body), raw: mock.lastRequest()!.body }
  }

  /** The reasoning a chat stream's deltas carry under one name */
  function streamedField(text: string, field: string): string {
    let out = ''
    for (const line of text.split('\n')) {
      if (!line.startsWith('data: {')) continue
      const delta = JSON.parse(line.slice(6)).choices?.[0]?.delta
      if (typeof delta?.[field] === 'string') out += delta[field]
    }
    return out
  }

  test("reasoning reaches Claude as its thinking budget and Gemini as its thinking budget; enabled: false asks for none", async ({ assert }) => {
    let { status, upstream } = await upstreamOf({ model: 'claude-sonnet', messages: hello, max_tokens: 9000, reasoning: { max_tokens: 4000 } })
    assert.equal(status, 200)
    assert.deepEqual(upstream.thinking, { type: 'enabled', budget_tokens: 4000 })
    assert.notProperty(upstream, 'reasoning')
    ;({ status, upstream } = await upstreamOf({ model: 'claude-sonnet', messages: hello, reasoning: { effort: 'low' } }))
    assert.equal(status, 200)
    assert.deepEqual(upstream.thinking, { type: 'enabled', budget_tokens: 2048 })
    ;({ upstream } = await upstreamOf({ model: 'claude-sonnet', messages: hello, reasoning: { effort: 'xhigh' } }))
    assert.deepEqual(upstream.thinking, { type: 'enabled', budget_tokens: 32_000 })
    // enabled alone: OpenRouter's default effort (medium)
    ;({ upstream } = await upstreamOf({ model: 'claude-sonnet', messages: hello, reasoning: { enabled: true } }))
    assert.deepEqual(upstream.thinking, { type: 'enabled', budget_tokens: 8192 })
    ;({ upstream } = await upstreamOf({ model: 'claude-sonnet', messages: hello, reasoning: { enabled: false, effort: 'high' } }))
    assert.notProperty(upstream, 'thinking')
    ;({ upstream } = await upstreamOf({ model: 'claude-sonnet', messages: hello, reasoning: { effort: 'none' } }))
    assert.notProperty(upstream, 'thinking')

    const gemini = await upstreamOf({ model: 'gemini-2.5-pro', messages: hello, reasoning: { max_tokens: 3000 } })
    assert.equal(gemini.status, 200)
    assert.equal(gemini.upstream.generationConfig.thinkingConfig.thinkingBudget, 3000)
    const high = await upstreamOf({ model: 'gemini-2.5-pro', messages: hello, reasoning: { effort: 'high' } })
    assert.equal(high.upstream.generationConfig.thinkingConfig.thinkingBudget, 24_576)
  })

  test("on an OpenAI channel reasoning becomes a reasoning model's reasoning_effort and is never sent; OpenRouter gets it as sent", async ({ assert }) => {
    let { status, upstream } = await upstreamOf({ model: 'o3-mini', messages: hello, reasoning: { effort: 'high' } })
    assert.equal(status, 200)
    assert.notProperty(upstream, 'reasoning')
    assert.equal(upstream.reasoning_effort, 'high')
    ;({ status, upstream } = await upstreamOf({ model: 'o3-mini', messages: hello, stream: true, reasoning: { max_tokens: 1024 } }))
    assert.equal(status, 200)
    assert.notProperty(upstream, 'reasoning')
    assert.equal(upstream.reasoning_effort, 'low')
    assert.deepEqual(upstream.stream_options, { include_usage: true })
    // The client's own reasoning_effort wins; exclude alone asks for no effort; a model that takes none gets none.
    ;({ upstream } = await upstreamOf({ model: 'o3-mini', messages: hello, reasoning_effort: 'low', reasoning: { effort: 'high' } }))
    assert.equal(upstream.reasoning_effort, 'low')
    assert.notProperty(upstream, 'reasoning')
    ;({ upstream } = await upstreamOf({ model: 'o3-mini', messages: hello, reasoning: { exclude: true } }))
    assert.notProperty(upstream, 'reasoning')
    assert.notProperty(upstream, 'reasoning_effort')
    ;({ status, upstream } = await upstreamOf({ model: 'gpt-4o', messages: hello, reasoning: { effort: 'high' } }))
    assert.equal(status, 200)
    assert.notProperty(upstream, 'reasoning')
    assert.notProperty(upstream, 'reasoning_effort')

    // OpenRouter reads its own field: the client's bytes go up as they are.
    const body = JSON.stringify({ model: 'nex/r1', messages: hello, reasoning: { effort: 'high', exclude: false } })
    assert.equal((await post('/v1/chat/completions', body, { authorization: `Bearer ${key}` })).status, 200)
    assert.equal(mock.lastRequest()!.body, body)
  })

  test('provider, transforms, plugins, route and usage never reach OpenAI; an OpenRouter channel gets them, models stays the gateway’s', async ({ assert }) => {
    const OPENROUTER = {
      provider: { order: ['openai', 'azure'], allow_fallbacks: false },
      transforms: ['middle-out'],
      plugins: [{ id: 'web', max_results: 3 }],
      usage: { include: true },
    }
    for (const stream of [false, true]) {
      const { status, upstream } = await upstreamOf({ model: 'gpt-4o', messages: hello, stream, temperature: 0.2, ...OPENROUTER, route: 'fallback', models: ['gpt-4o'] })
      assert.equal(status, 200)
      for (const field of [...Object.keys(OPENROUTER), 'route', 'models']) assert.notProperty(upstream, field)
      assert.equal(upstream.temperature, 0.2)
      assert.deepEqual(upstream.messages, hello)
    }
    // To OpenRouter: its fields as sent (byte for byte when nothing else changes)...
    const body = JSON.stringify({ model: 'nex/r1', messages: hello, ...OPENROUTER })
    assert.equal((await post('/v1/chat/completions', body, { authorization: `Bearer ${key}` })).status, 200)
    assert.equal(mock.lastRequest()!.body, body)
    // ...but the fallback list is the gateway's own (its model names are the gateway's).
    const { status, upstream } = await upstreamOf({ model: 'nex/r1', messages: hello, models: ['nex/r1', 'nex/r2'], route: 'fallback', ...OPENROUTER })
    assert.equal(status, 200)
    assert.notProperty(upstream, 'models')
    assert.notProperty(upstream, 'route')
    assert.deepEqual(upstream.provider, OPENROUTER.provider)
    assert.deepEqual(upstream.plugins, OPENROUTER.plugins)
    assert.deepEqual(upstream.transforms, OPENROUTER.transforms)
    assert.deepEqual(upstream.usage, OPENROUTER.usage)
  })

  test('translated reasoning comes back as reasoning (OpenRouter’s name) and reasoning_content, to the openai SDK', async ({ assert }) => {
    const client = openai(key)
    const whole: any = await client.chat.completions.create({ model: 'claude-sonnet', messages: [{ role: 'user', content: 'think' }], reasoning: { max_tokens: 2048 } } as any)
    assert.equal(whole.choices[0].message.reasoning, THINKING_TEXT)
    assert.equal(whole.choices[0].message.reasoning_content, THINKING_TEXT)

    const stream = await client.chat.completions.create({ model: 'claude-sonnet', messages: [{ role: 'user', content: 'think' }], stream: true, reasoning: { effort: 'low' } } as any)
    let reasoning = ''
    let legacy = ''
    let text = ''
    for await (const chunk of stream as any) {
      reasoning += chunk.choices[0]?.delta?.reasoning ?? ''
      legacy += chunk.choices[0]?.delta?.reasoning_content ?? ''
      text += chunk.choices[0]?.delta?.content ?? ''
    }
    assert.equal(reasoning, THINKING_TEXT)
    assert.equal(legacy, THINKING_TEXT)
    assert.isAbove(text.length, 0)
  })

  test('reasoning.exclude: no reasoning text in the answer, translated or passed through, streamed or not; still billed', async ({ assert }) => {
    const think = { model: 'claude-sonnet', messages: [{ role: 'user', content: 'think' }], reasoning: { effort: 'low', exclude: true } }
    let answer = await upstreamOf(think)
    assert.equal(answer.status, 200)
    assert.deepEqual(answer.upstream.thinking, { type: 'enabled', budget_tokens: 2048 })
    const message = JSON.parse(answer.text).choices[0].message
    assert.notProperty(message, 'reasoning')
    assert.notProperty(message, 'reasoning_content')
    assert.isAbove(message.content.length, 0)
    answer = await upstreamOf({ ...think, stream: true })
    assert.notInclude(answer.text, '"reasoning')
    assert.notInclude(answer.text, THINKING_TEXT)
    // Billed as when it is shown: the thinking token is in the row's completion tokens (the mock counts it as one).
    const excluded = (await usageRows(userId)).at(-1)!
    const shown = await upstreamOf({ ...think, reasoning: { effort: 'low' }, stream: true })
    assert.include(shown.text, '"reasoning"')
    const plain = await upstreamOf({ model: 'claude-sonnet', messages: [{ role: 'user', content: 'think' }], stream: true })
    assert.notInclude(plain.text, '"reasoning"')
    const rows = await usageRows(userId)
    assert.equal(excluded.completion_tokens, rows.at(-2)!.completion_tokens)
    assert.equal(excluded.completion_tokens, rows.at(-1)!.completion_tokens + 1)

    // Passed through to a server that sends reasoning_content (DeepSeek): taken out of the relayed answer.
    mock.script({ raw: chatStream({ reasoning: 'Hidden thoughts here.', text: 'Shown.', stop: 'end_turn', usage: { input: 5, output: 9, reasoning: 4 } }) })
    answer = await upstreamOf({ model: 'deepseek-reasoner', messages: hello, stream: true, reasoning: { exclude: true } })
    assert.equal(answer.status, 200)
    assert.equal(streamedField(answer.text, 'content'), 'Shown.')
    assert.notInclude(answer.text, 'Hidden')
    assert.notInclude(answer.text, '"reasoning')
    mock.script({ raw: chatJson({ reasoning: 'Hidden thoughts here.', text: 'Shown.', stop: 'end_turn', usage: { input: 5, output: 9, reasoning: 4 } }) })
    answer = await upstreamOf({ model: 'deepseek-reasoner', messages: hello, reasoning: { exclude: true } })
    assert.notInclude(answer.text, 'Hidden')
    assert.equal(JSON.parse(answer.text).choices[0].message.content, 'Shown.')
    assert.equal((await usageRows(userId)).at(-1)!.completion_tokens, 9)
  })

  test("reasoning.exclude on an OpenRouter channel: its stream (\"reasoning\": null in each delta) is relayed as its own bytes", async ({ assert }) => {
    // Spaced JSON: any chunk the gateway re-framed would come back without the spaces.
    const chunk = (delta: string, finish = 'null') =>
      `data: {"id": "gen-1", "object": "chat.completion.chunk", "model": "nex/r1", "choices": [{"index": 0, "delta": ${delta}, "finish_reason": ${finish}}]}\n\n`
    const chunks = [
      chunk('{"role": "assistant", "content": "", "reasoning": null}'),
      chunk('{"content": "Hi", "reasoning": null}'),
      chunk('{"content": "", "reasoning": null}', '"stop"'),
      'data: {"id": "gen-1", "object": "chat.completion.chunk", "model": "nex/r1", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}\n\n',
      'data: [DONE]\n\n',
    ]
    mock.script({ raw: { status: 200, headers: { 'content-type': 'text/event-stream' }, chunks } })
    const { status, text, upstream } = await upstreamOf({ model: 'nex/r1', messages: hello, stream: true, stream_options: { include_usage: true }, reasoning: { exclude: true } })
    assert.equal(status, 200)
    assert.deepEqual(upstream.reasoning, { exclude: true })
    assert.equal(text, chunks.join(''))
  })

  /** The last usage row's cost as the number of USD OpenRouter's usage.cost is */
  async function rowCost(): Promise<number> {
    return Number((await usageRows(userId)).at(-1)!.cost)
  }

  test('usage: {include: true} gives the usage its cost, the usage row’s, whole and streamed, passed through and translated', async ({ assert }) => {
    const client = openai(key)
    // Whole, passed through to OpenAI: prompt 12 tokens at $2/M, completion 5 at $8/M.
    const whole: any = await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }], usage: { include: true } } as any)
    assert.isNumber(whole.usage.cost)
    assert.isAbove(whole.usage.cost, 0)
    assert.equal(whole.usage.cost, await rowCost())
    assert.equal(whole.usage.cost, (whole.usage.prompt_tokens * 2 + whole.usage.completion_tokens * 8) / 1e6)

    // Streamed without stream_options: usage accounting asks for the final usage chunk, with its cost.
    const stream = await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }], stream: true, usage: { include: true } } as any)
    let usage: any = null
    for await (const chunk of stream as any) if (chunk.usage) usage = chunk.usage
    assert.isNotNull(usage)
    assert.isAbove(usage.cost, 0)
    assert.equal(usage.cost, await rowCost())

    // Translated (Claude), whole and streamed.
    const claude: any = await client.chat.completions.create({ model: 'claude-sonnet', messages: [{ role: 'user', content: 'hi' }], usage: { include: true } } as any)
    assert.isAbove(claude.usage.cost, 0)
    assert.equal(claude.usage.cost, await rowCost())
    const claudeStream = await client.chat.completions.create({ model: 'claude-sonnet', messages: [{ role: 'user', content: 'hi' }], stream: true, stream_options: { include_usage: true }, usage: { include: true } } as any)
    usage = null
    for await (const chunk of claudeStream as any) if (chunk.usage) usage = chunk.usage
    assert.equal(usage.cost, await rowCost())

    // An OpenRouter upstream's own cost (its bill to the operator) is replaced by the gateway's.
    const answer: ScriptedAnswer = { text: 'Hello.', stop: 'end_turn', usage: { input: 100, output: 50 } }
    const routed = chatStream(answer)
    routed.chunks = routed.chunks!.map((c) => c.replace('"usage":{', '"usage":{"cost":0.5,"is_byok":false,"cost_details":{"upstream_inference_cost":0.5},'))
    mock.script({ raw: routed })
    const { text } = await upstreamOf({ model: 'nex/r1', messages: hello, stream: true, usage: { include: true } })
    const last = text.split('\n').filter((l) => l.includes('"usage"')).map((l) => JSON.parse(l.slice(6))).at(-1)
    assert.equal(last.usage.cost, (100 * 1 + 50 * 4) / 1e6)
    assert.equal(last.usage.cost, await rowCost())
    assert.notProperty(last.usage, 'cost_details')
    assert.notProperty(last.usage, 'is_byok')
  })

  test('an answer stating its cost is not kept in the response cache: a replay would be charged nothing', async ({ assert }) => {
    const body = { model: 'gpt-4o', messages: [{ role: 'user', content: 'cache me with cost' }], usage: { include: true } }
    for (const stream of [false, true]) {
      const headers = { authorization: `Bearer ${key}`, 'x-gateway-cache-ttl': '60' }
      const first = await post('/v1/chat/completions', { ...body, stream }, headers)
      await first.text()
      assert.equal(first.headers.get('x-gateway-cache'), 'MISS')
      const second = await post('/v1/chat/completions', { ...body, stream }, headers)
      const text = await second.text()
      assert.equal(second.headers.get('x-gateway-cache'), 'MISS')
      assert.include(text, '"cost"')
      const row = (await usageRows(userId)).at(-1)!
      assert.isFalse(row.cache_hit)
      assert.isAbove(Number(row.cost), 0)
    }
  })

  test('without usage accounting the answer is unchanged: no cost, and no usage chunk the client did not ask for', async ({ assert }) => {
    const whole = await upstreamOf({ model: 'gpt-4o', messages: hello })
    assert.notProperty(JSON.parse(whole.text).usage, 'cost')
    const streamed = await upstreamOf({ model: 'gpt-4o', messages: hello, stream: true })
    assert.notInclude(streamed.text, '"usage"')
    const asked = await upstreamOf({ model: 'gpt-4o', messages: hello, stream: true, stream_options: { include_usage: true } })
    assert.include(asked.text, '"usage"')
    assert.notInclude(asked.text, '"cost"')
    // include: false is no request for it either.
    const off = await upstreamOf({ model: 'gpt-4o', messages: hello, usage: { include: false } })
    assert.notProperty(JSON.parse(off.text).usage, 'cost')
  })
})
