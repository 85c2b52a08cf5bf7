import { test } from '@japa/runner'
import ace from '@adonisjs/core/services/ace'
import db from '@adonisjs/lucid/services/db'
import PriceSet from '#commands/price_set'
import { createApiKey } from '#actions/issue_api_key'
import { createUser } from '#actions/create_user'
import { setPrice } from '#actions/set_price'
import { toPico } from '#gateway/metering/money'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { PanelClient, textOf } from '#tests/panel_client'
import { adminApi, balanceAndLedger, gateway, post, refreshCaches, resetDatabase, seedChannel, seedUser, startMock, usageRows } from '#tests/helpers'
import { ledgerProblems } from '#tests/money_checks'

/**
 * Server-side web searches are billed by the provider per search, on top of
 * the tokens: Anthropic's web_search tool ($10 per 1,000; Claude Code's
 * WebSearch) reports them as `usage.server_tool_use.web_search_requests`,
 * OpenAI's Responses web_search tool as `web_search_call` output items. A
 * model priced per web search (`--per-web-search`, `per_web_search`, the
 * Prices form) bills each at it.
 */

const M = 1_000_000n
const anthropicHeaders = (key: string) => ({ 'x-api-key': key, 'anthropic-version': '2023-06-01' })
const searchTool = [{ type: 'web_search_20250305', name: 'web_search', max_uses: 5 }]
// claude-sonnet at $3 in / $15 out per 1M, $0.01 per search: 100 in, 30 out, 3 searches
const EXPECTED = 100n * 3n * M + 30n * 15n * M + 3n * 10_000_000_000n

/** An Anthropic answer after 3 searches: whole, or streamed with the searches counted in message_delta (as Anthropic sends them). */
function anthropicSearched(stream: boolean) {
  const usage = { input_tokens: 100, output_tokens: 30, cache_read_input_tokens: 0, cache_creation_input_tokens: 0, server_tool_use: { web_search_requests: 3 } }
  const content = [
    { type: 'server_tool_use', id: 'srvtoolu_1', name: 'web_search', input: { query: 'gateway' } },
    { type: 'web_search_tool_result', tool_use_id: 'srvtoolu_1', content: [] },
    { type: 'text', text: 'Found it.' },
  ]
  const message = { id: 'msg_raw', type: 'message', role: 'assistant', model: 'raw', content, stop_reason: 'end_turn', stop_sequence: null, usage }
  if (!stream) return { body: JSON.stringify(message) }
  const event = (type: string, data: Record<string, unknown>) => `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`
  return {
    headers: { 'content-type': 'text/event-stream' },
    chunks: [
      event('message_start', { message: { ...message, content: [], stop_reason: null, usage: { ...usage, output_tokens: 1, server_tool_use: { web_search_requests: 0 } } } }),
      event('content_block_start', { index: 0, content_block: { type: 'text', text: '' } }),
      event('content_block_delta', { index: 0, delta: { type: 'text_delta', text: 'Found it.' } }),
      event('content_block_stop', { index: 0 }),
      event('message_delta', { delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { input_tokens: 100, output_tokens: 30, server_tool_use: { web_search_requests: 3 } } }),
      event('message_stop', {}),
    ],
  }
}

/** A Responses answer with two web_search_call items, whole or as its stream's terminal event. */
function responsesSearched(stream: boolean) {
  const response = {
    id: 'resp_raw',
    object: 'response',
    created_at: 1,
    status: 'completed',
    model: 'raw',
    output: [
      { type: 'web_search_call', id: 'ws_1', status: 'completed', action: { type: 'search', query: 'a' } },
      { type: 'web_search_call', id: 'ws_2', status: 'completed', action: { type: 'search', query: 'b' } },
      { type: 'message', id: 'msg_1', status: 'completed', role: 'assistant', content: [{ type: 'output_text', text: 'Found.', annotations: [] }] },
    ],
    usage: { input_tokens: 100, output_tokens: 30, total_tokens: 130, input_tokens_details: { cached_tokens: 0 }, output_tokens_details: { reasoning_tokens: 0 } },
  }
  if (!stream) return { body: JSON.stringify(response) }
  const event = (type: string, data: Record<string, unknown>, n: number) => `event: ${type}\ndata: ${JSON.stringify({ type, sequence_number: n, ...data })}\n\n`
  return {
    headers: { 'content-type': 'text/event-stream' },
    chunks: [
      event('response.created', { response: { ...response, status: 'in_progress', output: [], usage: null } }, 0),
      // Each search as OpenAI streams it: its item added, then done (counted there: a cut stream bills it)
      ...[0, 1].flatMap((i) => [
        event('response.output_item.added', { output_index: i, item: { ...response.output[i], status: 'in_progress' } }, 0),
        event('response.web_search_call.completed', { output_index: i, item_id: response.output[i].id }, 0),
        event('response.output_item.done', { output_index: i, item: response.output[i] }, 0),
      ]),
      event('response.output_item.added', { output_index: 2, item: { ...response.output[2], content: [] } }, 1),
      event('response.output_text.delta', { item_id: 'msg_1', output_index: 2, content_index: 0, delta: 'Found.' }, 2),
      event('response.output_item.done', { output_index: 2, item: response.output[2] }, 3),
      event('response.completed', { response }, 4),
    ],
  }
}

test.group('Server-side web searches at a price per search', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'claude', provider: 'anthropic', baseUrl: mock.url, models: ['claude-*'] })
    await seedChannel({ name: 'openai', provider: 'openai', baseUrl: mock.url, models: ['gpt-*'] })
    await setPrice({ model: 'gpt-5*', input: '3', output: '15', perWebSearch: '0.01' })
    await refreshCaches()
    return () => mock.stop()
  })

  test("price:set --per-web-search; Claude Code's WebSearch passed through (whole and streamed) and translated for an OpenAI client", async ({ assert }) => {
    const command = await ace.create(PriceSet, ['--model', 'claude-sonnet-*', '--input', '3', '--output', '15', '--per-web-search', '0.01'])
    ace.ui.switchMode('raw')
    await command.exec()
    command.assertSucceeded()
    assert.include(await db.from('model_prices').where('model_pattern', 'claude-sonnet-*').first(), { per_web_search: '0.010000' })
    await refreshCaches()
    const user = await seedUser({ balance: '1' })

    for (const stream of [false, true]) {
      const answer = await post(
        '/v1/messages?beta=true',
        { model: 'claude-sonnet-4-5', max_tokens: 512, stream, tools: searchTool, messages: [{ role: 'user', content: 'search it' }], mock: { raw: anthropicSearched(stream) } },
        anthropicHeaders(user.key)
      )
      assert.equal(answer.status, 200)
      await answer.text()
      const rows = await usageRows(user.userId)
      assert.include(rows[rows.length - 1], { prompt_tokens: 100, completion_tokens: 30, estimated: false }, `stream=${stream}`)
      assert.equal(toPico(rows[rows.length - 1].cost), EXPECTED, `stream=${stream}`)
    }

    mock.script({ raw: anthropicSearched(false) })
    const chat = await post('/v1/chat/completions', { model: 'claude-sonnet-4-5', messages: [{ role: 'user', content: 'search it' }], usage: { include: true } }, { authorization: `Bearer ${user.key}` })
    assert.equal(chat.status, 200)
    assert.equal(((await chat.json()) as any).usage.cost, Number(EXPECTED) / 1e12)
    const rows = await usageRows(user.userId)
    assert.equal(toPico(rows[rows.length - 1].cost), EXPECTED)
    const money = await balanceAndLedger(user.userId)
    assert.equal(money.balance, money.ledger)
    assert.deepEqual(await ledgerProblems(), [])
  })

  test("OpenAI Responses: each web_search_call item, whole and streamed; a model without the price pays the tokens only", async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    for (const stream of [false, true]) {
      const answer = await post(
        '/v1/responses',
        { model: 'gpt-5-mini', input: 'search it', tools: [{ type: 'web_search' }], stream, store: false, mock: { raw: responsesSearched(stream) } },
        { authorization: `Bearer ${user.key}` }
      )
      assert.equal(answer.status, 200)
      await answer.text()
      const rows = await usageRows(user.userId)
      assert.equal(toPico(rows[rows.length - 1].cost), 100n * 3n * M + 30n * 15n * M + 2n * 10_000_000_000n, `stream=${stream}`)
    }
    await setPrice({ model: 'gpt-4.1', input: '3', output: '15' })
    await refreshCaches()
    const plain = await post('/v1/responses', { model: 'gpt-4.1', input: 'search it', store: false, mock: { raw: responsesSearched(false) } }, { authorization: `Bearer ${user.key}` })
    assert.equal(plain.status, 200)
    await plain.text()
    const rows = await usageRows(user.userId)
    assert.equal(toPico(rows[rows.length - 1].cost), 100n * 3n * M + 30n * 15n * M)
    assert.deepEqual(await ledgerProblems(), [])
  })

  test('the management API and the Prices form carry the price per web search', async ({ assert }) => {
    await createUser({ email: 'ops-ws@test.local', password: 'password123', role: 'admin' })
    const adminKey = (await createApiKey({ userRef: 'ops-ws@test.local', name: 'ops', manage: true })).key
    const set = await adminApi('POST', '/prices', adminKey, { model: 'claude-opus-*', input: '5', output: '25', per_web_search: 0.01 })
    assert.equal(set.status, 200)
    assert.include(set.body, { per_web_search: '0.01' })
    const refused = await adminApi('POST', '/prices', adminKey, { model: 'claude-opus-*', input: '5', output: '25', per_web_search: '1e-2' })
    assert.equal(refused.status, 400)
    const cleared = await adminApi('POST', '/prices', adminKey, { model: 'claude-opus-*', input: '5', output: '25', per_web_search: null })
    assert.include(cleared.body, { per_web_search: null })

    const panel = new PanelClient()
    await panel.login('ops-ws@test.local', 'password123')
    await panel.get('/admin/prices')
    await panel.post('/admin/prices', { model: 'claude-panel-ws', input: '3', output: '15', perWebSearch: '0.01' })
    const saved = await db.from('model_prices').where('model_pattern', 'claude-panel-ws').first()
    assert.include(saved, { per_web_search: '0.010000' })
    const listed = textOf((await panel.get('/admin/prices')).html)
    assert.include(listed, '$0.01 / search')
    assert.notInclude(listed, '@if')
    assert.include((await panel.get(`/admin/prices?edit=${saved.id}`)).html, 'name="perWebSearch"')
  })

  test('a request that may search holds its searches (the tool\'s max_uses, else 10): a second the balance cannot pay for is refused meanwhile', async ({ assert }) => {
    await setPrice({ model: 'claude-haiku-*', input: '1', output: '5', perWebSearch: '0.01' })
    await refreshCaches()
    // $0.04 pays for 4 searches. Held at the tokens only (~$0.003), a search-hungry Claude Code let every call in.
    const user = await seedUser({ balance: '0.04' })
    const ask = (tools: unknown[], raw: Record<string, unknown>) =>
      post('/v1/messages', { model: 'claude-haiku-4-5', max_tokens: 512, stream: true, tools, messages: [{ role: 'user', content: 'search it' }], mock: { raw } }, anthropicHeaders(user.key))
    const first = ask(searchTool, { ...anthropicSearched(true), chunk_delay_ms: 150 })
    const gw = await gateway()
    for (let i = 0; i < 100 && (gw.catalog.cachedUser(user.userId)?.reservedPico ?? 0n) === 0n; i++) await new Promise((r) => setTimeout(r, 10))
    const held = gw.catalog.cachedUser(user.userId)!.reservedPico
    assert.isTrue(held >= 5n * 10_000_000_000n, `held ${held}: not the tool's 5 searches`)

    const second = await ask([{ type: 'web_search_20250305', name: 'web_search' }], anthropicSearched(true))
    assert.equal(second.status, 402)
    assert.include(((await second.json()) as any).error, { type: 'billing_error' })
    const answer = await first
    assert.equal(answer.status, 200)
    await answer.text()
    assert.equal(gw.catalog.cachedUser(user.userId)!.reservedPico, 0n)

    // Without a max_uses: 10 searches held ($0.1: more than the balance has left, yet admitted alone)
    const alone = ask([{ type: 'web_search_20250305', name: 'web_search' }], { ...anthropicSearched(true), chunk_delay_ms: 100 })
    for (let i = 0; i < 100 && (gw.catalog.cachedUser(user.userId)?.reservedPico ?? 0n) === 0n; i++) await new Promise((r) => setTimeout(r, 10))
    assert.isTrue(gw.catalog.cachedUser(user.userId)!.reservedPico >= 10n * 10_000_000_000n)
    const last = await alone
    assert.equal(last.status, 200)
    await last.text()
  })

  test('a hostile or buggy upstream reporting a billion searches: billed at most 1,000 (not $10,000,000)', async ({ assert }) => {
    const user = await seedUser({ balance: '100' })
    const claimed = anthropicSearched(false)
    const body = JSON.parse(claimed.body!)
    body.usage.server_tool_use.web_search_requests = 999_999_999
    const answer = await post(
      '/v1/messages',
      { model: 'claude-sonnet-4-5', max_tokens: 512, tools: searchTool, messages: [{ role: 'user', content: 'search it' }], mock: { raw: { body: JSON.stringify(body) } } },
      anthropicHeaders(user.key)
    )
    assert.equal(answer.status, 200)
    await answer.text()
    const rows = await usageRows(user.userId)
    assert.equal(toPico(rows[rows.length - 1].cost), 100n * 3n * M + 30n * 15n * M + 1000n * 10_000_000_000n)
    assert.deepEqual(await ledgerProblems(), [])
  })
  test('a Responses stream cut before response.completed: billed the searches its web_search_call items showed (once each when it completes)', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const whole = responsesSearched(true)
    // The upstream drops the connection after the two searches and some text: no response.completed, no usage.
    const cut = { ...whole, chunks: whole.chunks!.slice(0, -2), then: 'destroy' as const }
    const answer = await post(
      '/v1/responses',
      { model: 'gpt-5-mini', input: 'search it', tools: [{ type: 'web_search' }], stream: true, store: false, mock: { raw: cut } },
      { authorization: `Bearer ${user.key}` }
    )
    assert.equal(answer.status, 200)
    await answer.text()
    const rows = await usageRows(user.userId)
    const row = rows[rows.length - 1]
    assert.include(row, { error_code: 'stream_interrupted', estimated: true })
    const tokens = BigInt(row.prompt_tokens) * 3n * M + BigInt(row.completion_tokens) * 15n * M
    assert.equal(toPico(row.cost), tokens + 2n * 10_000_000_000n, 'the two searches that ran are billed')
    assert.deepEqual(await ledgerProblems(), [])
  })

  test("Gemini grounding with Google Search: one search per grounded answer (Gemini 2.x), each query for Gemini 3; whole, streamed, translated; held while it runs", async ({ assert }) => {
    await seedChannel({ name: 'google', provider: 'google', baseUrl: mock.url, models: ['gemini-*'] })
    await setPrice({ model: 'gemini-*', input: '3', output: '15', perWebSearch: '0.035' })
    await refreshCaches()
    const user = await seedUser({ balance: '2' })
    const google = { 'x-goog-api-key': user.key }
    const grounding = { webSearchQueries: ['q1', 'q2', 'q3'], groundingChunks: [{ web: { uri: 'https://example.com', title: 'x' } }] }
    const usageMetadata = { promptTokenCount: 100, candidatesTokenCount: 30, totalTokenCount: 130 }
    const answer = (version: string) => ({
      candidates: [{ content: { role: 'model', parts: [{ text: 'Found.' }] }, finishReason: 'STOP', index: 0, groundingMetadata: grounding }],
      usageMetadata,
      modelVersion: version,
    })
    const streamOf = (version: string) => ({
      headers: { 'content-type': 'text/event-stream' },
      chunks: [
        `data: ${JSON.stringify({ candidates: [{ content: { role: 'model', parts: [{ text: 'Fou' }] }, index: 0 }], usageMetadata: { promptTokenCount: 100, candidatesTokenCount: 1, totalTokenCount: 101 }, modelVersion: version })}\r\n\r\n`,
        `data: ${JSON.stringify(answer(version)).replace('"Found."', '"nd."')}\r\n\r\n`,
      ],
    })
    const tokens = 100n * 3n * M + 30n * 15n * M
    const search = 35_000_000_000n
    const cases: Array<[string, string, boolean, bigint]> = [
      ['gemini-2.5-flash', 'gemini-2.5-flash', false, 1n],
      ['gemini-2.5-flash', 'gemini-2.5-flash', true, 1n],
      ['gemini-3-pro-preview', 'gemini-3-pro-preview', false, 3n],
      ['gemini-3-pro-preview', 'gemini-3-pro-preview', true, 3n],
    ]
    for (const [model, version, stream, searches] of cases) {
      mock.script({ raw: stream ? streamOf(version) : { body: JSON.stringify(answer(version)) } })
      const path = `/v1beta/models/${model}:${stream ? 'streamGenerateContent?alt=sse' : 'generateContent'}`
      const response = await post(path, { contents: [{ role: 'user', parts: [{ text: 'search it' }] }], tools: [{ googleSearch: {} }] }, google)
      assert.equal(response.status, 200)
      await response.text()
      const rows = await usageRows(user.userId)
      assert.include(rows[rows.length - 1], { prompt_tokens: 100, completion_tokens: 30, estimated: false }, `${model} stream=${stream}`)
      assert.equal(toPico(rows[rows.length - 1].cost), tokens + searches * search, `${model} stream=${stream}`)
    }

    // Translated for a chat client (the grounding a channel's own settings asked for is billed all the same)
    mock.script({ raw: { body: JSON.stringify(answer('gemini-2.5-flash')) } })
    const chat = await post('/v1/chat/completions', { model: 'gemini-2.5-flash', messages: [{ role: 'user', content: 'search it' }] }, { authorization: `Bearer ${user.key}` })
    assert.equal(chat.status, 200)
    await chat.text()
    let rows = await usageRows(user.userId)
    assert.equal(toPico(rows[rows.length - 1].cost), tokens + search)
    // ...and streamed
    mock.script({ raw: streamOf('gemini-3-pro-preview') })
    const chatStream = await post('/v1/chat/completions', { model: 'gemini-3-pro-preview', stream: true, messages: [{ role: 'user', content: 'search it' }] }, { authorization: `Bearer ${user.key}` })
    assert.equal(chatStream.status, 200)
    await chatStream.text()
    rows = await usageRows(user.userId)
    assert.include(rows[rows.length - 1], { prompt_tokens: 100, completion_tokens: 30, estimated: false })
    assert.equal(toPico(rows[rows.length - 1].cost), tokens + 3n * search)

    // An answer that did not search (no groundingMetadata): the tokens only
    mock.script({ raw: { body: JSON.stringify({ ...answer('gemini-2.5-flash'), candidates: [{ content: { role: 'model', parts: [{ text: 'Hi.' }] }, finishReason: 'STOP' }] }) } })
    const plain = await post('/v1beta/models/gemini-2.5-flash:generateContent', { contents: [{ role: 'user', parts: [{ text: 'hi' }] }], tools: [{ google_search: {} }] }, google)
    assert.equal(plain.status, 200)
    await plain.text()
    rows = await usageRows(user.userId)
    assert.equal(toPico(rows[rows.length - 1].cost), tokens)

    // Held while it runs: the Google Search tool's searches (10) at the price, like the other search tools
    const gw = await gateway()
    const slow = post(
      '/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse',
      { contents: [{ role: 'user', parts: [{ text: 'search it' }] }], tools: [{ googleSearch: {} }], mock: { raw: { ...streamOf('gemini-2.5-flash'), chunk_delay_ms: 150 } } },
      google
    )
    for (let i = 0; i < 100 && (gw.catalog.cachedUser(user.userId)?.reservedPico ?? 0n) === 0n; i++) await new Promise((r) => setTimeout(r, 10))
    assert.isTrue(gw.catalog.cachedUser(user.userId)!.reservedPico >= 10n * search, 'the searches held')
    const done = await slow
    await done.text()
    assert.equal(gw.catalog.cachedUser(user.userId)!.reservedPico, 0n)
    assert.deepEqual(await ledgerProblems(), [])
  })

  test('chat completions search models: one web search per answer, whole and streamed, cited or not (OpenAI bills each call\'s search); web_search_options or the model holds one', async ({ assert }) => {
    await setPrice({ model: 'gpt-4o-search-preview', input: '2.5', output: '10', perWebSearch: '0.025' })
    await refreshCaches()
    const user = await seedUser({ balance: '1' })
    const citation = { type: 'url_citation', url_citation: { url: 'https://example.com', title: 'x', start_index: 0, end_index: 5 } }
    const usage = { prompt_tokens: 100, completion_tokens: 30, total_tokens: 130 }
    const completion = {
      id: 'chatcmpl-s',
      object: 'chat.completion',
      created: 1,
      model: 'gpt-4o-search-preview',
      choices: [{ index: 0, finish_reason: 'stop', message: { role: 'assistant', content: 'Found.', refusal: null, annotations: [citation] } }],
      usage,
    }
    const chunk = (delta: Record<string, unknown>, finish: string | null = null, extra: Record<string, unknown> = {}) =>
      `data: ${JSON.stringify({ id: 'chatcmpl-s', object: 'chat.completion.chunk', created: 1, model: 'gpt-4o-search-preview', choices: [{ index: 0, delta, finish_reason: finish }], ...extra })}\n\n`
    const streamed = {
      headers: { 'content-type': 'text/event-stream' },
      chunks: [
        chunk({ role: 'assistant', content: '', refusal: null, annotations: [] }),
        chunk({ content: 'Found.' }),
        chunk({ annotations: [citation] }),
        chunk({}, 'stop'),
        `data: ${JSON.stringify({ id: 'chatcmpl-s', object: 'chat.completion.chunk', created: 1, model: 'gpt-4o-search-preview', choices: [], usage })}\n\n`,
        'data: [DONE]\n\n',
      ],
    }
    const tokens = 100n * 2_500_000n + 30n * 10n * M
    const search = 25_000_000_000n
    for (const stream of [false, true]) {
      const response = await post(
        '/v1/chat/completions',
        { model: 'gpt-4o-search-preview', stream, web_search_options: {}, messages: [{ role: 'user', content: 'search it' }], mock: { raw: stream ? streamed : { body: JSON.stringify(completion) } } },
        { authorization: `Bearer ${user.key}` }
      )
      assert.equal(response.status, 200)
      await response.text()
      const rows = await usageRows(user.userId)
      assert.include(rows[rows.length - 1], { prompt_tokens: 100, completion_tokens: 30, estimated: false }, `stream=${stream}`)
      assert.equal(toPico(rows[rows.length - 1].cost), tokens + search, `stream=${stream}`)
    }
    // Cut after the citation, before the usage chunk: the search is still billed
    const cut = { ...streamed, chunks: streamed.chunks.slice(0, 3), then: 'destroy' as const }
    const broken = await post(
      '/v1/chat/completions',
      { model: 'gpt-4o-search-preview', stream: true, messages: [{ role: 'user', content: 'search it' }], mock: { raw: cut } },
      { authorization: `Bearer ${user.key}` }
    )
    await broken.text()
    let rows = await usageRows(user.userId)
    const row = rows[rows.length - 1]
    assert.include(row, { error_code: 'stream_interrupted', estimated: true })
    assert.equal(toPico(row.cost), BigInt(row.prompt_tokens) * 2_500_000n + BigInt(row.completion_tokens) * 10n * M + search)
    // No citation: the search model searched all the same, and OpenAI bills it (whole, dated snapshot name too)
    const uncited = { ...completion, choices: [{ ...completion.choices[0], message: { ...completion.choices[0].message, annotations: [] } }] }
    const dated = { ...uncited, model: 'gpt-4o-search-preview-2025-03-11' }
    const plain = await post('/v1/chat/completions', { model: 'gpt-4o-search-preview', messages: [{ role: 'user', content: 'hi' }], mock: { raw: { body: JSON.stringify(dated) } } }, { authorization: `Bearer ${user.key}` })
    await plain.text()
    rows = await usageRows(user.userId)
    assert.equal(toPico(rows[rows.length - 1].cost), tokens + search)
    // ...streamed and translated for an Anthropic client (the mock's own answer, citing nothing without web_search_options)
    const claude = await post(
      '/v1/messages',
      { model: 'gpt-4o-search-preview', max_tokens: 100, stream: true, messages: [{ role: 'user', content: 'hi' }] },
      { 'x-api-key': user.key, 'anthropic-version': '2023-06-01' }
    )
    assert.equal(claude.status, 200)
    assert.notInclude(await claude.text(), 'example.com')
    rows = await usageRows(user.userId)
    const translated = rows[rows.length - 1]
    assert.include(translated, { endpoint: 'messages', estimated: false })
    assert.equal(toPico(translated.cost), BigInt(translated.prompt_tokens) * 2_500_000n + BigInt(translated.completion_tokens) * 10n * M + search)
    // ...and passed through, cut after its first chunk, before any citation or usage: the search ran, billed
    const early = { ...streamed, chunks: streamed.chunks.slice(0, 2), then: 'destroy' as const }
    const cutEarly = await post('/v1/chat/completions', { model: 'gpt-4o-search-preview', stream: true, messages: [{ role: 'user', content: 'hi' }], mock: { raw: early } }, { authorization: `Bearer ${user.key}` })
    await cutEarly.text()
    rows = await usageRows(user.userId)
    const early_row = rows[rows.length - 1]
    assert.include(early_row, { error_code: 'stream_interrupted', estimated: true })
    assert.equal(toPico(early_row.cost), BigInt(early_row.prompt_tokens) * 2_500_000n + BigInt(early_row.completion_tokens) * 10n * M + search)
    // A model that is not a search model, citing nothing: no search
    await setPrice({ model: 'gpt-4o', input: '2.5', output: '10', perWebSearch: '0.025' })
    await refreshCaches()
    const other = await post('/v1/chat/completions', { model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }], mock: { raw: { body: JSON.stringify({ ...uncited, model: 'gpt-4o-2024-08-06' }) } } }, { authorization: `Bearer ${user.key}` })
    await other.text()
    rows = await usageRows(user.userId)
    assert.equal(toPico(rows[rows.length - 1].cost), tokens)
    assert.deepEqual(await ledgerProblems(), [])
  })
})
