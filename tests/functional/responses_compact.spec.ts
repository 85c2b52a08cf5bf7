import { test } from '@japa/runner'
import http from 'node:http'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { SUMMARISATION_PROMPT, SUMMARY_PREFIX } from '#gateway/dialects/openai_responses/compaction'
import { parseSse } from '#tests/clients'
import db from '@adonisjs/lucid/services/db'
import { setWordFilter } from '#actions/set_word_filter'
import { cliActor } from '#actions/audit'
import { balanceAndLedger, baseUrl, gateway, post, resetDatabase, seedChannel, seedPrice, seedUser, startMock, usageRows } from '#tests/helpers'

/** A Codex session's history as Codex sends it to /responses/compact (CompactionInput). */
const history = [
  { type: 'message', role: 'user', content: [{ type: 'input_text', text: '<environment_context>cwd=/repo</environment_context>' }] },
  { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'fix the failing test' }] },
  { type: 'function_call', call_id: 'call_1', name: 'shell', arguments: '{"command":["npm","test"]}' },
  { type: 'function_call_output', call_id: 'call_1', output: '1 failing: adds numbers' },
  { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'The add function subtracts; fixing it.' }] },
  { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'also add a changelog entry' }] },
]

const shellTool = { type: 'function', name: 'shell', description: 'Run a command', parameters: { type: 'object', properties: {} }, strict: false }

function compactBody(model: string, extra: Record<string, unknown> = {}) {
  return { model, input: history, instructions: 'You are Codex.', tools: [shellTool], parallel_tool_calls: false, ...extra }
}

/** Waits for a setting to reach the running gateway (NOTIFY). */
async function until(check: () => boolean) {
  for (let i = 0; i < 60 && !check(); i++) await new Promise((r) => setTimeout(r, 50))
  if (!check()) throw new Error('the setting never reached the gateway')
}

/** The user's rows once `count` are written (a hung-up call is metered when the gateway sees it go). */
async function waitForRows(userId: number, count: number) {
  for (let i = 0; i < 60; i++) {
    const rows = await usageRows(userId)
    if (rows.length >= count) return rows
    await new Promise((r) => setTimeout(r, 50))
  }
  return usageRows(userId)
}

const auth = (key: string) => ({ authorization: `Bearer ${key}` })

/** The texts of an output's message items, as Codex reads them back. */
function texts(output: any[]): string[] {
  return output.map((item) => item.content.map((p: any) => p.text).join('\n'))
}

test.group('POST /v1/responses/compact: relayed to a Responses channel', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'openai', provider: 'openai', baseUrl: mock.url, models: ['gpt-*', 'codex-alias'], modelMapping: { 'codex-alias': 'gpt-5-codex' } })
    await seedPrice('gpt-5-codex', '1', '2')
    return () => mock.stop()
  })

  test('the body reaches /v1/responses/compact as sent; the answer is relayed; one row, priced, ledger = balance', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const raw = JSON.stringify(compactBody('gpt-5-codex', { reasoning: { effort: 'high' }, prompt_cache_key: 'k1' }))
    const response = await post('/v1/responses/compact', raw, auth(user.key))
    assert.equal(response.status, 200)
    const answer: any = await response.json()
    assert.equal(mock.lastRequest()!.path, '/v1/responses/compact')
    assert.equal(mock.lastRequest()!.body, raw)
    assert.equal(answer.object, 'response.compaction')
    assert.deepEqual(answer.output.at(-1), { type: 'compaction', id: 'cmp_item_mock', encrypted_content: 'enc_compact_mock' })
    assert.include(answer.usage, { input_tokens: 22, output_tokens: 7, total_tokens: 29 })
    assert.equal(response.headers.get('x-request-id') !== null, true)

    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 1)
    assert.include(rows[0], { endpoint: 'responses.compact', model: 'gpt-5-codex', status: 200, prompt_tokens: 22, completion_tokens: 7, estimated: false, stream: false })
    // 22 prompt tokens at $1/M + 7 at $2/M
    assert.equal(rows[0].cost, '0.000036000000')
    const money = await balanceAndLedger(user.userId)
    assert.equal(money.balance, money.ledger)
    assert.equal(Number(money.balance), 1 - 0.000036)
    // LiteLLM's headers, as on every other generation: the row's cost, the call id, the key's spend before it
    assert.equal(response.headers.get('x-litellm-response-cost'), '0.000036')
    assert.equal(response.headers.get('x-litellm-call-id'), rows[0].request_id)
    assert.equal(response.headers.get('x-litellm-key-spend'), '0')
    assert.match(response.headers.get('x-litellm-response-duration-ms')!, /^\d+$/)
  })

  test('a mapped model is renamed in the body, nothing else', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const body = compactBody('codex-alias')
    const response = await post('/v1/responses/compact', body, auth(user.key))
    assert.equal(response.status, 200)
    assert.deepEqual(JSON.parse(mock.lastRequest()!.body), { ...body, model: 'gpt-5-codex' })
  })

  test('served where /v1/responses is: without /v1 and at Azure-style paths', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    for (const path of ['/responses/compact', '/openai/v1/responses/compact', '/openai/responses/compact']) {
      const response = await post(path, compactBody('gpt-5-codex'), auth(user.key))
      assert.equal(response.status, 200, path)
      assert.equal(mock.lastRequest()!.path, '/v1/responses/compact', path)
    }
    const rows = await usageRows(user.userId)
    assert.deepEqual(rows.map((r) => r.endpoint), ['responses.compact', 'responses.compact', 'responses.compact'])
  })

  test('refused as /v1/responses refuses: a model the key may not use 403, no money 402, in OpenAI\'s words', async ({ assert }) => {
    const narrow = await seedUser({ balance: '1', keyModels: ['gpt-4o'] })
    const denied = await post('/v1/responses/compact', compactBody('gpt-5-codex'), auth(narrow.key))
    assert.equal(denied.status, 403)
    assert.include(((await denied.json()) as any).error, { code: 'model_not_allowed' })
    const same = await post('/v1/responses', { model: 'gpt-5-codex', input: 'hi' }, auth(narrow.key))
    assert.equal(same.status, 403)

    const poor = await seedUser()
    const before = mock.requests.length
    const broke = await post('/v1/responses/compact', compactBody('gpt-5-codex'), auth(poor.key))
    assert.equal(broke.status, 402)
    assert.include(((await broke.json()) as any).error, { code: 'insufficient_balance' })
    assert.equal(mock.requests.length, before)
    const rows = await usageRows(poor.userId)
    assert.include(rows[0], { endpoint: 'responses.compact', status: 402 })
  })

  test("its errors carry LiteLLM's headers as every metered endpoint's do: the row's call id, the key's spend, a cost of 0", async ({ assert }) => {
    const poor = await seedUser()
    const broke = await post('/v1/responses/compact', compactBody('gpt-5-codex'), auth(poor.key))
    assert.equal(broke.status, 402)
    await broke.text()
    const [row] = await usageRows(poor.userId)
    assert.equal(broke.headers.get('x-litellm-call-id'), row.request_id)
    assert.equal(broke.headers.get('x-request-id'), row.request_id)
    assert.equal(broke.headers.get('x-litellm-response-cost'), '0')
    assert.equal(broke.headers.get('x-litellm-key-spend'), '0')
    assert.match(broke.headers.get('x-litellm-response-duration-ms')!, /^\d+$/)

    // The upstream's refusal, relayed; and /v1/responses's own error, for comparison: the same headers.
    const user = await seedUser({ balance: '1' })
    const refused = await post('/v1/responses/compact', compactBody('gpt-5-codex', { mock: { status: 400 } }), auth(user.key))
    assert.equal(refused.status, 400)
    await refused.text()
    const plain = await post('/v1/responses', { model: 'gpt-5-codex', input: 'hi', mock: { status: 400 } }, auth(user.key))
    assert.equal(plain.status, 400)
    await plain.text()
    const rows = await usageRows(user.userId)
    for (const answer of [refused, plain]) {
      const callId = answer.headers.get('x-litellm-call-id')
      assert.equal(callId, answer.headers.get('x-request-id'))
      assert.isTrue(rows.some((r: any) => r.request_id === callId), `no row ${callId}`)
      assert.equal(answer.headers.get('x-litellm-response-cost'), '0')
      assert.equal(answer.headers.get('x-litellm-key-spend'), '0')
    }

    // LITELLM_HEADERS=false: none, as on its answers
    const service = (await gateway()).service
    service.litellmHeaders = false
    try {
      const quiet = await post('/v1/responses/compact', compactBody('gpt-5-codex'), auth(poor.key))
      assert.equal(quiet.status, 402)
      await quiet.text()
      assert.isNotNull(quiet.headers.get('x-request-id'))
      for (const name of quiet.headers.keys()) assert.notMatch(name, /^x-litellm-/)
    } finally {
      service.litellmHeaders = true
    }
  })

  test('a client that goes away while the upstream works: the upstream call ended, one 499 row', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const url = new URL(`${baseUrl()}/v1/responses/compact`)
    await new Promise<void>((resolve) => {
      const req = http.request({ host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers: { ...auth(user.key), 'content-type': 'application/json' } })
      req.on('error', () => resolve())
      req.on('close', () => resolve())
      req.end(JSON.stringify(compactBody('gpt-5-codex', { mock: { latency_ms: 3000 } })))
      setTimeout(() => req.destroy(), 300)
    })
    const rows = await waitForRows(user.userId, 1)
    assert.include(rows[0], { endpoint: 'responses.compact', status: 499, error_code: 'client_closed' })
    assert.isTrue(mock.lastRequest()!.clientGone === true)
  })

  test('a malformed body is a 400 in OpenAI\'s words, before any upstream call', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const before = mock.requests.length
    for (const body of [{ model: 'gpt-5-codex' }, { model: 'gpt-5-codex', input: 'just text' }, { input: history }, { model: 'gpt-5-codex', input: history, instructions: 7 }]) {
      const response = await post('/v1/responses/compact', body, auth(user.key))
      assert.equal(response.status, 400, JSON.stringify(body))
      const error = ((await response.json()) as any).error
      assert.equal(error.type, 'invalid_request_error')
      assert.isString(error.message)
    }
    assert.equal(mock.requests.length, before)
  })

  test('compaction v2 (a compaction_trigger last) and compaction items pass through to OpenAI untouched', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const raw = JSON.stringify({
      model: 'gpt-5-codex',
      stream: true,
      store: false,
      input: [{ type: 'compaction', encrypted_content: 'enc_older' }, ...history, { type: 'compaction_trigger' }],
    })
    const response = await post('/v1/responses', raw, auth(user.key))
    assert.equal(response.status, 200)
    await response.text()
    assert.equal(mock.lastRequest()!.path, '/v1/responses')
    assert.equal(mock.lastRequest()!.body, raw)
  })
})

test.group('POST /v1/responses/compact: an OpenAI-compatible upstream without it (404)', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock({ noCompact: true })
    await seedChannel({ name: 'vllm', provider: 'openai', baseUrl: mock.url, models: ['qwen-*'] })
    return () => mock.stop()
  })

  test('falls to the emulation through /v1/responses on the same channel: one row, the summary call\'s usage', async ({ assert }) => {
    const user = await seedUser()
    const response = await post('/v1/responses/compact', compactBody('qwen-coder'), auth(user.key))
    assert.equal(response.status, 200)
    const answer: any = await response.json()
    const paths = mock.requests.map((r) => r.path)
    assert.deepEqual(paths.slice(-2), ['/v1/responses/compact', '/v1/responses'])
    const sent = JSON.parse(mock.lastRequest()!.body)
    assert.equal(sent.instructions, 'You are Codex.')
    assert.deepEqual(sent.input.slice(0, history.length), history)
    assert.deepEqual(sent.input.at(-1), { type: 'message', role: 'user', content: [{ type: 'input_text', text: SUMMARISATION_PROMPT }] })
    assert.equal(sent.tool_choice, 'none')
    assert.equal(answer.object, 'response.compaction')
    assert.isTrue(answer.output.every((item: any) => item.type === 'message' && item.role === 'user'))
    assert.equal(texts(answer.output).at(-1), `${SUMMARY_PREFIX}\ntok0 tok1 tok2 tok3 tok4 `)
    // 10 + 2 per input item (the history and the prompt), 5 words
    assert.include(answer.usage, { input_tokens: 24, output_tokens: 5 })
    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 1)
    assert.include(rows[0], { endpoint: 'responses.compact', status: 200, prompt_tokens: 24, completion_tokens: 5, estimated: false, attempts: 2 })
    // Both calls on the row's attempts, numbered in turn: the 404, then the summary.
    const attempts = await db.from('request_attempts').where('request_id', rows[0].request_id).orderBy('attempt')
    assert.deepEqual(attempts.map((a) => [a.attempt, a.status, a.outcome]), [[1, 404, 'client_error'], [2, 200, 'ok']])
    // Emulated, the answer carries LiteLLM's headers too (the native try's 404 its one retry)
    assert.equal(response.headers.get('x-litellm-call-id'), rows[0].request_id)
    assert.equal(response.headers.get('x-litellm-response-cost'), '0')
    assert.equal(response.headers.get('x-litellm-attempted-retries'), '1')
  })
})

test.group('POST /v1/responses/compact: a Responses channel failing over to a translated one', (group) => {
  let down: MockUpstream
  let claude: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    down = await startMock({ status: 503 })
    claude = await startMock()
    await seedChannel({ name: 'openai-down', provider: 'openai', baseUrl: down.url, models: ['mix-model'] })
    await seedChannel({ name: 'claude', provider: 'anthropic', baseUrl: claude.url, models: ['mix-model'] })
    return async () => {
      await down.stop()
      await claude.stop()
    }
  })

  test('the native call fails as a failover passes a channel by: the compaction is emulated on the other', async ({ assert }) => {
    const user = await seedUser()
    const response = await post('/v1/responses/compact', compactBody('mix-model'), auth(user.key))
    assert.equal(response.status, 200)
    const answer: any = await response.json()
    assert.equal(down.lastRequest()!.path, '/v1/responses/compact')
    assert.equal(claude.lastRequest()!.path, '/v1/messages')
    assert.equal(texts(answer.output).at(-1), `${SUMMARY_PREFIX}\ntok0 tok1 tok2 tok3 tok4 `)
    const [row] = await usageRows(user.userId)
    assert.include(row, { endpoint: 'responses.compact', status: 200, provider: 'anthropic', prompt_tokens: claude.lastUsage!.input })
  })
})

test.group('POST /v1/responses/compact: emulated on Anthropic and chat-only channels', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock({ text: 'Goal: fix add. Done: found the bug. Next: changelog.' })
    await seedChannel({ name: 'claude', provider: 'anthropic', baseUrl: mock.url, models: ['claude-*'] })
    await seedChannel({ name: 'deepseek', provider: 'deepseek', baseUrl: mock.url, models: ['deepseek-*'] })
    await seedPrice('claude-sonnet-4-5', '3', '15')
    return () => mock.stop()
  })

  test('Anthropic: one Messages call (history, then the prompt), answered as a compaction of plain messages', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const response = await post('/v1/responses/compact', compactBody('claude-sonnet-4-5'), auth(user.key))
    assert.equal(response.status, 200)
    const answer: any = await response.json()
    assert.equal(mock.lastRequest()!.path, '/v1/messages')
    const sent = JSON.parse(mock.lastRequest()!.body)
    assert.notProperty(sent, 'stream')
    assert.equal(typeof sent.system === 'string' ? sent.system : sent.system.map((p: any) => p.text).join(''), 'You are Codex.')
    assert.deepEqual(sent.messages.at(-1).content.at(-1), { type: 'text', text: SUMMARISATION_PROMPT })
    assert.deepEqual(sent.tool_choice, { type: 'none' })

    assert.match(answer.id, /^cmp_/)
    assert.equal(answer.object, 'response.compaction')
    assert.isNumber(answer.created_at)
    // The user's messages in order, then the summary after Codex's prefix; no encrypted item.
    assert.deepEqual(texts(answer.output), [
      '<environment_context>cwd=/repo</environment_context>',
      'fix the failing test',
      'also add a changelog entry',
      `${SUMMARY_PREFIX}\nGoal: fix add. Done: found the bug. Next: changelog.`,
    ])
    for (const item of answer.output) {
      assert.deepEqual(Object.keys(item).sort(), ['content', 'role', 'type'])
      assert.equal(item.content[0].type, 'input_text')
    }
    const usage = mock.lastUsage!
    assert.include(answer.usage, { input_tokens: usage.input, output_tokens: usage.output })
    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 1)
    assert.include(rows[0], { endpoint: 'responses.compact', provider: 'anthropic', status: 200, prompt_tokens: usage.input, completion_tokens: usage.output })
    const expected = (usage.input * 3 + usage.output * 15) / 1e6
    assert.equal(Number(rows[0].cost), expected)
    const money = await balanceAndLedger(user.userId)
    assert.equal(money.balance, money.ledger)

    // The replacement history is the next turn's input, through the gateway: sensible user turns upstream.
    const next = await post(
      '/v1/responses',
      { model: 'claude-sonnet-4-5', instructions: 'You are Codex.', input: [...answer.output, { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'continue' }] }] },
      auth(user.key)
    )
    assert.equal(next.status, 200)
    const turn = JSON.parse(mock.lastRequest()!.body)
    const said = turn.messages.flatMap((m: any) => (typeof m.content === 'string' ? [m.content] : m.content.map((p: any) => p.text)))
    assert.isTrue(turn.messages.every((m: any) => m.role === 'user'))
    assert.include(said, `${SUMMARY_PREFIX}\nGoal: fix add. Done: found the bug. Next: changelog.`)
    assert.include(said, 'continue')
  })

  test('chat-only (DeepSeek): one chat call, tool turns kept well formed, the same answer shape', async ({ assert }) => {
    const user = await seedUser()
    const response = await post('/v1/responses/compact', compactBody('deepseek-chat'), auth(user.key))
    assert.equal(response.status, 200)
    const answer: any = await response.json()
    assert.equal(mock.lastRequest()!.path, '/v1/chat/completions')
    const sent = JSON.parse(mock.lastRequest()!.body)
    assert.deepEqual(sent.messages[0], { role: 'system', content: 'You are Codex.' })
    assert.deepEqual(sent.messages.at(-1), { role: 'user', content: SUMMARISATION_PROMPT })
    assert.equal(sent.tool_choice, 'none')
    assert.isNotTrue(sent.stream)
    assert.equal(answer.object, 'response.compaction')
    assert.equal(texts(answer.output).at(-1), `${SUMMARY_PREFIX}\nGoal: fix add. Done: found the bug. Next: changelog.`)

    const next = await post('/v1/responses', { model: 'deepseek-chat', input: [...answer.output, { role: 'user', content: 'continue' }] }, auth(user.key))
    assert.equal(next.status, 200)
    const turn = JSON.parse(mock.lastRequest()!.body)
    assert.deepEqual(turn.messages.at(-2), { role: 'user', content: `${SUMMARY_PREFIX}\nGoal: fix add. Done: found the bug. Next: changelog.` })
    const rows = await usageRows(user.userId)
    assert.deepEqual(rows.map((r) => [r.endpoint, r.status]), [['responses.compact', 200], ['responses', 200]])
  })

  test('earlier summaries are not kept as user messages; kept user messages are bounded, the newest first', async ({ assert }) => {
    const user = await seedUser()
    const long = 'x'.repeat(50_000)
    const input = [
      { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'oldest, beyond the bound' }] },
      { type: 'message', role: 'user', content: [{ type: 'input_text', text: long }] },
      { type: 'message', role: 'user', content: [{ type: 'input_text', text: `${SUMMARY_PREFIX}\nan earlier summary` }] },
      { type: 'message', role: 'user', content: [{ type: 'input_text', text: long }] },
    ]
    const response = await post('/v1/responses/compact', { model: 'deepseek-chat', input }, auth(user.key))
    assert.equal(response.status, 200)
    const kept = texts(((await response.json()) as any).output)
    assert.lengthOf(kept, 3)
    assert.equal(kept[1], long)
    assert.include(kept[0], 'characters truncated')
    assert.isBelow(kept[0].length, long.length)
    assert.notInclude(kept.join(''), 'an earlier summary')
    assert.notInclude(kept.join(''), 'oldest')
  })

  test('an OpenAI compaction item in a later /v1/responses input is dropped for a translated channel, the turn served', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    for (const type of ['compaction', 'compaction_summary']) {
      const response = await post(
        '/v1/responses',
        {
          model: 'deepseek-chat',
          input: [
            { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'fix the failing test' }] },
            { type, id: 'cmp_1', encrypted_content: 'gAAAAB-openai-only' },
            { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'continue' }] },
          ],
        },
        auth(user.key)
      )
      assert.equal(response.status, 200, type)
      const sent = mock.lastRequest()!.body
      assert.notInclude(sent, 'gAAAAB-openai-only')
      assert.deepEqual(JSON.parse(sent).messages, [
        { role: 'user', content: 'fix the failing test' },
        { role: 'user', content: 'continue' },
      ])
    }
  })

  test('the operator\'s answer check reads an emulated summary: withheld with the word filter\'s 400, the call billed', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const gw = await gateway()
    await setWordFilter({ enabled: true, words: ['bug'], checkCompletions: true, hideMatches: false }, cliActor())
    await until(() => gw.catalog.wordFilter?.checkCompletions === true)
    try {
      const response = await post('/v1/responses/compact', compactBody('claude-sonnet-4-5'), auth(user.key))
      assert.equal(response.status, 400)
      const error = ((await response.json()) as any).error
      assert.equal(error.code, 'sensitive_words_detected')
      const [row] = await usageRows(user.userId)
      assert.include(row, { endpoint: 'responses.compact', status: 400, error_code: 'sensitive_words_detected', prompt_tokens: mock.lastUsage!.input })
      assert.isAbove(Number(row.cost), 0)
    } finally {
      await db.from('app_settings').where('key', 'sensitive_words').delete()
      await until(() => gw.catalog.wordFilter === null)
    }
  })

  test('compaction v2 on Anthropic: one summary call, exactly one compaction item streamed, read back on the next turn', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const response = await post(
      '/v1/responses',
      { model: 'claude-sonnet-4-5', instructions: 'You are Codex.', stream: true, store: false, tools: [shellTool], input: [...history, { type: 'compaction_trigger' }] },
      auth(user.key)
    )
    assert.equal(response.status, 200)
    assert.include(response.headers.get('content-type')!, 'text/event-stream')
    const events = parseSse(await response.text())
    assert.deepEqual(
      events.map((e) => e.event),
      ['response.created', 'response.in_progress', 'response.output_item.added', 'response.output_item.done', 'response.completed']
    )
    const done = events.filter((e) => e.event === 'response.output_item.done').map((e) => e.data.item)
    assert.lengthOf(done, 1)
    assert.equal(done[0].type, 'compaction')
    assert.match(done[0].encrypted_content, /^gateway-summary-v1:/)
    const completed = events.at(-1)!.data.response
    assert.deepEqual(completed.output, done)
    const usage = mock.lastUsage!
    assert.include(completed.usage, { input_tokens: usage.input, output_tokens: usage.output })

    assert.equal(mock.lastRequest()!.path, '/v1/messages')
    const sent = JSON.parse(mock.lastRequest()!.body)
    assert.notInclude(mock.lastRequest()!.body, 'compaction_trigger')
    assert.deepEqual(sent.messages.at(-1).content.at(-1), { type: 'text', text: SUMMARISATION_PROMPT })
    const [row] = await usageRows(user.userId)
    assert.include(row, { endpoint: 'responses', stream: true, status: 200, prompt_tokens: usage.input, completion_tokens: usage.output })

    // Codex's next turn: the user's messages it kept, the compaction item, a new message.
    const next = await post(
      '/v1/responses',
      { model: 'claude-sonnet-4-5', stream: true, input: [history[1], done[0], { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'continue' }] }] },
      auth(user.key)
    )
    assert.equal(next.status, 200)
    await next.text()
    const turn = JSON.parse(mock.lastRequest()!.body)
    const said = turn.messages.flatMap((m: any) => (typeof m.content === 'string' ? [m.content] : m.content.map((p: any) => p.text)))
    assert.deepEqual(said, ['fix the failing test', `${SUMMARY_PREFIX}\nGoal: fix add. Done: found the bug. Next: changelog.`, 'continue'])
  })

  test('compaction v2 on a chat-only channel, not streamed: the response object with the one item', async ({ assert }) => {
    const user = await seedUser()
    const response = await post('/v1/responses', { model: 'deepseek-chat', input: [...history, { type: 'compaction_trigger' }] }, auth(user.key))
    assert.equal(response.status, 200)
    const answer: any = await response.json()
    assert.equal(answer.object, 'response')
    assert.equal(answer.status, 'completed')
    assert.lengthOf(answer.output, 1)
    assert.equal(answer.output[0].type, 'compaction')
    assert.match(response.headers.get('x-litellm-call-id')!, /^[0-9a-f-]{36}$/)
    assert.equal(mock.lastRequest()!.path, '/v1/chat/completions')
    assert.deepEqual(JSON.parse(mock.lastRequest()!.body).messages.at(-1), { role: 'user', content: SUMMARISATION_PROMPT })
  })
})
