import { ZERO_CANONICAL_USAGE, type CanonicalUsage } from '#gateway/dialects/canonical'
import type { StreamCut } from '#gateway/dialects/dialect'
import { encodeAnthropicUsage } from '#gateway/dialects/anthropic_messages/response'
import type { SseEvent } from '#gateway/sse/sse_parser'

/**
 * An Anthropic stream stopped by the gateway: the open content block
 * closed, message_delta with stop_reason "refusal" (what the API says when
 * its own classifier stops an answer, and what the SDKs type) and the usage
 * known so far, then message_stop. Blocks are numbered by the upstream from
 * 0 in order, so counting content_block_start events (by name: no JSON read)
 * gives the open block's index.
 */
export class AnthropicStreamCut implements StreamCut {
  #blocks = 0
  #open = -1

  seen(event: SseEvent) {
    if (event.event === 'content_block_start') this.#open = this.#blocks++
    else if (event.event === 'content_block_stop') this.#open = -1
  }

  end(usage: CanonicalUsage | null): SseEvent[] {
    const events: SseEvent[] = []
    if (this.#open >= 0) events.push(named('content_block_stop', { type: 'content_block_stop', index: this.#open }))
    events.push(
      named('message_delta', {
        type: 'message_delta',
        delta: { stop_reason: 'refusal', stop_sequence: null },
        usage: encodeAnthropicUsage(usage ?? ZERO_CANONICAL_USAGE),
      }),
      named('message_stop', { type: 'message_stop' })
    )
    return events
  }
}

function named(event: string, data: unknown): SseEvent {
  return { event, data: JSON.stringify(data) }
}
