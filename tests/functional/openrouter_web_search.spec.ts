import { test } from '@japa/runner'
import { setPrice } from '#actions/set_price'
import { toPico } from '#gateway/metering/money'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { balanceAndLedger, gateway, post, refreshCaches, resetDatabase, seedChannel, seedUser, startMock, usageRows } from '#tests/helpers'
import { ledgerProblems } from '#tests/money_checks'

/**
 * OpenRouter's web search (`model:online`, `plugins: [{"id": "web"}]`) served
 * by the upstream's own search tool: Anthropic's web_search with max_uses,
 * Gemini's googleSearch, chat's web_search_options; the searches billed at
 * per_web_search and held while the request runs.
 */

const SEARCH = 10_000_000_000n // $0.01 in pico-USD
const bearer = (key: string) => ({ authorization: `Bearer ${key}` })
const ask = [{ role: 'user', content: 'what is new?' }]

async function reservedOf(userId: number) {
  return (await gateway()).catalog.cachedUser(userId)?.reservedPico ?? 0n
}

test.group('OpenRouter web search (:online, plugins web) as the upstream\'s own search tool', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'ows-claude', provider: 'anthropic', baseUrl: mock.url, models: ['ows-claude-*'] })
    await seedChannel({ name: 'ows-google', provider: 'google', baseUrl: mock.url, models: ['ows-gemini-*'] })
    await seedChannel({ name: 'ows-openai', provider: 'openai', baseUrl: mock.url, models: ['ows-gpt-*'] })
    await seedChannel({ name: 'ows-router', provider: 'openrouter', baseUrl: mock.url, models: ['ows-or/*'] })
    // Searches only: a row's cost is its searches (tokens free), the hold likewise.
    for (const model of ['ows-claude-*', 'ows-gemini-*', 'ows-gpt-*', 'ows-or/*']) await setPrice({ model, input: '0', output: '0', perWebSearch: '0.01' })
    await refreshCaches()
    return () => mock.stop()
  })

  test(':online on an Anthropic channel from a chat client: web_search tool with max_uses 5, the search billed, the base model billed', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    for (const stream of [false, true]) {
      const response = await post('/v1/chat/completions', { model: 'ows-claude-sonnet:online', stream, messages: ask }, bearer(user.key))
      assert.equal(response.status, 200, `stream=${stream}`)
      const text = await response.text()
      const sent = JSON.parse(mock.lastRequest()!.body)
      assert.equal(sent.model, 'ows-claude-sonnet')
      assert.deepEqual(sent.tools, [{ type: 'web_search_20250305', name: 'web_search', max_uses: 5 }])
      // The server tool's blocks are not the client's: the text is kept, no tool call appears. The text's
      // citations (web_search_result_location) come as OpenAI's and OpenRouter's url_citation annotations.
      const cited = { type: 'url_citation', url_citation: { url: 'https://example.com/mock', title: 'example.com', start_index: 0, end_index: 0, content: 'mock' } }
      if (stream) {
        assert.include(text, '"content":"')
        assert.notInclude(text, 'tool_calls')
        const chunks = text.split('\n').filter((l) => l.startsWith('data: {')).map((l) => JSON.parse(l.slice(6)))
        const content = chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('')
        const annotated = chunks.filter((c) => c.choices[0]?.delta?.annotations)
        assert.lengthOf(annotated, 1)
        cited.url_citation.end_index = content.length
        assert.deepEqual(annotated[0].choices[0].delta.annotations, [cited])
        // After the text it covers
        assert.isAbove(chunks.indexOf(annotated[0]), chunks.findLastIndex((c) => c.choices[0]?.delta?.content))
      } else {
        const message = JSON.parse(text).choices[0].message
        assert.isString(message.content)
        assert.isAbove(message.content.length, 0)
        assert.isUndefined(message.tool_calls)
        cited.url_citation.end_index = message.content.length
        assert.deepEqual(message.annotations, [cited])
      }
      const rows = await usageRows(user.userId)
      assert.include(rows[rows.length - 1], { model: 'ows-claude-sonnet', requested_model: 'ows-claude-sonnet:online', status: 200 }, `stream=${stream}`)
      assert.equal(toPico(rows[rows.length - 1].cost), SEARCH, `stream=${stream}`)
    }
    const money = await balanceAndLedger(user.userId)
    assert.equal(money.balance, money.ledger)
    assert.equal(toPico(money.balance), toPico('1') - 2n * SEARCH)
  })

  test('plugins web with max_results on an Anthropic channel: max_uses, plugins not sent; a client web_search tool is not doubled', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    let response = await post('/v1/chat/completions', { model: 'ows-claude-haiku', plugins: [{ id: 'web', max_results: 3 }], messages: ask }, bearer(user.key))
    assert.equal(response.status, 200)
    await response.text()
    let sent = JSON.parse(mock.lastRequest()!.body)
    assert.deepEqual(sent.tools, [{ type: 'web_search_20250305', name: 'web_search', max_uses: 3 }])
    assert.notProperty(sent, 'plugins')
    // An Anthropic client that offers its own search tool and says :online: one tool, the client's.
    const own = [{ type: 'web_search_20250305', name: 'web_search', max_uses: 2 }]
    response = await post('/v1/messages', { model: 'ows-claude-haiku:online', max_tokens: 64, tools: own, messages: ask }, { 'x-api-key': user.key, 'anthropic-version': '2023-06-01' })
    assert.equal(response.status, 200)
    const answer = (await response.json()) as any
    sent = JSON.parse(mock.lastRequest()!.body)
    assert.deepEqual(sent.tools, own)
    assert.equal(sent.model, 'ows-claude-haiku')
    assert.equal(answer.usage.server_tool_use.web_search_requests, 1)
  })

  test('a client tool named web_search with :online or plugins web on an Anthropic channel: the endpoint\'s 400 naming the clash, nothing sent; elsewhere it goes', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const sentBefore = mock.requests.length
    const fn = { type: 'function', function: { name: 'web_search', parameters: { type: 'object', properties: { q: { type: 'string' } } } } }
    const chat = await post('/v1/chat/completions', { model: 'ows-claude-sonnet:online', tools: [fn], messages: ask }, bearer(user.key))
    assert.equal(chat.status, 400)
    const chatError = ((await chat.json()) as any).error
    assert.include(chatError, { type: 'invalid_request_error', code: 'web_search_tool_clash', param: 'tools' })
    assert.include(chatError.message, "named 'web_search'")
    const tool = { name: 'web_search', description: 'my search', input_schema: { type: 'object', properties: { q: { type: 'string' } } } }
    const messages = await post(
      '/v1/messages',
      { model: 'ows-claude-haiku', plugins: [{ id: 'web' }], max_tokens: 64, tools: [tool], messages: ask },
      { 'x-api-key': user.key, 'anthropic-version': '2023-06-01' }
    )
    assert.equal(messages.status, 400)
    const anthropicError = (await messages.json()) as any
    assert.equal(anthropicError.type, 'error')
    assert.equal(anthropicError.error.type, 'invalid_request_error')
    assert.include(anthropicError.error.message, "named 'web_search'")
    assert.equal(mock.requests.length, sentBefore, 'no upstream call')
    // On an OpenAI channel the client's function and web_search_options do not clash: sent as before.
    const openai = await post('/v1/chat/completions', { model: 'ows-gpt-4o:online', tools: [fn], messages: ask }, bearer(user.key))
    assert.equal(openai.status, 200, await openai.clone().text())
    const sent = JSON.parse(mock.lastRequest()!.body)
    assert.deepEqual(sent.tools, [fn])
    assert.deepEqual(sent.web_search_options, {})
  })

  test(':online on a Gemini channel: googleSearch tool, the grounding billed, whole and streamed', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    for (const stream of [false, true]) {
      const response = await post('/v1/chat/completions', { model: 'ows-gemini-2.5-flash:online', stream, messages: ask }, bearer(user.key))
      assert.equal(response.status, 200, `stream=${stream}`)
      const text = await response.text()
      if (!stream) assert.isAbove(JSON.parse(text).choices[0].message.content.length, 0)
      const request = mock.lastRequest()!
      assert.include(request.path, '/models/ows-gemini-2.5-flash:')
      assert.deepEqual(JSON.parse(request.body).tools, [{ googleSearch: {} }])
      const rows = await usageRows(user.userId)
      assert.include(rows[rows.length - 1], { model: 'ows-gemini-2.5-flash', requested_model: 'ows-gemini-2.5-flash:online' })
      assert.equal(toPico(rows[rows.length - 1].cost), SEARCH, `stream=${stream}`)
    }
  })

  test('plugins web on an OpenAI chat channel: web_search_options, plugins taken out, the cited answer billed one search', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const response = await post('/v1/chat/completions', { model: 'ows-gpt-4o-search-preview', plugins: [{ id: 'web' }], messages: ask }, bearer(user.key))
    assert.equal(response.status, 200)
    const answer = (await response.json()) as any
    assert.equal(answer.choices[0].message.annotations[0].type, 'url_citation')
    const sent = JSON.parse(mock.lastRequest()!.body)
    assert.deepEqual(sent.web_search_options, {})
    assert.notProperty(sent, 'plugins')
    const rows = await usageRows(user.userId)
    assert.equal(toPico(rows[rows.length - 1].cost), SEARCH)
  })

  test('an openrouter channel gets :online and plugins as sent, and no tool of the gateway', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const plugins = [{ id: 'web', max_results: 2 }]
    const response = await post('/v1/chat/completions', { model: 'ows-or/claude:online', plugins, messages: ask }, bearer(user.key))
    assert.equal(response.status, 200)
    await response.text()
    const sent = JSON.parse(mock.lastRequest()!.body)
    assert.equal(sent.model, 'ows-or/claude:online')
    assert.deepEqual(sent.plugins, plugins)
    assert.notProperty(sent, 'web_search_options')
    assert.notProperty(sent, 'tools')
  })

  test('a request without them gets no search tool', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    for (const model of ['ows-claude-sonnet', 'ows-gemini-2.5-flash', 'ows-gpt-4o']) {
      const response = await post('/v1/chat/completions', { model, messages: ask }, bearer(user.key))
      assert.equal(response.status, 200, model)
      await response.text()
      const sent = JSON.parse(mock.lastRequest()!.body)
      assert.notProperty(sent, 'tools', model)
      assert.notProperty(sent, 'web_search_options', model)
    }
    const rows = await usageRows(user.userId)
    for (const row of rows) assert.equal(toPico(row.cost), 0n)
  })

  test('the searches are held while the request runs: max_results of them, else 5', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    for (const [body, searches] of [
      [{ model: 'ows-claude-sonnet:online' }, 5n],
      [{ model: 'ows-claude-sonnet', plugins: [{ id: 'web', max_results: 3 }] }, 3n],
    ] as const) {
      mock.script({ latency_ms: 400 })
      const pending = post('/v1/chat/completions', { ...body, messages: ask }, bearer(user.key))
      let held = 0n
      for (let i = 0; i < 100 && held === 0n; i++) {
        await new Promise((r) => setTimeout(r, 10))
        held = await reservedOf(user.userId)
      }
      assert.equal(held, searches * SEARCH, JSON.stringify(body))
      const response = await pending
      assert.equal(response.status, 200)
      await response.text()
      assert.equal(await reservedOf(user.userId), 0n)
    }
    assert.deepEqual(await ledgerProblems(), [])
  })
})
