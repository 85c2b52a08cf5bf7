import { test } from '@japa/runner'
import db from '@adonisjs/lucid/services/db'
import { setWordFilter } from '#actions/set_word_filter'
import { cliActor } from '#actions/audit'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import type { RawAnswer } from '#tests/fixtures/mock_upstream/raw_answer'
import { anthropic, genai, parseSse } from '#tests/clients'
import { pieces, responsesStream, scripted, type ScriptedAnswer, type UpstreamKind } from '#tests/fixtures/upstream_scripts'
import { balanceAndLedger, gateway, openai, post, resetDatabase, seedChannel, seedPrice, seedUser, startMock, usageRows } from '#tests/helpers'

/**
 * The sensitive-word check of streamed answers ("prompts and answers"): the
 * text is checked as it streams, in every client format, passed through or
 * translated. When a listed word completes, the event that completes it is
 * not relayed; the client gets a clean end its SDK accepts (a content-filter
 * stop in its format), the upstream request is ended, and the request is one
 * usage row marked sensitive_words_detected, billed once for what the
 * upstream produced. The upstreams are scripted byte for byte (mock.raw).
 */

/** 4-character pieces, one event each: "SecretSauce" spans "s Se", "cret", "Sauc", "e in". */
const ANSWER = 'the recipe is SecretSauce indeed, with bread'
/** What the client has when the stream stops: the text before the event that completes the word */
const SENT = 'the recipe is SecretSauc'
const USAGE = { input: 12, output: 20 }

type Client = 'chat' | 'responses' | 'anthropic' | 'gemini'
type Upstream = UpstreamKind | 'responses'

const MODELS: Record<Upstream, string> = { chat: 'sw-gpt-chat', responses: 'sw-gpt-resp', anthropic: 'sw-claude-1', gemini: 'sw-gemini-1' }

function upstreamAnswer(kind: Upstream, text: string, extra: Partial<RawAnswer> = {}): RawAnswer {
  const answer: ScriptedAnswer = { text, stop: 'end_turn', usage: USAGE }
  return { ...(kind === 'responses' ? responsesStream(answer) : scripted(kind, answer, true)), ...extra }
}

/** What one client's SDK assembled from a streamed answer. */
interface Assembled {
  text: string
  stop: string
}

async function askWithSdk(client: Client, key: string, model: string): Promise<Assembled> {
  if (client === 'chat') {
    const completion = await openai(key).chat.completions.stream({ model, messages: [{ role: 'user', content: 'recipe?' }], stream_options: { include_usage: true } }).finalChatCompletion()
    return { text: completion.choices[0].message.content ?? '', stop: completion.choices[0].finish_reason }
  }
  if (client === 'responses') {
    let text = ''
    const stream = openai(key).responses.stream({ model, input: 'recipe?' })
    stream.on('response.output_text.delta', (event) => (text += event.delta))
    const response = await stream.finalResponse()
    return { text, stop: `${response.status}/${response.incomplete_details?.reason}` }
  }
  if (client === 'anthropic') {
    const message = await anthropic(key).messages.stream({ model, max_tokens: 100, messages: [{ role: 'user', content: 'recipe?' }] }).finalMessage()
    return { text: message.content.map((b: any) => b.text ?? '').join(''), stop: String(message.stop_reason) }
  }
  let text = ''
  let stop = ''
  for await (const chunk of await genai(key).models.generateContentStream({ model, contents: 'recipe?' })) {
    text += (chunk.candidates?.[0]?.content?.parts ?? []).map((p: any) => p.text ?? '').join('')
    stop = chunk.candidates?.[0]?.finishReason ?? stop
  }
  return { text, stop }
}

/** The content-filter stop each client format reports */
const FILTERED: Record<Client, string> = { chat: 'content_filter', responses: 'incomplete/content_filter', anthropic: 'refusal', gemini: 'SAFETY' }

async function until(check: () => boolean | Promise<boolean>, what: string) {
  for (let i = 0; i < 100; i++) {
    if (await check()) return
    await new Promise((r) => setTimeout(r, 20))
  }
  throw new Error(`never: ${what}`)
}

async function filterOn(words: string[], checkCompletions = true) {
  await setWordFilter({ enabled: true, words, checkCompletions, hideMatches: false }, cliActor())
  const gw = await gateway()
  await until(() => gw.catalog.wordFilter?.matcher.entries.join('\n') === words.join('\n') && gw.catalog.wordFilter.checkCompletions === checkCompletions, 'the setting reached the gateway')
}

async function filterOff() {
  await db.from('app_settings').where('key', 'sensitive_words').delete()
  const gw = await gateway()
  await until(() => gw.catalog.wordFilter === null, 'the filter is off')
}

test.group('Sensitive words: streamed answers checked as they stream', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'sw-openai', provider: 'openai', baseUrl: mock.url, models: ['sw-gpt-*'] })
    await seedChannel({ name: 'sw-claude', provider: 'anthropic', baseUrl: mock.url, models: ['sw-claude-*'] })
    await seedChannel({ name: 'sw-google', provider: 'google', baseUrl: mock.url, models: ['sw-gemini-*'] })
    for (const model of Object.values(MODELS)) await seedPrice(model, '100', '200')
    return () => mock.stop()
  })
  group.each.setup(async () => {
    await filterOff()
  })

  // Same format (passed through) and translated; each client's own SDK assembles the stream.
  const PAIRS: Array<[Client, Upstream]> = [
    ['chat', 'chat'],
    ['responses', 'responses'],
    ['anthropic', 'anthropic'],
    ['gemini', 'gemini'],
    ['anthropic', 'chat'],
    ['chat', 'anthropic'],
    ['responses', 'gemini'],
    ['gemini', 'chat'],
  ]
  for (const [client, upstream] of PAIRS) {
    test(`${client} client <- ${upstream} upstream: stopped at the word, a clean ${FILTERED[client]} end the SDK accepts, the upstream request ended, one row billed once`, async ({ assert }) => {
      const user = await seedUser({ balance: '5' })
      await filterOn(['secretsauce'])
      // Slow after the opening: the whole answer would take over 2 s, so an upstream left running shows.
      const tail = ' and more'.repeat(40)
      mock.script({ raw: upstreamAnswer(upstream, ANSWER + tail, { chunk_delay_ms: 15 }) })
      const got = await askWithSdk(client, user.key, MODELS[upstream])
      assert.equal(got.text, SENT, 'the text before the word went out; the event that completed it did not')
      assert.equal(got.stop, FILTERED[client])
      await until(() => mock.lastRequest()?.clientGone === true, 'the gateway ended the upstream request')

      const rows = await usageRows(user.userId)
      assert.lengthOf(rows, 1)
      assert.include(rows[0], { status: 200, error_code: 'sensitive_words_detected', stream: true, model: MODELS[upstream] })
      assert.isAbove(Number(rows[0].completion_tokens), 0, 'the tokens the upstream produced are billed')
      assert.isAbove(Number(rows[0].cost), 0)
      const money = await balanceAndLedger(user.userId)
      assert.equal(money.balance, money.ledger)
      assert.closeTo(5 - Number(money.balance), Number(rows[0].cost), 1e-12, 'charged once, the row cost')
    })
  }

  test('the wire ends: chat finish_reason content_filter then [DONE]; Anthropic message_delta refusal and message_stop; Gemini SAFETY (SSE and JSON array); Responses response.incomplete; legacy completions too', async ({ assert }) => {
    const user = await seedUser({ balance: '5' })
    await filterOn(['secretsauce'])
    const auth = { authorization: `Bearer ${user.key}` }

    mock.script({ raw: upstreamAnswer('chat', ANSWER) })
    let response = await post('/v1/chat/completions', { model: MODELS.chat, stream: true, messages: [{ role: 'user', content: 'recipe?' }] }, auth)
    let body = await response.text()
    let events = parseSse(body)
    assert.notInclude(body, 'e in')
    assert.deepEqual(events.at(-1)!.data, '[DONE]')
    assert.include(events.at(-2)!.data, { id: 'chatcmpl-scripted', object: 'chat.completion.chunk', model: 'up-model' })
    assert.deepEqual(events.at(-2)!.data.choices, [{ index: 0, delta: {}, logprobs: null, finish_reason: 'content_filter' }])

    mock.script({ raw: upstreamAnswer('anthropic', ANSWER) })
    response = await post('/v1/messages', { model: MODELS.anthropic, stream: true, max_tokens: 100, messages: [{ role: 'user', content: 'recipe?' }] }, { 'x-api-key': user.key, 'anthropic-version': '2023-06-01' })
    events = parseSse(await response.text())
    assert.deepEqual(events.slice(-3).map((e) => e.event), ['content_block_stop', 'message_delta', 'message_stop'])
    assert.deepEqual(events.at(-3)!.data, { type: 'content_block_stop', index: 0 })
    assert.deepEqual(events.at(-2)!.data.delta, { stop_reason: 'refusal', stop_sequence: null })
    assert.equal(events.at(-2)!.data.usage.input_tokens, 12, 'the usage known so far (message_start)')

    mock.script({ raw: upstreamAnswer('gemini', ANSWER) })
    response = await post(`/v1beta/models/${MODELS.gemini}:streamGenerateContent?alt=sse`, { contents: [{ role: 'user', parts: [{ text: 'recipe?' }] }] }, { 'x-goog-api-key': user.key })
    events = parseSse(await response.text())
    assert.equal(events.at(-1)!.data.candidates[0].finishReason, 'SAFETY')
    assert.include(events.at(-1)!.data, { responseId: 'scripted', modelVersion: 'up-model' })
    mock.script({ raw: upstreamAnswer('gemini', ANSWER) })
    response = await post(`/v1beta/models/${MODELS.gemini}:streamGenerateContent`, { contents: [{ role: 'user', parts: [{ text: 'recipe?' }] }] }, { 'x-goog-api-key': user.key })
    const array = JSON.parse(await response.text())
    assert.equal(array.map((c: any) => c.candidates[0].content.parts[0].text).join(''), SENT)
    assert.equal(array.at(-1).candidates[0].finishReason, 'SAFETY')

    mock.script({ raw: upstreamAnswer('responses', ANSWER) })
    response = await post('/v1/responses', { model: MODELS.responses, stream: true, input: 'recipe?' }, auth)
    events = parseSse(await response.text())
    const last = events.at(-1)!
    assert.equal(last.event, 'response.incomplete')
    assert.include(last.data.response, { id: 'resp_scripted', status: 'incomplete', model: 'up-model' })
    assert.deepEqual(last.data.response.incomplete_details, { reason: 'content_filter' })
    assert.isAbove(last.data.sequence_number, events.at(-2)!.data.sequence_number)

    const completion = (text: string) => `data: ${JSON.stringify({ id: 'cmpl-s', object: 'text_completion', created: 1, model: 'up-model', choices: [{ text, index: 0, logprobs: null, finish_reason: null }] })}\n\n`
    mock.script({ raw: { status: 200, headers: { 'content-type': 'text/event-stream' }, chunks: [...pieces(ANSWER, 4).map(completion), 'data: [DONE]\n\n'] } })
    response = await post('/v1/completions', { model: MODELS.chat, stream: true, prompt: 'recipe?', max_tokens: 30 }, auth)
    events = parseSse(await response.text())
    assert.equal(events.slice(0, -2).map((e) => e.data.choices[0].text).join(''), SENT)
    assert.deepEqual(events.at(-2)!.data.choices, [{ text: '', index: 0, logprobs: null, finish_reason: 'content_filter' }])
    assert.include(events.at(-2)!.data, { id: 'cmpl-s', object: 'text_completion' })
    assert.equal(events.at(-1)!.data, '[DONE]')

    const rows = await usageRows(user.userId)
    assert.deepEqual(rows.map((r) => [r.endpoint, r.status, r.error_code]), [
      ['chat.completions', 200, 'sensitive_words_detected'],
      ['messages', 200, 'sensitive_words_detected'],
      ['gemini.streamGenerateContent', 200, 'sensitive_words_detected'],
      ['gemini.streamGenerateContent', 200, 'sensitive_words_detected'],
      ['responses', 200, 'sensitive_words_detected'],
      ['completions', 200, 'sensitive_words_detected'],
    ])
  })

  test('a pattern split across events, and an event split across upstream chunks, several events to a chunk', async ({ assert }) => {
    const user = await seedUser({ balance: '5' })
    await filterOn(['re:free\\s+credits?'])
    // "FREE" and "credit" four events apart; then the chunks regrouped: three events per chunk,
    // every chunk boundary moved 30 bytes into the next event.
    const text = 'you get FREE    credits today, and more text after it'
    const events = upstreamAnswer('chat', text).chunks!
    const bytes = events.join('')
    const cuts: number[] = []
    for (let i = 3, at = 0; i < events.length; i += 3) {
      at = events.slice(0, i).join('').length + 30
      cuts.push(at)
    }
    const chunks = [0, ...cuts].map((start, i) => bytes.slice(start, cuts[i] ?? bytes.length))
    mock.script({ raw: { status: 200, headers: { 'content-type': 'text/event-stream' }, chunks } })
    const completion = await openai(user.key).chat.completions.stream({ model: MODELS.chat, messages: [{ role: 'user', content: 'offer?' }] }).finalChatCompletion()
    assert.equal(completion.choices[0].message.content, 'you get FREE    cred')
    assert.equal(completion.choices[0].finish_reason, 'content_filter')
    const rows = await usageRows(user.userId)
    assert.include(rows[0], { status: 200, error_code: 'sensitive_words_detected' })
  })

  test('a word in a tool call\'s arguments stops the stream mid-call; the SDKs still assemble the answer', async ({ assert }) => {
    const user = await seedUser({ balance: '5' })
    await filterOn(['secretsauce'])
    const answer: ScriptedAnswer = { text: 'Looking it up.', calls: [{ id: 'call_1', name: 'lookup', args: '{"query":"the secretsauce recipe"}' }], stop: 'tool_use', usage: USAGE }
    mock.script({ raw: scripted('chat', answer, true) })
    const tools = [{ type: 'function' as const, function: { name: 'lookup', parameters: { type: 'object', properties: { query: { type: 'string' } } } } }]
    const completion = await openai(user.key).chat.completions.stream({ model: MODELS.chat, messages: [{ role: 'user', content: 'recipe?' }], tools }).finalChatCompletion()
    assert.equal(completion.choices[0].finish_reason, 'content_filter')
    const args = completion.choices[0].message.tool_calls![0]
    assert.equal(args.type === 'function' ? args.function.arguments : '', '{"query":"the secretsauc', 'the arguments up to the piece that completed the word')
    // Translated: an Anthropic client gets the open tool_use block closed, then the refusal.
    mock.script({ raw: scripted('chat', answer, true) })
    const message = await anthropic(user.key).messages.stream({ model: MODELS.chat, max_tokens: 100, messages: [{ role: 'user', content: 'recipe?' }], tools: [{ name: 'lookup', input_schema: { type: 'object', properties: { query: { type: 'string' } } } }] }).finalMessage()
    assert.equal(message.stop_reason, 'refusal')
    assert.deepEqual(message.content.map((b) => b.type), ['text', 'tool_use'])
    const rows = await usageRows(user.userId)
    assert.deepEqual(rows.map((r) => r.error_code), ['sensitive_words_detected', 'sensitive_words_detected'])
  })

  test("a word in the upstream's last event: its usage, final, is billed as reported", async ({ assert }) => {
    const user = await seedUser({ balance: '5' })
    await filterOn(['secretsauce'])
    // Gemini's last chunk carries the last piece, finishReason and usageMetadata together.
    mock.script({ raw: upstreamAnswer('gemini', 'the recipe is SecretSauce') })
    const got = await askWithSdk('gemini', user.key, MODELS.gemini)
    assert.deepEqual(got, { text: SENT, stop: 'SAFETY' })
    const rows = await usageRows(user.userId)
    assert.include(rows[0], { error_code: 'sensitive_words_detected', prompt_tokens: 12, completion_tokens: 20, estimated: false })
  })

  test('a stream request the upstream answers whole (it ignored `stream`): withheld before any byte, as a non-streamed answer is', async ({ assert }) => {
    const user = await seedUser({ balance: '5' })
    await filterOn(['secretsauce'])
    const whole = scripted('chat', { text: ANSWER, stop: 'end_turn', usage: USAGE }, false)
    mock.script({ raw: whole })
    const chat = await post('/v1/chat/completions', { model: MODELS.chat, stream: true, messages: [{ role: 'user', content: 'recipe?' }] }, { authorization: `Bearer ${user.key}` })
    assert.equal(chat.status, 400)
    assert.equal(((await chat.json()) as any).error.code, 'sensitive_words_detected')
    mock.script({ raw: whole })
    const messages = await post('/v1/messages', { model: MODELS.chat, stream: true, max_tokens: 100, messages: [{ role: 'user', content: 'recipe?' }] }, { 'x-api-key': user.key, 'anthropic-version': '2023-06-01' })
    assert.equal(messages.status, 400)
    assert.equal(((await messages.json()) as any).error.type, 'invalid_request_error')
    const legacy = JSON.stringify({ id: 'cmpl-s', object: 'text_completion', created: 1, model: 'up-model', choices: [{ text: ANSWER, index: 0, logprobs: null, finish_reason: 'stop' }], usage: { prompt_tokens: 12, completion_tokens: 20, total_tokens: 32 } })
    mock.script({ raw: { status: 200, body: legacy } })
    const completions = await post('/v1/completions', { model: MODELS.chat, stream: true, prompt: 'recipe?', max_tokens: 30 }, { authorization: `Bearer ${user.key}` })
    assert.equal(completions.status, 400)
    await completions.arrayBuffer()
    const rows = await usageRows(user.userId)
    assert.deepEqual(rows.map((r) => [r.status, r.error_code, Number(r.completion_tokens)]), [
      [400, 'sensitive_words_detected', 20],
      [400, 'sensitive_words_detected', 20],
      [400, 'sensitive_words_detected', 20],
    ])
  })

  test('off, or prompts only: a streamed answer holding the word passes unchanged, byte for byte', async ({ assert }) => {
    const user = await seedUser({ balance: '5' })
    const auth = { authorization: `Bearer ${user.key}` }
    for (const setting of ['off', 'prompts only'] as const) {
      if (setting === 'prompts only') await filterOn(['secretsauce'], false)
      // Chat passed through: the upstream's bytes (its usage chunk asked for by the gateway dropped, as always)
      const raw = upstreamAnswer('chat', ANSWER)
      mock.script({ raw })
      const response = await post('/v1/chat/completions', { model: MODELS.chat, stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'recipe?' }] }, auth)
      assert.equal(await response.text(), raw.chunks!.join(''), setting)
      // Translated
      mock.script({ raw: upstreamAnswer('chat', ANSWER) })
      const got = await askWithSdk('anthropic', user.key, MODELS.chat)
      assert.deepEqual(got, { text: ANSWER, stop: 'end_turn' }, setting)
    }
    const rows = await usageRows(user.userId)
    assert.deepEqual(rows.map((r) => [r.status, r.error_code]), [[200, null], [200, null], [200, null], [200, null]])
  })
})
