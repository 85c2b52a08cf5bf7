import { test } from '@japa/runner'
import { toPico } from '#gateway/metering/money'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { createUser } from '#actions/create_user'
import { htmlText, PageClient } from '#tests/page_client'
import { PanelClient, textOf } from '#tests/panel_client'
import { baseUrl, gateway, post, resetDatabase, seedChannel, seedPrice, seedUser, startMock, usageRows } from '#tests/helpers'

/**
 * Thinking by model name, as new-api does, for clients that cannot set
 * reasoning parameters (Cursor's custom models, simple chat UIs):
 * `-thinking`, `-thinking-<budget>`, `-nothinking`, `-high` / `-medium` /
 * `-low`, on a name no channel serves itself whose base model is served.
 */
test.group('Thinking by model name (suffixes)', (group) => {
  let mock: MockUpstream
  let key: string
  let userId: number
  let email: string

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'claude', provider: 'anthropic', baseUrl: mock.url, models: ['claude-*'] })
    await seedChannel({ name: 'google', provider: 'google', baseUrl: `${mock.origin}/v1beta`, models: ['gemini-*'] })
    // Google's OpenAI-compatible endpoint (the `gemini` kind), under names of its own here.
    await seedChannel({ name: 'google-openai', provider: 'gemini', baseUrl: mock.url, models: ['gcompat-*'] })
    // gpt-4o-high is a real model of this channel: its name is never taken apart.
    await seedChannel({ name: 'openai', provider: 'openai', baseUrl: mock.url, models: ['o3-mini', 'gpt-4o', 'gpt-4o-high'] })
    await seedPrice('claude-*', '1', '1')
    await seedPrice('claude-sonnet-4-5', '3', '15')
    await seedPrice('claude-opus-4-1', '15', '75')
    await seedPrice('claude-opus-4-1-thinking', '20', '100')
    const user = await seedUser({ balance: '100' })
    key = user.key
    userId = user.userId
    email = user.email
    return () => mock.stop()
  })

  const hello = [{ role: 'user', content: 'hi' }]
  const auth = () => ({ authorization: `Bearer ${key}` })

  async function sent(path: string, body: Record<string, unknown>, headers: Record<string, string> = auth()) {
    const answer = await post(path, body, headers)
    const text = await answer.text()
    const seen = mock.lastRequest()!
    return { status: answer.status, text, upstream: JSON.parse(seen.body), path: seen.path }
  }

  async function lastRow() {
    return (await usageRows(userId)).at(-1)!
  }

  test('a chat client asking claude-…-thinking: Claude gets its base model with thinking on, the row is the base model at its price', async ({ assert }) => {
    const { status, text, upstream } = await sent('/v1/chat/completions', { model: 'claude-sonnet-4-5-thinking', messages: hello, max_tokens: 1000 })
    assert.equal(status, 200, text)
    assert.equal(upstream.model, 'claude-sonnet-4-5')
    assert.deepEqual(upstream.thinking, { type: 'enabled', budget_tokens: 8192 })
    assert.isAbove(upstream.max_tokens, 8192, 'Anthropic requires max_tokens above the budget')
    assert.equal(JSON.parse(text).model, 'claude-sonnet-4-5-thinking', 'answered as the name asked')
    const row = await lastRow()
    assert.include(row, { model: 'claude-sonnet-4-5', requested_model: 'claude-sonnet-4-5-thinking', status: 200 })
    // The base model's $3 / $15, not the `claude-*` glob's $1 / $1 that also takes the suffixed name.
    assert.equal(toPico(row.cost), BigInt(row.prompt_tokens) * 3_000_000n + BigInt(row.completion_tokens) * 15_000_000n)
  })

  test('an Anthropic client (passed through): thinking with its budget, max_tokens raised, the sampling thinking refuses taken out', async ({ assert }) => {
    const headers = { 'x-api-key': key, 'anthropic-version': '2023-06-01' }
    for (const stream of [false, true]) {
      const { status, text, upstream } = await sent(
        '/v1/messages',
        { model: 'claude-sonnet-4-5-thinking-2048', max_tokens: 1000, temperature: 0.3, top_k: 5, stream, messages: hello },
        headers
      )
      assert.equal(status, 200, text)
      assert.equal(upstream.model, 'claude-sonnet-4-5')
      assert.deepEqual(upstream.thinking, { type: 'enabled', budget_tokens: 2048 })
      assert.equal(upstream.max_tokens, 2048 + 8192)
      assert.notProperty(upstream, 'temperature')
      assert.notProperty(upstream, 'top_k')
      assert.include(text, 'claude-sonnet-4-5-thinking-2048')
      assert.include(await lastRow(), { model: 'claude-sonnet-4-5', requested_model: 'claude-sonnet-4-5-thinking-2048', stream })
    }
    // A tool loop whose assistant turn came back without signed thinking: Anthropic would answer 400 to thinking.
    const loop = await sent(
      '/v1/messages',
      {
        model: 'claude-sonnet-4-5-thinking',
        max_tokens: 1000,
        tools: [{ name: 'ls', description: 'list', input_schema: { type: 'object', properties: {} } }],
        messages: [
          { role: 'user', content: 'list' },
          { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_1', name: 'ls', input: {} }] },
          { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_1', content: 'a b' }] },
        ],
      },
      headers
    )
    assert.equal(loop.status, 200, loop.text)
    assert.equal(loop.upstream.model, 'claude-sonnet-4-5')
    assert.notProperty(loop.upstream, 'thinking')
    // -nothinking takes the client's own thinking out.
    const { upstream } = await sent(
      '/v1/messages',
      { model: 'claude-sonnet-4-5-nothinking', max_tokens: 9000, thinking: { type: 'enabled', budget_tokens: 4000 }, messages: hello },
      headers
    )
    assert.equal(upstream.model, 'claude-sonnet-4-5')
    assert.notProperty(upstream, 'thinking')
  })

  test('count_tokens counts a suffixed name at its base model (Claude Code counts with the model it is set up with)', async ({ assert }) => {
    const headers = { 'x-api-key': key, 'anthropic-version': '2023-06-01' }
    const { status, text, upstream, path } = await sent('/v1/messages/count_tokens', { model: 'claude-sonnet-4-5-thinking', messages: hello }, headers)
    assert.equal(status, 200, text)
    assert.match(path, /\/messages\/count_tokens$/)
    assert.equal(upstream.model, 'claude-sonnet-4-5')
    assert.isNumber(JSON.parse(text).input_tokens)
    assert.include(await lastRow(), { model: 'claude-sonnet-4-5', requested_model: 'claude-sonnet-4-5-thinking' })
  })

  test('a price set for the suffixed name wins over the base model’s', async ({ assert }) => {
    const { status } = await sent('/v1/chat/completions', { model: 'claude-opus-4-1-thinking', messages: hello })
    assert.equal(status, 200)
    const row = await lastRow()
    assert.include(row, { model: 'claude-opus-4-1', requested_model: 'claude-opus-4-1-thinking' })
    assert.equal(toPico(row.cost), BigInt(row.prompt_tokens) * 20_000_000n + BigInt(row.completion_tokens) * 100_000_000n)
  })

  test('suffixes stacked (x-thinking:nitro, x:online:nitro): the innermost model routed, billed at its price and limited; each suffix applied', async ({ assert }) => {
    // Before: the row was the name less its last suffix (`claude-sonnet-4-5-thinking`: the claude-* price, 5x less;
    // `claude-sonnet-4-5:online`: its own glob's) and the inner suffix's thinking or search was lost upstream.
    const thinking = await sent('/v1/chat/completions', { model: 'claude-sonnet-4-5-thinking:nitro', messages: hello, max_tokens: 1000 })
    assert.equal(thinking.status, 200, thinking.text)
    assert.equal(thinking.upstream.model, 'claude-sonnet-4-5')
    assert.deepEqual(thinking.upstream.thinking, { type: 'enabled', budget_tokens: 8192 })
    let row = await lastRow()
    assert.include(row, { model: 'claude-sonnet-4-5', requested_model: 'claude-sonnet-4-5-thinking:nitro' })
    assert.equal(toPico(row.cost), BigInt(row.prompt_tokens) * 3_000_000n + BigInt(row.completion_tokens) * 15_000_000n)

    const online = await sent('/v1/chat/completions', { model: 'claude-sonnet-4-5:online:nitro', messages: hello })
    assert.equal(online.status, 200, online.text)
    assert.equal(online.upstream.model, 'claude-sonnet-4-5')
    assert.deepEqual(online.upstream.tools, [{ type: 'web_search_20250305', name: 'web_search', max_uses: 5 }])
    row = await lastRow()
    assert.include(row, { model: 'claude-sonnet-4-5', requested_model: 'claude-sonnet-4-5:online:nitro' })
    assert.equal(toPico(row.cost), BigInt(row.prompt_tokens) * 3_000_000n + BigInt(row.completion_tokens) * 15_000_000n)

    // A name between them priced itself keeps that price (claude-opus-4-1-thinking, not claude-opus-4-1's).
    const priced = await sent('/v1/chat/completions', { model: 'claude-opus-4-1-thinking:floor', messages: hello, max_tokens: 1000 })
    assert.equal(priced.status, 200, priced.text)
    row = await lastRow()
    assert.include(row, { model: 'claude-opus-4-1' })
    assert.equal(toPico(row.cost), BigInt(row.prompt_tokens) * 20_000_000n + BigInt(row.completion_tokens) * 100_000_000n)
  })

  test('Gemini: -thinking-<budget> and -nothinking set thinkingConfig, natively and translated', async ({ assert }) => {
    let { status, text, upstream, path } = await sent(`/v1beta/models/gemini-2.5-flash-thinking-8192:generateContent?key=${key}`, {
      contents: [{ role: 'user', parts: [{ text: 'hi' }] }],
      generationConfig: { maxOutputTokens: 500 },
    }, {})
    assert.equal(status, 200, text)
    assert.equal(path, '/v1beta/models/gemini-2.5-flash:generateContent')
    assert.deepEqual(upstream.generationConfig, { maxOutputTokens: 500, thinkingConfig: { includeThoughts: true, thinkingBudget: 8192 } })
    assert.include(await lastRow(), { model: 'gemini-2.5-flash', requested_model: 'gemini-2.5-flash-thinking-8192' })
    ;({ status, upstream, path } = await sent(`/v1beta/models/gemini-2.5-flash-nothinking:streamGenerateContent?alt=sse&key=${key}`, {
      contents: [{ role: 'user', parts: [{ text: 'hi' }] }],
      generationConfig: { thinkingConfig: { includeThoughts: true, thinkingBudget: 1024 } },
    }, {}))
    assert.equal(status, 200)
    assert.equal(path, '/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse')
    assert.deepEqual(upstream.generationConfig.thinkingConfig, { thinkingBudget: 0 })

    ;({ status, upstream, path } = await sent('/v1/chat/completions', { model: 'gemini-2.5-flash-nothinking', messages: hello }))
    assert.equal(status, 200)
    assert.equal(path, '/v1beta/models/gemini-2.5-flash:generateContent')
    assert.deepEqual(upstream.generationConfig.thinkingConfig, { thinkingBudget: 0 })
    ;({ upstream } = await sent('/v1/chat/completions', { model: 'gemini-2.5-pro-thinking', messages: hello }))
    assert.deepEqual(upstream.generationConfig.thinkingConfig, { includeThoughts: true, thinkingBudget: -1 })

    // Google's OpenAI-compatible endpoint: a budget as its effort, thinking off as reasoning_effort "none".
    ;({ status, upstream, path } = await sent('/v1/chat/completions', { model: 'gcompat-flash-nothinking', messages: hello, reasoning_effort: 'high' }))
    assert.equal(status, 200)
    assert.match(path, /\/chat\/completions$/)
    assert.equal(upstream.model, 'gcompat-flash')
    assert.equal(upstream.reasoning_effort, 'none')
    ;({ upstream } = await sent('/v1/chat/completions', { model: 'gcompat-flash-thinking-1000', messages: hello }))
    assert.equal(upstream.reasoning_effort, 'low')
  })

  test('OpenAI: -high / -low become reasoning_effort on a reasoning model; a channel’s own model named …-high is left whole', async ({ assert }) => {
    let { status, text, upstream } = await sent('/v1/chat/completions', { model: 'o3-mini-high', messages: hello, reasoning_effort: 'low' })
    assert.equal(status, 200, text)
    assert.equal(upstream.model, 'o3-mini')
    assert.equal(upstream.reasoning_effort, 'high', 'the name wins over the field')
    assert.equal(JSON.parse(text).model, 'o3-mini-high')
    assert.include(await lastRow(), { model: 'o3-mini', requested_model: 'o3-mini-high' })
    ;({ status, upstream } = await sent('/v1/chat/completions', { model: 'o3-mini-low', messages: hello, stream: true }))
    assert.equal(status, 200)
    assert.equal(upstream.reasoning_effort, 'low')
    assert.deepEqual(upstream.stream_options, { include_usage: true })
    // The Responses API carries it as reasoning.effort.
    ;({ status, text, upstream } = await sent('/v1/responses', { model: 'o3-mini-medium', input: 'hi', reasoning: { summary: 'auto' } }))
    assert.equal(status, 200, text)
    assert.equal(upstream.model, 'o3-mini')
    assert.deepEqual(upstream.reasoning, { summary: 'auto', effort: 'medium' })

    ;({ status, upstream } = await sent('/v1/chat/completions', { model: 'gpt-4o-high', messages: hello }))
    assert.equal(status, 200)
    assert.equal(upstream.model, 'gpt-4o-high')
    assert.notProperty(upstream, 'reasoning_effort')
    assert.include(await lastRow(), { model: 'gpt-4o-high', requested_model: null })
    // A model that takes no effort gets none (OpenAI answers 400 to GPT-4o's).
    ;({ status, upstream } = await sent('/v1/chat/completions', { model: 'gpt-4o-low', messages: hello }))
    assert.equal(status, 200)
    assert.equal(upstream.model, 'gpt-4o')
    assert.notProperty(upstream, 'reasoning_effort')
  })

  test('an ordinary name is routed as before; a suffixed name is resolved once and memoised', async ({ assert }) => {
    const router = (await gateway()).service.router(null)
    await sent('/v1/chat/completions', { model: 'o3-mini-high', messages: hello })
    const before = router.memoised.plans
    for (let i = 0; i < 3; i++) await sent('/v1/chat/completions', { model: 'o3-mini-high', messages: hello })
    assert.equal(router.memoised.plans, before)
    const plan = router.resolve('o3-mini-high')
    assert.equal(typeof plan === 'object' && plan.suffix?.base, 'o3-mini')
    assert.equal(router.resolve('o3-mini-high'), plan)
    const plain = router.resolve('o3-mini')
    assert.isTrue(typeof plain === 'object' && plain.suffix === undefined)
    // A name whose base nothing serves either is refused as before (the prefix table names DeepSeek: no channel).
    const { status } = await sent('/v1/chat/completions', { model: 'deepseek-chat-high', messages: hello })
    assert.equal(status, 404)
  })

  test('keys: the requested name is checked against the key’s models; /v1/models lists no suffixed variant it was not given', async ({ assert }) => {
    const broad = await seedUser({ balance: '10', keyModels: ['claude-*', 'o3-*'] })
    const narrow = await seedUser({ balance: '10', keyModels: ['claude-sonnet-4-5'] })
    let answer = await post('/v1/chat/completions', { model: 'claude-sonnet-4-5-thinking', messages: hello }, { authorization: `Bearer ${broad.key}` })
    assert.equal(answer.status, 200)
    answer = await post('/v1/chat/completions', { model: 'claude-sonnet-4-5-thinking', messages: hello }, { authorization: `Bearer ${narrow.key}` })
    assert.equal(answer.status, 403)
    assert.equal(((await answer.json()) as any).error.code, 'model_not_allowed')

    const list: any = await (await fetch(`${baseUrl()}/v1/models`, { headers: auth() })).json()
    const ids: string[] = list.data.map((m: any) => m.id)
    // Listed: a channel's own names, and the price table's exact names served (the one suffixed name priced).
    assert.includeMembers(ids, ['o3-mini', 'gpt-4o-high', 'claude-sonnet-4-5', 'claude-opus-4-1-thinking'])
    const suffixed = ids.filter((id) => /-(thinking(-\d+)?|nothinking|high|medium|low)$/.test(id))
    assert.sameMembers(suffixed, ['gpt-4o-high', 'claude-opus-4-1-thinking'])
  })

  test('the usage logs say the row was asked as the suffixed name, not that a fallback answered', async ({ assert }) => {
    const row = (await usageRows(userId)).find((r) => r.requested_model === 'claude-sonnet-4-5-thinking')!
    const portal = new PageClient()
    await portal.login(email)
    const page = htmlText((await portal.get('/dashboard/usage')).body)
    assert.include(page, 'asked as claude-sonnet-4-5-thinking')
    assert.notInclude(page, 'via fallback')
    const { user: admin } = await createUser({ email: `suffix-admin-${Date.now()}@test.local`, password: 'password123', role: 'admin' })
    const panel = new PanelClient()
    await panel.login(admin.email, 'password123')
    const list = textOf((await panel.get(`/admin/usage?user=${userId}`)).html)
    assert.include(list, 'asked as claude-sonnet-4-5-thinking')
    assert.notInclude(list, 'via fallback')
    assert.include(textOf((await panel.get(`/admin/usage/${row.id}`)).html), 'a thinking suffix')
  })
})
