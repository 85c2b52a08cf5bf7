import { test } from '@japa/runner'
import db from '@adonisjs/lucid/services/db'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import type { RawAnswer } from '#tests/fixtures/mock_upstream/raw_answer'
import { anthropic, genai, parseSse } from '#tests/clients'
import { responsesStream, scripted, type ScriptedAnswer, type UpstreamKind } from '#tests/fixtures/upstream_scripts'
import { balanceAndLedger, gateway, openai, post, resetDatabase, seedChannel, seedPrice, seedUser, startMock, usageRows } from '#tests/helpers'
import { ledgerProblems } from '#tests/money_checks'
import { countTokens } from '#gateway/metering/tokenizer'
import { heldOnKey } from '#gateway/metering/key_reservations'
import { modelBudgetById } from '#gateway/limits/model_budgets'
import { toPico } from '#gateway/metering/money'
import { setWordFilter } from '#actions/set_word_filter'
import { cliActor } from '#actions/audit'
import { createTeam, setKeyTeam } from '#actions/teams'
import { refreshCaches } from '#tests/helpers'
import { setPrice } from '#actions/set_price'

/**
 * A streamed answer longer than its hold (no max_tokens: 1,024 tokens held)
 * against a balance that covers a few hundred tokens of it: the hold is
 * raised while the balance has room, and when it has none the stream is cut
 * before the text it cannot pay for. The client gets its format's quota
 * error (which its SDK throws, or for Responses a response.failed with code
 * insufficient_quota), the upstream request is ended, and the one usage row
 * bills what was relayed: never past the balance, charged once. A balance
 * that covers the whole answer gets all of it (the hold raised step by step);
 * two streams sharing one balance cannot overdraw it together.
 *
 * Prices: $1,000 per 1M tokens in and out, so a token costs $0.001: a
 * $0.30 balance pays for the prompt and about 270 tokens of answer.
 */
const WORDS = 4000
/** ~4,000 tokens: four times the hold, twenty times what $0.30 pays for */
const LONG = 'word '.repeat(WORDS)
const POOR = '0.3'

type Client = 'chat' | 'responses' | 'anthropic' | 'gemini'
type Upstream = UpstreamKind | 'responses'

const MODELS: Record<Upstream, string> = { chat: 'sh-gpt-chat', responses: 'sh-gpt-resp', anthropic: 'sh-claude-1', gemini: 'sh-gemini-1' }

function upstreamAnswer(kind: Upstream, text: string, delayMs: number): RawAnswer {
  const answer: ScriptedAnswer = { text, stop: 'end_turn', usage: { input: 12, output: WORDS } }
  return { ...(kind === 'responses' ? responsesStream(answer) : scripted(kind, answer, true)), chunk_delay_ms: delayMs }
}

/** What a client's SDK got of a streamed answer: its text, and the error it surfaced (null: none) */
interface Got {
  text: string
  error: { status?: number; code?: string; type?: string } | null
}

async function askWithSdk(client: Client, key: string, model: string): Promise<Got> {
  let text = ''
  try {
    if (client === 'chat') {
      const stream = await openai(key).chat.completions.create({ model, stream: true, messages: [{ role: 'user', content: 'go' }] })
      for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? ''
    } else if (client === 'responses') {
      const stream = await openai(key).responses.create({ model, stream: true, input: 'go' })
      for await (const event of stream) {
        if (event.type === 'response.output_text.delta') text += event.delta
        // OpenAI's SDKs hand a failed response over as its event (Codex reads its error code).
        if (event.type === 'response.failed') return { text, error: { code: event.response.error?.code } }
      }
    } else if (client === 'anthropic') {
      const stream = await anthropic(key).messages.create({ model, stream: true, max_tokens: 8000, messages: [{ role: 'user', content: 'go' }] })
      for await (const event of stream) if (event.type === 'content_block_delta' && event.delta.type === 'text_delta') text += event.delta.text
    } else {
      for await (const chunk of await genai(key).models.generateContentStream({ model, contents: 'go' })) {
        text += (chunk.candidates?.[0]?.content?.parts ?? []).map((p: any) => p.text ?? '').join('')
      }
    }
    return { text, error: null }
  } catch (error: any) {
    return { text, error: { status: error.status, code: error.code, type: error.type ?? error.error?.error?.type } }
  }
}

/** The error each client's SDK surfaces for a stream cut for the balance */
const QUOTA_ERROR: Record<Client, Got['error']> = {
  chat: { status: undefined, code: 'insufficient_quota', type: 'insufficient_quota' },
  responses: { code: 'insufficient_quota' },
  anthropic: { status: undefined, code: undefined, type: 'billing_error' },
  gemini: { status: 402, code: undefined, type: undefined },
}

async function until(check: () => boolean | Promise<boolean>, what: string) {
  for (let i = 0; i < 200; i++) {
    if (await check()) return
    await new Promise((r) => setTimeout(r, 20))
  }
  throw new Error(`never: ${what}`)
}

async function reservedOf(userId: number) {
  return (await gateway()).catalog.cachedUser(userId)?.reservedPico ?? 0n
}

/** The money checks every test ends with: no hold left, the balance never below zero, the ledger the balance's history. */
async function moneyIsRight(assert: any, userId: number, start: string) {
  assert.equal(await reservedOf(userId), 0n, 'the hold (and its raises) released')
  const rows = await usageRows(userId)
  const money = await balanceAndLedger(userId)
  assert.equal(money.balance, money.ledger)
  assert.isTrue(toPico(money.balance) >= 0n, `balance ${money.balance} below zero`)
  const cost = rows.reduce((sum, r) => sum + toPico(r.cost), 0n)
  assert.equal(toPico(start) - toPico(money.balance), cost, 'charged once: the balance fell by the rows\' cost')
  assert.deepEqual(await ledgerProblems(), [])
  return rows
}

test.group('Stream holds: an answer that outgrows its hold', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'sh-openai', provider: 'openai', baseUrl: mock.url, models: ['sh-gpt-*'] })
    await seedChannel({ name: 'sh-claude', provider: 'anthropic', baseUrl: mock.url, models: ['sh-claude-*'] })
    await seedChannel({ name: 'sh-google', provider: 'google', baseUrl: mock.url, models: ['sh-gemini-*'] })
    for (const model of Object.values(MODELS)) await seedPrice(model, '1000', '1000')
    return () => mock.stop()
  })

  // Same format (passed through) and translated, in every client format.
  const PAIRS: Array<[Client, Upstream]> = [
    ['chat', 'chat'],
    ['responses', 'responses'],
    ['anthropic', 'anthropic'],
    ['gemini', 'gemini'],
    ['chat', 'anthropic'],
    ['anthropic', 'chat'],
    ['responses', 'gemini'],
    ['gemini', 'chat'],
  ]
  for (const [client, upstream] of PAIRS) {
    test(`${client} client <- ${upstream} upstream, $${POOR} left, no max_tokens: cut with the quota error the SDK surfaces, billed what was relayed, never below zero`, async ({ assert }) => {
      const user = await seedUser({ balance: POOR })
      mock.script({ raw: upstreamAnswer(upstream, LONG, 1) })
      const got = await askWithSdk(client, user.key, MODELS[upstream])
      assert.deepEqual(got.error, QUOTA_ERROR[client])
      assert.isAbove(got.text.length, 100, 'the answer streamed until the balance ran out')
      assert.isBelow(got.text.length, LONG.length / 4)
      assert.isTrue(LONG.startsWith(got.text))
      await until(() => mock.lastRequest()?.clientGone === true, 'the gateway ended the upstream request')

      const rows = await moneyIsRight(assert, user.userId, POOR)
      assert.lengthOf(rows, 1)
      assert.include(rows[0], { status: 200, error_code: 'insufficient_balance', stream: true, estimated: true })
      assert.equal(Number(rows[0].completion_tokens), await countTokens(got.text), 'billed the text the client got')
      assert.isTrue(toPico(rows[0].cost) <= toPico(POOR), `cost ${rows[0].cost} past the balance`)
      // Most of the balance was used: the cut came near it, not at the first hold.
      assert.isAbove(Number(rows[0].cost), 0.2)
    })
  }

  test('the wire: chat error chunk (no [DONE]), Anthropic error event, Gemini 402 error chunk (SSE and JSON array), Responses response.failed, legacy completions', async ({ assert }) => {
    const cases: Array<[string, Record<string, unknown>, Record<string, string>, Upstream]> = [
      ['/v1/chat/completions', { model: MODELS.chat, stream: true, messages: [{ role: 'user', content: 'go' }] }, {}, 'chat'],
      ['/v1/messages', { model: MODELS.anthropic, stream: true, max_tokens: 8000, messages: [{ role: 'user', content: 'go' }] }, { 'anthropic-version': '2023-06-01' }, 'anthropic'],
      [`/v1beta/models/${MODELS.gemini}:streamGenerateContent?alt=sse`, { contents: [{ role: 'user', parts: [{ text: 'go' }] }] }, {}, 'gemini'],
      [`/v1beta/models/${MODELS.gemini}:streamGenerateContent`, { contents: [{ role: 'user', parts: [{ text: 'go' }] }] }, {}, 'gemini'],
      ['/v1/responses', { model: MODELS.responses, stream: true, input: 'go' }, {}, 'responses'],
    ]
    const lasts: any[] = []
    for (const [path, body, headers, upstream] of cases) {
      const user = await seedUser({ balance: POOR })
      mock.script({ raw: upstreamAnswer(upstream, LONG, 1) })
      const response = await post(path, body, { authorization: `Bearer ${user.key}`, ...headers })
      assert.equal(response.status, 200)
      const text = await response.text()
      if (path.endsWith(':streamGenerateContent')) {
        const array = JSON.parse(text)
        assert.isAbove(array.length, 20)
        lasts.push(array.at(-1))
      } else {
        const events = parseSse(text)
        assert.isAbove(events.length, 20)
        lasts.push(events.at(-1))
      }
      const rows = await moneyIsRight(assert, user.userId, POOR)
      assert.include(rows[0], { status: 200, error_code: 'insufficient_balance' })
    }
    const message = 'The balance ran out during the answer: the answer was stopped here (what was sent is billed). Top up your account to continue'
    assert.deepEqual(lasts[0].data, { error: { message, type: 'insufficient_quota', code: 'insufficient_quota' } })
    assert.equal(lasts[1].event, 'error')
    assert.deepEqual(lasts[1].data, { type: 'error', error: { type: 'billing_error', message } })
    assert.deepEqual(lasts[2].data, { error: { code: 402, message, status: 'FAILED_PRECONDITION' } })
    assert.deepEqual(lasts[3], { error: { code: 402, message, status: 'FAILED_PRECONDITION' } })
    assert.equal(lasts[4].event, 'response.failed')
    assert.deepEqual(lasts[4].data.response.error, { code: 'insufficient_quota', message })

    // Legacy completions (passed through like chat)
    const user = await seedUser({ balance: POOR })
    const chunk = (t: string) => `data: ${JSON.stringify({ id: 'cmpl-s', object: 'text_completion', created: 1, model: 'up-model', choices: [{ text: t, index: 0, logprobs: null, finish_reason: null }] })}\n\n`
    mock.script({ raw: { status: 200, headers: { 'content-type': 'text/event-stream' }, chunks: [...Array.from({ length: WORDS }, () => chunk('word ')), 'data: [DONE]\n\n'], chunk_delay_ms: 1 } })
    const response = await post('/v1/completions', { model: MODELS.chat, stream: true, prompt: 'go' }, { authorization: `Bearer ${user.key}` })
    const events = parseSse(await response.text())
    assert.deepEqual(events.at(-1)!.data, { error: { message, type: 'insufficient_quota', code: 'insufficient_quota' } })
    const rows = await moneyIsRight(assert, user.userId, POOR)
    assert.include(rows[0], { endpoint: 'completions', status: 200, error_code: 'insufficient_balance' })
  })

  test('a balance that covers the whole answer: every raise succeeds, the stream is relayed whole and billed from the upstream\'s usage', async ({ assert }) => {
    for (const [client, upstream] of [['chat', 'chat'], ['anthropic', 'chat']] as Array<[Client, Upstream]>) {
      const user = await seedUser({ balance: '10' })
      mock.script({ raw: upstreamAnswer(upstream, LONG, 0) })
      const got = await askWithSdk(client, user.key, MODELS[upstream])
      assert.isNull(got.error)
      assert.equal(got.text, LONG)
      const rows = await moneyIsRight(assert, user.userId, '10')
      assert.include(rows[0], { status: 200, error_code: null, completion_tokens: WORDS, prompt_tokens: 12 })
    }
  })

  test('two streams sharing one balance, at once: together they cannot overdraw it', async ({ assert }) => {
    // $2 admits both (each holds ~$1.05: admission asks for a balance above the other holds), and each answer would cost ~$4.
    const user = await seedUser({ balance: '2' })
    mock.script({ raw: upstreamAnswer('chat', LONG, 1) })
    mock.script({ raw: upstreamAnswer('anthropic', LONG, 1) })
    const got = await Promise.all([askWithSdk('chat', user.key, MODELS.chat), askWithSdk('chat', user.key, MODELS.anthropic)])
    for (const one of got) assert.deepEqual(one.error, QUOTA_ERROR.chat)
    const rows = await moneyIsRight(assert, user.userId, '2')
    assert.lengthOf(rows, 2)
    assert.deepEqual(rows.map((r) => r.error_code), ['insufficient_balance', 'insufficient_balance'])
    const total = rows.reduce((sum, r) => sum + toPico(r.cost), 0n)
    assert.isTrue(total <= toPico('2'), `together ${total} past the balance`)
    assert.isTrue(total > toPico('1.5'), 'the balance was used')
  })

  test('a key whose spend cap runs out mid-stream: cut with spend_limit_exceeded, the key\'s holds released, its spend within the cap', async ({ assert }) => {
    const user = await seedUser({ balance: '10', key: { spendLimit: POOR } })
    mock.script({ raw: upstreamAnswer('chat', LONG, 1) })
    const got = await askWithSdk('chat', user.key, MODELS.chat)
    assert.deepEqual(got.error, QUOTA_ERROR.chat)
    const rows = await moneyIsRight(assert, user.userId, '10')
    assert.include(rows[0], { status: 200, error_code: 'spend_limit_exceeded' })
    assert.equal(heldOnKey(user.keyId), 0n)
    const key = await db.from('api_keys').where('id', user.keyId).select(db.raw('spent::text AS spent')).first()
    assert.isTrue(toPico(key.spent) <= toPico(POOR), `spent ${key.spent}`)
  })

  test('a key whose team\'s budget runs out mid-stream: cut with spend_limit_exceeded as a key\'s cap, the team\'s holds released, its spend within the budget', async ({ assert }) => {
    const user = await seedUser({ balance: '10' })
    const team = await createTeam({ alias: 'streamers', maxBudget: POOR })
    await setKeyTeam(String(user.keyId), team.id)
    await refreshCaches()
    mock.script({ raw: upstreamAnswer('chat', LONG, 1) })
    const got = await askWithSdk('chat', user.key, MODELS.chat)
    assert.deepEqual(got.error, QUOTA_ERROR.chat)
    const rows = await moneyIsRight(assert, user.userId, '10')
    assert.include(rows[0], { status: 200, error_code: 'spend_limit_exceeded' })
    const gw = await gateway()
    assert.equal(gw.catalog.teams.get(team.id)!.heldPico, 0n)
    const row = await db.from('teams').where('id', team.id).select(db.raw('spent::text AS spent')).first()
    assert.isTrue(toPico(row.spent) <= toPico(POOR), `spent ${row.spent}`)
    assert.isTrue(toPico(row.spent) > 0n, 'the stream was billed to the team')
  })

  test("a key's budget for the model runs out mid-stream: cut with spend_limit_exceeded as a key's cap, the budget's holds released, its spend within the budget", async ({ assert }) => {
    const user = await seedUser({ balance: '10', key: { modelLimits: { [MODELS.chat]: { budget: POOR } } } })
    mock.script({ raw: upstreamAnswer('chat', LONG, 1) })
    const got = await askWithSdk('chat', user.key, MODELS.chat)
    assert.deepEqual(got.error, QUOTA_ERROR.chat)
    const rows = await moneyIsRight(assert, user.userId, '10')
    assert.include(rows[0], { status: 200, error_code: 'spend_limit_exceeded' })
    const budget = modelBudgetById(`${user.keyId} ${MODELS.chat}`)!
    assert.equal(budget.heldPico, 0n)
    const row = await db.from('api_key_model_spend').where('api_key_id', user.keyId).select(db.raw('spent::text AS spent')).first()
    assert.isTrue(toPico(row.spent) <= toPico(POOR), `spent ${row.spent}`)
    assert.isTrue(toPico(row.spent) > 0n, 'the stream was counted on the budget')
  })

  test('with the answer check on (sensitive words, the screened relays): cut the same way, passed through and translated', async ({ assert }) => {
    await setWordFilter({ enabled: true, words: ['casino'], checkCompletions: true, hideMatches: false }, cliActor())
    const gw = await gateway()
    await until(() => gw.catalog.wordFilter?.checkCompletions === true, 'the filter reached the gateway')
    try {
      for (const model of [MODELS.chat, MODELS.anthropic]) {
        const user = await seedUser({ balance: POOR })
        mock.script({ raw: upstreamAnswer(model === MODELS.chat ? 'chat' : 'anthropic', LONG, 1) })
        const got = await askWithSdk('chat', user.key, model)
        assert.deepEqual(got.error, QUOTA_ERROR.chat)
        const rows = await moneyIsRight(assert, user.userId, POOR)
        assert.include(rows[0], { status: 200, error_code: 'insufficient_balance' })
        assert.equal(Number(rows[0].completion_tokens), await countTokens(got.text), 'billed the text the client got')
      }
    } finally {
      await db.from('app_settings').where('key', 'sensitive_words').delete()
      await until(() => gw.catalog.wordFilter === null, 'the filter is off')
    }
  })

  for (const [what, model] of [['a priced', MODELS.chat], ['a free', 'sh-gpt-free']]) {
    test(`a plan with 300 output tokens left this month, ${what} model: cut with token_limit_exceeded, the month's tokens within the limit`, async ({ assert }) => {
      const user = await seedUser({ balance: '10', plan: { name: `month-300-${model}`, monthlyOutputTokens: 300 } })
      mock.script({ raw: upstreamAnswer('chat', LONG, 1) })
      const got = await askWithSdk('chat', user.key, model)
      assert.deepEqual(got.error, QUOTA_ERROR.chat)
      assert.isAbove(got.text.length, 100)
      const rows = await moneyIsRight(assert, user.userId, '10')
      assert.include(rows[0], { status: 200, error_code: 'token_limit_exceeded' })
      assert.isAtMost(Number(rows[0].completion_tokens), 300)
      assert.equal(Number(rows[0].completion_tokens), await countTokens(got.text))
      const cached = (await gateway()).catalog.cachedUser(user.userId)
      assert.equal(cached?.reservedOutputTokens ?? 0, 0, 'the held tokens released')
      assert.isAtLeast(Number(rows[0].completion_tokens), 200, 'most of the month was used (a passed-through stream is cut at a chunk: the upstream may send several events in one)')
    })
  }

  test('text denser than one token per character (runes: three each): cut before it passes the balance, billed what was relayed, never below zero', async ({ assert }) => {
    const user = await seedUser({ balance: POOR })
    mock.script({ raw: upstreamAnswer('chat', 'ᚠᚢᚦᚨ'.repeat(1000), 1) })
    const got = await askWithSdk('chat', user.key, MODELS.chat)
    assert.deepEqual(got.error, QUOTA_ERROR.chat)
    const rows = await moneyIsRight(assert, user.userId, POOR)
    assert.include(rows[0], { status: 200, error_code: 'insufficient_balance' })
    assert.isTrue(toPico(rows[0].cost) <= toPico(POOR), `cost ${rows[0].cost} past the balance`)
    // Near the end of the balance the checks assume the densest text: what was relayed is what was billed.
    assert.equal(Number(rows[0].completion_tokens), await countTokens(got.text))
    assert.isAbove(Number(rows[0].cost), 0.2)
  })

  test('one-hour cache writes the upstream reported before the text: the hold prices them as billed (cut where the balance ends, billed what was relayed)', async ({ assert }) => {
    // A one-hour write at $2,000 per 1M (the five-minute one at $1,000): the prompt's 100 writes cost $0.2, not $0.1.
    await setPrice({ model: 'sh-claude-1h', input: '1000', output: '1000', cacheWrite: '1000', cacheWrite1h: '2000' })
    await refreshCaches()
    const user = await seedUser({ balance: POOR })
    const sse = (type: string, data: Record<string, unknown>) => `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`
    const usage = { input_tokens: 12, cache_read_input_tokens: 0, cache_creation_input_tokens: 100, cache_creation: { ephemeral_5m_input_tokens: 0, ephemeral_1h_input_tokens: 100 } }
    const message = { id: 'msg_1h', type: 'message', role: 'assistant', model: 'up-model', content: [], stop_reason: null, stop_sequence: null }
    mock.script({
      raw: {
        headers: { 'content-type': 'text/event-stream' },
        chunk_delay_ms: 1,
        chunks: [
          sse('message_start', { message: { ...message, usage: { ...usage, output_tokens: 1 } } }),
          sse('content_block_start', { index: 0, content_block: { type: 'text', text: '' } }),
          ...Array.from({ length: WORDS / 4 }, () => sse('content_block_delta', { index: 0, delta: { type: 'text_delta', text: 'word word word word ' } })),
          sse('content_block_stop', { index: 0 }),
          sse('message_delta', { delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { ...usage, output_tokens: WORDS } }),
          sse('message_stop', {}),
        ],
      },
    })
    const got = await askWithSdk('anthropic', user.key, 'sh-claude-1h')
    assert.deepEqual(got.error, QUOTA_ERROR.anthropic)
    const rows = await moneyIsRight(assert, user.userId, POOR)
    assert.include(rows[0], { status: 200, error_code: 'insufficient_balance', prompt_tokens: 112, cache_write_tokens: 100 })
    // The hold priced the writes at the five-minute price: ~190 tokens relayed for a room of ~90, billed ~90.
    assert.equal(Number(rows[0].completion_tokens), await countTokens(got.text), 'billed the text the client got')
    assert.isTrue(toPico(rows[0].cost) <= toPico(POOR), `cost ${rows[0].cost} past the balance`)
  })

  test('a request that may search: its searches counted as they start (billed when cut before message_delta), the text leaves room for those held', async ({ assert }) => {
    await setPrice({ model: 'sh-claude-ws', input: '1000', output: '1000', perWebSearch: '0.01' })
    await refreshCaches()
    const user = await seedUser({ balance: POOR })
    const sse = (type: string, data: Record<string, unknown>) => `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`
    const message = { id: 'msg_ws', type: 'message', role: 'assistant', model: 'up-model', content: [], stop_reason: null, stop_sequence: null }
    // Three searches (as Claude's web_search runs them: the server_tool_use block, then its result), then the answer.
    const searches = [0, 1, 2].flatMap((n) => [
      sse('content_block_start', { index: 2 * n, content_block: { type: 'server_tool_use', id: `srvtoolu_${n}`, name: 'web_search', input: {} } }),
      sse('content_block_delta', { index: 2 * n, delta: { type: 'input_json_delta', partial_json: '{"query":"q"}' } }),
      sse('content_block_stop', { index: 2 * n }),
      sse('content_block_start', { index: 2 * n + 1, content_block: { type: 'web_search_tool_result', tool_use_id: `srvtoolu_${n}`, content: [] } }),
      sse('content_block_stop', { index: 2 * n + 1 }),
    ])
    const searched: RawAnswer = {
        headers: { 'content-type': 'text/event-stream' },
        chunk_delay_ms: 1,
        chunks: [
          sse('message_start', { message: { ...message, usage: { input_tokens: 12, output_tokens: 1, server_tool_use: { web_search_requests: 0 } } } }),
          ...searches,
          sse('content_block_start', { index: 6, content_block: { type: 'text', text: '' } }),
          ...Array.from({ length: WORDS / 4 }, () => sse('content_block_delta', { index: 6, delta: { type: 'text_delta', text: 'word word word word ' } })),
          sse('content_block_stop', { index: 6 }),
          sse('message_delta', { delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { input_tokens: 12, output_tokens: WORDS, server_tool_use: { web_search_requests: 3 } } }),
          sse('message_stop', {}),
        ],
    }
    mock.script({ raw: searched })
    let text = ''
    let error: any = null
    try {
      const stream = await anthropic(user.key).messages.create({
        model: 'sh-claude-ws',
        stream: true,
        max_tokens: 8000,
        tools: [{ type: 'web_search_20250305', name: 'web_search', max_uses: 5 }] as any,
        messages: [{ role: 'user', content: 'go' }],
      })
      for await (const event of stream) if (event.type === 'content_block_delta' && event.delta.type === 'text_delta') text += event.delta.text
    } catch (caught: any) {
      error = caught
    }
    assert.equal(error?.error?.error?.type, 'billing_error')
    const rows = await moneyIsRight(assert, user.userId, POOR)
    assert.include(rows[0], { status: 200, error_code: 'insufficient_balance', prompt_tokens: 12 })
    assert.equal(Number(rows[0].completion_tokens), await countTokens(text), 'billed the text the client got')
    // The three searches the stream showed are billed ($0.01 each) though message_delta never came.
    assert.equal(toPico(rows[0].cost), (12n + BigInt(rows[0].completion_tokens)) * 1_000_000_000n + 3n * 10_000_000_000n)
    // The text left room for the 5 searches held: cut by ~$0.05 of text sooner than the balance alone.

    // Text before the searches: it leaves room for the 5 held ($0.05), at most ($0.3 - $0.012 - $0.05) / $0.001 tokens.
    const first = await seedUser({ balance: POOR })
    const chunks = searched.chunks!
    const textFirst: RawAnswer = { ...searched, chunks: [chunks[0], ...chunks.slice(1 + searches.length, -2), ...searches, ...chunks.slice(-2)] }
    mock.script({ raw: textFirst })
    let error2: any = null
    try {
      const stream = await anthropic(first.key).messages.create({
        model: 'sh-claude-ws',
        stream: true,
        max_tokens: 8000,
        tools: [{ type: 'web_search_20250305', name: 'web_search', max_uses: 5 }] as any,
        messages: [{ role: 'user', content: 'go' }],
      })
      for await (const _ of stream) void _
    } catch (caught: any) {
      error2 = caught
    }
    assert.equal(error2?.error?.error?.type, 'billing_error')
    const [cut] = await moneyIsRight(assert, first.userId, POOR)
    assert.isAtMost(Number(cut.completion_tokens), 238)

    // Translated for an OpenAI client (nothing held for searches it did not ask for): the searches still billed.
    const other = await seedUser({ balance: POOR })
    mock.script({ raw: searched })
    const got = await askWithSdk('chat', other.key, 'sh-claude-ws')
    assert.deepEqual(got.error, QUOTA_ERROR.chat)
    const [row] = await moneyIsRight(assert, other.userId, POOR)
    assert.equal(Number(row.completion_tokens), await countTokens(got.text))
    assert.equal(toPico(row.cost), (12n + BigInt(row.completion_tokens)) * 1_000_000_000n + 3n * 10_000_000_000n)
  })
})
