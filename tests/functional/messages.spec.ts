import { test } from '@japa/runner'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { anthropic, parseSse } from '#tests/clients'
import { post, resetDatabase, seedChannel, seedPrice, seedUser, startMock, usageRows } from '#tests/helpers'

const weatherTool = {
  name: 'get_weather',
  description: 'Weather of a city',
  input_schema: { type: 'object' as const, properties: { location: { type: 'string' } }, required: ['location'] },
}

test.group('POST /v1/messages: native pass-through to an anthropic channel', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'claude', provider: 'anthropic', baseUrl: mock.url, models: ['claude-*'] })
    await seedPrice('claude-*', '3', '15')
    return () => mock.stop()
  })

  test('non-stream through the Anthropic SDK: text, usage, channel key, usage row', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const message = await anthropic(user.key).messages.create({
      model: 'claude-sonnet-4-5',
      max_tokens: 256,
      messages: [{ role: 'user', content: 'Hello!' }],
    })
    assert.equal((message.content[0] as any).text, 'tok0 tok1 tok2 tok3 tok4 ')
    assert.equal(message.stop_reason, 'end_turn')
    assert.include(message.usage as any, { input_tokens: 12, output_tokens: 5 })
    const seen = mock.lastRequest()!
    assert.equal(seen.path, '/v1/messages')
    assert.equal(seen.headers['x-api-key'], 'upstream-secret')
    assert.isUndefined(seen.headers.authorization)
    assert.isString(seen.headers['anthropic-version'])
    const [row] = await usageRows(user.userId)
    assert.include(row, { endpoint: 'messages', model: 'claude-sonnet-4-5', provider: 'anthropic', status: 200, prompt_tokens: 12, completion_tokens: 5, estimated: false })
    // 12 x $3/M + 5 x $15/M
    assert.equal(row.cost, '0.000111000000')
  })

  test('stream with thinking and cache: events relayed, signature intact, cache usage metered', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const stream = anthropic(user.key).messages.stream({
      model: 'claude-opus-4-1',
      max_tokens: 2048,
      thinking: { type: 'enabled', budget_tokens: 1024 },
      messages: [{ role: 'user', content: 'Think, then count' }],
      mock: { cache_read: 100, cache_write: 7 },
    } as any)
    const types: string[] = []
    stream.on('streamEvent', (event) => types.push(event.type))
    const final = await stream.finalMessage()
    assert.deepEqual(final.content[0], { type: 'thinking', thinking: 'Let me think.', signature: 'sig_mock_1' } as any)
    assert.equal((final.content[1] as any).text, 'tok0 tok1 tok2 tok3 tok4 ')
    assert.include(final.usage as any, { input_tokens: 12, cache_read_input_tokens: 100, cache_creation_input_tokens: 7, output_tokens: 6 })
    assert.includeMembers(types, ['message_start', 'content_block_start', 'content_block_delta', 'content_block_stop', 'message_delta', 'message_stop'])
    const [row] = await usageRows(user.userId)
    // Anthropic input_tokens excludes cache; the row's prompt_tokens includes it (OpenAI semantics).
    assert.include(row, { stream: true, prompt_tokens: 119, cached_tokens: 100, cache_write_tokens: 7, completion_tokens: 6, estimated: false })
    assert.isNotNull(row.ttft_ms)
  })

  test('the body reaches Anthropic byte for byte: cache_control, signed thinking, system message inside messages, unknown fields', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const raw =
      '{"model":"claude-sonnet-4-5","max_tokens":64,"system":[{"type":"text","text":"Be brief","cache_control":{"type":"ephemeral"}}],' +
      '"messages":[{"role":"system","content":"inner system"},{"role":"user","content":[{"type":"text","text":"hi","cache_control":{"type":"ephemeral","ttl":"1h"}}]},' +
      '{"role":"assistant","content":[{"type":"thinking","thinking":"hmm","signature":"EqQBCkYIBx  sig=="},{"type":"text","text":"yo"}]},' +
      '{"role":"user","content":"again"}],"context_management":{"edits":[]},"output_config":{"effort":"high"},"metadata":{"user_id":"{\\"a\\":1}"},"x_unknown":[1.50,null]}'
    const response = await post('/v1/messages?beta=true', raw, {
      'x-api-key': user.key,
      'anthropic-version': '2023-06-01',
      'anthropic-beta': 'interleaved-thinking-2025-05-14,context-management-2025-06-27',
    })
    assert.equal(response.status, 200)
    const seen = mock.lastRequest()!
    assert.equal(seen.body, raw)
    assert.equal(seen.headers['anthropic-beta'], 'interleaved-thinking-2025-05-14,context-management-2025-06-27')
    assert.equal(seen.headers['anthropic-version'], '2023-06-01')
  })

  test('tools: tool_use non-stream and stream, ids intact', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const client = anthropic(user.key)
    const message = await client.messages.create({
      model: 'claude-haiku-4-5',
      max_tokens: 128,
      tools: [weatherTool],
      messages: [{ role: 'user', content: 'Weather in Paris?' }],
    })
    assert.equal(message.stop_reason, 'tool_use')
    assert.deepInclude(message.content[0] as any, { type: 'tool_use', id: 'toolu_mock_1', name: 'get_weather', input: { location: 'Paris' } })

    const final = await client.messages
      .stream({ model: 'claude-haiku-4-5', max_tokens: 128, tools: [weatherTool], messages: [{ role: 'user', content: 'Weather in Paris?' }] })
      .finalMessage()
    assert.deepInclude(final.content[0] as any, { type: 'tool_use', id: 'toolu_mock_1', input: { location: 'Paris' } })
  })

  test('an upstream stream cut mid-way (pass-through) ends in an Anthropic error event and is metered', async ({ assert }) => {
    const user = await seedUser({ balance: '10' })
    mock.script({ reset_after: 1, chunks: 4 })
    const response = await post(
      '/v1/messages',
      { model: 'claude-x', max_tokens: 50, stream: true, messages: [{ role: 'user', content: 'Count' }] },
      { 'x-api-key': user.key }
    )
    const events = parseSse(await response.text())
    assert.equal(events[0].event, 'message_start')
    assert.deepInclude(events[events.length - 1], { event: 'error' })
    assert.equal(events[events.length - 1].data.error.type, 'api_error')
    assert.include(events[events.length - 1].data.error.message, 'Upstream stream failed')
    const [row] = await usageRows(user.userId)
    assert.include(row, { status: 200, error_code: 'stream_interrupted' })
  })

  test('count_tokens through the SDK is asked of Anthropic', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const counted = await anthropic(user.key).messages.countTokens({
      model: 'claude-sonnet-4-5',
      messages: [{ role: 'user', content: 'Hello!' }],
    })
    assert.deepEqual(counted, { input_tokens: 12 })
    assert.equal(mock.lastRequest()!.path, '/v1/messages/count_tokens')
    const rows = await usageRows(user.userId)
    assert.include(rows[0], { endpoint: 'messages.count_tokens', status: 200, prompt_tokens: 0 })
  })

  test("request-id: the SDK's _request_id names the usage row, streamed or not, and a refused call's row too", async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const client = anthropic(user.key)
    const message = await client.messages.create({ model: 'claude-sonnet-4-5', max_tokens: 16, messages: [{ role: 'user', content: 'Hi' }] })
    const stream = await post('/v1/messages', { model: 'claude-sonnet-4-5', max_tokens: 16, stream: true, messages: [{ role: 'user', content: 'Hi' }] }, { 'x-api-key': user.key })
    await stream.text()
    const refused = await post('/v1/messages', { model: 'claude-x', max_tokens: 5, messages: [{ role: 'user', content: 'x' }], mock: { status: 400 } }, { 'x-api-key': user.key })
    assert.equal(refused.status, 400)
    const rows = await usageRows(user.userId)
    assert.deepEqual(
      [message._request_id, stream.headers.get('request-id'), refused.headers.get('request-id')],
      rows.map((r: any) => r.request_id)
    )
    assert.equal(refused.headers.get('x-request-id'), rows[2].request_id)
  })

  test('errors in the Anthropic shape: bad key, unknown model, upstream 4xx, bad JSON', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const bad = await post('/v1/messages', { model: 'claude-x', max_tokens: 5, messages: [] }, { 'x-api-key': 'sk-nope' })
    assert.equal(bad.status, 401)
    assert.deepEqual(await bad.json(), { type: 'error', error: { type: 'authentication_error', message: 'Invalid API key' } })

    const auth = { 'x-api-key': user.key }
    const missing = await post('/v1/messages', { model: 'nothing-serves-this', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] }, auth)
    assert.equal(missing.status, 404)
    assert.equal(((await missing.json()) as any).error.type, 'not_found_error')

    const upstream4xx = await post('/v1/messages', { model: 'claude-x', max_tokens: 5, messages: [{ role: 'user', content: 'x' }], mock: { status: 400 } }, auth)
    assert.equal(upstream4xx.status, 400)
    assert.deepEqual(await upstream4xx.json(), { type: 'error', error: { type: 'invalid_request_error', message: 'mock upstream failure 400' } })

    const invalid = await post('/v1/messages', '{"model":', auth)
    assert.equal(((await invalid.json()) as any).type, 'error')
  })
})

test.group('POST /v1/messages translated to an OpenAI-compatible channel (Claude Code on GPT/vLLM)', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'vllm', provider: 'custom', baseUrl: mock.url, models: ['qwen-*'] })
    await seedChannel({ name: 'openrouter', provider: 'openrouter', baseUrl: mock.url, models: ['anthropic/*'] })
    await seedChannel({ name: 'openai', provider: 'openai', baseUrl: mock.url, models: ['gpt-*', 'o4-*'] })
    return () => mock.stop()
  })

  test("OpenAI: thinking reaches reasoning models only, and they get no sampling parameters they refuse", async ({ assert }) => {
    const user = await seedUser()
    const auth = { 'x-api-key': user.key }
    const body = (model: string) => ({
      model,
      max_tokens: 4000,
      thinking: { type: 'enabled', budget_tokens: 2000 },
      temperature: 1,
      top_p: 0.9,
      messages: [{ role: 'user', content: 'hi' }],
    })
    // GPT-4o and GPT-4.1 answer 400 "Unsupported parameter: 'reasoning_effort'": Claude Code thinks by default.
    for (const model of ['gpt-4o', 'gpt-4.1', 'gpt-5-chat-latest']) {
      assert.equal((await post('/v1/messages', body(model), auth)).status, 200, model)
      const sent = JSON.parse(mock.lastRequest()!.body)
      assert.notProperty(sent, 'reasoning_effort', model)
      assert.include(sent, { top_p: 0.9, temperature: 1, max_completion_tokens: 4000 }, model)
    }
    // Reasoning models refuse top_p (and any temperature but 1).
    for (const model of ['o4-mini', 'gpt-5.1']) {
      assert.equal((await post('/v1/messages', { ...body(model), temperature: 1 }, auth)).status, 200, model)
      const sent = JSON.parse(mock.lastRequest()!.body)
      assert.equal(sent.reasoning_effort, 'low', model)
      assert.notProperty(sent, 'top_p', model)
      assert.equal(sent.temperature, 1, model)
    }
    await post('/v1/messages', { ...body('o4-mini'), temperature: 0.2 }, auth)
    assert.notProperty(JSON.parse(mock.lastRequest()!.body), 'temperature')
    // Other vendors keep both (the rule is OpenAI's).
    await post('/v1/messages', body('qwen-coder'), auth)
    assert.include(JSON.parse(mock.lastRequest()!.body), { reasoning_effort: 'low', top_p: 0.9 })
  })

  test('non-stream: system, inner system message, image become chat messages; the answer is a Message', async ({ assert }) => {
    const user = await seedUser()
    const message = await anthropic(user.key).messages.create({
      model: 'qwen-coder',
      max_tokens: 100,
      system: [{ type: 'text', text: 'You are terse.', cache_control: { type: 'ephemeral' } }],
      messages: [
        { role: 'system' as any, content: 'Inner rule.' },
        {
          role: 'user',
          content: [
            { type: 'text', text: 'What is this?' },
            { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0KGgo=' } },
          ],
        },
      ],
    })
    assert.equal(message.type, 'message')
    assert.equal(message.model, 'qwen-coder')
    assert.equal((message.content[0] as any).text, 'tok0 tok1 tok2 tok3 tok4 ')
    const sent = JSON.parse(mock.lastRequest()!.body)
    assert.equal(mock.lastRequest()!.path, '/v1/chat/completions')
    assert.equal(sent.max_tokens, 100)
    // Anthropic's cache marks are not sent where the vendor does not read them (strict servers refuse them).
    assert.deepEqual(sent.messages[0], { role: 'system', content: 'You are terse.' })
    assert.deepEqual(sent.messages[1], { role: 'system', content: 'Inner rule.' })
    assert.deepEqual(sent.messages[2].content[1], { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' } })
    // OpenAI prompt_tokens (16 = 10 + 2 x 3 messages) become Anthropic input_tokens.
    assert.include(message.usage as any, { input_tokens: 16, output_tokens: 5 })
    const [row] = await usageRows(user.userId)
    assert.include(row, { endpoint: 'messages', provider: 'custom', prompt_tokens: 16, completion_tokens: 5 })
  })

  test('cache marks: kept on the chat parts for OpenRouter (it relays them), dropped for other chat servers', async ({ assert }) => {
    const user = await seedUser()
    const body = (model: string) => ({
      model,
      max_tokens: 20,
      system: [
        { type: 'text', text: 'Rules.', cache_control: { type: 'ephemeral' } },
        { type: 'text', text: 'More rules.' },
      ],
      messages: [
        {
          role: 'user',
          content: [
            { type: 'text', text: 'Long context.', cache_control: { type: 'ephemeral', ttl: '1h' } },
            { type: 'text', text: 'Question?' },
          ],
        },
      ],
    })
    const auth = { 'x-api-key': user.key }

    assert.equal((await post('/v1/messages', body('anthropic/claude-sonnet-4.5'), auth)).status, 200)
    const relayed = JSON.parse(mock.lastRequest()!.body)
    assert.deepEqual(relayed.messages[0].content, [
      { type: 'text', text: 'Rules.', cache_control: { type: 'ephemeral' } },
      { type: 'text', text: 'More rules.' },
    ])
    assert.deepEqual(relayed.messages[1].content, [
      { type: 'text', text: 'Long context.', cache_control: { type: 'ephemeral', ttl: '1h' } },
      { type: 'text', text: 'Question?' },
    ])

    assert.equal((await post('/v1/messages', body('qwen-coder'), auth)).status, 200)
    const sent = mock.lastRequest()!.body
    assert.notInclude(sent, 'cache_control')
    const parsed = JSON.parse(sent)
    assert.deepEqual(parsed.messages[0], { role: 'system', content: 'Rules.\n\nMore rules.' })
    assert.deepEqual(parsed.messages[1].content, [
      { type: 'text', text: 'Long context.' },
      { type: 'text', text: 'Question?' },
    ])
  })

  test('stream with tools: tool_use block from streamed tool_calls, then the tool result round-trips with its id', async ({ assert }) => {
    const user = await seedUser()
    const client = anthropic(user.key)
    const tools = [weatherTool]
    const final = await client.messages
      .stream({ model: 'qwen-coder', max_tokens: 100, tools, messages: [{ role: 'user', content: 'Weather in Paris?' }] })
      .finalMessage()
    assert.equal(final.stop_reason, 'tool_use')
    const call = final.content.find((b) => b.type === 'tool_use') as any
    assert.deepInclude(call, { id: 'call_mock_1', name: 'get_weather', input: { location: 'Paris' } })
    const sent = JSON.parse(mock.lastRequest()!.body)
    assert.deepEqual(sent.tools[0], { type: 'function', function: { name: 'get_weather', description: 'Weather of a city', parameters: weatherTool.input_schema } })
    assert.deepEqual(sent.stream_options, { include_usage: true })

    const second = await client.messages
      .stream({
        model: 'qwen-coder',
        max_tokens: 100,
        tools,
        messages: [
          { role: 'user', content: 'Weather in Paris?' },
          { role: 'assistant', content: final.content },
          { role: 'user', content: [{ type: 'tool_result', tool_use_id: call.id, content: '18C' }, { type: 'text', text: 'thanks' }] },
        ],
      })
      .finalMessage()
    assert.equal(second.stop_reason, 'end_turn')
    const followUp = JSON.parse(mock.lastRequest()!.body)
    assert.deepEqual(followUp.messages[1].tool_calls, [{ id: 'call_mock_1', type: 'function', function: { name: 'get_weather', arguments: '{"location":"Paris"}' } }])
    assert.deepEqual(followUp.messages[2], { role: 'tool', tool_call_id: 'call_mock_1', content: '18C' })
    assert.deepEqual(followUp.messages[3], { role: 'user', content: 'thanks' })
    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 2)
    assert.isFalse(rows[1].estimated)
  })

  test('thinking asks the upstream for reasoning; reasoning_content streams back as a thinking block', async ({ assert }) => {
    const user = await seedUser()
    const final = await anthropic(user.key)
      .messages.stream({
        model: 'qwen-coder',
        max_tokens: 4000,
        thinking: { type: 'enabled', budget_tokens: 2048 },
        messages: [{ role: 'user', content: 'Think' }],
      })
      .finalMessage()
    assert.equal(JSON.parse(mock.lastRequest()!.body).reasoning_effort, 'low')
    assert.equal(final.content[0].type, 'thinking')
    assert.equal((final.content[0] as any).thinking, 'Let me think.')
    assert.equal(final.content[1].type, 'text')
  })

  test('a mid-stream upstream failure becomes an Anthropic error event; the partial usage is billed', async ({ assert }) => {
    const user = await seedUser()
    mock.script({ reset_after: 2, chunks: 6 })
    const response = await post(
      '/v1/messages',
      { model: 'qwen-coder', max_tokens: 100, stream: true, messages: [{ role: 'user', content: 'Count' }] },
      { 'x-api-key': user.key }
    )
    const events = parseSse(await response.text())
    assert.equal(events[0].event, 'message_start')
    const last = events[events.length - 1]
    assert.equal(last.event, 'error')
    assert.equal(last.data.type, 'error')
    assert.equal(last.data.error.type, 'api_error')
    const [row] = await usageRows(user.userId)
    assert.include(row, { status: 200, error_code: 'stream_interrupted', estimated: true })
    assert.isAbove(row.completion_tokens, 0)
    // The prompt is counted as count_tokens counts it, though the client's bytes were let go once the
    // upstream answered (the count reads the translated bytes the upstream was sent).
    const counted = await post(
      '/v1/messages/count_tokens',
      { model: 'qwen-coder', system: 'Be brief.', messages: [{ role: 'user', content: 'Count' }] },
      { 'x-api-key': user.key }
    )
    mock.script({ reset_after: 2, chunks: 6 })
    const withSystem = await post(
      '/v1/messages',
      { model: 'qwen-coder', max_tokens: 100, stream: true, system: 'Be brief.', messages: [{ role: 'user', content: 'Count' }] },
      { 'x-api-key': user.key }
    )
    await withSystem.text()
    const rows = await usageRows(user.userId)
    assert.include(rows.at(-1), { error_code: 'stream_interrupted', estimated: true })
    assert.equal(rows.at(-1).prompt_tokens, ((await counted.json()) as any).input_tokens)
  })

  test('count_tokens without a native counter is counted by the gateway', async ({ assert }) => {
    const user = await seedUser()
    const counted = await anthropic(user.key).messages.countTokens({ model: 'qwen-coder', messages: [{ role: 'user', content: 'Hello there!' }] })
    assert.isAbove(counted.input_tokens, 3)
  })
})

test.group('POST /v1/messages translated to a native Gemini channel (Claude Code on Gemini)', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'google', provider: 'google', baseUrl: `${mock.origin}/v1beta`, models: ['claude-*'], modelMapping: { 'claude-g3': 'gemini-3-pro' } })
    return () => mock.stop()
  })

  test("a signed function call streams as a tool_use the SDK accepts; the call goes back with Google's placeholder", async ({ assert }) => {
    const user = await seedUser()
    const client = anthropic(user.key)
    const request = {
      model: 'claude-opus-4-5',
      max_tokens: 3000,
      thinking: { type: 'enabled' as const, budget_tokens: 2000 },
      tools: [weatherTool],
      messages: [{ role: 'user' as const, content: 'Weather in Paris?' }],
    }
    // Gemini signs the call (thoughtSignature on the functionCall part); a signature_delta on a
    // tool_use block made Claude Code's SDK throw "Content block is not a thinking block".
    const raw = await post('/v1/messages', { ...request, stream: true }, { 'x-api-key': user.key })
    const events = parseSse(await raw.text()).map((e) => e.data)
    const blockTypes = new Map<number, string>()
    for (const event of events) if (event.type === 'content_block_start') blockTypes.set(event.index, event.content_block.type)
    assert.deepEqual([...blockTypes.values()], ['thinking', 'tool_use'])
    for (const event of events) {
      if (event.delta?.type === 'signature_delta') assert.equal(blockTypes.get(event.index), 'thinking')
    }

    const message = await client.messages.stream(request).finalMessage()
    assert.deepEqual(
      message.content.map((b) => b.type),
      ['thinking', 'tool_use']
    )
    const call = message.content[1] as any
    assert.deepEqual(call.input, { location: 'Paris' })
    assert.notProperty(call, 'signature')

    await client.messages.create({
      ...request,
      model: 'claude-g3',
      messages: [...request.messages, { role: 'assistant', content: message.content as any }, { role: 'user', content: [{ type: 'tool_result', tool_use_id: call.id, content: 'Sunny' }] }],
    })
    const sent = JSON.parse(mock.lastRequest()!.body)
    assert.equal(mock.lastRequest()!.path, '/v1beta/models/gemini-3-pro:generateContent')
    const functionCall = sent.contents[1].parts.find((p: any) => p.functionCall)
    assert.equal(functionCall.functionCall.name, 'get_weather')
    assert.equal(functionCall.thoughtSignature, 'skip_thought_signature_validator')
  })
})

test.group('POST /v1/messages translated to DeepSeek in thinking mode (Claude Code on DeepSeek)', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    // DeepSeek thinks by default and refuses a tool turn sent back without its reasoning_content.
    mock = await startMock({ thinking: true })
    await seedChannel({ name: 'deepseek', provider: 'deepseek', baseUrl: mock.url, models: ['deepseek-*'] })
    await seedChannel({ name: 'kimi', provider: 'custom', baseUrl: mock.url, models: ['kimi-*'] })
    return () => mock.stop()
  })

  for (const model of ['deepseek-v4-pro', 'kimi-k2-thinking']) {
    test(`${model}: the tool loop's second turn carries the reasoning back, and is answered`, async ({ assert }) => {
      const user = await seedUser()
      const client = anthropic(user.key)
      const request = { model, max_tokens: 4000, tools: [weatherTool], messages: [{ role: 'user' as const, content: 'Weather in Paris?' }] }
      const first = await client.messages.stream(request).finalMessage()
      assert.deepEqual(first.content.map((b) => b.type), ['thinking', 'tool_use'])
      const call = first.content[1] as any

      const second = await client.messages.create({
        ...request,
        messages: [
          ...request.messages,
          { role: 'assistant', content: first.content as any },
          { role: 'user', content: [{ type: 'tool_result', tool_use_id: call.id, content: 'Sunny' }] },
        ],
      })
      assert.equal(second.stop_reason, 'end_turn')
      const sent = JSON.parse(mock.lastRequest()!.body)
      assert.equal(sent.messages[1].reasoning_content, 'Let me think.')
      assert.equal(sent.messages[1].tool_calls[0].id, call.id)
    })
  }

  test('a client that kept no thinking still gets its turn answered by DeepSeek (the field, empty)', async ({ assert }) => {
    const user = await seedUser()
    const answer = await anthropic(user.key).messages.create({
      model: 'deepseek-v4-flash',
      max_tokens: 1000,
      tools: [weatherTool],
      messages: [
        { role: 'user', content: 'Weather in Paris?' },
        { role: 'assistant', content: [{ type: 'tool_use', id: 'call_9', name: 'get_weather', input: { location: 'Paris' } }] },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'call_9', content: 'Sunny' }] },
      ],
    })
    assert.equal(answer.stop_reason, 'end_turn')
    assert.strictEqual(JSON.parse(mock.lastRequest()!.body).messages[1].reasoning_content, '')
    const rows = await usageRows(user.userId)
    assert.deepEqual(rows.map((r: any) => r.status), [200])
  })
})
