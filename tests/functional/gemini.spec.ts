import { test } from '@japa/runner'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import type Anthropic from '@anthropic-ai/sdk'
import { GoogleGenAI } from '@google/genai'
import { anthropic, genai, parseSse } from '#tests/clients'
import { upstreamTurns } from '#tests/conformance/upstream_turns'
import { baseUrl, openai, post, resetDatabase, seedChannel, seedUser, startMock, usageRows } from '#tests/helpers'

const weather = {
  name: 'get_weather',
  description: 'Weather of a city',
  parametersJsonSchema: { type: 'object', properties: { location: { type: 'string' } }, required: ['location'] },
}

test.group('Gemini /v1beta: native pass-through to a google channel', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'google', provider: 'google', baseUrl: `${mock.origin}/v1beta`, models: ['gemini-*'] })
    return () => mock.stop()
  })

  test('generateContent, stream and countTokens through @google/genai', async ({ assert }) => {
    const user = await seedUser()
    const ai = genai(user.key)
    const answer = await ai.models.generateContent({ model: 'gemini-2.5-flash', contents: 'Hello!' })
    assert.equal(answer.text, 'tok0 tok1 tok2 tok3 tok4 ')
    assert.include(answer.usageMetadata as any, { promptTokenCount: 12, candidatesTokenCount: 5 })
    const seen = mock.lastRequest()!
    assert.equal(seen.path, '/v1beta/models/gemini-2.5-flash:generateContent')
    assert.equal(seen.headers['x-goog-api-key'], 'upstream-secret')

    let text = ''
    let last: any
    for await (const chunk of await ai.models.generateContentStream({ model: 'gemini-2.5-flash', contents: 'Count' })) {
      text += chunk.text ?? ''
      last = chunk
    }
    assert.equal(text, 'tok0 tok1 tok2 tok3 tok4 ')
    assert.equal(last.candidates[0].finishReason, 'STOP')
    assert.equal(mock.lastRequest()!.path, '/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse')

    const counted = await ai.models.countTokens({ model: 'gemini-2.5-flash', contents: 'Hello!' })
    assert.equal(counted.totalTokens, 12)

    const rows = await usageRows(user.userId)
    assert.deepEqual(rows.map((r) => r.endpoint), ['gemini.generateContent', 'gemini.streamGenerateContent', 'gemini.countTokens'])
    assert.include(rows[1], { stream: true, prompt_tokens: 12, completion_tokens: 5, estimated: false })
  })

  test("under /v1 too (@google/genai with apiVersion 'v1'); GET /v1/models/{model} stays OpenAI's", async ({ assert }) => {
    const user = await seedUser()
    const ai = new GoogleGenAI({ apiKey: user.key, httpOptions: { baseUrl: baseUrl(), apiVersion: 'v1' } })
    const answer = await ai.models.generateContent({ model: 'gemini-2.5-flash', contents: 'Hello!' })
    assert.equal(answer.text, 'tok0 tok1 tok2 tok3 tok4 ')
    // The channel is called at its own base URL's version whatever the client's.
    assert.equal(mock.lastRequest()!.path, '/v1beta/models/gemini-2.5-flash:generateContent')

    let text = ''
    for await (const chunk of await ai.models.generateContentStream({ model: 'gemini-2.5-flash', contents: 'Count' })) text += chunk.text ?? ''
    assert.equal(text, 'tok0 tok1 tok2 tok3 tok4 ')
    const counted = await ai.models.countTokens({ model: 'gemini-2.5-flash', contents: 'Hello!' })
    assert.equal(counted.totalTokens, 12)

    const rows = await usageRows(user.userId)
    assert.deepEqual(
      rows.map((r) => [r.endpoint, r.model, r.status]),
      [
        ['gemini.generateContent', 'gemini-2.5-flash', 200],
        ['gemini.streamGenerateContent', 'gemini-2.5-flash', 200],
        ['gemini.countTokens', 'gemini-2.5-flash', 200],
      ]
    )

    // Errors there are Google's; OpenAI's model retrieve keeps its path and shape (a fine-tuned name's colons too).
    const bad = await post('/v1/models/gemini-2.5-flash:generateContent', { contents: [] }, { 'x-goog-api-key': 'nope' })
    assert.equal(bad.status, 401)
    assert.deepEqual(await bad.json(), { error: { code: 401, message: 'Invalid API key', status: 'UNAUTHENTICATED' } })
    const one = await fetch(`${baseUrl()}/v1/models/gemini-2.5-flash`, { headers: { authorization: `Bearer ${user.key}` } })
    assert.include((await one.json()) as any, { id: 'gemini-2.5-flash', object: 'model' })
    const fineTuned = await fetch(`${baseUrl()}/v1/models/ft:gpt-4o-mini:org::abc`, { headers: { authorization: `Bearer ${user.key}` } })
    assert.equal(fineTuned.status, 404)
    assert.equal(((await fineTuned.json()) as any).error.code, 'model_not_found')
  })

  test('the JSON-array stream form, ?key= auth, function calls keep their thoughtSignature', async ({ assert }) => {
    const user = await seedUser()
    const response = await post(`/v1beta/models/gemini-2.5-pro:streamGenerateContent?key=${user.key}`, {
      contents: [{ role: 'user', parts: [{ text: 'Weather in Paris?' }] }],
      tools: [{ functionDeclarations: [weather] }],
    })
    assert.equal(response.status, 200)
    const chunks = (await response.json()) as any[]
    const part = chunks.at(-1).candidates[0].content.parts[0]
    assert.deepEqual(part, { functionCall: { name: 'get_weather', args: { location: 'Paris' } }, thoughtSignature: 'tsig_mock_1' })
    assert.equal(chunks.at(-1).candidates[0].finishReason, 'STOP')
  })

  test('errors in the Google shape; GET /v1beta/models lists models', async ({ assert }) => {
    const bad = await post('/v1beta/models/gemini-2.5-flash:generateContent', { contents: [] }, { 'x-goog-api-key': 'nope' })
    assert.equal(bad.status, 401)
    assert.deepEqual(await bad.json(), { error: { code: 401, message: 'Invalid API key', status: 'UNAUTHENTICATED' } })
    const user = await seedUser()
    const failing = await post('/v1beta/models/gemini-2.5-flash:generateContent', { contents: [{ parts: [{ text: 'x' }] }], mock: { status: 400 } }, { 'x-goog-api-key': user.key })
    assert.equal(failing.status, 400)
    assert.include(((await failing.json()) as any).error, { code: 400, status: 'INVALID_ARGUMENT', message: 'mock upstream failure 400' })
    await seedChannel({ name: 'listed', provider: 'google', baseUrl: `${mock.origin}/v1beta`, models: ['gemini-listed'] })
    const list = await fetch(`${baseUrl()}/v1beta/models`, { headers: { 'x-goog-api-key': user.key } })
    const models = ((await list.json()) as any).models
    assert.deepInclude(models.map((m: any) => m.name), 'models/gemini-listed')
  })
})

test.group('Gemini ingress translated to Anthropic and OpenAI-compatible channels', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'claude', provider: 'anthropic', baseUrl: mock.url, models: ['claude-*'] })
    await seedChannel({ name: 'chat', provider: 'custom', baseUrl: mock.url, models: ['gpt-*'] })
    return () => mock.stop()
  })

  test('Gemini -> Anthropic: systemInstruction, tools, stream, function call id, round trip, cache usage', async ({ assert }) => {
    const user = await seedUser()
    const ai = genai(user.key)
    mock.script({ cache_read: 40 })
    const chunks = []
    for await (const chunk of await ai.models.generateContentStream({
      model: 'claude-sonnet-4-5',
      contents: [{ role: 'user', parts: [{ text: 'Weather in Paris?' }] }],
      config: { systemInstruction: 'Be terse', tools: [{ functionDeclarations: [weather] }] },
    })) {
      chunks.push(chunk)
    }
    const sent = JSON.parse(mock.lastRequest()!.body)
    assert.equal(mock.lastRequest()!.path, '/v1/messages')
    assert.deepEqual(sent.system, [{ type: 'text', text: 'Be terse' }])
    assert.deepEqual(sent.tools[0], { name: 'get_weather', description: 'Weather of a city', input_schema: weather.parametersJsonSchema })
    const call = chunks.flatMap((c) => c.candidates?.[0]?.content?.parts ?? []).find((p: any) => p.functionCall)!.functionCall!
    assert.deepEqual(call, { id: 'toolu_mock_1', name: 'get_weather', args: { location: 'Paris' } })
    const last = chunks.at(-1)!
    assert.equal(last.candidates![0].finishReason, 'STOP')
    // Anthropic input 12 + cache read 40 = Gemini promptTokenCount 52 (cached included)
    assert.include(last.usageMetadata as any, { promptTokenCount: 52, cachedContentTokenCount: 40, candidatesTokenCount: 2 })

    const second = await ai.models.generateContent({
      model: 'claude-sonnet-4-5',
      contents: [
        { role: 'user', parts: [{ text: 'Weather in Paris?' }] },
        { role: 'model', parts: [{ functionCall: call }] },
        { role: 'user', parts: [{ functionResponse: { id: call.id, name: 'get_weather', response: { temp: 18 } } }] },
      ],
      config: { tools: [{ functionDeclarations: [weather] }] },
    })
    assert.equal(second.text, 'tok0 tok1 tok2 tok3 tok4 ')
    const followUp = JSON.parse(mock.lastRequest()!.body)
    assert.deepEqual(followUp.messages[1].content, [{ type: 'tool_use', id: 'toolu_mock_1', name: 'get_weather', input: { location: 'Paris' } }])
    assert.deepEqual(followUp.messages[2].content, [{ type: 'tool_result', tool_use_id: 'toolu_mock_1', content: '{"temp":18}' }])
    const rows = await usageRows(user.userId)
    assert.include(rows[0], { endpoint: 'gemini.streamGenerateContent', provider: 'anthropic', prompt_tokens: 52, cached_tokens: 40 })
  })

  test('Gemini -> Anthropic in snake_case (REST callers): instruction, config, tools, images and a tool turn all arrive', async ({ assert }) => {
    const user = await seedUser()
    const pixel = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=='
    const response = await post(
      '/v1beta/models/claude-sonnet-4-5:generateContent',
      {
        system_instruction: { parts: [{ text: 'Be terse' }] },
        contents: [
          { role: 'user', parts: [{ text: 'What is this?' }, { inline_data: { mime_type: 'image/png', data: pixel } }] },
          { role: 'model', parts: [{ function_call: { id: 'toolu_1', name: 'read_file', args: { file_path: 'a.txt' } } }] },
          { role: 'user', parts: [{ function_response: { id: 'toolu_1', name: 'read_file', response: { file_text: 'hi' } } }] },
        ],
        tools: [{ function_declarations: [{ name: 'read_file', description: 'Reads a file', parameters_json_schema: { type: 'object', properties: { file_path: { type: 'string' } } } }] }],
        tool_config: { function_calling_config: { mode: 'ANY' } },
        generation_config: { max_output_tokens: 77, temperature: 0.2, stop_sequences: ['END'] },
      },
      { 'x-goog-api-key': user.key }
    )
    assert.equal(response.status, 200)
    await response.json()
    const sent = JSON.parse(mock.lastRequest()!.body)
    assert.deepEqual(sent.system, [{ type: 'text', text: 'Be terse' }])
    assert.equal(sent.max_tokens, 77)
    assert.equal(sent.temperature, 0.2)
    assert.deepEqual(sent.stop_sequences, ['END'])
    assert.deepEqual(sent.tool_choice, { type: 'any' })
    // The client's own names (arguments, results, schema properties) are data: kept as sent.
    assert.deepEqual(sent.tools[0].input_schema, { type: 'object', properties: { file_path: { type: 'string' } } })
    assert.deepEqual(sent.messages[0].content[1], { type: 'image', source: { type: 'base64', media_type: 'image/png', data: pixel } })
    assert.deepEqual(sent.messages[1].content, [{ type: 'tool_use', id: 'toolu_1', name: 'read_file', input: { file_path: 'a.txt' } }])
    assert.deepEqual(sent.messages[2].content, [{ type: 'tool_result', tool_use_id: 'toolu_1', content: '{"file_text":"hi"}' }])
  })

  test('Gemini in snake_case: candidate_count > 1 is refused for a translated model, as candidateCount is', async ({ assert }) => {
    const user = await seedUser()
    const response = await post(
      '/v1beta/models/claude-sonnet-4-5:generateContent',
      { contents: [{ role: 'user', parts: [{ text: 'hi' }] }], generation_config: { candidate_count: 2 } },
      { 'x-goog-api-key': user.key }
    )
    assert.equal(response.status, 400)
    const body = (await response.json()) as any
    assert.include(body.error.message, 'candidateCount > 1 is not supported')
  })

  test('Gemini -> Anthropic: thoughts requested become thinking; the signature rides on the thought part', async ({ assert }) => {
    const user = await seedUser()
    const answer = await genai(user.key).models.generateContent({
      model: 'claude-opus-4-1',
      contents: 'Think',
      config: { thinkingConfig: { includeThoughts: true, thinkingBudget: 2048 } },
    })
    assert.deepEqual(JSON.parse(mock.lastRequest()!.body).thinking, { type: 'enabled', budget_tokens: 2048 })
    const parts = answer.candidates![0].content!.parts!
    assert.deepEqual(parts[0], { text: 'Let me think.', thought: true, thoughtSignature: 'sig_mock_1' })
    assert.equal(parts[1].text, 'tok0 tok1 tok2 tok3 tok4 ')
  })

  test('Gemini -> OpenAI chat: SSE and JSON-array streams end with finishReason and usageMetadata', async ({ assert }) => {
    const user = await seedUser()
    const sse = await post('/v1beta/models/gpt-4o:streamGenerateContent?alt=sse', { contents: [{ role: 'user', parts: [{ text: 'hi' }] }] }, { 'x-goog-api-key': user.key })
    assert.equal(sse.headers.get('content-type'), 'text/event-stream; charset=utf-8')
    const events = parseSse(await sse.text())
    assert.equal(events.map((e) => e.data.candidates[0].content.parts[0].text).join(''), 'tok0 tok1 tok2 tok3 tok4 ')
    assert.equal(events.at(-1)!.data.candidates[0].finishReason, 'STOP')
    assert.deepEqual(events.at(-1)!.data.usageMetadata, { promptTokenCount: 12, candidatesTokenCount: 5, totalTokenCount: 17 })

    const array = await post('/v1beta/models/gpt-4o:streamGenerateContent', { contents: [{ role: 'user', parts: [{ text: 'hi' }] }] }, { authorization: `Bearer ${user.key}` })
    const chunks = (await array.json()) as any[]
    assert.lengthOf(chunks, 6)
    assert.equal(chunks.at(-1).candidates[0].finishReason, 'STOP')
  })
})

test.group('OpenAI chat and Anthropic Messages translated to a native google channel', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'google', provider: 'google', baseUrl: `${mock.origin}/v1beta`, models: ['gemini-*'] })
    return () => mock.stop()
  })

  test('chat completions -> generateContent: text, tool calls with synthesized ids, tool results named for Gemini', async ({ assert }) => {
    const user = await seedUser()
    const client = openai(user.key)
    const answer = await client.chat.completions.create({
      model: 'gemini-2.5-flash',
      messages: [{ role: 'system', content: 'sys' }, { role: 'user', content: 'hi' }],
    })
    assert.equal(answer.choices[0].message.content, 'tok0 tok1 tok2 tok3 tok4 ')
    assert.include(answer.usage as any, { prompt_tokens: 12, completion_tokens: 5 })
    const sent = JSON.parse(mock.lastRequest()!.body)
    assert.deepEqual(sent.systemInstruction, { parts: [{ text: 'sys' }] })
    assert.deepEqual(sent.contents, [{ role: 'user', parts: [{ text: 'hi' }] }])

    const tools = [{ type: 'function' as const, function: { name: 'get_weather', parameters: weather.parametersJsonSchema } }]
    const stream = await client.chat.completions.create({ model: 'gemini-2.5-flash', messages: [{ role: 'user', content: 'Weather?' }], tools, stream: true })
    let id = ''
    let args = ''
    for await (const chunk of stream) {
      for (const call of chunk.choices[0]?.delta?.tool_calls ?? []) {
        id ||= call.id ?? ''
        args += call.function?.arguments ?? ''
      }
    }
    assert.match(id, /^call_[\w-]{24}$/)
    assert.deepEqual(JSON.parse(args), { location: 'Paris' })

    await client.chat.completions.create({
      model: 'gemini-2.5-flash',
      messages: [
        { role: 'user', content: 'Weather?' },
        { role: 'assistant', content: null, tool_calls: [{ id, type: 'function', function: { name: 'get_weather', arguments: args } }] },
        { role: 'tool', tool_call_id: id, content: '18C' },
      ],
      tools,
    })
    const followUp = JSON.parse(mock.lastRequest()!.body)
    assert.deepEqual(followUp.contents[2], { role: 'user', parts: [{ functionResponse: { id, name: 'get_weather', response: { result: '18C' } } }] })
  })

  test('a prompt Google blocks, streamed: content_filter to a chat client, refusal to an Anthropic client, the prompt billed', async ({ assert }) => {
    const user = await seedUser()
    mock.script({ block_reason: 'PROHIBITED_CONTENT' })
    const stream = await openai(user.key).chat.completions.create({
      model: 'gemini-2.5-flash',
      messages: [{ role: 'user', content: 'something blocked' }],
      stream: true,
      stream_options: { include_usage: true },
    })
    const finishes: string[] = []
    let text = ''
    for await (const chunk of stream) {
      for (const choice of chunk.choices) {
        text += choice.delta?.content ?? ''
        if (choice.finish_reason) finishes.push(choice.finish_reason)
      }
    }
    assert.deepEqual(finishes, ['content_filter'])
    assert.equal(text, '')

    mock.script({ block_reason: 'PROHIBITED_CONTENT' })
    const message = await anthropic(user.key)
      .messages.stream({ model: 'gemini-2.5-flash', max_tokens: 100, messages: [{ role: 'user', content: 'something blocked' }] })
      .finalMessage()
    assert.equal(message.stop_reason, 'refusal')
    assert.deepEqual(message.content, [])

    const rows = await usageRows(user.userId)
    assert.deepEqual(rows.map((r) => [r.prompt_tokens, r.completion_tokens, r.estimated]), [[12, 0, false], [12, 0, false]])
  })
})

test.group('Gemini answers in an Anthropic client conversation, replayed on another channel', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'google', provider: 'google', baseUrl: `${mock.origin}/v1beta`, models: ['gemini-*'] })
    await seedChannel({ name: 'claude', provider: 'anthropic', baseUrl: mock.url, models: ['claude-*'] })
    return () => mock.stop()
  })

  test('two Gemini turns calling the same tool give distinct tool_use ids; the history goes on to Claude and back to Gemini', async ({ assert }) => {
    // Gemini gives no call ids: ids made per response ("call_Read_1" each turn) get Anthropic's 400 on replay.
    const user = await seedUser()
    const client = anthropic(user.key)
    const read = { name: 'Read', description: 'Read a file', input_schema: { type: 'object' as const, properties: { location: { type: 'string' } } } }
    const ask = { model: 'gemini-2.5-pro', max_tokens: 100, tools: [read], messages: [{ role: 'user' as const, content: 'Read it' }] }
    const first = await client.messages.create(ask)
    const second = await client.messages.stream(ask).finalMessage()
    const uses = [first, second].map((m) => m.content.find((b) => b.type === 'tool_use')!) as Anthropic.ToolUseBlock[]
    assert.deepEqual(uses.map((u) => u.name), ['Read', 'Read'])
    for (const use of uses) assert.match(use.id, /^call_[\w-]{24}$/)
    assert.notEqual(uses[0].id, uses[1].id)

    const messages: Anthropic.MessageParam[] = [{ role: 'user', content: 'Read it' }]
    for (const use of uses) {
      messages.push({ role: 'assistant', content: [use] })
      messages.push({ role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: `read ${use.id}` }] })
    }
    const onClaude = await client.messages.create({ ...ask, model: 'claude-sonnet-4-5', messages })
    assert.equal(onClaude.stop_reason, 'end_turn')
    assert.deepEqual(upstreamTurns(mock.lastRequest()!).calls.map((c) => c.id), uses.map((u) => u.id))

    const onGemini = await client.messages.create({ ...ask, messages })
    assert.equal(onGemini.stop_reason, 'end_turn')
    const sent = upstreamTurns(mock.lastRequest()!)
    assert.deepEqual(sent.calls.map((c) => [c.id, c.name]), uses.map((u) => [u.id, 'Read']))
    assert.deepEqual(sent.results.map((r) => r.id), uses.map((u) => u.id))
    const names = JSON.parse(mock.lastRequest()!.body).contents.flatMap((c: any) => c.parts).filter((p: any) => p.functionResponse)
    assert.deepEqual(names.map((p: any) => p.functionResponse.name), ['Read', 'Read'])
  })
})
