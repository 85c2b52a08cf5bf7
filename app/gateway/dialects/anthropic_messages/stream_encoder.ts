import { imageOmittedNote, type CanonicalEvent, type CanonicalUsage, type StopReason, type StreamEncoder, type StreamFailureKind } from '#gateway/dialects/canonical'
import { anthropicStreamError } from '#gateway/dialects/stream_failure'
import { sse, type EncoderOptions } from '#gateway/dialects/dialect'
import { anthropicCitation, anthropicStop, encodeAnthropicUsage, messageId } from '#gateway/dialects/anthropic_messages/response'

const NO_USAGE: CanonicalUsage = { inputTokens: 0, outputTokens: 0, cacheReadTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0 }

/**
 * Canonical events -> Anthropic SSE: message_start, ping, content blocks
 * (start / deltas / stop, renumbered from 0), then message_delta with the
 * stop reason and the full usage, and message_stop. A mid-stream failure is
 * an `error` event.
 */
export class AnthropicStreamEncoder implements StreamEncoder {
  readonly contentType = 'text/event-stream; charset=utf-8'
  #started = false
  #index = new Map<number, number>()
  /** Anthropic indices of thinking blocks: the only blocks a signature may be sent on */
  #thinking = new Set<number>()
  #open: number | null = null
  #next = 0
  #stop: StopReason | null = null
  #sequence: string | undefined
  #usage: CanonicalUsage | null = null
  #sawTool = false

  constructor(private options: EncoderOptions) {}

  push(event: CanonicalEvent): string {
    switch (event.type) {
      case 'start':
        return this.#start(event.id)
      case 'block_start': {
        let out = this.#start('') + this.#closeOpen()
        const index = this.#next++
        this.#index.set(event.index, index)
        this.#open = index
        const b = event.block
        const block =
          b.type === 'text'
            ? { type: 'text', text: '' }
            : b.type === 'reasoning'
              ? { type: 'thinking', thinking: '', signature: '' }
              : { type: 'tool_use', id: b.id, name: b.name, input: {} }
        if (b.type === 'tool_call') this.#sawTool = true
        else if (b.type === 'reasoning') this.#thinking.add(index)
        out += sse({ type: 'content_block_start', index, content_block: block }, 'content_block_start')
        return out
      }
      case 'delta': {
        const index = this.#index.get(event.index)
        if (index === undefined) return ''
        const delta =
          event.kind === 'text'
            ? { type: 'text_delta', text: event.value }
            : event.kind === 'reasoning'
              ? { type: 'thinking_delta', thinking: event.value }
              : { type: 'input_json_delta', partial_json: event.value }
        return sse({ type: 'content_block_delta', index, delta }, 'content_block_delta')
      }
      case 'signature': {
        const index = this.#index.get(event.index)
        // Gemini signs function calls too (thoughtSignature on a functionCall part). Anthropic's stream
        // has no place for that: a signature_delta on a tool_use block breaks the SDKs ("Content block is
        // not a thinking block"). The call goes back to Gemini with Google's placeholder signature.
        if (index === undefined || !this.#thinking.has(index)) return ''
        return sse({ type: 'content_block_delta', index, delta: { type: 'signature_delta', signature: event.value } }, 'content_block_delta')
      }
      case 'citation': {
        // As Anthropic streams a cited block's: a citations_delta on it (the text already sent when it comes from Gemini or chat)
        const index = this.#index.get(event.index)
        if (index === undefined || this.#open !== index || this.#thinking.has(index)) return ''
        return sse({ type: 'content_block_delta', index, delta: { type: 'citations_delta', citation: anthropicCitation(event.citation) } }, 'content_block_delta')
      }
      case 'block_stop': {
        const index = this.#index.get(event.index)
        if (index === undefined || this.#open !== index) return ''
        return this.#closeOpen()
      }
      case 'image': {
        // Messages has no image output: a text block of its own says what was left out (the gateway's words, not billed).
        const index = this.#next++
        return (
          this.#start('') +
          this.#closeOpen() +
          sse({ type: 'content_block_start', index, content_block: { type: 'text', text: '' } }, 'content_block_start') +
          sse({ type: 'content_block_delta', index, delta: { type: 'text_delta', text: imageOmittedNote(event.image) } }, 'content_block_delta') +
          sse({ type: 'content_block_stop', index }, 'content_block_stop')
        )
      }
      case 'usage':
        this.#usage = event.usage
        return ''
      case 'stop':
        this.#stop = event.reason
        this.#sequence = event.sequence
        return ''
      default:
        return ''
    }
  }

  end(error?: string, kind?: StreamFailureKind): string {
    let out = this.#start('') + this.#closeOpen()
    if (error) return out + sse(anthropicStreamError(error, kind), 'error')
    const stop = this.#stop ?? (this.#sawTool ? 'tool_use' : 'end_turn')
    out += sse(
      {
        type: 'message_delta',
        delta: { stop_reason: anthropicStop(stop), stop_sequence: this.#sequence ?? null },
        usage: encodeAnthropicUsage(this.#usage ?? NO_USAGE),
      },
      'message_delta'
    )
    return out + sse({ type: 'message_stop' }, 'message_stop')
  }

  #start(id: string): string {
    if (this.#started) return ''
    this.#started = true
    // Nothing is output yet: no output count, and no reasoning within it.
    const { output_tokens_details: _none, ...usage } = encodeAnthropicUsage(this.#usage ?? NO_USAGE)
    const message = {
      id: messageId(id),
      type: 'message',
      role: 'assistant',
      model: this.options.model,
      content: [],
      stop_reason: null,
      stop_sequence: null,
      usage: { ...usage, output_tokens: 0 },
    }
    return sse({ type: 'message_start', message }, 'message_start') + sse({ type: 'ping' }, 'ping')
  }

  #closeOpen(): string {
    if (this.#open === null) return ''
    const index = this.#open
    this.#open = null
    return sse({ type: 'content_block_stop', index }, 'content_block_stop')
  }
}
