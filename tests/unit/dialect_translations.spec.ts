import { test } from '@japa/runner'
import { ResponseCollector, type CanonicalEvent, type CanonicalResponse, type DialectName } from '#gateway/dialects/canonical'
import { dialectOf } from '#gateway/dialects/registry'
import { parseSse } from '#tests/clients'

/**
 * Translations between dialects, one codec call at a time: what an upstream's
 * answer becomes for each client format, and what a client's request becomes
 * for each upstream. Streams are fed as the upstream's SSE data payloads.
 */
const gemini = dialectOf('gemini')

/** A canonical stream decoded from the upstream's data payloads (objects, serialised here). */
function decodeStream(dialect: DialectName, chunks: unknown[]): CanonicalEvent[] {
  const decoder = dialectOf(dialect).streamDecoder()
  return [...chunks.flatMap((c) => decoder.push({ data: typeof c === 'string' ? c : JSON.stringify(c) })), ...decoder.end()]
}

/** A canonical stream collected into a response (no stopSequence key unless one was told, as decodeResponse gives it). */
function collect(events: CanonicalEvent[]): CanonicalResponse {
  const collector = new ResponseCollector()
  for (const event of events) collector.push(event)
  const { stopSequence, ...response } = collector.response()
  return stopSequence === undefined ? response : { ...response, stopSequence }
}

/** Canonical events written by a client dialect's stream encoder, read back as SSE events. */
function encodeStream(dialect: DialectName, events: CanonicalEvent[]) {
  const encoder = dialectOf(dialect).streamEncoder({ model: 'client-model', includeUsage: true })
  return parseSse(events.map((e) => encoder.push(e)).join('') + encoder.end())
}

const MINTED_ID = /^call_[\w-]{24}$/
const callIds = (response: CanonicalResponse) => response.content.flatMap((p) => (p.type === 'tool_call' ? [p.id] : []))

/** A Gemini answer calling these functions (no ids, as Gemini's API sends them). */
const geminiCalls = (...names: string[]) => ({
  candidates: [{ content: { role: 'model', parts: names.map((name) => ({ functionCall: { name, args: { file_path: `/${name}` } } })) }, finishReason: 'STOP', index: 0 }],
  usageMetadata: { promptTokenCount: 10, candidatesTokenCount: 2, totalTokenCount: 12 },
  modelVersion: 'gemini-2.5-pro',
  responseId: 'gem_1',
})

test.group('Gemini function calls get ids unique per call', () => {
  test('two answers calling the same function, and parallel calls of one function, never share an id', ({ assert }) => {
    const ids = [
      ...callIds(gemini.decodeResponse(geminiCalls('Read'))),
      ...callIds(gemini.decodeResponse(geminiCalls('Read', 'Read'))),
      ...callIds(collect(decodeStream('gemini', [geminiCalls('Read')]))),
      ...callIds(collect(decodeStream('gemini', [geminiCalls('Read', 'Read')]))),
    ]
    assert.lengthOf(ids, 6)
    for (const id of ids) assert.match(id, MINTED_ID)
    assert.equal(new Set(ids).size, 6)
  })

  test('an id Gemini gives is kept', ({ assert }) => {
    const body = geminiCalls('Read')
    ;(body.candidates[0].content.parts[0].functionCall as any).id = 'fc_given'
    assert.deepEqual(callIds(gemini.decodeResponse(body)), ['fc_given'])
    assert.deepEqual(callIds(collect(decodeStream('gemini', [body]))), ['fc_given'])
  })

  test('an Anthropic history of two Gemini turns goes back to Gemini with each response named after its call', ({ assert }) => {
    const first = gemini.decodeResponse(geminiCalls('Read'))
    const second = collect(decodeStream('gemini', [geminiCalls('Read', 'Glob')]))
    const history = [first, second].flatMap((answer) => {
      const anthropic = dialectOf('anthropic_messages').encodeResponse(answer, 'claude-sonnet-4-5') as any
      const uses = anthropic.content.filter((b: any) => b.type === 'tool_use')
      return [
        { role: 'assistant', content: uses },
        { role: 'user', content: uses.map((u: any) => ({ type: 'tool_result', tool_use_id: u.id, content: `${u.name} done` })) },
      ]
    })
    const ids = history.filter((m) => m.role === 'assistant').flatMap((m) => m.content.map((b: any) => b.id))
    assert.equal(new Set(ids).size, 3)
    const request = dialectOf('anthropic_messages').decodeRequest({
      model: 'gemini-2.5-pro',
      max_tokens: 100,
      messages: [{ role: 'user', content: 'Read both' }, ...history],
    })
    const sent = gemini.encodeRequest(request, 'gemini-2.5-pro') as any
    const responses = sent.contents.flatMap((c: any) => c.parts).filter((p: any) => p.functionResponse).map((p: any) => p.functionResponse)
    assert.deepEqual(
      responses.map((r: any) => [r.id, r.name, r.response]),
      [
        [ids[0], 'Read', { result: 'Read done' }],
        [ids[1], 'Read', { result: 'Read done' }],
        [ids[2], 'Glob', { result: 'Glob done' }],
      ]
    )
  })

  test('a Gemini client history without ids: parallel calls of one function pair with their responses in order, the same ids every time', ({ assert }) => {
    const body = {
      contents: [
        { role: 'user', parts: [{ text: 'Read a and b' }] },
        { role: 'model', parts: [{ functionCall: { name: 'Read', args: { f: 'a' } } }, { functionCall: { name: 'Read', args: { f: 'b' } } }] },
        { role: 'user', parts: [{ functionResponse: { name: 'Read', response: { r: 'A' } } }, { functionResponse: { name: 'Read', response: { r: 'B' } } }] },
        { role: 'model', parts: [{ functionCall: { name: 'Read', args: { f: 'c' } } }] },
        { role: 'user', parts: [{ functionResponse: { name: 'Read', response: { r: 'C' } } }] },
      ],
    }
    const decode = () => {
      const request = gemini.decodeRequest(body)
      const parts = request.messages.flatMap((m) => m.content)
      return {
        calls: parts.flatMap((p) => (p.type === 'tool_call' ? [[p.id, p.arguments]] : [])),
        results: parts.flatMap((p) => (p.type === 'tool_result' ? [[p.toolCallId, p.content]] : [])),
      }
    }
    const { calls, results } = decode()
    assert.equal(new Set(calls.map(([id]) => id)).size, 3)
    assert.deepEqual(
      results,
      calls.map(([id], i) => [id, JSON.stringify({ r: 'ABC'[i] })])
    )
    // The upstream's prompt cache sees the same bytes for the same history.
    assert.deepEqual(decode(), { calls, results })
  })
})

test.group('A Gemini refusal reads the same streamed and not', () => {
  const blocked = {
    promptFeedback: { blockReason: 'PROHIBITED_CONTENT' },
    usageMetadata: { promptTokenCount: 7, totalTokenCount: 7 },
    modelVersion: 'gemini-2.5-pro',
    responseId: 'gem_blocked',
  }

  test('a blocked prompt streamed: content_filter, as the non-stream answer says it, for every client', ({ assert }) => {
    const events = decodeStream('gemini', [blocked])
    assert.deepEqual(collect(events), gemini.decodeResponse(blocked))
    assert.equal(gemini.decodeResponse(blocked).stopReason, 'content_filter')
    assert.deepInclude(events, { type: 'stop', reason: 'content_filter' })

    const chat = encodeStream('openai_chat', events).filter((e) => e.data !== '[DONE]')
    assert.deepEqual(chat.flatMap((e) => e.data.choices.map((c: any) => c.finish_reason)).filter(Boolean), ['content_filter'])
    assert.equal(chat.map((e) => e.data.choices[0]?.delta?.content ?? '').join(''), '')
    assert.include(chat.at(-1)!.data.usage, { prompt_tokens: 7 })

    const messages = encodeStream('anthropic_messages', events)
    assert.equal(messages.find((e) => e.event === 'message_delta')!.data.delta.stop_reason, 'refusal')
    const responses = encodeStream('openai_responses', events)
    assert.deepInclude(responses.at(-1)!.data.response, { status: 'incomplete', incomplete_details: { reason: 'content_filter' } })
  })

  test('the pass-through relay reads a blocked stream chunk usage', ({ assert }) => {
    const rules = gemini.passThrough
    const event = { data: JSON.stringify(blocked) }
    assert.isTrue(rules.carriesUsage(event))
    assert.include(rules.readUsage(blocked, null), { inputTokens: 7, outputTokens: 0 })
  })

  for (const reason of ['SAFETY', 'PROHIBITED_CONTENT', 'BLOCKLIST', 'SPII', 'RECITATION']) {
    test(`finishReason ${reason}: the stream ends as the non-stream answer does, content_filter`, ({ assert }) => {
      const chunk = (parts: any[], finishReason?: string) => ({
        candidates: [{ content: { role: 'model', parts }, index: 0, ...(finishReason ? { finishReason } : {}) }],
        modelVersion: 'gemini-2.5-pro',
        responseId: 'gem_cut',
      })
      const whole = gemini.decodeResponse(chunk([{ text: 'Once upon' }], reason))
      const streamed = decodeStream('gemini', [chunk([{ text: 'Once ' }]), chunk([{ text: 'upon' }]), chunk([], reason)])
      assert.deepEqual(collect(streamed), whole)
      assert.equal(whole.stopReason, 'content_filter')
      const chat = encodeStream('openai_chat', streamed).filter((e) => e.data !== '[DONE]')
      assert.deepEqual(chat.flatMap((e) => e.data.choices.map((c: any) => c.finish_reason)).filter(Boolean), ['content_filter'])
      assert.equal(chat.map((e) => e.data.choices[0]?.delta?.content ?? '').join(''), 'Once upon')
    })
  }
})

test.group('A chat upstream refusal reaches every client as a refusal', () => {
  const REFUSAL = "I'm sorry, I can't help with that."
  const completion = {
    id: 'chatcmpl-r1',
    object: 'chat.completion',
    created: 1,
    model: 'gpt-4o',
    choices: [{ index: 0, message: { role: 'assistant', content: null, refusal: REFUSAL }, logprobs: null, finish_reason: 'stop' }],
    usage: { prompt_tokens: 9, completion_tokens: 8, total_tokens: 17 },
  }
  const chunk = (delta: Record<string, unknown>, finish: string | null = null) => ({
    id: 'chatcmpl-r1',
    object: 'chat.completion.chunk',
    created: 1,
    model: 'gpt-4o',
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
  })
  const chunks = [
    chunk({ role: 'assistant', content: null, refusal: '' }),
    ...REFUSAL.split(/(?<= )/).map((piece) => chunk({ refusal: piece })),
    chunk({}, 'stop'),
    { ...chunk({}), choices: [], usage: completion.usage },
    '[DONE]',
  ]

  test('decoded: the refusal text, marked, and stop reason refusal; streamed the same', ({ assert }) => {
    const chat = dialectOf('openai_chat')
    const decoded = chat.decodeResponse(completion)
    assert.deepEqual(decoded.content, [{ type: 'text', text: REFUSAL, refusal: true }])
    assert.equal(decoded.stopReason, 'refusal')
    assert.deepEqual(collect(decodeStream('openai_chat', chunks)), decoded)
    // Plain text with finish "stop" is still an ordinary end
    assert.equal(chat.decodeResponse({ ...completion, choices: [{ ...completion.choices[0], message: { role: 'assistant', content: 'ok' } }] }).stopReason, 'end_turn')
  })

  test('an Anthropic client: a text block with the refusal, stop_reason "refusal"', ({ assert }) => {
    const decoded = dialectOf('openai_chat').decodeResponse(completion)
    const message = dialectOf('anthropic_messages').encodeResponse(decoded, 'claude-x') as any
    assert.deepEqual(message.content, [{ type: 'text', text: REFUSAL }])
    assert.equal(message.stop_reason, 'refusal')

    const events = encodeStream('anthropic_messages', decodeStream('openai_chat', chunks))
    const text = events.filter((e) => e.event === 'content_block_delta').map((e) => e.data.delta.text).join('')
    assert.equal(text, REFUSAL)
    assert.deepEqual(events.find((e) => e.event === 'content_block_start')!.data.content_block, { type: 'text', text: '' })
    assert.equal(events.find((e) => e.event === 'message_delta')!.data.delta.stop_reason, 'refusal')
  })

  test("a Responses client: a message item whose content is OpenAI's refusal part, streamed with refusal events", ({ assert }) => {
    const decoded = dialectOf('openai_chat').decodeResponse(completion)
    const response = dialectOf('openai_responses').encodeResponse(decoded, 'gpt-x') as any
    assert.equal(response.status, 'completed')
    assert.lengthOf(response.output, 1)
    assert.deepInclude(response.output[0], { type: 'message', role: 'assistant', status: 'completed', content: [{ type: 'refusal', refusal: REFUSAL }] })

    const events = encodeStream('openai_responses', decodeStream('openai_chat', chunks)).map((e) => e.data)
    const types = events.map((e) => e.type)
    assert.deepEqual(types.filter((t) => !t.startsWith('response.refusal.delta')), [
      'response.created',
      'response.in_progress',
      'response.output_item.added',
      'response.content_part.added',
      'response.refusal.done',
      'response.content_part.done',
      'response.output_item.done',
      'response.completed',
    ])
    assert.deepEqual(events.find((e) => e.type === 'response.content_part.added').part, { type: 'refusal', refusal: '' })
    assert.equal(events.filter((e) => e.type === 'response.refusal.delta').map((e) => e.delta).join(''), REFUSAL)
    assert.include(events.find((e) => e.type === 'response.refusal.done'), { refusal: REFUSAL, content_index: 0 })
    const completed = events.at(-1).response
    assert.equal(completed.status, 'completed')
    assert.deepEqual(completed.output.map((i: any) => i.content), [[{ type: 'refusal', refusal: REFUSAL }]])
  })

  test('a Gemini client: the refusal as text, finishReason SAFETY', ({ assert }) => {
    const decoded = dialectOf('openai_chat').decodeResponse(completion)
    const answer = gemini.encodeResponse(decoded, 'gemini-x') as any
    assert.deepEqual(answer.candidates[0].content.parts, [{ text: REFUSAL }])
    assert.equal(answer.candidates[0].finishReason, 'SAFETY')

    const chunksOut = encodeStream('gemini', decodeStream('openai_chat', chunks)).map((e) => e.data)
    assert.equal(chunksOut.map((c) => c.candidates[0].content.parts.map((p: any) => p.text).join('')).join(''), REFUSAL)
    assert.equal(chunksOut.at(-1).candidates[0].finishReason, 'SAFETY')
  })

  test('text, then a refusal: two blocks, each its own kind', ({ assert }) => {
    const events = decodeStream('openai_chat', [chunk({ content: 'Well. ' }), chunk({ refusal: 'No.' }), chunk({}, 'stop')])
    assert.deepEqual(collect(events).content, [{ type: 'text', text: 'Well. ' }, { type: 'text', text: 'No.', refusal: true }])
    const output = (encodeStream('openai_responses', events).at(-1)!.data as any).response.output
    assert.deepEqual(output.map((i: any) => i.content[0].type), ['output_text', 'refusal'])
  })
})

test.group('A chat image URL sent to Gemini says its type', () => {
  const fileDataOf = (url: string) => {
    const request = dialectOf('openai_chat').decodeRequest({
      model: 'gemini-2.5-flash',
      messages: [{ role: 'user', content: [{ type: 'text', text: 'What is this?' }, { type: 'image_url', image_url: { url } }] }],
    })
    const sent = gemini.encodeRequest(request, 'gemini-2.5-flash') as any
    return sent.contents[0].parts[1].fileData
  }

  test('from the extension of the path', ({ assert }) => {
    const cases: Array<[string, string]> = [
      ['https://example.com/cat.jpg', 'image/jpeg'],
      ['https://example.com/cat.JPEG', 'image/jpeg'],
      ['https://example.com/a/b/cat.png', 'image/png'],
      ['https://example.com/cat.gif', 'image/gif'],
      ['https://example.com/cat.webp', 'image/webp'],
      ['https://example.com/cat.heic', 'image/heic'],
      ['https://example.com/cat.heif', 'image/heif'],
      ['https://cdn.example.com/cat.webp?sig=abc.png&x=1#frag.gif', 'image/webp'],
      ['gs://bucket/photos/cat.png', 'image/png'],
    ]
    for (const [url, type] of cases) assert.deepEqual(fileDataOf(url), { mimeType: type, fileUri: url }, url)
  })

  test('JPEG when the URL tells nothing', ({ assert }) => {
    for (const url of ['https://example.com/render?id=7', 'https://example.com/cat', 'https://example.com/file.bin', 'not a url']) {
      assert.equal(fileDataOf(url).mimeType, 'image/jpeg', url)
    }
  })

  test('a type the client gave wins; data URLs keep theirs', ({ assert }) => {
    const request = dialectOf('anthropic_messages').decodeRequest({
      model: 'gemini-2.5-flash',
      max_tokens: 10,
      messages: [{ role: 'user', content: [{ type: 'image', source: { type: 'base64', media_type: 'image/webp', data: 'AAAA' } }] }],
    })
    assert.deepEqual((gemini.encodeRequest(request, 'gemini-2.5-flash') as any).contents[0].parts[0], { inlineData: { mimeType: 'image/webp', data: 'AAAA' } })
    request.messages[0].content = [{ type: 'image', url: 'https://example.com/cat.jpg', mediaType: 'image/png' }]
    assert.equal((gemini.encodeRequest(request, 'gemini-2.5-flash') as any).contents[0].parts[0].fileData.mimeType, 'image/png')
  })
})

test.group('Gemini schemas reach other vendors as JSON Schema', () => {
  // Gemini's OpenAPI dialect: capital types, nullable, propertyOrdering (at every level)
  const geminiSchema = {
    type: 'OBJECT',
    properties: {
      path: { type: 'STRING', description: 'File path' },
      limit: { type: 'INTEGER', nullable: true },
      mode: { type: 'STRING', enum: ['read', 'write'], nullable: true },
      tags: { type: 'ARRAY', items: { type: 'STRING', nullable: true }, nullable: false },
      range: {
        type: 'OBJECT',
        nullable: true,
        properties: { start: { type: 'NUMBER' }, end: { type: 'NUMBER', nullable: true } },
        propertyOrdering: ['start', 'end'],
      },
      either: { anyOf: [{ type: 'STRING' }, { type: 'NUMBER' }], nullable: true },
      // Properties that happen to be named like Gemini's keywords stay properties
      nullable: { type: 'BOOLEAN' },
      propertyOrdering: { type: 'STRING', default: 'nullable' },
      type: { type: 'STRING', example: { nullable: true } },
    },
    required: ['path'],
    propertyOrdering: ['path', 'limit', 'mode', 'tags', 'range', 'either', 'nullable', 'propertyOrdering', 'type'],
  }
  const jsonSchema = {
    type: 'object',
    properties: {
      path: { type: 'string', description: 'File path' },
      limit: { type: ['integer', 'null'] },
      mode: { type: ['string', 'null'], enum: ['read', 'write', null] },
      tags: { type: 'array', items: { type: ['string', 'null'] } },
      range: {
        type: ['object', 'null'],
        properties: { start: { type: 'number' }, end: { type: ['number', 'null'] } },
      },
      either: { anyOf: [{ type: 'string' }, { type: 'number' }, { type: 'null' }] },
      nullable: { type: 'boolean' },
      propertyOrdering: { type: 'string', default: 'nullable' },
      type: { type: 'string', example: { nullable: true } },
    },
    required: ['path'],
  }

  test('tool parameters: nullable becomes a null type, propertyOrdering goes, at every depth', ({ assert }) => {
    for (const declaration of [{ parameters: geminiSchema }, { parametersJsonSchema: geminiSchema }]) {
      const request = gemini.decodeRequest({
        contents: [{ role: 'user', parts: [{ text: 'Read' }] }],
        tools: [{ functionDeclarations: [{ name: 'Read', description: 'Read a file', ...declaration }] }],
      })
      assert.deepEqual(request.tools[0].parameters, jsonSchema)
      const chat = dialectOf('openai_chat').encodeRequest(request, 'gpt-4o') as any
      assert.deepEqual(chat.tools[0].function.parameters, jsonSchema)
      const messages = dialectOf('anthropic_messages').encodeRequest(request, 'claude-sonnet-4-5') as any
      assert.deepEqual(messages.tools[0].input_schema, jsonSchema)
      assert.notInclude(JSON.stringify(chat.tools), 'propertyOrdering":[')
    }
  })

  test('response schema: the same for structured output', ({ assert }) => {
    const request = gemini.decodeRequest({
      contents: [{ role: 'user', parts: [{ text: 'Plan' }] }],
      generationConfig: { responseMimeType: 'application/json', responseSchema: geminiSchema },
    })
    assert.deepEqual(request.responseFormat, { type: 'json_schema', name: 'response', schema: jsonSchema })
  })

  test('a nullable schema with no type of its own: null as an alternative', ({ assert }) => {
    const request = gemini.decodeRequest({
      contents: [{ role: 'user', parts: [{ text: 'x' }] }],
      tools: [
        {
          functionDeclarations: [
            {
              name: 'f',
              parametersJsonSchema: {
                type: 'object',
                properties: { a: { $ref: '#/$defs/A', nullable: true }, b: { description: 'anything', nullable: true } },
                $defs: { A: { type: 'STRING', nullable: true } },
              },
            },
          ],
        },
      ],
    })
    assert.deepEqual(request.tools[0].parameters, {
      type: 'object',
      properties: { a: { anyOf: [{ $ref: '#/$defs/A' }, { type: 'null' }] }, b: { description: 'anything' } },
      $defs: { A: { type: ['string', 'null'] } },
    })
  })
})

test.group('Chat tool calls that come without an id', () => {
  test('get one unique per call, streamed and not, across answers', ({ assert }) => {
    const chat = dialectOf('openai_chat')
    const call = (index: number) => ({ index, type: 'function', function: { name: 'Read', arguments: '{}' } })
    const stream = () => [{ id: 'c', model: 'm', choices: [{ index: 0, delta: { tool_calls: [call(0), call(1)] }, finish_reason: 'tool_calls' }] }]
    const whole = () => ({
      id: 'c',
      model: 'm',
      choices: [{ index: 0, message: { role: 'assistant', content: null, tool_calls: [call(0), call(1)] }, finish_reason: 'tool_calls' }],
    })
    const ids = [
      ...callIds(collect(decodeStream('openai_chat', stream()))),
      ...callIds(collect(decodeStream('openai_chat', stream()))),
      ...callIds(chat.decodeResponse(whole())),
      ...callIds(chat.decodeResponse(whole())),
    ]
    assert.lengthOf(ids, 8)
    for (const id of ids) assert.match(id, MINTED_ID)
    assert.equal(new Set(ids).size, 8)
  })
})
