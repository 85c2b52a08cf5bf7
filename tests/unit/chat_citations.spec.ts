import { test } from '@japa/runner'
import { AnthropicStreamDecoder } from '#gateway/dialects/anthropic_messages/stream_decoder'
import { decodeAnthropicResponse } from '#gateway/dialects/anthropic_messages/response'
import { MAX_CITATIONS, ResponseCollector, type CanonicalEvent } from '#gateway/dialects/canonical'
import { ChatStreamEncoder } from '#gateway/dialects/openai_chat/stream_encoder'

/**
 * Anthropic's web search citations as chat's url_citation annotations
 * against a hostile upstream: thousands of citations for one block and
 * megabytes of cited_text are bounded (they are held until the block
 * closes), and a cited block the stream never closes still has its
 * annotations sent, before the finish.
 */

const citation = (i: number, citedText = 'a quote') => ({
  type: 'web_search_result_location',
  url: `https://example.com/${i}`,
  title: `Page ${i}`,
  cited_text: citedText,
})

function chunks(out: string): any[] {
  return out
    .split('\n\n')
    .filter((block) => block.startsWith('data: {'))
    .map((block) => JSON.parse(block.slice(6)))
}

function decoded(events: Array<Record<string, unknown>>): CanonicalEvent[] {
  const decoder = new AnthropicStreamDecoder()
  return events.flatMap((event) => decoder.push({ data: JSON.stringify(event) }))
}

test.group('Chat url_citation annotations from a hostile stream', () => {
  test('a cited block never closed: its annotations come before the finish chunk, over its span', ({ assert }) => {
    const events = decoded([
      { type: 'message_start', message: { id: 'msg_1', usage: { input_tokens: 3, output_tokens: 0 } } },
      { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } },
      { type: 'content_block_delta', index: 0, delta: { type: 'citations_delta', citation: citation(1) } },
      { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'Cited words' } },
      { type: 'message_delta', delta: { stop_reason: 'end_turn' }, usage: { output_tokens: 4 } },
      { type: 'message_stop' },
    ])
    const encoder = new ChatStreamEncoder({ model: 'claude' })
    const out = events.map((event) => encoder.push(event)).join('') + encoder.end()
    const sent = chunks(out)
    const annotated = sent.findIndex((chunk) => chunk.choices[0]?.delta?.annotations)
    const finished = sent.findIndex((chunk) => chunk.choices[0]?.finish_reason)
    assert.isAtLeast(annotated, 0, out)
    assert.isBelow(annotated, finished)
    assert.deepEqual(sent[annotated].choices[0].delta.annotations, [
      { type: 'url_citation', url_citation: { url: 'https://example.com/1', title: 'Page 1', start_index: 0, end_index: 11, content: 'a quote' } },
    ])
  })

  test('2,000 citations of 10 KB each for one block: at most MAX_CITATIONS kept, each cited_text cut', ({ assert }) => {
    const huge = 'q'.repeat(10_000)
    const encoder = new ChatStreamEncoder({ model: 'claude' })
    const collector = new ResponseCollector()
    const decoder = new AnthropicStreamDecoder()
    let out = ''
    const feed = (event: Record<string, unknown>) => {
      for (const decodedEvent of decoder.push({ data: JSON.stringify(event) })) {
        out += encoder.push(decodedEvent)
        collector.push(decodedEvent)
      }
    }
    feed({ type: 'message_start', message: { id: 'msg_2', usage: { input_tokens: 3, output_tokens: 0 } } })
    feed({ type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } })
    for (let i = 0; i < 2_000; i++) feed({ type: 'content_block_delta', index: 0, delta: { type: 'citations_delta', citation: citation(i, huge) } })
    feed({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'x' } })
    feed({ type: 'content_block_stop', index: 0 })
    const annotations = chunks(out).find((chunk) => chunk.choices[0]?.delta?.annotations).choices[0].delta.annotations
    assert.lengthOf(annotations, MAX_CITATIONS)
    assert.isAtMost(annotations[0].url_citation.content.length, 1000)
    const part = collector.response().content[0] as any
    assert.lengthOf(part.citations, MAX_CITATIONS)
    assert.isBelow(out.length, 1_000_000)

    // A whole answer with as many: the same bound.
    const whole = decodeAnthropicResponse({
      id: 'msg_3',
      type: 'message',
      role: 'assistant',
      model: 'claude',
      content: [{ type: 'text', text: 'x', citations: Array.from({ length: 2_000 }, (_, i) => citation(i, huge)) }],
      stop_reason: 'end_turn',
      usage: { input_tokens: 1, output_tokens: 1 },
    } as any)
    const cited = (whole.content[0] as any).citations
    assert.lengthOf(cited, MAX_CITATIONS)
    assert.isAtMost(cited[0].citedText.length, 1000)
  })
})
