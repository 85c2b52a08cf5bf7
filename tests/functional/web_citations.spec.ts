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
