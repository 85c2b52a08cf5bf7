import { test } from '@japa/runner'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { openai, resetDatabase, seedChannel, seedUser, startMock, usageRows, type SeededUser } from '#tests/helpers'
import { anthropic, genai } from '#tests/clients'
import { midStreamError, scripted, type ScriptedAnswer, type UpstreamKind } from '#tests/fixtures/upstream_scripts'

/**
 * Cross-format translation as the real SDKs see it: every upstream answers
 * the same scripted answer (upstream_scripts.ts) in its own format, and each
 * client format's official SDK assembles the gateway's translation with its
 * own accumulator (openai `finalChatCompletion()` / `finalResponse()`,
 * anthropic `finalMessage()`, @google/genai's stream chunks). What it
 * assembled is read back into one neutral shape and compared with what the
 * upstream sent, and so is the usage row.
 */

interface Assembled {
  text: string
  reasoning: string
  calls: Array<{ id: string; name: string; args: unknown }>
  stop: string
  usage: { input: number; output: number; cacheRead: number; reasoning: number } | null
}

type Client = 'chat' | 'responses' | 'anthropic' | 'gemini'

const MODELS: Record<UpstreamKind, string> = { chat: 'gpt-scripted', anthropic: 'claude-scripted', gemini: 'gemini-scripted' }
/** Every channel format for each client: translated, and passed through where the formats match (usage read on the way) */
const UPSTREAMS: Record<Client, UpstreamKind[]> = {
  chat: ['chat', 'anthropic', 'gemini'],
  responses: ['chat', 'anthropic', 'gemini'],
  anthropic: ['anthropic', 'chat', 'gemini'],
  gemini: ['gemini', 'chat', 'anthropic'],
}

const WEATHER = { type: 'object', properties: { location: { type: 'string' }, unit: { type: 'string' } }, required: ['location'] }
const PROMPT = 'What is the weather?'

async function ask(client: Client, key: string, model: string, stream: boolean): Promise<Assembled> {
  if (client === 'chat') {
    const params: any = { model, messages: [{ role: 'user', content: PROMPT }], tools: [{ type: 'function', function: { name: 'get_weather', parameters: WEATHER } }] }
    // The SDK's accumulator keeps only the last piece of a delta field it does not know (Object.assign):
    // streamed reasoning_content (DeepSeek's field, which the gateway writes) is read from the chunks.
    let streamedReasoning = ''
    let completion: any
    if (stream) {
      const runner = openai(key).chat.completions.stream({ ...params, stream_options: { include_usage: true } })
      runner.on('chunk', (chunk: any) => (streamedReasoning += chunk.choices[0]?.delta?.reasoning_content ?? ''))
      completion = await runner.finalChatCompletion()
    } else {
      completion = await openai(key).chat.completions.create(params)
    }
    const message = completion.choices[0].message
    const u = completion.usage
    return {
      text: message.content ?? '',
      reasoning: stream ? streamedReasoning : (message.reasoning_content ?? ''),
      calls: (message.tool_calls ?? []).map((c: any) => ({ id: c.id, name: c.function.name, args: JSON.parse(c.function.arguments) })),
      stop: ({ stop: 'end_turn', length: 'max_tokens', tool_calls: 'tool_use', content_filter: 'content_filter' } as any)[completion.choices[0].finish_reason],
      usage: u
        ? { input: u.prompt_tokens, output: u.completion_tokens, cacheRead: u.prompt_tokens_details?.cached_tokens ?? 0, reasoning: u.completion_tokens_details?.reasoning_tokens ?? 0 }
        : null,
    }
  }
  if (client === 'responses') {
    const params: any = { model, input: PROMPT, tools: [{ type: 'function', name: 'get_weather', parameters: WEATHER, strict: false }] }
    const response: any = stream ? await openai(key).responses.stream(params).finalResponse() : await openai(key).responses.create(params)
    const calls = response.output.filter((i: any) => i.type === 'function_call')
    const reasoning = response.output.filter((i: any) => i.type === 'reasoning').flatMap((i: any) => i.summary.map((s: any) => s.text)).join('')
    const stop =
      response.status === 'incomplete'
        ? response.incomplete_details?.reason === 'content_filter'
          ? 'content_filter'
          : 'max_tokens'
        : calls.length > 0
          ? 'tool_use'
          : 'end_turn'
    const u = response.usage
    return {
      text: response.output_text ?? '',
      reasoning,
      calls: calls.map((c: any) => ({ id: c.call_id, name: c.name, args: JSON.parse(c.arguments) })),
      stop,
      usage: u
        ? { input: u.input_tokens, output: u.output_tokens, cacheRead: u.input_tokens_details?.cached_tokens ?? 0, reasoning: u.output_tokens_details?.reasoning_tokens ?? 0 }
        : null,
    }
  }
  if (client === 'anthropic') {
    const params: any = {
      model,
      max_tokens: 1000,
      messages: [{ role: 'user', content: PROMPT }],
      tools: [{ name: 'get_weather', input_schema: WEATHER }],
    }
    const message: any = stream ? await anthropic(key).messages.stream(params).finalMessage() : await anthropic(key).messages.create(params)
    const u = message.usage
    return {
      text: message.content.filter((b: any) => b.type === 'text').map((b: any) => b.text).join(''),
      reasoning: message.content.filter((b: any) => b.type === 'thinking').map((b: any) => b.thinking).join(''),
      calls: message.content.filter((b: any) => b.type === 'tool_use').map((b: any) => ({ id: b.id, name: b.name, args: b.input })),
      stop: message.stop_reason === 'refusal' ? 'content_filter' : message.stop_reason,
      usage: {
        input: u.input_tokens + (u.cache_read_input_tokens ?? 0) + (u.cache_creation_input_tokens ?? 0),
        output: u.output_tokens,
        cacheRead: u.cache_read_input_tokens ?? 0,
        reasoning: u.output_tokens_details?.thinking_tokens ?? 0,
      },
    }
  }
  const params: any = {
    model,
    contents: PROMPT,
    config: { tools: [{ functionDeclarations: [{ name: 'get_weather', parametersJsonSchema: WEATHER }] }] },
  }
  const ai = genai(key)
  const chunks: any[] = []
  if (stream) for await (const chunk of await ai.models.generateContentStream(params)) chunks.push(chunk)
  else chunks.push(await ai.models.generateContent(params))
  const parts = chunks.flatMap((c) => c.candidates?.[0]?.content?.parts ?? [])
  const last = chunks[chunks.length - 1]
  const calls = parts.filter((p: any) => p.functionCall).map((p: any) => ({ id: p.functionCall.id, name: p.functionCall.name, args: p.functionCall.args }))
  const finish = last.candidates?.[0]?.finishReason
  const u = last.usageMetadata
  return {
    text: parts.filter((p: any) => typeof p.text === 'string' && !p.thought).map((p: any) => p.text).join(''),
    reasoning: parts.filter((p: any) => p.thought).map((p: any) => p.text ?? '').join(''),
    calls,
    stop: finish === 'MAX_TOKENS' ? 'max_tokens' : finish === 'SAFETY' ? 'content_filter' : calls.length > 0 ? 'tool_use' : 'end_turn',
    usage: u
      ? {
          input: u.promptTokenCount,
          output: (u.candidatesTokenCount ?? 0) + (u.thoughtsTokenCount ?? 0),
          cacheRead: u.cachedContentTokenCount ?? 0,
          reasoning: u.thoughtsTokenCount ?? 0,
        }
      : null,
  }
}

/** What the client should have assembled from the scripted answer. */
function expected(a: ScriptedAnswer, client: Client, upstream: UpstreamKind): Assembled {
  // Only Anthropic's format tells a stop sequence from a natural end (Anthropic to Anthropic: passed through)
  const sequenceTold = client === 'anthropic' && upstream === 'anthropic'
  return {
    text: a.text ?? '',
    reasoning: a.reasoning ?? '',
    calls: (a.calls ?? []).map((c) => ({ id: c.id, name: c.name, args: JSON.parse(c.args) })),
    stop: a.stop === 'stop_sequence' && !sequenceTold ? 'end_turn' : a.stop,
    usage: { input: a.usage.input, output: a.usage.output, cacheRead: a.usage.cacheRead ?? 0, reasoning: a.usage.reasoning ?? 0 },
  }
}

const RICH: ScriptedAnswer = {
  reasoning: 'The user wants weather in two cities.',
  signature: 'sig-abc123',
  text: 'Checking both cities.',
  calls: [
    { id: 'call_one_1', name: 'get_weather', args: '{"location":"Paris, France","unit":"celsius"}' },
    { id: 'call_two_2', name: 'get_weather', args: '{"location":"Tokyo","unit":"celsius"}' },
  ],
  stop: 'tool_use',
  usage: { input: 120, output: 57, cacheRead: 40, reasoning: 11 },
}

const CASES: Array<{ name: string; answer: ScriptedAnswer }> = [
  { name: 'reasoning, text and two parallel tool calls', answer: RICH },
  { name: 'cut at max tokens', answer: { text: 'The weather is', stop: 'max_tokens', usage: { input: 12, output: 4 } } },
  { name: 'content filter', answer: { text: 'I cannot', stop: 'content_filter', usage: { input: 12, output: 2 } } },
  { name: 'empty content', answer: { stop: 'end_turn', usage: { input: 12, output: 0 } } },
  { name: 'stop sequence', answer: { text: 'Sunny', stop: 'stop_sequence', stopSequence: 'END', usage: { input: 12, output: 1 } } },
  { name: 'cache writes', answer: { text: 'Sunny', stop: 'end_turn', usage: { input: 300, output: 1, cacheRead: 100, cacheWrite: 150 } } },
]

test.group('SDK translation fidelity: scripted upstream answers assembled by the real SDKs', (group) => {
  let mock: MockUpstream
  let user: SeededUser

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'chat', provider: 'custom', baseUrl: mock.url, models: ['gpt-*'] })
    await seedChannel({ name: 'claude', provider: 'anthropic', baseUrl: mock.url, models: ['claude-*'] })
    await seedChannel({ name: 'google', provider: 'google', baseUrl: mock.url, models: ['gemini-*'] })
    user = await seedUser()
    return () => mock.stop()
  })

  for (const client of Object.keys(UPSTREAMS) as Client[]) {
    for (const upstream of UPSTREAMS[client]) {
      for (const stream of [true, false]) {
        for (const c of CASES) {
          test(`${client} <- ${upstream}${stream ? ' (stream)' : ''}: ${c.name}`, async ({ assert }) => {
            mock.script({ raw: scripted(upstream, c.answer, stream) })
            const got = await ask(client, user.key, MODELS[upstream], stream)
            const want = expected(c.answer, client, upstream)
            assert.equal(got.text, want.text, 'text')
            assert.equal(got.reasoning, want.reasoning, 'reasoning')
            assert.deepEqual(got.calls, want.calls, 'tool calls')
            assert.equal(got.stop, want.stop, 'stop reason')
            assert.deepEqual(got.usage, want.usage, 'usage the client saw')
            const rows = await usageRows(user.userId)
            const row = rows[rows.length - 1]
            const u = c.answer.usage
            assert.deepEqual(
              [row.status, row.prompt_tokens, row.completion_tokens, row.cached_tokens, row.cache_write_tokens, row.reasoning_tokens, row.estimated],
              // Gemini reports no cache writes (its scripted answer has none)
              [200, u.input, u.output, u.cacheRead ?? 0, upstream === 'gemini' ? 0 : (u.cacheWrite ?? 0), u.reasoning ?? 0, false],
              'usage row'
            )
          })
        }
      }
    }
  }
})

/** An upstream's 400 in its own format, with the message the client must see. */
function upstreamError(kind: UpstreamKind, message: string) {
  const body =
    kind === 'anthropic'
      ? { type: 'error', error: { type: 'invalid_request_error', message } }
      : kind === 'gemini'
        ? { error: { code: 400, message, status: 'INVALID_ARGUMENT' } }
        : { error: { message, type: 'invalid_request_error', code: 'invalid_value' } }
  return { status: 400, body: JSON.stringify(body) }
}

/** The second turn of a tool conversation, as each SDK sends it: system prompt, image, the call, its result, a forced tool. */
async function secondTurn(client: Client, key: string, model: string, stream: boolean): Promise<string> {
  const image = 'iVBORw0KGgo='
  const args = { location: 'Paris' }
  if (client === 'chat') {
    const params: any = {
      model,
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: [{ type: 'text', text: PROMPT }, { type: 'image_url', image_url: { url: `data:image/png;base64,${image}` } }] },
        { role: 'assistant', content: null, tool_calls: [{ id: 'call_x1', type: 'function', function: { name: 'get_weather', arguments: JSON.stringify(args) } }] },
        { role: 'tool', tool_call_id: 'call_x1', content: 'sunny, 21C' },
      ],
      tools: [{ type: 'function', function: { name: 'get_weather', parameters: WEATHER } }],
      tool_choice: { type: 'function', function: { name: 'get_weather' } },
    }
    if (stream) return (await openai(key).chat.completions.stream(params).finalChatCompletion()).choices[0].message.content ?? ''
    return (await openai(key).chat.completions.create(params)).choices[0].message.content ?? ''
  }
  if (client === 'responses') {
    const params: any = {
      model,
      instructions: 'Be brief.',
      input: [
        { role: 'user', content: [{ type: 'input_text', text: PROMPT }, { type: 'input_image', image_url: `data:image/png;base64,${image}`, detail: 'auto' }] },
        { type: 'function_call', call_id: 'call_x1', name: 'get_weather', arguments: JSON.stringify(args) },
        { type: 'function_call_output', call_id: 'call_x1', output: 'sunny, 21C' },
      ],
      tools: [{ type: 'function', name: 'get_weather', parameters: WEATHER, strict: false }],
      tool_choice: { type: 'function', name: 'get_weather' },
    }
    if (stream) return (await openai(key).responses.stream(params).finalResponse()).output_text
    return (await openai(key).responses.create(params)).output_text
  }
  if (client === 'anthropic') {
    const params: any = {
      model,
      max_tokens: 100,
      system: 'Be brief.',
      messages: [
        { role: 'user', content: [{ type: 'text', text: PROMPT }, { type: 'image', source: { type: 'base64', media_type: 'image/png', data: image } }] },
        { role: 'assistant', content: [{ type: 'tool_use', id: 'call_x1', name: 'get_weather', input: args }] },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'call_x1', content: 'sunny, 21C' }] },
      ],
      tools: [{ name: 'get_weather', input_schema: WEATHER }],
      tool_choice: { type: 'tool', name: 'get_weather' },
    }
    const message: any = stream ? await anthropic(key).messages.stream(params).finalMessage() : await anthropic(key).messages.create(params)
    return message.content.filter((b: any) => b.type === 'text').map((b: any) => b.text).join('')
  }
  const params: any = {
    model,
    contents: [
      { role: 'user', parts: [{ text: PROMPT }, { inlineData: { mimeType: 'image/png', data: image } }] },
      { role: 'model', parts: [{ functionCall: { id: 'call_x1', name: 'get_weather', args } }] },
      { role: 'user', parts: [{ functionResponse: { id: 'call_x1', name: 'get_weather', response: { result: 'sunny, 21C' } } }] },
    ],
    config: {
      systemInstruction: 'Be brief.',
      tools: [{ functionDeclarations: [{ name: 'get_weather', parametersJsonSchema: WEATHER }] }],
      toolConfig: { functionCallingConfig: { mode: 'ANY' as any, allowedFunctionNames: ['get_weather'] } },
    },
  }
  const ai = genai(key)
  if (!stream) return (await ai.models.generateContent(params)).text ?? ''
  let text = ''
  for await (const chunk of await ai.models.generateContentStream(params)) text += chunk.text ?? ''
  return text
}

/** What an upstream request carries, read in its own format. */
function upstreamTurn(kind: UpstreamKind, body: any) {
  if (kind === 'chat') {
    const tool = body.messages.find((m: any) => m.role === 'tool')
    return {
      system: body.messages.filter((m: any) => m.role === 'system').map((m: any) => m.content).join(''),
      image: body.messages.some((m: any) => Array.isArray(m.content) && m.content.some((p: any) => p.type === 'image_url')),
      callIds: body.messages.flatMap((m: any) => (m.tool_calls ?? []).map((c: any) => c.id)),
      result: [tool?.tool_call_id, tool?.content],
      forced: body.tool_choice?.function?.name,
    }
  }
  if (kind === 'anthropic') {
    const blocks = body.messages.flatMap((m: any) => (Array.isArray(m.content) ? m.content : []))
    const result = blocks.find((b: any) => b.type === 'tool_result')
    const resultText = typeof result?.content === 'string' ? result.content : result?.content?.map((b: any) => b.text).join('')
    return {
      system: typeof body.system === 'string' ? body.system : body.system?.map((b: any) => b.text).join(''),
      image: blocks.some((b: any) => b.type === 'image'),
      callIds: blocks.filter((b: any) => b.type === 'tool_use').map((b: any) => b.id),
      result: [result?.tool_use_id, resultText],
      forced: body.tool_choice?.type === 'tool' ? body.tool_choice.name : undefined,
    }
  }
  const parts = body.contents.flatMap((c: any) => c.parts)
  const response = parts.find((p: any) => p.functionResponse)?.functionResponse
  return {
    system: body.systemInstruction?.parts?.map((p: any) => p.text).join(''),
    image: parts.some((p: any) => p.inlineData),
    callIds: parts.filter((p: any) => p.functionCall).map((p: any) => p.functionCall.id),
    result: [response?.id, response?.response?.result],
    forced: body.toolConfig?.functionCallingConfig?.allowedFunctionNames?.[0],
  }
}

test.group('SDK translation fidelity: what the upstream receives, and its errors', (group) => {
  let mock: MockUpstream
  let user: SeededUser

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'chat', provider: 'custom', baseUrl: mock.url, models: ['gpt-*'] })
    await seedChannel({ name: 'claude', provider: 'anthropic', baseUrl: mock.url, models: ['claude-*'] })
    await seedChannel({ name: 'google', provider: 'google', baseUrl: mock.url, models: ['gemini-*'] })
    user = await seedUser()
    return () => mock.stop()
  })

  for (const client of Object.keys(UPSTREAMS) as Client[]) {
    for (const upstream of UPSTREAMS[client]) {
      test(`${client} -> ${upstream}: system prompt, image, tool call and result, forced tool reach the upstream`, async ({ assert }) => {
        for (const stream of [false, true]) {
          mock.script({ raw: scripted(upstream, { text: 'It is sunny.', stop: 'end_turn', usage: { input: 30, output: 4 } }, stream) })
          const text = await secondTurn(client, user.key, MODELS[upstream], stream)
          assert.equal(text, 'It is sunny.')
          const sent = upstreamTurn(upstream, JSON.parse(mock.lastRequest()!.body))
          assert.equal(sent.system, 'Be brief.')
          assert.isTrue(sent.image, 'image')
          assert.deepEqual(sent.callIds, ['call_x1'])
          assert.equal(sent.result[0], 'call_x1')
          assert.include(String(sent.result[1]), 'sunny, 21C')
          assert.equal(sent.forced, 'get_weather')
        }
      })

      test(`${client} <- ${upstream}: the upstream's 400 reaches the SDK as an API error with its message`, async ({ assert }) => {
        for (const stream of [false, true]) {
          mock.script({ raw: upstreamError(upstream, 'tools[0].name: scripted invalid') })
          const error: any = await ask(client, user.key, MODELS[upstream], stream).then(
            () => null,
            (e) => e
          )
          assert.isNotNull(error, `${stream ? 'stream' : 'non-stream'}: no error`)
          assert.equal(error.status ?? error.code, 400)
          assert.include(String(error.message), 'tools[0].name: scripted invalid')
        }
      })
    }
  }

  for (const client of Object.keys(UPSTREAMS) as Client[]) {
    for (const upstream of UPSTREAMS[client]) {
      test(`${client} <- ${upstream}: an error event mid-stream fails the SDK's stream, the row says so`, async ({ assert }) => {
        mock.script({ raw: midStreamError(upstream, 'Partial answer here', 'overloaded mid-answer') })
        const outcome: any = await ask(client, user.key, MODELS[upstream], true).then(
          (answer) => ({ answer }),
          (error) => ({ error })
        )
        if (client === 'responses') {
          // The Responses stream says it with response.failed, which the SDK's finalResponse() returns
          assert.isUndefined(outcome.error, String(outcome.error))
        } else {
          assert.exists(outcome.error, `${client}: the SDK took the cut stream for a whole answer`)
          assert.include(String(outcome.error.message), 'overloaded mid-answer')
        }
        const rows = await usageRows(user.userId)
        assert.include(rows[rows.length - 1], { error_code: 'stream_interrupted' })
      })
    }
  }

  test('gemini candidateCount > 1 to another format: 400 in Google form, not one candidate passed off as all', async ({ assert }) => {
    for (const model of [MODELS.chat, MODELS.anthropic]) {
      const before = mock.requests.length
      const error: any = await genai(user.key)
        .models.generateContent({ model, contents: PROMPT, config: { candidateCount: 2 } })
        .then(
          () => null,
          (e) => e
        )
      assert.isNotNull(error, model)
      assert.equal(error.status, 400)
      assert.include(error.message, 'candidateCount')
      assert.equal(mock.requests.length, before, 'nothing sent upstream')
    }
    // Its own format carries it
    mock.script({ raw: scripted('gemini', { text: 'one', stop: 'end_turn', usage: { input: 3, output: 1 } }, false) })
    const answer = await genai(user.key).models.generateContent({ model: MODELS.gemini, contents: PROMPT, config: { candidateCount: 2 } })
    assert.equal(answer.text, 'one')
    assert.equal(JSON.parse(mock.lastRequest()!.body).generationConfig.candidateCount, 2)
  })
})

test.group('SDK translation fidelity: thinking through an Anthropic tool loop', (group) => {
  let mock: MockUpstream
  let user: SeededUser

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'claude', provider: 'anthropic', baseUrl: mock.url, models: ['claude-*'] })
    user = await seedUser()
    return () => mock.stop()
  })

  const tools = [{ type: 'function' as const, function: { name: 'get_weather', parameters: WEATHER } }]
  const call = { id: 'toolu_1', type: 'function' as const, function: { name: 'get_weather', arguments: '{"location":"Paris"}' } }

  test('a chat client thinking (reasoning_effort) in a tool loop: its unsigned reasoning cannot go back, so thinking is off for that turn', async ({ assert }) => {
    const completion = await openai(user.key).chat.completions.create({
      model: 'claude-sonnet-x',
      reasoning_effort: 'high',
      tools,
      messages: [
        { role: 'user', content: PROMPT },
        { role: 'assistant', content: null, tool_calls: [call], reasoning_content: 'I should call the tool.' } as any,
        { role: 'tool', tool_call_id: 'toolu_1', content: 'sunny' },
      ],
    })
    assert.equal(completion.choices[0].finish_reason, 'stop')
    const sent = JSON.parse(mock.lastRequest()!.body)
    assert.isUndefined(sent.thinking)
    // A new question (no tool loop open) thinks again
    await openai(user.key).chat.completions.create({ model: 'claude-sonnet-x', reasoning_effort: 'high', tools, messages: [{ role: 'user', content: PROMPT }] })
    assert.equal(JSON.parse(mock.lastRequest()!.body).thinking?.type, 'enabled')
  })

  test('a Gemini client thinking in a tool loop (thoughts not kept): answered, thinking off for that turn', async ({ assert }) => {
    const answer = await genai(user.key).models.generateContent({
      model: 'claude-sonnet-x',
      contents: [
        { role: 'user', parts: [{ text: PROMPT }] },
        { role: 'model', parts: [{ functionCall: { id: 'toolu_1', name: 'get_weather', args: { location: 'Paris' } } }] },
        { role: 'user', parts: [{ functionResponse: { id: 'toolu_1', name: 'get_weather', response: { result: 'sunny' } } }] },
      ],
      config: { thinkingConfig: { includeThoughts: true, thinkingBudget: 4096 }, tools: [{ functionDeclarations: [{ name: 'get_weather', parametersJsonSchema: WEATHER }] }] },
    })
    assert.isString(answer.text)
    assert.isUndefined(JSON.parse(mock.lastRequest()!.body).thinking)
  })

  test('signed thinking sent back (Responses encrypted_content from an Anthropic answer) keeps thinking on', async ({ assert }) => {
    const response = await openai(user.key).responses.create({
      model: 'claude-sonnet-x',
      reasoning: { effort: 'high' },
      tools: [{ type: 'function', name: 'get_weather', parameters: WEATHER, strict: false }],
      input: [
        { role: 'user', content: PROMPT },
        { type: 'reasoning', id: 'rs_1', summary: [{ type: 'summary_text', text: 'Call the tool.' }], encrypted_content: 'sig-anthropic' },
        { type: 'function_call', call_id: 'toolu_1', name: 'get_weather', arguments: '{"location":"Paris"}' },
        { type: 'function_call_output', call_id: 'toolu_1', output: 'sunny' },
      ] as any,
    })
    assert.equal(response.status, 'completed')
    const sent = JSON.parse(mock.lastRequest()!.body)
    assert.equal(sent.thinking?.type, 'enabled')
    assert.equal(sent.messages[1].content[0].type, 'thinking')
    assert.equal(sent.messages[1].content[0].signature, 'sig-anthropic')
  })
})
