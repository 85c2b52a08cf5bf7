import { test } from '@japa/runner'
import { setPrice } from '#actions/set_price'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { post, refreshCaches, resetDatabase, seedChannel, seedUser, startMock } from '#tests/helpers'

/**
 * Web citations on every wire: a Gemini answer's Google Search grounding
 * (groundingChunks / groundingSupports) and a chat upstream's url_citation
 * annotations reach chat, Responses and Anthropic clients, whole and
 * streamed (tests/fixtures/mock_upstream/gemini.ts grounds an answer asked
 * with googleSearch; OpenRouter's cited answers are scripted byte for byte).
 */

const ask = [{ role: 'user', content: 'what is new?' }]
const MOCK = 'https://example.com/mock'
const SECOND = 'https://example.org/second'
// 'Café' (4 UTF-16 units, 5 bytes) and 'olé' (3 units, 4 bytes): Google's byte offsets become UTF-16 ones
const TEXT = 'Café olé done'

function sseEvents(text: string): any[] {
  return text
    .split('\n')
    .filter((line) => line.startsWith('data: {'))
    .map((line) => JSON.parse(line.slice(6)))
}

test.group('Web citations as annotations on every wire', (group) => {
  let mock: MockUpstream
  let key: string

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'cite-google', provider: 'google', baseUrl: mock.url, models: ['cite-gemini-*'] })
    await seedChannel({ name: 'cite-router', provider: 'openrouter', baseUrl: mock.url, models: ['cite-or/*'] })
    for (const model of ['cite-gemini-*', 'cite-or/*']) await setPrice({ model, input: '0', output: '0', perWebSearch: '0' })
    await refreshCaches()
    key = (await seedUser({ balance: '1' })).key
    return () => mock.stop()
  })

  const bearer = () => ({ authorization: `Bearer ${key}` })
  const anthropicHeaders = () => ({ 'x-api-key': key, 'anthropic-version': '2023-06-01' })

  test('Gemini grounding -> chat: url_citation annotations over each segment (bytes -> UTF-16); streamed, each page over the block', async ({ assert }) => {
    mock.script({ text: TEXT })
    let response = await post('/v1/chat/completions', { model: 'cite-gemini-2.5-flash:online', messages: ask }, bearer())
    assert.equal(response.status, 200)
    const message = ((await response.json()) as any).choices[0].message
    assert.equal(message.content, TEXT)
    const at = (url: string, title: string, start: number, end: number) => ({ type: 'url_citation', url_citation: { url, title, start_index: start, end_index: end } })
    assert.deepEqual(message.annotations, [at(MOCK, 'example.com', 0, 4), at(MOCK, 'example.com', 5, 8), at(SECOND, 'example.org', 5, 8)])
    assert.equal(TEXT.slice(5, 8), 'olé')

    mock.script({ text: TEXT })
    response = await post('/v1/chat/completions', { model: 'cite-gemini-2.5-flash:online', stream: true, messages: ask }, bearer())
    const chunks = sseEvents(await response.text())
    const content = chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('')
    assert.equal(content, TEXT)
    const annotated = chunks.filter((c) => c.choices[0]?.delta?.annotations)
    assert.lengthOf(annotated, 1)
    assert.deepEqual(annotated[0].choices[0].delta.annotations, [at(MOCK, 'example.com', 0, TEXT.length), at(SECOND, 'example.org', 0, TEXT.length)])
  })

  test('Gemini grounding -> Responses: output_text.annotations whole; annotation.added events streamed, then in the .done events', async ({ assert }) => {
    mock.script({ text: TEXT })
    let response = await post('/v1/responses', { model: 'cite-gemini-2.5-flash:online', input: 'what is new?' }, bearer())
    assert.equal(response.status, 200)
    const body = (await response.json()) as any
    const part = body.output.find((item: any) => item.type === 'message').content[0]
    assert.equal(part.text, TEXT)
    const at = (url: string, title: string, start: number, end: number) => ({ type: 'url_citation', url, title, start_index: start, end_index: end })
    assert.deepEqual(part.annotations, [at(MOCK, 'example.com', 0, 4), at(MOCK, 'example.com', 5, 8), at(SECOND, 'example.org', 5, 8)])

    mock.script({ text: TEXT })
    response = await post('/v1/responses', { model: 'cite-gemini-2.5-flash:online', input: 'what is new?', stream: true }, bearer())
    const events = sseEvents(await response.text())
    const added = events.filter((e) => e.type === 'response.output_text.annotation.added')
    const whole = [at(MOCK, 'example.com', 0, TEXT.length), at(SECOND, 'example.org', 0, TEXT.length)]
    assert.deepEqual(
      added.map((e) => [e.annotation_index, e.content_index, e.annotation]),
      whole.map((a, i) => [i, 0, a])
    )
    const done = events.find((e) => e.type === 'response.output_text.done')
    const lastDelta = events.findLastIndex((e) => e.type === 'response.output_text.delta')
    assert.isAbove(events.indexOf(added[0]), lastDelta)
    assert.isBelow(events.indexOf(added[1]), events.indexOf(done))
    assert.equal(added[0].item_id, done.item_id)
    assert.deepEqual(events.find((e) => e.type === 'response.content_part.done').part.annotations, whole)
    assert.deepEqual(events.find((e) => e.type === 'response.completed').response.output.find((i: any) => i.type === 'message').content[0].annotations, whole)
  })

  test('Gemini grounding -> Anthropic: text blocks cut at the segments with web_search_result_location citations; streamed, citations_delta', async ({ assert }) => {
    mock.script({ text: TEXT })
    let response = await post('/v1/messages', { model: 'cite-gemini-2.5-flash:online', max_tokens: 64, messages: ask }, anthropicHeaders())
    assert.equal(response.status, 200)
    const body = (await response.json()) as any
    const cite = (url: string, title: string) => ({ type: 'web_search_result_location', url, title, encrypted_index: '', cited_text: '' })
    assert.deepEqual(body.content, [
      { type: 'text', text: 'Café', citations: [cite(MOCK, 'example.com')] },
      { type: 'text', text: ' ' },
      { type: 'text', text: 'olé', citations: [cite(MOCK, 'example.com'), cite(SECOND, 'example.org')] },
      { type: 'text', text: ' done' },
    ])

    mock.script({ text: TEXT })
    response = await post('/v1/messages', { model: 'cite-gemini-2.5-flash:online', max_tokens: 64, stream: true, messages: ask }, anthropicHeaders())
    const events = sseEvents(await response.text())
    const citations = events.filter((e) => e.type === 'content_block_delta' && e.delta.type === 'citations_delta')
    assert.deepEqual(
      citations.map((e) => [e.index, e.delta.citation]),
      [
        [0, cite(MOCK, 'example.com')],
        [0, cite(SECOND, 'example.org')],
      ]
    )
    const stop = events.findIndex((e) => e.type === 'content_block_stop' && e.index === 0)
    assert.isBelow(events.indexOf(citations[1]), stop)
  })

  test("an OpenRouter answer's url_citation annotations -> Responses and Anthropic clients, whole and streamed, with their spans", async ({ assert }) => {
    // OpenRouter's web plugin answer: one page cited over 'Cited words.' ([7, 19) of the content), with the page's words
    const text = 'Intro. Cited words.'
    const annotation = { type: 'url_citation', url_citation: { url: MOCK, title: 'example.com', content: 'the page says', start_index: 7, end_index: 19 } }
    const base = { id: 'gen-cite', object: 'chat.completion.chunk', created: 1, model: 'cite-or/model' }
    const chunk = (delta: any, finish: string | null = null) => `data: ${JSON.stringify({ ...base, choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`
    const usage = { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 }
    const whole = { status: 200, body: JSON.stringify({ ...base, object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content: text, annotations: [annotation] }, finish_reason: 'stop' }], usage }) }
    const streamed = {
      status: 200,
      headers: { 'content-type': 'text/event-stream' },
      chunks: [chunk({ role: 'assistant', content: '' }), chunk({ content: 'Intro. ' }), chunk({ content: 'Cited words.' }), chunk({ annotations: [annotation] }), chunk({}, 'stop'), `data: ${JSON.stringify({ ...base, choices: [], usage })}\n\n`, 'data: [DONE]\n\n'],
    }
    const model = 'cite-or/model:online'
    const cited = { type: 'url_citation', url: MOCK, title: 'example.com', start_index: 7, end_index: 19 }
    mock.script({ raw: whole })
    let body = (await (await post('/v1/responses', { model, input: 'what is new?' }, bearer())).json()) as any
    assert.deepEqual(body.output.find((item: any) => item.type === 'message').content[0], { type: 'output_text', text, annotations: [cited] })
    mock.script({ raw: streamed })
    let events = sseEvents(await (await post('/v1/responses', { model, input: 'what is new?', stream: true }, bearer())).text())
    assert.deepEqual(events.filter((e) => e.type === 'response.output_text.annotation.added').map((e) => e.annotation), [cited])

    const cite = { type: 'web_search_result_location', url: MOCK, title: 'example.com', encrypted_index: '', cited_text: 'the page says' }
    mock.script({ raw: whole })
    body = (await (await post('/v1/messages', { model, max_tokens: 64, messages: ask }, anthropicHeaders())).json()) as any
    assert.deepEqual(body.content, [
      { type: 'text', text: 'Intro. ' },
      { type: 'text', text: 'Cited words.', citations: [cite] },
    ])
    mock.script({ raw: streamed })
    events = sseEvents(await (await post('/v1/messages', { model, max_tokens: 64, stream: true, messages: ask }, anthropicHeaders())).text())
    assert.deepEqual(events.filter((e) => e.delta?.type === 'citations_delta').map((e) => e.delta.citation), [cite])
  })

  test('an answer without citations carries none (no annotations, no citations)', async ({ assert }) => {
    const chat = (await (await post('/v1/chat/completions', { model: 'cite-gemini-2.5-flash', messages: ask }, bearer())).json()) as any
    assert.notProperty(chat.choices[0].message, 'annotations')
    const responses = (await (await post('/v1/responses', { model: 'cite-gemini-2.5-flash', input: 'hi' }, bearer())).json()) as any
    assert.deepEqual(responses.output.find((item: any) => item.type === 'message').content[0].annotations, [])
    const anthropic = (await (await post('/v1/messages', { model: 'cite-gemini-2.5-flash', max_tokens: 64, messages: ask }, anthropicHeaders())).json()) as any
    assert.notProperty(anthropic.content[0], 'citations')
  })
})

/**
 * The other directions: a Gemini client answered by another wire gets
 * `groundingMetadata` (byte offsets checked on non-ASCII text, an astral
 * character inside a span), and a history holding the citations the gateway
 * wrote for an Anthropic client (empty encrypted_index) goes to an Anthropic
 * channel without them.
 */
test.group('Web citations to a Gemini client, and back to Anthropic', (group) => {
  let mock: MockUpstream
  let key: string

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'ground-chat', provider: 'custom', baseUrl: mock.url, models: ['ground-chat-*'] })
    await seedChannel({ name: 'ground-claude', provider: 'anthropic', baseUrl: mock.url, models: ['ground-claude-*'] })
    for (const model of ['ground-chat-*', 'ground-claude-*']) await setPrice({ model, input: '0', output: '0', perWebSearch: '0' })
    await refreshCaches()
    key = (await seedUser({ balance: '1' })).key
    return () => mock.stop()
  })

  const google = () => ({ 'x-goog-api-key': key })
  const contents = [{ role: 'user', parts: [{ text: 'what is new?' }] }]
  const bytes = (text: string) => Buffer.byteLength(text)
  /** The bytes a segment names, read as Google's clients read them: from the answer's UTF-8 text */
  const segmentText = (text: string, segment: any) => Buffer.from(text).subarray(segment.startIndex, segment.endIndex).toString()

  test("a chat upstream's url_citation annotations -> groundingMetadata: chunks by URL, supports over each span in bytes; streamed, on the final chunk", async ({ assert }) => {
    const text = 'Intro é. Cité 😀 ok.'
    const at = (url: string, title: string, start: number, end: number) => ({ type: 'url_citation', url_citation: { url, title, start_index: start, end_index: end } })
    // Two pages over the second sentence, the first page again over the first
    const annotations = [at(MOCK, 'example.com', 9, text.length), at(SECOND, 'example.org', 9, text.length), at(MOCK, 'example.com', 0, 8)]
    const base = { id: 'chatcmpl-ground', object: 'chat.completion.chunk', created: 1, model: 'ground-chat-1' }
    const usage = { prompt_tokens: 3, completion_tokens: 6, total_tokens: 9 }
    mock.script({ raw: { status: 200, body: JSON.stringify({ ...base, object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content: text, annotations }, finish_reason: 'stop' }], usage }) } })
    let response = await post('/v1beta/models/ground-chat-1:generateContent', { contents }, google())
    assert.equal(response.status, 200)
    const candidate = ((await response.json()) as any).candidates[0]
    assert.deepEqual(candidate.content.parts, [{ text }])
    const chunks = [{ web: { uri: MOCK, title: 'example.com' } }, { web: { uri: SECOND, title: 'example.org' } }]
    assert.deepEqual(candidate.groundingMetadata, {
      groundingChunks: chunks,
      groundingSupports: [
        { segment: { partIndex: 0, startIndex: bytes('Intro é. '), endIndex: bytes(text), text: 'Cité 😀 ok.' }, groundingChunkIndices: [0, 1] },
        { segment: { partIndex: 0, startIndex: 0, endIndex: bytes('Intro é.'), text: 'Intro é.' }, groundingChunkIndices: [0] },
      ],
    })
    for (const support of candidate.groundingMetadata.groundingSupports) assert.equal(segmentText(text, support.segment), support.segment.text)

    const chunk = (delta: any, finish: string | null = null) => `data: ${JSON.stringify({ ...base, choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`
    const stream = [chunk({ role: 'assistant', content: '' }), chunk({ content: 'Intro é. ' }), chunk({ content: 'Cité 😀 ok.' }), chunk({ annotations }), chunk({}, 'stop'), `data: ${JSON.stringify({ ...base, choices: [], usage })}\n\n`, 'data: [DONE]\n\n']
    mock.script({ raw: { status: 200, headers: { 'content-type': 'text/event-stream' }, chunks: stream } })
    response = await post('/v1beta/models/ground-chat-1:streamGenerateContent?alt=sse', { contents }, google())
    const events = sseEvents(await response.text())
    assert.equal(events.map((e) => e.candidates[0].content.parts.map((p: any) => p.text).join('')).join(''), text)
    const grounded = events.filter((e) => e.candidates[0].groundingMetadata)
    assert.lengthOf(grounded, 1)
    assert.strictEqual(grounded[0], events.at(-1))
    assert.equal(grounded[0].candidates[0].finishReason, 'STOP')
    // The stream keeps no text: the cited block is one segment, the whole streamed text's bytes
    assert.deepEqual(grounded[0].candidates[0].groundingMetadata, {
      groundingChunks: chunks,
      groundingSupports: [{ segment: { startIndex: 0, endIndex: bytes(text) }, groundingChunkIndices: [0, 1] }],
    })
  })

  test("an Anthropic web search answer -> groundingMetadata with its query; cited blocks one part, their segments in bytes; streamed too", async ({ assert }) => {
    const cite = { type: 'web_search_result_location', url: MOCK, title: 'example.com', encrypted_index: 'EpMBCioIAhgBIiQ', cited_text: 'le café du coin' }
    const message = { id: 'msg_ground', type: 'message', role: 'assistant', model: 'ground-claude-1', stop_reason: 'end_turn', stop_sequence: null }
    const usage = { input_tokens: 5, output_tokens: 7, server_tool_use: { web_search_requests: 1 } }
    const result = { type: 'web_search_tool_result', tool_use_id: 'srvtoolu_1', content: [{ type: 'web_search_result', url: MOCK, title: 'example.com', encrypted_content: 'Eu8BCioI', page_age: null }] }
    mock.script({
      raw: {
        status: 200,
        body: JSON.stringify({
          ...message,
          content: [
            { type: 'server_tool_use', id: 'srvtoolu_1', name: 'web_search', input: { query: 'café news' } },
            result,
            { type: 'text', text: 'Voilà: ' },
            { type: 'text', text: 'le café', citations: [cite] },
            { type: 'text', text: ' fin.' },
          ],
          usage,
        }),
      },
    })
    let response = await post('/v1beta/models/ground-claude-1:generateContent', { contents }, google())
    assert.equal(response.status, 200)
    const candidate = ((await response.json()) as any).candidates[0]
    const text = 'Voilà: le café fin.'
    assert.deepEqual(candidate.content.parts, [{ text }])
    const segment = { partIndex: 0, startIndex: bytes('Voilà: '), endIndex: bytes('Voilà: le café'), text: 'le café' }
    assert.deepEqual(candidate.groundingMetadata, {
      webSearchQueries: ['café news'],
      groundingChunks: [{ web: { uri: MOCK, title: 'example.com' } }],
      groundingSupports: [{ segment, groundingChunkIndices: [0] }],
    })
    assert.equal(segmentText(text, segment), 'le café')

    const event = (data: any) => `event: ${data.type}\ndata: ${JSON.stringify(data)}\n\n`
    const stream = [
      event({ type: 'message_start', message: { ...message, content: [], stop_reason: null, usage: { input_tokens: 5, output_tokens: 1 } } }),
      event({ type: 'content_block_start', index: 0, content_block: { type: 'server_tool_use', id: 'srvtoolu_1', name: 'web_search', input: {} } }),
      event({ type: 'content_block_delta', index: 0, delta: { type: 'input_json_delta', partial_json: '{"query": "caf' } }),
      event({ type: 'content_block_delta', index: 0, delta: { type: 'input_json_delta', partial_json: 'é news"}' } }),
      event({ type: 'content_block_stop', index: 0 }),
      event({ type: 'content_block_start', index: 1, content_block: result }),
      event({ type: 'content_block_stop', index: 1 }),
      event({ type: 'content_block_start', index: 2, content_block: { type: 'text', text: '' } }),
      event({ type: 'content_block_delta', index: 2, delta: { type: 'text_delta', text: 'Voilà: ' } }),
      event({ type: 'content_block_stop', index: 2 }),
      event({ type: 'content_block_start', index: 3, content_block: { type: 'text', text: '', citations: [] } }),
      event({ type: 'content_block_delta', index: 3, delta: { type: 'citations_delta', citation: cite } }),
      event({ type: 'content_block_delta', index: 3, delta: { type: 'text_delta', text: 'le café' } }),
      event({ type: 'content_block_stop', index: 3 }),
      event({ type: 'content_block_start', index: 4, content_block: { type: 'text', text: '' } }),
      event({ type: 'content_block_delta', index: 4, delta: { type: 'text_delta', text: ' fin.' } }),
      event({ type: 'content_block_stop', index: 4 }),
      event({ type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: 7, server_tool_use: { web_search_requests: 1 } } }),
      event({ type: 'message_stop' }),
    ]
    mock.script({ raw: { status: 200, headers: { 'content-type': 'text/event-stream' }, chunks: stream } })
    response = await post('/v1beta/models/ground-claude-1:streamGenerateContent?alt=sse', { contents }, google())
    const events = sseEvents(await response.text())
    assert.equal(events.map((e) => e.candidates[0].content.parts.map((p: any) => p.text).join('')).join(''), text)
    const grounded = events.filter((e) => e.candidates[0].groundingMetadata)
    assert.lengthOf(grounded, 1)
    assert.strictEqual(grounded[0], events.at(-1))
    // Anthropic cuts its blocks at the cited span: a block's segment is that span exactly
    const streamed = { startIndex: bytes('Voilà: '), endIndex: bytes('Voilà: le café') }
    assert.deepEqual(grounded[0].candidates[0].groundingMetadata, {
      webSearchQueries: ['café news'],
      groundingChunks: [{ web: { uri: MOCK, title: 'example.com' } }],
      groundingSupports: [{ segment: streamed, groundingChunkIndices: [0] }],
    })
    assert.equal(segmentText(text, streamed), 'le café')
  })

  test('an uncited answer to a Gemini client has no groundingMetadata, whole or streamed', async ({ assert }) => {
    const whole = (await (await post('/v1beta/models/ground-chat-1:generateContent', { contents }, google())).json()) as any
    assert.isString(whole.candidates[0].content.parts[0].text)
    assert.notProperty(whole.candidates[0], 'groundingMetadata')
    const events = sseEvents(await (await post('/v1beta/models/ground-claude-1:streamGenerateContent?alt=sse', { contents }, google())).text())
    assert.isAbove(events.length, 1)
    for (const e of events) assert.notProperty(e.candidates[0], 'groundingMetadata')
  })

  test("a history with the gateway's own citations (empty encrypted_index) reaches an Anthropic channel without them; Anthropic's own stay", async ({ assert }) => {
    const ours = { type: 'web_search_result_location', url: MOCK, title: 'example.com', encrypted_index: '', cited_text: '' }
    const theirs = { type: 'web_search_result_location', url: SECOND, title: 'example.org', encrypted_index: 'EpMBCioIAhgBIiQ', cited_text: 'words' }
    const document = { type: 'char_location', cited_text: 'x', document_index: 0, document_title: null, start_char_index: 0, end_char_index: 1 }
    const history = [
      { role: 'user', content: 'what is new?' },
      {
        role: 'assistant',
        content: [
          { type: 'text', text: 'Café', citations: [ours] },
          { type: 'text', text: ' and ' },
          { type: 'text', text: 'olé', citations: [ours, theirs, document] },
        ],
      },
      { role: 'user', content: 'more?' },
    ]
    const sent = () => JSON.parse(mock.lastRequest()!.body).messages[1].content
    for (const stream of [false, true]) {
      const response = await post('/v1/messages', { model: 'ground-claude-1', max_tokens: 64, stream, messages: history }, { 'x-api-key': key, 'anthropic-version': '2023-06-01' })
      assert.equal(response.status, 200)
      await response.text()
      assert.deepEqual(sent(), [
        { type: 'text', text: 'Café' },
        { type: 'text', text: ' and ' },
        { type: 'text', text: 'olé', citations: [theirs, document] },
      ])
    }
    // count_tokens forwards the same history
    const counted = await post('/v1/messages/count_tokens', { model: 'ground-claude-1', messages: history }, { 'x-api-key': key, 'anthropic-version': '2023-06-01' })
    assert.equal(counted.status, 200)
    assert.match(mock.lastRequest()!.path, /count_tokens/)
    assert.notInclude(mock.lastRequest()!.body, '"encrypted_index":""')

    // A history with only Anthropic's own citations goes as the client's bytes
    const own = [history[0], { role: 'assistant', content: [{ type: 'text', text: 'olé', citations: [theirs] }] }, history[2]]
    const raw = JSON.stringify({ model: 'ground-claude-1', max_tokens: 64, messages: own })
    assert.equal((await post('/v1/messages', raw, { 'x-api-key': key, 'anthropic-version': '2023-06-01' })).status, 200)
    assert.equal(mock.lastRequest()!.body, raw)
  })
})
