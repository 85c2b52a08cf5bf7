import { urlCitationOf, withSearchQuery, type CanonicalEvent, type CanonicalUsage, type StreamDecoder } from '#gateway/dialects/canonical'
import { parseJson } from '#gateway/dialects/dialect'
import { decodeAnthropicUsage, mergeAnthropicUsage, stopOfAnthropic, usageAfterBlockStart } from '#gateway/dialects/anthropic_messages/response'

/** The most of a web search block's streamed input kept to read its query */
const SEARCH_INPUT_CHARS = 4096

/**
 * Anthropic SSE -> canonical events. Usage arrives in two halves (input and
 * cache in message_start, output in message_delta); the decoder keeps the
 * running total and emits a complete snapshot each time. Server-tool blocks
 * have no canonical form and are skipped with their deltas, but for a web
 * search's query (a `search` event, when its block stops).
 */
export class AnthropicStreamDecoder implements StreamDecoder {
  #usage: CanonicalUsage | null = null
  #blocks = new Map<number, number>()
  #next = 0
  #open = new Set<number>()
  /** The open web_search server_tool_use block: its upstream index and its input's JSON so far (its query, for a Gemini client's webSearchQueries) */
  #search: { upstream: number; json: string } | null = null

  /** message_stop came: whatever a broken upstream sends after it is not part of the answer */
  #done = false

  push(event: { event?: string; data: string }): CanonicalEvent[] {
    if (this.#done) return []
    const payload = parseJson(event.data)
    if (!payload || typeof payload !== 'object') return []
    const type = payload.type ?? event.event
    switch (type) {
      case 'message_stop':
        this.#done = true
        return []
      case 'message_start': {
        const message = payload.message ?? {}
        const out: CanonicalEvent[] = [{ type: 'start', id: String(message.id ?? ''), model: String(message.model ?? '') }]
        this.#usage = decodeAnthropicUsage(message.usage)
        if (this.#usage) out.push({ type: 'usage', usage: this.#usage })
        return out
      }
      case 'content_block_start':
        return this.#blockStart(Number(payload.index), payload.content_block ?? {})
      case 'content_block_delta': {
        const index = this.#blocks.get(Number(payload.index))
        if (index === undefined) {
          const search = this.#search
          if (search !== null && search.upstream === Number(payload.index) && typeof payload.delta?.partial_json === 'string') {
            // A query is short: a hostile block's megabytes of input are not kept
            if (search.json.length + payload.delta.partial_json.length <= SEARCH_INPUT_CHARS) search.json += payload.delta.partial_json
          }
          return []
        }
        const delta = payload.delta ?? {}
        if (delta.type === 'text_delta') return [{ type: 'delta', index, kind: 'text', value: String(delta.text ?? '') }]
        if (delta.type === 'thinking_delta') return [{ type: 'delta', index, kind: 'reasoning', value: String(delta.thinking ?? '') }]
        if (delta.type === 'input_json_delta') return [{ type: 'delta', index, kind: 'arguments', value: String(delta.partial_json ?? '') }]
        if (delta.type === 'signature_delta') return [{ type: 'signature', index, value: String(delta.signature ?? '') }]
        if (delta.type === 'citations_delta') {
          const citation = urlCitationOf(delta.citation)
          return citation === null ? [] : [{ type: 'citation', index, citation }]
        }
        return []
      }
      case 'content_block_stop': {
        if (this.#search !== null && this.#search.upstream === Number(payload.index)) return this.#searched()
        const index = this.#blocks.get(Number(payload.index))
        if (index === undefined || !this.#open.delete(index)) return []
        return [{ type: 'block_stop', index }]
      }
      case 'message_delta': {
        const out: CanonicalEvent[] = []
        const usage = payload.usage
        if (usage) {
          const merged = mergeAnthropicUsage(usage, this.#usage)
          // An unbelievable count (token_counts.ts) leaves what message_start said.
          if (merged) {
            this.#usage = merged
            out.push({ type: 'usage', usage: merged })
          }
        }
        if (payload.delta?.stop_reason) {
          out.push({ type: 'stop', reason: stopOfAnthropic(payload.delta.stop_reason), sequence: payload.delta.stop_sequence ?? undefined })
        }
        return out
      }
      case 'error':
        return [{ type: 'error', message: String(payload.error?.message ?? 'upstream error') }]
      default:
        return []
    }
  }

  end(): CanonicalEvent[] {
    const out: CanonicalEvent[] = []
    for (const index of this.#open) out.push({ type: 'block_stop', index })
    this.#open.clear()
    return out
  }

  #blockStart(upstreamIndex: number, block: any): CanonicalEvent[] {
    const index = this.#next
    switch (block.type) {
      case 'text': {
        this.#track(upstreamIndex, index)
        const out: CanonicalEvent[] = [{ type: 'block_start', index, block: { type: 'text' } }]
        if (block.text) out.push({ type: 'delta', index, kind: 'text', value: block.text })
        return out
      }
      case 'thinking':
        this.#track(upstreamIndex, index)
        return [{ type: 'block_start', index, block: { type: 'reasoning' } }]
      case 'redacted_thinking':
        this.#track(upstreamIndex, index)
        return [
          { type: 'block_start', index, block: { type: 'reasoning' } },
          { type: 'redacted', index, value: String(block.data ?? '') },
        ]
      case 'tool_use':
        this.#track(upstreamIndex, index)
        return [{ type: 'block_start', index, block: { type: 'tool_call', id: String(block.id), name: String(block.name) } }]
      default: {
        // A web search's query: in its input, whole or streamed as input_json_delta until the block stops.
        const out: CanonicalEvent[] = []
        if (block.type === 'server_tool_use' && block.name === 'web_search') {
          if (typeof block.input?.query === 'string') out.push({ type: 'search', query: block.input.query })
          else this.#search = { upstream: upstreamIndex, json: '' }
        }
        // A server tool's web search: counted now (usageAfterBlockStart), for a stream cut before message_delta.
        const usage = usageAfterBlockStart(block, this.#usage)
        if (usage === this.#usage || usage === null) return out
        this.#usage = usage
        out.push({ type: 'usage', usage })
        return out
      }
    }
  }

  /** The web search block stopped: its query, if its input had one */
  #searched(): CanonicalEvent[] {
    const query = parseJson(this.#search!.json)?.query
    this.#search = null
    return withSearchQuery(undefined, query) === undefined ? [] : [{ type: 'search', query }]
  }

  #track(upstreamIndex: number, index: number) {
    this.#blocks.set(upstreamIndex, index)
    this.#open.add(index)
    this.#next++
  }
}
