import type { CanonicalEvent, StreamDecoder } from '#gateway/dialects/canonical'
import { parseJson } from '#gateway/dialects/dialect'
import { OpenBlock } from '#gateway/dialects/open_block'
import { decodeChatUsage, stopOfFinish } from '#gateway/dialects/openai_chat/response'
import type { ChatChunk } from '#gateway/dialects/openai_chat/types'

/**
 * OpenAI chat chunks -> canonical events. Chat has no block boundaries, so
 * the decoder keeps the open block (text, reasoning, or one tool call by its
 * `index`) and closes it when another kind of delta arrives.
 */
export class ChatStreamDecoder implements StreamDecoder {
  #started = false
  #blocks = new OpenBlock()
  #tools = new Map<number, number>()

  push(event: { data: string }): CanonicalEvent[] {
    if (event.data === '[DONE]') return []
    const chunk = parseJson(event.data) as ChatChunk | null
    if (!chunk || typeof chunk !== 'object') return []
    const out: CanonicalEvent[] = []
    if (chunk.error) {
      out.push({ type: 'error', message: String(chunk.error.message ?? 'upstream error') })
      return out
    }
    if (!this.#started) {
      this.#started = true
      out.push({ type: 'start', id: String(chunk.id ?? ''), model: String(chunk.model ?? '') })
    }
    const choice = chunk.choices?.[0]
    const delta = choice?.delta
    if (delta) {
      const reasoning = delta.reasoning_content ?? delta.reasoning
      if (typeof reasoning === 'string' && reasoning) {
        out.push({ type: 'delta', index: this.#blocks.ensure(out, 'reasoning'), kind: 'reasoning', value: reasoning })
      }
      if (typeof delta.content === 'string' && delta.content) {
        out.push({ type: 'delta', index: this.#blocks.ensure(out, 'text'), kind: 'text', value: delta.content })
      }
      for (const call of delta.tool_calls ?? []) {
        const toolIndex = Number(call.index ?? 0)
        let index = this.#tools.get(toolIndex)
        if (index === undefined) {
          index = this.#blocks.open(out, {
            type: 'tool_call',
            id: String(call.id ?? `call_${this.#blocks.next}`),
            name: String(call.function?.name ?? ''),
          })
          this.#tools.set(toolIndex, index)
        }
        const args = call.function?.arguments
        if (args) out.push({ type: 'delta', index, kind: 'arguments', value: args })
      }
    }
    if (choice?.finish_reason) {
      this.#blocks.close(out)
      out.push({ type: 'stop', reason: stopOfFinish(choice.finish_reason) })
    }
    const usage = decodeChatUsage(chunk.usage)
    if (usage) out.push({ type: 'usage', usage })
    return out
  }

  end(): CanonicalEvent[] {
    const out: CanonicalEvent[] = []
    this.#blocks.close(out)
    return out
  }
}
