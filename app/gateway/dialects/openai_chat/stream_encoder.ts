import type { CanonicalEvent, CanonicalUsage, StopReason, StreamEncoder, StreamFailureKind } from '#gateway/dialects/canonical'
import { chatStreamError } from '#gateway/dialects/stream_failure'
import { sse, type EncoderOptions } from '#gateway/dialects/dialect'
import { chatId, encodeChatUsage, finishOfStop } from '#gateway/dialects/openai_chat/response'

/**
 * Reasoning text under both names chat clients read it by: `reasoning`
 * (OpenRouter's, which apps written against it read, as do the AI SDK's
 * OpenRouter provider and vLLM's newer servers) and `reasoning_content`
 * (DeepSeek's, which LiteLLM writes and Cline, the openai-compatible SDKs
 * and DeepSeek clients read). Only reasoning deltas carry the second copy.
 */
function reasoningDelta(text: string): Record<string, string> {
  return { reasoning_content: text, reasoning: text }
}

/**
 * Canonical events -> OpenAI chat chunks: a role chunk first, content /
 * reasoning (reasoningDelta) / tool_calls deltas, a finish chunk, the usage chunk when
 * the client asked for it, then `[DONE]`.
 */
export class ChatStreamEncoder implements StreamEncoder {
  readonly contentType = 'text/event-stream; charset=utf-8'
  #id = ''
  #created = Math.floor(Date.now() / 1000)
  #started = false
  #tools = new Map<number, number>()
  #stop: StopReason | null = null
  #usage: CanonicalUsage | null = null

  constructor(private options: EncoderOptions) {}

  push(event: CanonicalEvent): string {
    switch (event.type) {
      case 'start':
        return this.#start(event.id)
      case 'block_start':
        if (event.block.type !== 'tool_call') return this.#start('')
        {
          const toolIndex = this.#tools.size
          this.#tools.set(event.index, toolIndex)
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
        if (event.kind === 'text') return this.#start('') + this.#chunk({ content: event.value })
        if (event.kind === 'reasoning') {
          // Asked to be left out (OpenRouter's reasoning.exclude): not sent, still billed.
          if (this.options.reasoningExcluded) return this.#start('')
          return this.#start('') + this.#chunk(reasoningDelta(event.value))
        }
        return (
          this.#start('') +
          this.#chunk({ tool_calls: [{ index: this.#tools.get(event.index) ?? 0, function: { arguments: event.value } }] })
        )
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
