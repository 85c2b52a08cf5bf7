import { test } from '@japa/runner'
import { MAX_CITATIONS, MAX_SEARCH_QUERIES, ResponseCollector, type CanonicalEvent } from '#gateway/dialects/canonical'
import { dialectOf } from '#gateway/dialects/registry'
import { ResponsesStreamDecoder } from '#gateway/dialects/openai_responses/stream_decoder'
import { GeminiStreamEncoder } from '#gateway/dialects/gemini/stream_encoder'
import { ChatStreamEncoder } from '#gateway/dialects/openai_chat/stream_encoder'
import { AnthropicStreamEncoder } from '#gateway/dialects/anthropic_messages/stream_encoder'
import { GroundingWriter, utf8Offsets } from '#gateway/dialects/gemini/grounding'

/**
 * A Responses upstream's web citations (output_text.annotations, streamed as
 * response.output_text.annotation.added) and its searches' queries
 * (web_search_call items), as the other wires' clients get them. No route
 * sends another wire's client to a Responses upstream today (OpenAI and
 * Azure channels answer chat, Anthropic and Gemini clients in chat), so the
 * codecs are driven here directly; and Gemini's grounding writer against a
 * hostile count of citations.
 */

const PAGE = 'https://example.com/page'
const OTHER = 'https://example.org/other'
// 'Déjà' before the cited span: UTF-16 and byte offsets differ
const TEXT = 'Déjà vu. Cité ici.'
const annotation = (url: string, title: string, start: number, end: number) => ({ type: 'url_citation', url, title, start_index: start, end_index: end })

function sse(out: string): any[] {
  return out
    .split('\n')
    .filter((line) => line.startsWith('data: {'))
    .map((line) => JSON.parse(line.slice(6)))
}

/** A streamed Responses answer: a web search, then a message whose text comes in two deltas, then its annotations */
function streamedAnswer(annotations: any[], opts: { added: boolean; deltas: boolean }) {
  const response = { id: 'resp_1', model: 'gpt-x', status: 'in_progress' }
  const message = { type: 'message', id: 'msg_1', role: 'assistant', status: 'completed', content: [{ type: 'output_text', text: TEXT, annotations }] }
  const events: any[] = [
    { type: 'response.created', response },
    { type: 'response.output_item.added', output_index: 0, item: { type: 'web_search_call', id: 'ws_1', status: 'in_progress' } },
    { type: 'response.output_item.done', output_index: 0, item: { type: 'web_search_call', id: 'ws_1', status: 'completed', action: { type: 'search', query: 'déjà vu' } } },
    { type: 'response.output_item.added', output_index: 1, item: { ...message, status: 'in_progress', content: [] } },
  ]
  if (opts.deltas) {
    events.push({ type: 'response.output_text.delta', output_index: 1, content_index: 0, delta: 'Déjà vu. ' })
    events.push({ type: 'response.output_text.delta', output_index: 1, content_index: 0, delta: 'Cité ici.' })
  }
  if (opts.added) annotations.forEach((a, i) => events.push({ type: 'response.output_text.annotation.added', output_index: 1, content_index: 0, annotation_index: i, annotation: a }))
  events.push({ type: 'response.output_item.done', output_index: 1, item: message })
  events.push({ type: 'response.completed', response: { ...response, status: 'completed', output: [], usage: { input_tokens: 3, output_tokens: 5, total_tokens: 8 } } })
  const decoder = new ResponsesStreamDecoder()
  return [...events.flatMap((event) => decoder.push({ data: JSON.stringify(event) })), ...decoder.end()]
}

function encoded(events: CanonicalEvent[], encoder: { push(e: CanonicalEvent): string; end(): string }): string {
  return events.map((event) => encoder.push(event)).join('') + encoder.end()
}

test.group('A Responses upstream\'s citations and queries on the other wires', () => {
  test('whole: output_text.annotations become chat annotations, Anthropic citations and Gemini grounding; web_search_call queries webSearchQueries', ({ assert }) => {
    const body = {
      id: 'resp_1',
      object: 'response',
      model: 'gpt-x',
      status: 'completed',
      output: [
        { type: 'web_search_call', id: 'ws_1', status: 'completed', action: { type: 'search', query: 'déjà vu' } },
        {
          type: 'message',
          id: 'msg_1',
          role: 'assistant',
          status: 'completed',
          content: [{ type: 'output_text', text: TEXT, annotations: [annotation(PAGE, 'Page', 9, 18), { type: 'file_citation', file_id: 'f', index: 0 }, annotation(OTHER, 'Other', 0, 8)] }],
        },
      ],
      usage: { input_tokens: 3, output_tokens: 5, total_tokens: 8 },
    }
    const response = dialectOf('openai_responses').decodeResponse(body)
    assert.deepEqual(response.searchQueries, ['déjà vu'])

    const chat = dialectOf('openai_chat').encodeResponse(response, 'm') as any
    assert.deepEqual(chat.choices[0].message.annotations, [
      { type: 'url_citation', url_citation: { url: PAGE, title: 'Page', start_index: 9, end_index: 18 } },
      { type: 'url_citation', url_citation: { url: OTHER, title: 'Other', start_index: 0, end_index: 8 } },
    ])

    const anthropic = dialectOf('anthropic_messages').encodeResponse(response, 'm') as any
    const cite = (url: string, title: string) => ({ type: 'web_search_result_location', url, title, encrypted_index: '', cited_text: '' })
    assert.deepEqual(anthropic.content, [
      { type: 'text', text: 'Déjà vu.', citations: [cite(OTHER, 'Other')] },
      { type: 'text', text: ' ' },
      { type: 'text', text: 'Cité ici.', citations: [cite(PAGE, 'Page')] },
    ])

    const gemini = dialectOf('gemini').encodeResponse(response, 'm') as any
    const bytes = (text: string) => Buffer.byteLength(text)
    assert.deepEqual(gemini.candidates[0].groundingMetadata, {
      webSearchQueries: ['déjà vu'],
      groundingChunks: [{ web: { uri: PAGE, title: 'Page' } }, { web: { uri: OTHER, title: 'Other' } }],
      groundingSupports: [
        { segment: { partIndex: 0, startIndex: bytes('Déjà vu. '), endIndex: bytes(TEXT), text: 'Cité ici.' }, groundingChunkIndices: [0] },
        { segment: { partIndex: 0, startIndex: 0, endIndex: bytes('Déjà vu.'), text: 'Déjà vu.' }, groundingChunkIndices: [1] },
      ],
    })
    // And back: the gateway's own Gemini decoder reads the same spans
    const back = dialectOf('gemini').decodeResponse(gemini)
    assert.deepEqual(
      (back.content[0] as any).citations.map((c: any) => [c.url, c.start, c.end]),
      [
        [PAGE, 9, 18],
        [OTHER, 0, 8],
      ]
    )
  })

  test('streamed: annotation.added events become citations over their span; a chat client gets them, an Anthropic one citations_delta, a Gemini one grounding', ({ assert }) => {
    const events = streamedAnswer([annotation(PAGE, 'Page', 9, 18)], { added: true, deltas: true })
    assert.deepEqual(
      events.filter((e) => e.type === 'citation' || e.type === 'search'),
      [
        { type: 'search', query: 'déjà vu' },
        { type: 'citation', index: 0, citation: { url: PAGE, title: 'Page', start: 9, end: 18 } },
      ]
    )
    const chat = sse(encoded(events, new ChatStreamEncoder({ model: 'm' })))
    assert.deepEqual(chat.flatMap((c) => c.choices[0]?.delta?.annotations ?? []), [{ type: 'url_citation', url_citation: { url: PAGE, title: 'Page', start_index: 9, end_index: 18 } }])
    const anthropic = sse(encoded(events, new AnthropicStreamEncoder({ model: 'm' })))
    assert.deepEqual(
      anthropic.filter((e) => e.delta?.type === 'citations_delta').map((e) => e.delta.citation.url),
      [PAGE]
    )
    const gemini = sse(encoded(events, new GeminiStreamEncoder({ model: 'm' })))
    assert.deepEqual(gemini.at(-1).candidates[0].groundingMetadata, {
      webSearchQueries: ['déjà vu'],
      groundingChunks: [{ web: { uri: PAGE, title: 'Page' } }],
      groundingSupports: [{ segment: { startIndex: 0, endIndex: Buffer.byteLength(TEXT) }, groundingChunkIndices: [0] }],
    })
    const collected = new ResponseCollector()
    for (const event of events) collected.push(event)
    assert.deepEqual(collected.response().searchQueries, ['déjà vu'])
  })

  test('annotations only on the finished item (no annotation.added, no deltas): read from output_item.done, once', ({ assert }) => {
    const annotations = [annotation(PAGE, 'Page', 9, 18)]
    for (const deltas of [false, true]) {
      const events = streamedAnswer(annotations, { added: false, deltas })
      assert.deepEqual(
        events.filter((e) => e.type === 'citation'),
        [{ type: 'citation', index: 0, citation: { url: PAGE, title: 'Page', start: 9, end: 18 } }]
      )
    }
    // Sent both ways: only the annotation.added ones count
    const events = streamedAnswer(annotations, { added: true, deltas: true })
    assert.lengthOf(
      events.filter((e) => e.type === 'citation'),
      1
    )
  })

  test("a second output_text's annotations: spans moved to where it begins in the block", ({ assert }) => {
    const decoder = new ResponsesStreamDecoder()
    const push = (event: any) => decoder.push({ data: JSON.stringify(event) })
    const events = [
      ...push({ type: 'response.created', response: { id: 'r', model: 'm' } }),
      ...push({ type: 'response.output_item.added', output_index: 0, item: { type: 'message', id: 'msg', content: [] } }),
      ...push({ type: 'response.output_text.delta', output_index: 0, content_index: 0, delta: 'First. ' }),
      ...push({ type: 'response.output_text.delta', output_index: 0, content_index: 1, delta: 'Second cited.' }),
      ...push({ type: 'response.output_text.annotation.added', output_index: 0, content_index: 1, annotation: annotation(PAGE, 'Page', 7, 12) }),
      ...push({ type: 'response.output_text.annotation.added', output_index: 0, content_index: 0, annotation: annotation(OTHER, 'Other', 0, 6) }),
    ]
    assert.deepEqual(
      events.filter((e) => e.type === 'citation'),
      [
        // 'cited' in the second output_text, which begins 7 characters into the block
        { type: 'citation', index: 0, citation: { url: PAGE, title: 'Page', start: 14, end: 19 } },
        // the first one's, told late: its place no longer known, it cites the block
        { type: 'citation', index: 0, citation: { url: OTHER, title: 'Other' } },
      ]
    )
  })

  test('hostile: thousands of pages, supports and queries stay bounded; byte offsets never split a character', ({ assert }) => {
    const decoder = new ResponsesStreamDecoder()
    const push = (event: any) => decoder.push({ data: JSON.stringify(event) })
    const events: CanonicalEvent[] = [
      ...push({ type: 'response.created', response: { id: 'r', model: 'm' } }),
      ...push({ type: 'response.output_item.added', output_index: 0, item: { type: 'message', id: 'msg', content: [] } }),
      ...push({ type: 'response.output_text.delta', output_index: 0, content_index: 0, delta: 'é'.repeat(3000) }),
    ]
    for (let i = 0; i < 3000; i++) events.push(...push({ type: 'response.output_text.annotation.added', output_index: 0, content_index: 0, annotation: annotation(`${PAGE}/${i}`, 'P', i, i + 1) }))
    for (let i = 0; i < 500; i++) events.push(...push({ type: 'response.output_item.done', output_index: 9, item: { type: 'web_search_call', action: { query: `q${i}` } } }))
    const collected = new ResponseCollector()
    for (const event of events) collected.push(event)
    const response = collected.response()
    assert.lengthOf((response.content[0] as any).citations, MAX_CITATIONS)
    assert.lengthOf(response.searchQueries!, MAX_SEARCH_QUERIES)
    const grounding = (dialectOf('gemini').encodeResponse(response, 'm') as any).candidates[0].groundingMetadata
    assert.lengthOf(grounding.groundingChunks, MAX_CITATIONS)
    assert.lengthOf(grounding.groundingSupports, MAX_CITATIONS)
    // 'é' is two bytes: citation i covers bytes [2i, 2i + 2)
    assert.deepEqual(grounding.groundingSupports[7].segment, { partIndex: 0, startIndex: 14, endIndex: 16, text: 'é' })

    // A writer given more pages than it keeps: the rest left out, never an index past its chunks
    const writer = new GroundingWriter()
    writer.add(Array.from({ length: 600 }, (_, i) => ({ url: `${OTHER}/${i}`, start: 0, end: 1 })), 'x', 0)
    const written = writer.grounding()!
    assert.lengthOf(written.groundingChunks!, MAX_CITATIONS)
    assert.lengthOf(written.groundingSupports!, 1)
    assert.lengthOf(written.groundingSupports![0].groundingChunkIndices!, MAX_CITATIONS)

    // UTF-16 -> bytes: '😀' is two UTF-16 units and four bytes; an offset between its halves goes to its end
    const offsets = utf8Offsets('a😀b', [0, 1, 2, 3, 4, 9])
    assert.deepEqual([...offsets.entries()].sort((x, y) => x[0] - y[0]), [
      [0, 0],
      [1, 1],
      [2, 5],
      [3, 5],
      [4, 6],
      [9, 6],
    ])
  })
})
