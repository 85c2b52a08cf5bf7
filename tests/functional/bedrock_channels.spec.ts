import { test } from '@japa/runner'
import ace from '@adonisjs/core/services/ace'
import db from '@adonisjs/lucid/services/db'
import ChannelCreate from '#commands/channel_create'
import ChannelTest from '#commands/channel_test'
import { setPrice } from '#actions/set_price'
import { testChannel } from '#actions/test_channel'
import { toPico } from '#gateway/metering/money'
import { MockBedrock, thinkingSignature } from '#tests/fixtures/mock_bedrock'
import { anthropic, parseSse } from '#tests/clients'
import { balanceAndLedger, gateway, openai, post, refreshCaches, resetDatabase, seedChannel, seedUser, usageRows } from '#tests/helpers'
import { ledgerProblems } from '#tests/money_checks'
import { answerBudget } from '#gateway/upstream/answer_limits'
import { awsClock } from '#gateway/providers/bedrock/bedrock_adapter'

async function run(command: any, args: string[]) {
  const instance = await ace.create(command, args)
  ace.ui.switchMode('raw')
  await instance.exec()
  return instance
}

const M = 1_000_000n
const SONNET = 'us.anthropic.claude-sonnet-4-5-20250929-v1:0'
const SONNET_PATH = '/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0'
const hi = [{ role: 'user' as const, content: 'hi' }]
const LLAMA = 'meta.llama4-maverick-17b-instruct-v1:0'
const LLAMA_PATH = '/model/meta.llama4-maverick-17b-instruct-v1%3A0'
const NOVA_PATH = '/model/us.amazon.nova-pro-v1%3A0'
/** An application inference profile serving Claude: its ARN names no model, so it goes through Converse */
const PROFILE = 'arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3d4e5f6'
const NOVA2 = 'us.amazon.nova-2-lite-v1:0'
const PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=='
const weatherTool = {
  type: 'function' as const,
  function: { name: 'get_weather', description: 'The weather in a city', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } },
}
const anthropicHeaders = (key: string) => ({ 'x-api-key': key, 'anthropic-version': '2023-06-01' })

/**
 * `bedrock` channels against a mock Bedrock that checks SigV4 with its own
 * secret (tests/fixtures/mock_bedrock.ts): Claude through InvokeModel, whole
 * and streamed (AWS's event stream, decoded as it comes), to Anthropic and
 * OpenAI clients; Bedrock's errors in each client's format; exact metering.
 */
test.group('Bedrock channels', (group) => {
  let mock: MockBedrock

  group.setup(async () => {
    await resetDatabase()
    mock = new MockBedrock({ region: 'us-east-1', accessKeyId: 'AKIDMOCKBEDROCK', secretAccessKey: 'mock/Secret+Key0', apiKey: 'ABSKbW9ja2JlZHJvY2s=' })
    await mock.start()
    await seedChannel({
      name: 'bedrock',
      provider: 'bedrock',
      baseUrl: `${mock.origin}?region=us-east-1`,
      apiKey: 'AKIDMOCKBEDROCK:mock/Secret+Key0',
      models: [],
      modelMapping: { 'claude-sonnet-4-5': SONNET, 'claude-throttled': 'anthropic.claude-throttled-v1:0', 'llama-4': LLAMA, 'nova-pro': 'us.amazon.nova-pro-v1:0', 'claude-sonnet-4-5-app': PROFILE, 'nova-2-lite': NOVA2 },
    })
    mock.profiles.set(PROFILE, 'anthropic.claude-sonnet-4-5-20250929-v1:0')
    // $3 in, $15 out, $0.30 cache read, $3.75 cache write (per 1M)
    await setPrice({ model: 'claude-sonnet-*', input: '3', output: '15', cacheRead: '0.3', cacheWrite: '3.75' })
    await setPrice({ model: 'llama-4', input: '1', output: '2' })
    await setPrice({ model: 'nova-pro', input: '0.8', output: '3.2', cacheRead: '0.2', cacheWrite: '1' })
    await setPrice({ model: 'nova-2-lite', input: '0.3', output: '2.5' })
    await refreshCaches()
    return () => mock.stop()
  })

  test('Anthropic SDK, whole and streamed: signed invoke calls, the answer, usage rows and ledger exact (cache reads and writes)', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const client = anthropic(user.key)

    mock.script({ cacheRead: 200, cacheWrite: 1000 })
    const whole = await client.messages.create({ model: 'claude-sonnet-4-5', max_tokens: 64, messages: hi })
    assert.equal(whole.content[0].type === 'text' && whole.content[0].text, 'Hello from Bedrock.')
    assert.include(whole.usage, { input_tokens: 12, output_tokens: 4, cache_read_input_tokens: 200, cache_creation_input_tokens: 1000 })
    let seen = mock.lastRequest()
    assert.isTrue(seen.signed)
    assert.equal(seen.path, `${SONNET_PATH}/invoke`)
    assert.match(String(seen.headers.authorization), /^AWS4-HMAC-SHA256 Credential=AKIDMOCKBEDROCK\/\d{8}\/us-east-1\/bedrock\/aws4_request, SignedHeaders=accept;content-type;host;x-amz-date, /)
    const body = JSON.parse(seen.body)
    assert.equal(body.anthropic_version, 'bedrock-2023-05-31')
    assert.notProperty(body, 'model')
    assert.notProperty(body, 'stream')

    mock.script({ cacheRead: 200, cacheWrite: 1000 })
    const stream = client.messages.stream({ model: 'claude-sonnet-4-5', max_tokens: 64, messages: hi })
    let text = ''
    stream.on('text', (delta) => (text += delta))
    const final = await stream.finalMessage()
    assert.equal(text, 'Hello from Bedrock.')
    assert.include(final.usage, { input_tokens: 12, output_tokens: 4, cache_read_input_tokens: 200, cache_creation_input_tokens: 1000 })
    seen = mock.lastRequest()
    assert.equal(seen.path, `${SONNET_PATH}/invoke-with-response-stream`)
    assert.equal(seen.headers.accept, 'application/vnd.amazon.eventstream')

    // count_tokens: Bedrock's CountTokens is not called, the gateway's tokenizer counts
    const sent = mock.requests.length
    const counted = await client.messages.countTokens({ model: 'claude-sonnet-4-5', messages: hi })
    assert.isAbove(counted.input_tokens, 0)
    assert.equal(mock.requests.length, sent)

    const rows = await usageRows(user.userId)
    assert.lengthOf(rows.filter((row) => row.endpoint !== 'messages.count_tokens'), 2)
    // 12 x 3 + 200 x 0.3 + 1000 x 3.75 + 4 x 15
    const cost = 12n * 3n * M + 200n * 300_000n + 1000n * 3_750_000n + 4n * 15n * M
    for (const row of rows.filter((r) => r.endpoint !== 'messages.count_tokens')) {
      assert.include(row, { status: 200, model: 'claude-sonnet-4-5', served_model: SONNET, provider: 'bedrock', prompt_tokens: 1212, completion_tokens: 4, cached_tokens: 200, cache_write_tokens: 1000, estimated: false })
      assert.equal(toPico(row.cost), cost)
    }
    const money = await balanceAndLedger(user.userId)
    assert.equal(toPico(money.balance), 1_000_000_000_000n - 2n * cost)
    assert.equal(money.balance, money.ledger)
    assert.deepEqual(await ledgerProblems(), [])
  })

  test('OpenAI client, translated, whole and streamed; a Responses client', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const client = openai(user.key)
    const whole = await client.chat.completions.create({ model: 'claude-sonnet-4-5', messages: hi })
    assert.equal(whole.choices[0].message.content, 'Hello from Bedrock.')
    assert.include(whole.usage, { prompt_tokens: 12, completion_tokens: 4 })
    assert.equal(mock.lastRequest().path, `${SONNET_PATH}/invoke`)

    const stream = await client.chat.completions.create({ model: 'claude-sonnet-4-5', messages: hi, stream: true, stream_options: { include_usage: true } })
    let text = ''
    let usage: any = null
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? ''
      if (chunk.usage) usage = chunk.usage
    }
    assert.equal(text, 'Hello from Bedrock.')
    assert.include(usage, { prompt_tokens: 12, completion_tokens: 4 })
    assert.equal(mock.lastRequest().path, `${SONNET_PATH}/invoke-with-response-stream`)
    const responses = await client.responses.create({ model: 'claude-sonnet-4-5', input: 'hi' })
    assert.equal(responses.output_text, 'Hello from Bedrock.')
    assert.include(responses.usage, { input_tokens: 12, output_tokens: 4 })

    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 3)
    for (const row of rows) {
      assert.include(row, { status: 200, provider: 'bedrock', prompt_tokens: 12, completion_tokens: 4, estimated: false })
      assert.equal(toPico(row.cost), 12n * 3n * M + 4n * 15n * M)
    }
  })

  test("Bedrock's errors in each client's format: validation 400, throttling 429, an exception mid-stream", async ({ assert }) => {
    const user = await seedUser({ balance: '1' })

    mock.script({ error: [400, 'ValidationException', 'max_tokens: Input should be less than 64000'] })
    let answer = await post('/v1/messages', { model: 'claude-sonnet-4-5', max_tokens: 64, messages: hi }, anthropicHeaders(user.key))
    assert.equal(answer.status, 400)
    let error: any = await answer.json()
    assert.equal(error.type, 'error')
    assert.equal(error.error.type, 'invalid_request_error')
    assert.include(error.error.message, 'Input should be less than 64000')

    mock.script({ error: [400, 'ValidationException', 'max_tokens: Input should be less than 64000'] })
    answer = await post('/v1/chat/completions', { model: 'claude-sonnet-4-5', messages: hi }, { authorization: `Bearer ${user.key}` })
    assert.equal(answer.status, 400)
    error = await answer.json()
    assert.include(error.error.message, 'Input should be less than 64000')

    mock.script({ error: [400, 'ValidationException', 'max_tokens: Input should be less than 64000'] })
    answer = await post('/v1beta/models/claude-sonnet-4-5:generateContent', { contents: [{ role: 'user', parts: [{ text: 'hi' }] }] }, { 'x-goog-api-key': user.key })
    assert.equal(answer.status, 400)
    error = await answer.json()
    assert.include(error.error, { code: 400, status: 'INVALID_ARGUMENT' })
    assert.include(error.error.message, 'Input should be less than 64000')

    // Throttling: 429 in the gateway's words, the (channel, model) cools down (its own mapped model here)
    mock.script({ error: [429, 'ThrottlingException', 'Too many requests, please wait before trying again.'] })
    answer = await post('/v1/chat/completions', { model: 'claude-throttled', messages: hi }, { authorization: `Bearer ${user.key}` })
    assert.equal(answer.status, 429)
    error = await answer.json()
    assert.equal(error.error.code, 'upstream_rate_limited')
    // ...and while it cools down, the gateway answers without calling Bedrock: in Anthropic's shape here
    const sent = mock.requests.length
    answer = await post('/v1/messages', { model: 'claude-throttled', max_tokens: 8, messages: hi }, anthropicHeaders(user.key))
    assert.equal(answer.status, 429)
    error = await answer.json()
    assert.equal(error.error.type, 'rate_limit_error')
    assert.equal(mock.requests.length, sent)

    // An exception after the stream began: Anthropic's error event to the client, billed as interrupted
    mock.script({ streamException: { after: 3, type: 'modelStreamErrorException', message: 'The model stopped.' } })
    answer = await post('/v1/messages', { model: 'claude-sonnet-4-5', max_tokens: 64, stream: true, messages: hi }, anthropicHeaders(user.key))
    assert.equal(answer.status, 200)
    const events = parseSse(await answer.text())
    assert.equal(events[0].event, 'message_start')
    const last = events[events.length - 1]
    assert.equal(last.event, 'error')
    const rows = await usageRows(user.userId)
    assert.include(rows[rows.length - 1], { provider: 'bedrock', error_code: 'stream_interrupted' })
    // ...and one that fails before its first event is the channel's failure: 502, not a stream
    mock.script({ streamException: { after: 0, type: 'serviceUnavailableException', message: 'Bedrock is unavailable.' } })
    answer = await post('/v1/messages', { model: 'claude-sonnet-4-5', max_tokens: 64, stream: true, messages: hi }, anthropicHeaders(user.key))
    assert.include([502, 503, 529], answer.status)
    error = await answer.json()
    assert.equal(error.type, 'error')
  })

  test('Converse (Llama): OpenAI chat client whole and streamed with a tool call, the request translated, usage rows and ledger exact', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const client = openai(user.key)
    const ask = [
      { role: 'system' as const, content: 'Be brief.' },
      { role: 'user' as const, content: [{ type: 'text' as const, text: 'Weather in Paris?' }, { type: 'image_url' as const, image_url: { url: `data:image/png;base64,${PNG}` } }] },
    ]
    const whole = await client.chat.completions.create({ model: 'llama-4', messages: ask, tools: [weatherTool], max_tokens: 100, temperature: 0.5, stop: ['END'] })
    const choice = whole.choices[0]
    assert.equal(choice.message.content, 'Let me check.')
    assert.equal(choice.finish_reason, 'tool_calls')
    const call = choice.message.tool_calls![0] as any
    assert.equal(call.id, 'tooluse_mock0001')
    assert.equal(call.function.name, 'get_weather')
    assert.deepEqual(JSON.parse(call.function.arguments), { city: 'Paris' })
    assert.include(whole.usage, { prompt_tokens: 12, completion_tokens: 4 })
    let seen = mock.lastRequest()
    assert.isTrue(seen.signed)
    assert.equal(seen.path, `${LLAMA_PATH}/converse`)
    let body = JSON.parse(seen.body)
    assert.notProperty(body, 'anthropic_version')
    assert.deepEqual(body.system, [{ text: 'Be brief.' }])
    assert.deepEqual(body.inferenceConfig, { maxTokens: 100, temperature: 0.5, stopSequences: ['END'] })
    assert.deepEqual(body.messages[0], { role: 'user', content: [{ text: 'Weather in Paris?' }, { image: { format: 'png', source: { bytes: PNG } } }] })
    assert.deepEqual(body.toolConfig.tools[0], {
      toolSpec: { name: 'get_weather', description: 'The weather in a city', inputSchema: { json: weatherTool.function.parameters } },
    })

    // The tool's result goes back as toolUse / toolResult; the model answers in text
    const followUp = await client.chat.completions.create({
      model: 'llama-4',
      tools: [weatherTool],
      messages: [...ask, choice.message as any, { role: 'tool', tool_call_id: call.id, content: 'Sunny, 21C' }],
    })
    assert.equal(followUp.choices[0].message.content, 'Hello from Bedrock.')
    assert.equal(followUp.choices[0].finish_reason, 'stop')
    assert.include(followUp.usage, { prompt_tokens: 16, completion_tokens: 4 })
    body = JSON.parse(mock.lastRequest().body)
    assert.deepEqual(body.messages[1].content, [{ text: 'Let me check.' }, { toolUse: { toolUseId: 'tooluse_mock0001', name: 'get_weather', input: { city: 'Paris' } } }])
    assert.deepEqual(body.messages[2], { role: 'user', content: [{ toolResult: { toolUseId: 'tooluse_mock0001', content: [{ text: 'Sunny, 21C' }] } }] })
    // The same conversation without its tools (Bedrock wants a toolConfig whenever tool blocks are there): the called tool declared again
    const toolless = await client.chat.completions.create({
      model: 'llama-4',
      messages: [...ask, choice.message as any, { role: 'tool', tool_call_id: call.id, content: 'Sunny, 21C' }],
    })
    assert.equal(toolless.choices[0].message.content, 'Hello from Bedrock.')
    assert.deepEqual(JSON.parse(mock.lastRequest().body).toolConfig.tools.map((tool: any) => tool.toolSpec.name), ['get_weather'])

    const stream = await client.chat.completions.create({ model: 'llama-4', messages: ask, tools: [weatherTool], stream: true, stream_options: { include_usage: true } })
    let text = ''
    let args = ''
    let name = ''
    let finish: string | null = null
    let usage: any = null
    for await (const chunk of stream) {
      const delta: any = chunk.choices[0]?.delta ?? {}
      text += delta.content ?? ''
      for (const tool of delta.tool_calls ?? []) {
        name += tool.function?.name ?? ''
        args += tool.function?.arguments ?? ''
      }
      finish = chunk.choices[0]?.finish_reason ?? finish
      if (chunk.usage) usage = chunk.usage
    }
    assert.equal(text, 'Let me check.')
    assert.equal(name, 'get_weather')
    assert.deepEqual(JSON.parse(args), { city: 'Paris' })
    assert.equal(finish, 'tool_calls')
    assert.include(usage, { prompt_tokens: 12, completion_tokens: 4 })
    seen = mock.lastRequest()
    assert.equal(seen.path, `${LLAMA_PATH}/converse-stream`)
    assert.equal(seen.headers.accept, 'application/vnd.amazon.eventstream')

    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 4)
    const costs = [12n, 16n, 16n, 12n].map((input) => input * M + 4n * 2n * M)
    rows.forEach((row, i) => {
      assert.include(row, { status: 200, model: 'llama-4', served_model: LLAMA, provider: 'bedrock', completion_tokens: 4, estimated: false })
      assert.equal(toPico(row.cost), costs[i])
    })
    const money = await balanceAndLedger(user.userId)
    assert.equal(toPico(money.balance), 1_000_000_000_000n - costs.reduce((a, b) => a + b))
    assert.equal(money.balance, money.ledger)
    assert.deepEqual(await ledgerProblems(), [])
  })

  test('Converse (Nova): Anthropic and Gemini clients translated, whole and streamed, cache reads and writes metered', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const client = anthropic(user.key)
    mock.script({ cacheRead: 200, cacheWrite: 1000 })
    const whole = await client.messages.create({
      model: 'nova-pro',
      max_tokens: 64,
      ...({ top_p: 0.9 } as {}),
      system: [{ type: 'text', text: 'Be brief.', cache_control: { type: 'ephemeral' } }],
      messages: hi,
    })
    assert.equal(whole.content[0].type === 'text' && whole.content[0].text, 'Hello from Bedrock.')
    assert.equal(whole.stop_reason, 'end_turn')
    assert.equal(whole.id, 'msg_bdrk_req-converse')
    assert.include(whole.usage, { input_tokens: 12, output_tokens: 4, cache_read_input_tokens: 200, cache_creation_input_tokens: 1000 })
    const body = JSON.parse(mock.lastRequest().body)
    assert.equal(mock.lastRequest().path, `${NOVA_PATH}/converse`)
    assert.deepEqual(body.system, [{ text: 'Be brief.' }, { cachePoint: { type: 'default' } }])
    assert.deepEqual(body.inferenceConfig, { maxTokens: 64, topP: 0.9 })

    mock.script({ cacheRead: 200, cacheWrite: 1000 })
    const stream = client.messages.stream({ model: 'nova-pro', max_tokens: 64, messages: hi })
    let text = ''
    stream.on('text', (delta) => (text += delta))
    const final = await stream.finalMessage()
    assert.equal(text, 'Hello from Bedrock.')
    assert.equal(final.stop_reason, 'end_turn')
    assert.include(final.usage, { input_tokens: 12, output_tokens: 4, cache_read_input_tokens: 200, cache_creation_input_tokens: 1000 })
    assert.equal(mock.lastRequest().path, `${NOVA_PATH}/converse-stream`)

    const gemini = await post('/v1beta/models/nova-pro:generateContent', { contents: [{ role: 'user', parts: [{ text: 'hi' }] }] }, { 'x-goog-api-key': user.key })
    assert.equal(gemini.status, 200)
    const answer: any = await gemini.json()
    assert.equal(answer.candidates[0].content.parts[0].text, 'Hello from Bedrock.')
    assert.include(answer.usageMetadata, { promptTokenCount: 12, candidatesTokenCount: 4 })
    const streamed = await post('/v1beta/models/nova-pro:streamGenerateContent?alt=sse', { contents: [{ role: 'user', parts: [{ text: 'hi' }] }] }, { 'x-goog-api-key': user.key })
    assert.equal(streamed.status, 200)
    const chunks = parseSse(await streamed.text()).map((event) => event.data)
    assert.equal(chunks.map((chunk: any) => chunk.candidates?.[0]?.content?.parts?.[0]?.text ?? '').join(''), 'Hello from Bedrock.')

    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 4)
    // 12 x 0.8 + 200 x 0.2 + 1000 x 1 + 4 x 3.2
    const cached = 12n * 800_000n + 200n * 200_000n + 1000n * M + 4n * 3_200_000n
    const plain = 12n * 800_000n + 4n * 3_200_000n
    for (const [i, row] of rows.entries()) {
      assert.include(row, { status: 200, provider: 'bedrock', completion_tokens: 4, estimated: false })
      assert.equal(toPico(row.cost), i < 2 ? cached : plain)
      if (i < 2) assert.include(row, { prompt_tokens: 1212, cached_tokens: 200, cache_write_tokens: 1000 })
    }
    const money = await balanceAndLedger(user.userId)
    assert.equal(toPico(money.balance), 1_000_000_000_000n - 2n * cached - 2n * plain)
    assert.equal(money.balance, money.ledger)
    assert.deepEqual(await ledgerProblems(), [])
  })

  test('Converse thinking (Claude behind an application inference profile): Anthropic SDK whole and streamed, a tool loop carried on with its signed thinking, redacted thinking, metered', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const client = anthropic(user.key)
    const tools = [{ name: 'get_weather', description: 'The weather in a city', input_schema: { type: 'object' as const, properties: { city: { type: 'string' } }, required: ['city'] } }]
    const ask = { model: 'claude-sonnet-4-5-app', max_tokens: 4096, thinking: { type: 'enabled' as const, budget_tokens: 2048 }, tools, messages: [{ role: 'user' as const, content: 'Weather in Paris?' }] }
    const beta = { headers: { 'anthropic-beta': 'interleaved-thinking-2025-05-14' } }
    const first = await client.messages.create(ask, beta)
    assert.deepEqual(first.content[0], { type: 'thinking', thinking: 'Thinking it over.', signature: thinkingSignature('Thinking it over.') })
    assert.deepEqual(first.content.slice(1).map((block) => block.type), ['text', 'tool_use'])
    assert.equal(first.stop_reason, 'tool_use')
    assert.include(first.usage, { input_tokens: 12, output_tokens: 6 })
    let seen = mock.lastRequest()
    assert.equal(seen.path, `/model/${encodeURIComponent(PROFILE)}/converse`)
    let body = JSON.parse(seen.body)
    assert.deepEqual(body.additionalModelRequestFields, { thinking: { type: 'enabled', budget_tokens: 2048 }, anthropic_beta: ['interleaved-thinking-2025-05-14'] })
    assert.deepEqual(body.inferenceConfig, { maxTokens: 4096 })

    // The tool's result, with the turn as it came (its signed thinking first): Claude carries on
    const toolUse = first.content.find((block) => block.type === 'tool_use')!
    const loop = [...ask.messages, { role: 'assistant' as const, content: first.content }, { role: 'user' as const, content: [{ type: 'tool_result' as const, tool_use_id: toolUse.id, content: 'Sunny, 21C' }] }]
    const second = await client.messages.create({ ...ask, messages: loop }, beta)
    assert.deepEqual(second.content.map((block) => block.type), ['thinking', 'text'])
    assert.equal(second.content[1].type === 'text' && second.content[1].text, 'Hello from Bedrock.')
    body = JSON.parse(mock.lastRequest().body)
    assert.deepEqual(body.messages[1].content[0], { reasoningContent: { reasoningText: { text: 'Thinking it over.', signature: thinkingSignature('Thinking it over.') } } })

    // Streamed: thinking and signature deltas; a redacted block before them
    mock.script({ redactedThinking: true })
    const stream = client.messages.stream({ ...ask, messages: loop }, beta)
    let thinking = ''
    stream.on('thinking', (delta) => (thinking += delta))
    const final = await stream.finalMessage()
    assert.equal(thinking, 'Thinking it over.')
    assert.deepEqual(final.content.map((block) => block.type), ['redacted_thinking', 'thinking', 'text'])
    assert.deepEqual(final.content[0], { type: 'redacted_thinking', data: 'cmVkYWN0ZWQtcmVhc29uaW5n' })
    assert.equal(final.content[1].type === 'thinking' && final.content[1].signature, thinkingSignature('Thinking it over.'))
    assert.equal(mock.lastRequest().path, `/model/${encodeURIComponent(PROFILE)}/converse-stream`)

    // An OpenAI client: the reasoning as reasoning_content
    const chat = await openai(user.key).chat.completions.create({ model: 'claude-sonnet-4-5-app', reasoning_effort: 'low', messages: [{ role: 'user', content: 'hi' }] })
    assert.equal((chat.choices[0].message as any).reasoning_content, 'Thinking it over.')
    assert.equal(chat.choices[0].message.content, 'Hello from Bedrock.')
    assert.deepEqual(JSON.parse(mock.lastRequest().body).additionalModelRequestFields, { thinking: { type: 'enabled', budget_tokens: 2048 } })

    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 4)
    for (const row of rows) assert.include(row, { status: 200, model: 'claude-sonnet-4-5-app', served_model: PROFILE, provider: 'bedrock', estimated: false })
    assert.deepEqual(rows.map((row) => row.completion_tokens), [6, 6, 6, 6])
    const money = await balanceAndLedger(user.userId)
    assert.equal(money.balance, money.ledger)
    assert.deepEqual(await ledgerProblems(), [])
  })

  test("Converse reasoning and top_k for other families: OpenAI reasoning_effort to Nova 2 (reasoningConfig; high leaves maxTokens unset), whole and streamed; top_k to Nova, not to Llama", async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const client = openai(user.key)
    const whole = await client.chat.completions.create({ model: 'nova-2-lite', reasoning_effort: 'medium', max_tokens: 500, messages: hi })
    assert.equal((whole.choices[0].message as any).reasoning_content, '[REDACTED]')
    assert.equal(whole.choices[0].message.content, 'Hello from Bedrock.')
    let body = JSON.parse(mock.lastRequest().body)
    assert.equal(mock.lastRequest().path, `/model/${encodeURIComponent(NOVA2)}/converse`)
    assert.deepEqual(body.additionalModelRequestFields, { reasoningConfig: { type: 'enabled', maxReasoningEffort: 'medium' } })

    // High effort: Nova 2 wants maxTokens unset (the mock refuses it as Bedrock does)
    const stream = await client.chat.completions.create({ model: 'nova-2-lite', reasoning_effort: 'high', max_tokens: 500, messages: hi, stream: true, stream_options: { include_usage: true } })
    let reasoning = ''
    let text = ''
    let usage: any = null
    for await (const chunk of stream) {
      const delta: any = chunk.choices[0]?.delta ?? {}
      reasoning += delta.reasoning_content ?? ''
      text += delta.content ?? ''
      if (chunk.usage) usage = chunk.usage
    }
    assert.equal(reasoning, '[REDACTED]')
    assert.equal(text, 'Hello from Bedrock.')
    assert.include(usage, { prompt_tokens: 12, completion_tokens: 6 })
    body = JSON.parse(mock.lastRequest().body)
    assert.deepEqual(body.additionalModelRequestFields, { reasoningConfig: { type: 'enabled', maxReasoningEffort: 'high' } })
    assert.notProperty(body, 'inferenceConfig')

    // top_k from an Anthropic client: Nova's inferenceConfig.topK; Llama has none (sent, Bedrock refuses it: left out)
    const messages = anthropic(user.key).messages
    await messages.create({ model: 'nova-pro', max_tokens: 64, ...({ top_k: 7 } as {}), messages: hi })
    assert.deepEqual(JSON.parse(mock.lastRequest().body).additionalModelRequestFields, { inferenceConfig: { topK: 7 } })
    const llama = await messages.create({ model: 'llama-4', max_tokens: 64, ...({ top_k: 7 } as {}), messages: hi })
    assert.equal(llama.content[0].type === 'text' && llama.content[0].text, 'Hello from Bedrock.')
    assert.notProperty(JSON.parse(mock.lastRequest().body), 'additionalModelRequestFields')

    const rows = (await usageRows(user.userId)).filter((row) => row.model === 'nova-2-lite')
    assert.deepEqual(rows.map((row) => [row.prompt_tokens, row.completion_tokens, row.estimated]), [[12, 6, false], [12, 6, false]])
    assert.deepEqual(await ledgerProblems(), [])
  })

  test('Converse structured output: an OpenAI json_schema to Llama through a forced tool (whole and streamed), to Claude through outputConfig; the content is the JSON', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const client = openai(user.key)
    const schema = { type: 'object', properties: { city: { type: 'string' }, temperature: { type: 'number' } }, required: ['city', 'temperature'], additionalProperties: false }
    const format = { type: 'json_schema' as const, json_schema: { name: 'weather', schema, strict: true } }
    const whole = await client.chat.completions.create({ model: 'llama-4', response_format: format, messages: [{ role: 'user', content: 'Weather in Paris?' }] })
    assert.deepEqual(JSON.parse(whole.choices[0].message.content!), { city: 'Paris', temperature: 21 })
    assert.equal(whole.choices[0].finish_reason, 'stop')
    assert.isUndefined(whole.choices[0].message.tool_calls)
    let body = JSON.parse(mock.lastRequest().body)
    assert.deepEqual(body.toolConfig.toolChoice, { tool: { name: 'json_response' } })
    assert.deepEqual(body.toolConfig.tools[0].toolSpec.inputSchema.json, schema)

    const stream = await client.chat.completions.create({ model: 'llama-4', response_format: format, stream: true, messages: [{ role: 'user', content: 'Weather in Paris?' }] })
    let text = ''
    let finish: string | null = null
    let calls = 0
    for await (const chunk of stream) {
      const delta: any = chunk.choices[0]?.delta ?? {}
      text += delta.content ?? ''
      calls += delta.tool_calls?.length ?? 0
      finish = chunk.choices[0]?.finish_reason ?? finish
    }
    assert.deepEqual(JSON.parse(text), { city: 'Paris', temperature: 21 })
    assert.equal(finish, 'stop')
    assert.equal(calls, 0)
    assert.equal(mock.lastRequest().path, `${LLAMA_PATH}/converse-stream`)

    // Claude (behind its profile): Converse's own structured output, the schema as a string
    const claude = await client.chat.completions.create({ model: 'claude-sonnet-4-5-app', response_format: format, messages: [{ role: 'user', content: 'Weather in Paris?' }] })
    assert.deepEqual(JSON.parse(claude.choices[0].message.content!), { city: 'Paris', temperature: 21 })
    body = JSON.parse(mock.lastRequest().body)
    assert.deepEqual(JSON.parse(body.outputConfig.textFormat.structure.jsonSchema.schema), schema)
    assert.notProperty(body, 'toolConfig')
    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 3)
    for (const row of rows) assert.include(row, { status: 200, estimated: false })
  })

  test("Converse errors as InvokeModel's: validation 400 in each client's format, an exception mid-stream, a URL image refused", async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    mock.script({ error: [400, 'ValidationException', 'This model does not support tool use in streaming mode.'] })
    let answer = await post('/v1/chat/completions', { model: 'llama-4', messages: hi }, { authorization: `Bearer ${user.key}` })
    assert.equal(answer.status, 400)
    let error: any = await answer.json()
    assert.include(error.error.message, 'does not support tool use')
    assert.equal(mock.lastRequest().path, `${LLAMA_PATH}/converse`)

    mock.script({ error: [400, 'ValidationException', 'This model does not support tool use in streaming mode.'] })
    answer = await post('/v1/messages', { model: 'llama-4', max_tokens: 64, messages: hi }, anthropicHeaders(user.key))
    assert.equal(answer.status, 400)
    error = await answer.json()
    assert.equal(error.error.type, 'invalid_request_error')

    mock.script({ streamException: { after: 3, type: 'modelStreamErrorException', message: 'The model stopped.' } })
    answer = await post('/v1/messages', { model: 'llama-4', max_tokens: 64, stream: true, messages: hi }, anthropicHeaders(user.key))
    assert.equal(answer.status, 200)
    const events = parseSse(await answer.text())
    assert.equal(events[0].event, 'message_start')
    assert.equal(events[events.length - 1].event, 'error')
    const rows = await usageRows(user.userId)
    assert.include(rows[rows.length - 1], { provider: 'bedrock', error_code: 'stream_interrupted' })

    const sent = mock.requests.length
    answer = await post('/v1/chat/completions', { model: 'llama-4', messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'https://example.com/cat.png' } }] }] }, { authorization: `Bearer ${user.key}` })
    assert.equal(answer.status, 400)
    error = await answer.json()
    assert.include(error.error.message, 'as bytes, not by URL')
    assert.equal(mock.requests.length, sent)
  })

  test('a stream whose body ends inside its last frame (InvokeModel, Converse) is interrupted: the client told in its format, the row says so', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    // InvokeModel: message_stop's frame cut 5 bytes short (the body itself ends cleanly)
    mock.script({ cutLast: 5 })
    let answer = await post('/v1/messages', { model: 'claude-sonnet-4-5', max_tokens: 64, stream: true, messages: hi }, anthropicHeaders(user.key))
    assert.equal(answer.status, 200)
    let events = parseSse(await answer.text())
    assert.equal(events[0].event, 'message_start')
    assert.notInclude(events.map((e) => e.event), 'message_stop')
    assert.equal(events[events.length - 1].event, 'error')
    let rows = await usageRows(user.userId)
    assert.include(rows[rows.length - 1], { provider: 'bedrock', error_code: 'stream_interrupted' })

    // Converse: the metadata frame (the usage) cut; an OpenAI client
    mock.script({ cutLast: 3 })
    answer = await post('/v1/chat/completions', { model: 'llama-4', stream: true, messages: hi }, { authorization: `Bearer ${user.key}` })
    assert.equal(answer.status, 200)
    const text = await answer.text()
    assert.include(text, 'Hello')
    assert.match(text, /"error":\{/)
    rows = await usageRows(user.userId)
    assert.include(rows[rows.length - 1], { provider: 'bedrock', model: 'llama-4', error_code: 'stream_interrupted' })
    assert.deepEqual(await ledgerProblems(), [])
  })

  test('Converse without usage (whole, metadata without it, no metadata): estimated by the gateway, never billed as zero tokens', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const client = openai(user.key)
    mock.script({ noUsage: 'usage' })
    const whole = await client.chat.completions.create({ model: 'llama-4', messages: hi })
    assert.equal(whole.choices[0].message.content, 'Hello from Bedrock.')
    for (const noUsage of ['usage', 'metadata'] as const) {
      mock.script({ noUsage })
      const stream = await client.chat.completions.create({ model: 'llama-4', messages: hi, stream: true })
      let text = ''
      for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? ''
      assert.equal(text, 'Hello from Bedrock.')
    }
    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 3)
    for (const row of rows) {
      assert.include(row, { status: 200, model: 'llama-4', provider: 'bedrock', estimated: true })
      assert.isAbove(row.prompt_tokens, 0)
      assert.isAbove(row.completion_tokens, 0)
      assert.isTrue(toPico(row.cost) > 0n)
    }
    const money = await balanceAndLedger(user.userId)
    assert.equal(money.balance, money.ledger)
    assert.isTrue(toPico(money.balance) < 1_000_000_000_000n)
  })

  test("a large whole Converse answer counts in the answers' budget while it arrives, and gives it back when the upstream cuts it or it ends", async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const before = answerBudget.used
    for (const cut of [true, false]) {
      mock.script({ pad: { bytes: 4 * 1024 * 1024, holdMs: 400, cut } })
      const answer = post('/v1/chat/completions', { model: 'llama-4', messages: hi }, { authorization: `Bearer ${user.key}` })
      // Halfway (2 MB in) the upstream pauses: the first MB is free, the rest is held in the budget
      let held = 0
      for (let i = 0; i < 30 && held === 0; i++) {
        await new Promise((resolve) => setTimeout(resolve, 20))
        held = answerBudget.used - before
      }
      assert.isAbove(held, 512 * 1024, `cut: ${cut}`)
      const response = await answer
      if (cut) {
        assert.equal(response.status, 502)
        assert.equal(((await response.json()) as any).error.code, 'provider_error')
      } else {
        assert.equal(response.status, 200)
        assert.lengthOf(((await response.json()) as any).choices[0].message.content, 4 * 1024 * 1024 + 'Hello from Bedrock.'.length)
      }
      assert.equal(answerBudget.used, before, `given back (cut: ${cut})`)
    }
  })

  test('Bedrock API key mode: Authorization Bearer, no signature', async ({ assert }) => {
    const channel = await seedChannel({
      name: 'bedrock-key',
      provider: 'bedrock',
      baseUrl: `${mock.origin}?region=us-east-1`,
      apiKey: 'ABSKbW9ja2JlZHJvY2s=',
      models: [],
      modelMapping: { 'claude-by-key': 'anthropic.claude-3-5-haiku-20241022-v1:0' },
    })
    const user = await seedUser()
    const answer = await anthropic(user.key).messages.create({ model: 'claude-by-key', max_tokens: 16, messages: hi })
    assert.equal(answer.content[0].type === 'text' && answer.content[0].text, 'Hello from Bedrock.')
    const seen = mock.lastRequest()
    assert.equal(seen.headers.authorization, 'Bearer ABSKbW9ja2JlZHJvY2s=')
    assert.notProperty(seen.headers, 'x-amz-date')
    assert.equal(seen.path, '/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/invoke')
    const rows = await usageRows(user.userId)
    assert.include(rows[0], { channel_id: channel.id, status: 200, prompt_tokens: 12, completion_tokens: 4 })
  })

  test('a wrong secret is refused by the mock: the channel is taken out of rotation as for a 401, the client told so', async ({ assert }) => {
    const channel = await seedChannel({
      name: 'bedrock-wrong',
      provider: 'bedrock',
      baseUrl: `${mock.origin}?region=us-east-1`,
      apiKey: 'AKIDMOCKBEDROCK:not-the-secret',
      models: [],
      modelMapping: { 'claude-wrong': 'anthropic.claude-wrong-v1:0' },
    })
    const user = await seedUser()
    const answer = await post('/v1/chat/completions', { model: 'claude-wrong', messages: hi }, { authorization: `Bearer ${user.key}` })
    assert.equal(answer.status, 502)
    const error: any = await answer.json()
    assert.include(error.error.message, "rejected the channel's credentials (HTTP 401)")
    assert.notInclude(JSON.stringify(error), 'not-the-secret')
    assert.isFalse(mock.lastRequest().signed)
    // Out of rotation at once; the row is written in the background
    assert.isFalse((await gateway()).catalog.channels.find((c) => c.id === channel.id)!.enabled)
    let row = await db.from('channels').where('id', channel.id).first()
    for (let i = 0; i < 50 && row.enabled; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20))
      row = await db.from('channels').where('id', channel.id).first()
    }
    assert.isFalse(row.enabled)
    assert.include(row.disabled_reason, 'HTTP 401')
    assert.include(row.disabled_reason, 'signature we calculated does not match')
  })

  test("a gateway clock 10 minutes off AWS's: the refused signature fails over, the channel stays, the next request is signed on AWS's time", async ({ assert }) => {
    const skewed = new MockBedrock({ region: 'us-east-1', accessKeyId: 'AKIDSKEW', secretAccessKey: 'skew/Secret' })
    await skewed.start()
    skewed.clockSkewMs = 10 * 60_000
    try {
      const channel = await seedChannel({ name: 'bedrock-skew', provider: 'bedrock', baseUrl: `${skewed.origin}?region=us-east-1`, apiKey: 'AKIDSKEW:skew/Secret', models: [], modelMapping: { 'claude-skew': SONNET } })
      const user = await seedUser({ balance: '1' })
      const first = await post('/v1/chat/completions', { model: 'claude-skew', messages: hi }, { authorization: `Bearer ${user.key}` })
      assert.include([502, 503], first.status)
      assert.isFalse(skewed.lastRequest().signed)
      assert.isTrue((await gateway()).catalog.channels.find((c) => c.id === channel.id)!.enabled, 'the clock is no bad key')
      const second = await openai(user.key).chat.completions.create({ model: 'claude-skew', messages: hi })
      assert.equal(second.choices[0].message.content, 'Hello from Bedrock.')
      assert.isTrue(skewed.lastRequest().signed)
      const signedAt = String(skewed.lastRequest().headers['x-amz-date'])
      const iso = `${signedAt.slice(0, 4)}-${signedAt.slice(4, 6)}-${signedAt.slice(6, 11)}:${signedAt.slice(11, 13)}:${signedAt.slice(13)}`
      assert.closeTo(Date.parse(iso) - Date.now(), 10 * 60_000, 5_000)
      // A wrong secret on a right clock is still bad credentials (the channel test above)
      assert.isTrue((await db.from('channels').where('id', channel.id).first()).enabled)
    } finally {
      awsClock.offsetMs = 0
      await skewed.stop()
    }
  })

  test('session token credentials; the panel Test and channel:test; channel:create takes a bare region', async ({ assert }) => {
    const sts = new MockBedrock({ region: 'eu-west-1', accessKeyId: 'ASIAMOCK', secretAccessKey: 'sts-secret', sessionToken: 'FwoGZXIvYXdzEBY//token==' })
    await sts.start()
    try {
      const channel = await seedChannel({
        name: 'bedrock-sts',
        provider: 'bedrock',
        baseUrl: `${sts.origin}?region=eu-west-1`,
        apiKey: 'ASIAMOCK:sts-secret:FwoGZXIvYXdzEBY//token==',
        models: [],
        modelMapping: { 'claude-sts': 'eu.anthropic.claude-sonnet-4-5-20250929-v1:0' },
      })
      const result = await testChannel(channel.id)
      assert.isTrue(result.ok, String(result.error))
      assert.equal(result.text, 'Hello from Bedrock.')
      assert.isTrue(sts.lastRequest().signed)
      assert.equal(sts.lastRequest().headers['x-amz-security-token'], 'FwoGZXIvYXdzEBY//token==')

      const command = await run(ChannelTest, [String(channel.id)])
      command.assertSucceeded()
      assert.equal(sts.lastRequest().path, '/foundation-models')
      assert.isTrue(sts.lastRequest().signed)
    } finally {
      await sts.stop()
    }

    const created = await run(ChannelCreate, ['--name', 'bedrock-cli', '--provider', 'bedrock', '--base-url', 'us-west-2', '--api-key', 'AKID:SECRET', '--models', 'claude-*'])
    created.assertSucceeded()
    const row = await db.from('channels').where('name', 'bedrock-cli').first()
    assert.equal(row.base_url, 'https://bedrock-runtime.us-west-2.amazonaws.com')
    assert.notInclude(JSON.stringify(row), 'SECRET')
    const refused = await run(ChannelCreate, ['--name', 'bedrock-bad', '--provider', 'bedrock', '--base-url', 'http://127.0.0.1:9', '--api-key', 'AKID:SECRET', '--models', 'claude-*'])
    assert.equal(refused.exitCode, 1)
    await refreshCaches()
  })
})
