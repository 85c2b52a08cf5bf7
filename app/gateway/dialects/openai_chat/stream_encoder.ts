import type { CanonicalEvent, CanonicalUsage, StopReason, StreamEncoder, StreamFailureKind, UrlCitation } from '#gateway/dialects/canonical'
import { chatStreamError } from '#gateway/dialects/stream_failure'
import { sse, type EncoderOptions } from '#gateway/dialects/dialect'
import { chatId, chatImage, encodeChatUsage, finishOfStop, urlAnnotation } from '#gateway/dialects/openai_chat/response'
import { encryptedDetail, reasoningFormatOf, textDetail, type ReasoningDetail, type ReasoningFormat } from '#gateway/dialects/openai_chat/reasoning_details'

/**
 * Reasoning text under both names chat clients read it by: `reasoning`
 * (OpenRouter's, which apps written against it read, as do the AI SDK's
 * OpenRouter provider and vLLM's newer servers) and `reasoning_content`
 * (DeepSeek's, which LiteLLM writes and Cline, the openai-compatible SDKs
 * and DeepSeek clients read). Only reasoning deltas carry the second copy.
 */
function reasoningDelta(text: string): Record<string, unknown> {
  return { reasoning_content: text, reasoning: text }
}

/**
 * Canonical events -> OpenAI chat chunks: a role chunk first, content /
 * reasoning (reasoningDelta) / tool_calls / images deltas, a finish chunk, the usage chunk when
 * the client asked for it, then `[DONE]`.
 */
export class ChatStreamEncoder implements StreamEncoder {
  readonly contentType = 'text/event-stream; charset=utf-8'
  #id = ''
  #created = Math.floor(Date.now() / 1000)
  #started = false
  /** Tool-call blocks: their position among the answer's calls, and their id (a Gemini signature names it) */
  #tools = new Map<number, { position: number; id: string }>()
  #stop: StopReason | null = null
  #usage: CanonicalUsage | null = null
  /** Images sent so far (each one's index) */
  #images = 0
  /** The reasoning_details format of the upstream's answer; null: none written (reasoning_details.ts) */
  readonly #format: ReasoningFormat | null
  /** The canonical block the latest detail index went to, and that index (details are numbered in answer order) */
  #detailBlock = -1
  #detailIndex = -1
  /** Content characters sent, and where the open text block began: a cited block's span (url_citation's indices) */
  #textChars = 0
  #blockFrom = 0
  /** The open text block's citations, sent as one annotations chunk when it closes (its end known then) */
  #cited: UrlCitation[] | null = null

  constructor(private options: EncoderOptions) {
    this.#format = options.reasoningExcluded ? null : reasoningFormatOf(options.upstream)
  }

  push(event: CanonicalEvent): string {
    switch (event.type) {
      case 'start':
        return this.#start(event.id)
      case 'block_start':
        if (event.block.type !== 'tool_call') {
          this.#blockFrom = this.#textChars
          return this.#start('')
        }
        {
          const toolIndex = this.#tools.size
          this.#tools.set(event.index, { position: toolIndex, id: event.block.id })
          return (
            this.#start('') +
            this.#chunk({
              tool_calls: [
                { index: toolIndex, id: event.block.id, type: 'function', function: { name: event.block.name, arguments: '' } },
              ],
            })
          )
        }
      case 'delta':
        if (event.kind === 'text') {
          this.#textChars += event.value.length
          return this.#start('') + this.#chunk({ content: event.value })
        }
        if (event.kind === 'reasoning') {
          // Asked to be left out (OpenRouter's reasoning.exclude): not sent, still billed.
          if (this.options.reasoningExcluded) return this.#start('')
          const delta = reasoningDelta(event.value)
          // As OpenRouter streams it: each piece also as a text detail, the block's signature in a later one.
          if (this.#format !== null) delta.reasoning_details = [textDetail(event.value, undefined, this.#format, this.#detailOf(event.index))]
          return this.#start('') + this.#chunk(delta)
        }
        return (
          this.#start('') +
          this.#chunk({ tool_calls: [{ index: this.#tools.get(event.index)?.position ?? 0, function: { arguments: event.value } }] })
        )
      case 'signature':
      case 'redacted':
        return this.#format === null ? '' : this.#signed(event.type, event.index, event.value)
      case 'image':
        // As OpenRouter streams one: whole, in a chunk of its own (`delta.images`); nothing of it is kept.
        return this.#start('') + this.#chunk({ images: [chatImage(event.image, this.#images++)] })
      case 'citation':
        ;(this.#cited ??= []).push(event.citation)
        return ''
      case 'block_stop': {
        if (this.#cited === null) return ''
        // As OpenAI's search models stream them: a chunk of `delta.annotations` after the text they cover.
        const annotations = this.#cited.map((citation) => urlAnnotation(citation, this.#blockFrom, this.#textChars))
        this.#cited = null
        return this.#start('') + this.#chunk({ annotations })
      }
      case 'usage':
        this.#usage = event.usage
        return ''
      case 'stop':
        if (this.#stop) return ''
        this.#stop = event.reason
        return this.#start('') + this.#chunk({}, finishOfStop(event.reason))
      case 'error':
        return ''
      default:
        return ''
    }
  }

  end(error?: string, kind?: StreamFailureKind): string {
    if (error) {
      return this.#start('') + sse(chatStreamError(error, kind))
    }
    let out = this.#start('')
    if (!this.#stop) out += this.#chunk({}, this.#tools.size > 0 ? 'tool_calls' : 'stop')
    if (this.options.includeUsage && this.#usage) {
      out += sse({
        id: this.#id,
        object: 'chat.completion.chunk',
        created: this.#created,
        model: this.options.model,
        choices: [],
        usage: encodeChatUsage(this.#usage, this.options.usageCost),
      })
    }
    return out + 'data: [DONE]\n\n'
  }

  /**
   * A signature or redacted thinking as its detail: Claude's signature on
   * its thinking's text detail (the same index), its redacted thinking as
   * encrypted, Gemini's call signature as encrypted naming the call.
   */
  #signed(kind: 'signature' | 'redacted', block: number, value: string): string {
    const format = this.#format!
    const call = this.#tools.get(block)
    let detail: ReasoningDetail
    if (call !== undefined) {
      if (kind !== 'signature' || format !== 'google-gemini-v1') return ''
      detail = encryptedDetail(value, format, this.#detailOf(block), call.id)
    } else if (kind === 'redacted') {
      detail = encryptedDetail(value, format, this.#detailOf(block))
    } else {
      // A Gemini thought's own signature is not sent back (the Gemini encoder sends no thoughts).
      if (format !== 'anthropic-claude-v1') return ''
      detail = textDetail('', value, format, this.#detailOf(block))
    }
    return this.#start('') + this.#chunk({ reasoning_details: [detail] })
  }

  /** The detail index of a canonical block: the next one for a block not seen yet. */
  #detailOf(block: number): number {
    if (block !== this.#detailBlock) {
      this.#detailBlock = block
      this.#detailIndex++
    }
    return this.#detailIndex
  }

  #start(id: string): string {
    if (this.#started) return ''
    this.#started = true
    this.#id = chatId(id)
    return this.#chunk({ role: 'assistant', content: '' })
  }

  #chunk(delta: Record<string, unknown>, finish: string | null = null): string {
    return sse({
      id: this.#id,
      object: 'chat.completion.chunk',
      created: this.#created,
      model: this.options.model,
      choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
    })
  }
}
