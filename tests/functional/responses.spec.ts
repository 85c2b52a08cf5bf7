import { test } from '@japa/runner'
import http from 'node:http'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { parseSse } from '#tests/clients'
import { baseUrl, openai, post, resetDatabase, seedChannel, seedUser, startMock, usageRows } from '#tests/helpers'

const shellTool = {
  type: 'function' as const,
  name: 'shell',
  description: 'Run a command',
  parameters: { type: 'object', properties: { command: { type: 'array', items: { type: 'string' } } } },
  strict: false,
}

async function streamEvents(key: string, body: Record<string, unknown>) {
  const response = await post('/v1/responses', { stream: true, ...body }, { authorization: `Bearer ${key}` })
  return { response, events: parseSse(await response.text()) }
}

test.group('POST /v1/responses: native pass-through to an openai channel', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'openai', provider: 'openai', baseUrl: mock.url, models: ['gpt-*'] })
    return () => mock.stop()
  })

  test('non-stream and stream through the openai SDK; usage metered from response.completed', async ({ assert }) => {
    const user = await seedUser()
    const client = openai(user.key)
    const answer = await client.responses.create({ model: 'gpt-5', input: 'Hello!' })
    assert.equal(answer.output_text, 'tok0 tok1 tok2 tok3 tok4 ')
    assert.include(answer.usage as any, { input_tokens: 12, output_tokens: 5 })
    assert.equal(mock.lastRequest()!.path, '/v1/responses')

    const stream = await client.responses.create({ model: 'gpt-5', input: 'Think', reasoning: { effort: 'low' }, stream: true })
    const types: string[] = []
    let completed: any
    for await (const event of stream) {
      types.push(event.type)
      if (event.type === 'response.completed') completed = event.response
    }
    assert.includeMembers(types, ['response.created', 'response.output_item.done', 'response.reasoning_summary_text.delta', 'response.completed'])
    assert.equal(completed.output[0].encrypted_content, 'enc_mock_1')
    const rows = await usageRows(user.userId)
    assert.include(rows[1], { endpoint: 'responses', stream: true, prompt_tokens: 12, completion_tokens: 6, reasoning_tokens: 1, estimated: false })
  })

  test('a Codex body reaches OpenAI byte for byte (store:false, reasoning items, additional_tools, custom tools)', async ({ assert }) => {
    const user = await seedUser()
    const raw = JSON.stringify({
      model: 'gpt-5-codex',
      instructions: 'You are Codex.',
      input: [
        { type: 'additional_tools', namespace: 'mcp', tools: [{ name: 'x' }] },
        { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'fix it' }] },
        { type: 'reasoning', id: 'rs_1', summary: [], encrypted_content: 'gAAAA==opaque' },
        { type: 'function_call', call_id: 'call_1', name: 'shell', arguments: '{"command":["ls"]}', parsed_arguments: null },
        { type: 'function_call_output', call_id: 'call_1', output: 'a.txt' },
      ],
      tools: [shellTool, { type: 'custom', name: 'apply_patch', format: { type: 'grammar', syntax: 'lark', definition: 'start: "x"' } }],
      store: false,
      stream: true,
      include: ['reasoning.encrypted_content'],
      prompt_cache_key: 'abc',
      client_metadata: { a: 1 },
    })
    const response = await post('/v1/responses', raw, { authorization: `Bearer ${user.key}` })
    assert.equal(response.status, 200)
    await response.text()
    assert.equal(mock.lastRequest()!.body, raw)
  })

  test('GET /v1/responses (WebSocket attempt) answers 426; GET/DELETE /v1/responses/{id} of an unknown id answer 404', async ({ assert }) => {
    const user = await seedUser()
    const status = await new Promise<number>((resolve, reject) => {
      const url = new URL(`${baseUrl()}/v1/responses`)
      const req = http.request({
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        headers: { 'connection': 'Upgrade', 'upgrade': 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', 'authorization': `Bearer ${user.key}` },
      })
      req.on('response', (res) => resolve(res.statusCode!))
      req.on('upgrade', () => reject(new Error('upgraded')))
      req.on('error', reject)
      req.end()
    })
    assert.equal(status, 426)
    const auth = { authorization: `Bearer ${user.key}` }
    assert.equal((await fetch(`${baseUrl()}/v1/responses/resp_1`, { headers: auth })).status, 404)
    assert.equal((await fetch(`${baseUrl()}/v1/responses/resp_1`, { method: 'DELETE', headers: auth })).status, 404)
  })
})

test.group('POST /v1/responses translated to a chat-only channel (Codex on DeepSeek)', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'deepseek', provider: 'deepseek', baseUrl: mock.url, models: ['deepseek-*'] })
    return () => mock.stop()
  })

  test('non-stream through the SDK: instructions and input become chat messages', async ({ assert }) => {
    const user = await seedUser()
    const answer = await openai(user.key).responses.create({ model: 'deepseek-chat', instructions: 'Be brief', input: 'Hello!' })
    assert.equal(answer.output_text, 'tok0 tok1 tok2 tok3 tok4 ')
    assert.equal(answer.status, 'completed')
    const sent = JSON.parse(mock.lastRequest()!.body)
    assert.equal(mock.lastRequest()!.path, '/v1/chat/completions')
    assert.deepEqual(sent.messages, [{ role: 'system', content: 'Be brief' }, { role: 'user', content: 'Hello!' }])
    assert.include(answer.usage as any, { input_tokens: 14, output_tokens: 5, total_tokens: 19 })
    const [row] = await usageRows(user.userId)
    assert.include(row, { endpoint: 'responses', provider: 'deepseek', prompt_tokens: 14, completion_tokens: 5 })
  })

  test('stream with a function tool: the events Codex needs, then the tool output round-trips', async ({ assert }) => {
    const user = await seedUser()
    const first = await streamEvents(user.key, {
      model: 'deepseek-chat',
      input: [{ type: 'message', role: 'user', content: [{ type: 'input_text', text: 'list files' }] }],
      tools: [shellTool],
      store: false,
    })
    assert.equal(first.response.headers.get('content-type'), 'text/event-stream; charset=utf-8')
    const types = first.events.map((e) => e.event)
    assert.deepEqual(types, [
      'response.created',
      'response.in_progress',
      'response.output_item.added',
      'response.function_call_arguments.delta',
      'response.function_call_arguments.delta',
      'response.function_call_arguments.done',
      'response.output_item.done',
      'response.completed',
    ])
    assert.deepEqual(first.events.map((e) => e.data.sequence_number), types.map((_, i) => i))
    const done = first.events[6].data.item
    assert.include(done, { type: 'function_call', call_id: 'call_mock_1', name: 'shell', arguments: '{"location":"Paris"}', status: 'completed' })
    const completed = first.events[7].data.response
    assert.equal(completed.output[0].call_id, 'call_mock_1')
    assert.include(completed.usage, { input_tokens: 12, output_tokens: 2 })

    const second = await streamEvents(user.key, {
      model: 'deepseek-chat',
      input: [
        { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'list files' }] },
        { type: 'function_call', call_id: 'call_mock_1', name: 'shell', arguments: '{"location":"Paris"}' },
        { type: 'function_call_output', call_id: 'call_mock_1', output: 'a.txt' },
      ],
      tools: [shellTool],
    })
    const sent = JSON.parse(mock.lastRequest()!.body)
    assert.deepEqual(sent.messages[1].tool_calls[0], { id: 'call_mock_1', type: 'function', function: { name: 'shell', arguments: '{"location":"Paris"}' } })
    assert.deepEqual(sent.messages[2], { role: 'tool', tool_call_id: 'call_mock_1', content: 'a.txt' })
    assert.deepEqual(second.events.map((e) => e.event).slice(2, 5), ['response.output_item.added', 'response.content_part.added', 'response.output_text.delta'])
    const message = second.events.find((e) => e.event === 'response.output_item.done')!.data.item
    assert.deepEqual(message.content, [{ type: 'output_text', text: 'tok0 tok1 tok2 tok3 tok4 ', annotations: [] }])
    assert.equal(second.events.at(-1)!.event, 'response.completed')
  })

  test('a custom (grammar) tool is offered as a function and answered as a custom_tool_call', async ({ assert }) => {
    const user = await seedUser()
    const { events } = await streamEvents(user.key, {
      model: 'deepseek-chat',
      input: 'patch it',
      tools: [{ type: 'custom', name: 'apply_patch', description: 'Patch files', format: { type: 'grammar', syntax: 'lark', definition: 'start: /.+/' } }],
    })
    const sent = JSON.parse(mock.lastRequest()!.body)
    assert.equal(sent.tools[0].function.name, 'apply_patch')
    assert.deepEqual(sent.tools[0].function.parameters.required, ['input'])
    const item = events.find((e) => e.event === 'response.output_item.done')!.data.item
    assert.include(item, { type: 'custom_tool_call', call_id: 'call_mock_1', name: 'apply_patch' })
    assert.isTrue(events.some((e) => e.event === 'response.custom_tool_call_input.done'))
  })

  test('reasoning_content streams as a reasoning item with summary events', async ({ assert }) => {
    const user = await seedUser()
    const { events } = await streamEvents(user.key, { model: 'deepseek-reasoner', input: 'think', reasoning: { effort: 'high', summary: 'auto' } })
    assert.equal(JSON.parse(mock.lastRequest()!.body).reasoning_effort, 'high')
    const types = events.map((e) => e.event)
    assert.includeMembers(types, ['response.reasoning_summary_part.added', 'response.reasoning_summary_text.delta', 'response.reasoning_summary_text.done'])
    const completed = events.at(-1)!.data.response
    assert.deepEqual(completed.output[0].summary, [{ type: 'summary_text', text: 'Let me think.' }])
    assert.equal(completed.output[1].type, 'message')
    assert.include(completed.usage.output_tokens_details, { reasoning_tokens: 1 })
  })

  test('a mid-stream upstream failure ends with response.failed; the partial usage is billed', async ({ assert }) => {
    const user = await seedUser()
    mock.script({ reset_after: 2, chunks: 6 })
    const { events } = await streamEvents(user.key, { model: 'deepseek-chat', input: 'count' })
    const last = events.at(-1)!
    assert.equal(last.event, 'response.failed')
    assert.equal(last.data.response.status, 'failed')
    const [row] = await usageRows(user.userId)
    assert.include(row, { error_code: 'stream_interrupted', estimated: true })
  })
})

test.group('POST /v1/responses translated to Anthropic (Codex on Claude)', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'claude', provider: 'anthropic', baseUrl: mock.url, models: ['claude-*'] })
    return () => mock.stop()
  })

  test('the thinking signature travels as encrypted_content and comes back as a signed thinking block', async ({ assert }) => {
    const user = await seedUser()
    const { events } = await streamEvents(user.key, { model: 'claude-sonnet-4-5', input: 'think', reasoning: { effort: 'low' } })
    assert.deepEqual(JSON.parse(mock.lastRequest()!.body).thinking, { type: 'enabled', budget_tokens: 2048 })
    const reasoning = events.at(-1)!.data.response.output[0]
    assert.include(reasoning, { type: 'reasoning', encrypted_content: 'sig_mock_1' })

    await streamEvents(user.key, {
      model: 'claude-sonnet-4-5',
      reasoning: { effort: 'low' },
      input: [
        { type: 'message', role: 'user', content: 'think' },
        reasoning,
        { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'done' }] },
        { type: 'message', role: 'user', content: 'again' },
      ],
    })
    const sent = JSON.parse(mock.lastRequest()!.body)
    assert.deepEqual(sent.messages[1].content, [
      { type: 'thinking', thinking: 'Let me think.', signature: 'sig_mock_1' },
      { type: 'text', text: 'done' },
    ])
  })
})

test.group('Responses and Messages translated for OpenAI itself and for Codex namespaces', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'openai', provider: 'openai', baseUrl: mock.url, models: ['gpt-*'] })
    await seedChannel({ name: 'deepseek', provider: 'deepseek', baseUrl: mock.url, models: ['deepseek-*'] })
    return () => mock.stop()
  })

  test('Messages -> OpenAI asks with max_completion_tokens (reasoning models reject max_tokens)', async ({ assert }) => {
    const user = await seedUser()
    const response = await post('/v1/messages', { model: 'gpt-5', max_tokens: 300, messages: [{ role: 'user', content: 'hi' }] }, { 'x-api-key': user.key })
    assert.equal(response.status, 200)
    const sent = JSON.parse(mock.lastRequest()!.body)
    assert.equal(sent.max_completion_tokens, 300)
    assert.notProperty(sent, 'max_tokens')
  })

  test('tools Codex declares in an additional_tools item reach a chat-only upstream', async ({ assert }) => {
    const user = await seedUser()
    const { events } = await streamEvents(user.key, {
      model: 'deepseek-chat',
      tools: [],
      input: [
        { type: 'additional_tools', tools: [{ type: 'namespace', name: 'mcp', tools: [shellTool] }] },
        { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'ls' }] },
      ],
    })
    const sent = JSON.parse(mock.lastRequest()!.body)
    assert.deepEqual(sent.tools.map((t: any) => t.function.name), ['shell'])
    assert.equal(events.find((e) => e.event === 'response.output_item.done')!.data.item.type, 'function_call')
  })
})

test.group('What a translation cannot carry is refused, not dropped', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'deepseek', provider: 'deepseek', baseUrl: mock.url, models: ['deepseek-*', 'mix-*'], priority: 10 })
    await seedChannel({ name: 'openai', provider: 'openai', baseUrl: mock.url, models: ['mix-*'], priority: 0 })
    await seedChannel({ name: 'claude', provider: 'anthropic', baseUrl: mock.url, models: ['claude-*'] })
    return () => mock.stop()
  })

  test('an unknown previous_response_id on a model only a chat channel serves: OpenAI\'s 400, upstream untouched, metered', async ({ assert }) => {
    const user = await seedUser()
    const before = mock.requests.length
    const response = await post('/v1/responses', { model: 'deepseek-chat', input: 'And then?', previous_response_id: 'resp_123' }, { authorization: `Bearer ${user.key}` })
    assert.equal(response.status, 400)
    const body: any = await response.json()
    assert.equal(body.error.type, 'invalid_request_error')
    assert.equal(body.error.code, 'previous_response_not_found')
    assert.equal(body.error.param, 'previous_response_id')
    assert.equal(body.error.message, "Previous response with id 'resp_123' not found.")
    assert.equal(mock.requests.length, before)
    const rows = await usageRows(user.userId)
    assert.deepEqual(rows.map((r: any) => [r.status, r.error_code]), [[400, 'previous_response_not_found']])
  })

  test('a previous_response_id the gateway does not know, on a model an OpenAI channel also serves: that channel (which may hold it) answers', async ({ assert }) => {
    const user = await seedUser()
    // Held by the upstream, stored there before the gateway recorded where (an older gateway, a direct call).
    mock.storedResponses.responses.set('resp_123', { response: { id: 'resp_123', object: 'response', output: [] }, input: [] })
    await openai(user.key).responses.create({ model: 'mix-1', input: 'Hello' })
    assert.equal(mock.lastRequest()!.path, '/v1/chat/completions')
    await openai(user.key).responses.create({ model: 'mix-1', input: 'And then?', previous_response_id: 'resp_123' })
    assert.equal(mock.lastRequest()!.path, '/v1/responses')
    assert.equal(JSON.parse(mock.lastRequest()!.body).previous_response_id, 'resp_123')
  })

  test('chat n > 1: refused on a translated model, passed through to a chat channel', async ({ assert }) => {
    const user = await seedUser()
    const refused = await post('/v1/chat/completions', { model: 'claude-x', n: 2, messages: [{ role: 'user', content: 'Hi' }] }, { authorization: `Bearer ${user.key}` })
    assert.equal(refused.status, 400)
    assert.include(((await refused.json()) as any).error.message, 'n > 1')
    const passed = await post('/v1/chat/completions', { model: 'deepseek-chat', n: 2, messages: [{ role: 'user', content: 'Hi' }] }, { authorization: `Bearer ${user.key}` })
    assert.equal(passed.status, 200)
    assert.equal(JSON.parse(mock.lastRequest()!.body).n, 2)
  })
})
