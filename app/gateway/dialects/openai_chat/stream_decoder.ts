import { imageFromUrl, newToolCallId, withWebSearches, type CanonicalEvent, type StreamDecoder } from '#gateway/dialects/canonical'
import { parseJson } from '#gateway/dialects/dialect'
import { OpenBlock } from '#gateway/dialects/open_block'
import { citesWeb, decodeChatUsage, stopOfFinish } from '#gateway/dialects/openai_chat/response'
import { isChatSearchModel } from '#gateway/dialects/openai_chat/search_models'
import type { ChatChunk, ChatToolCallDelta } from '#gateway/dialects/openai_chat/types'

/**
 * OpenAI chat chunks -> canonical events. Chat has no block boundaries, so
 * the decoder keeps the open block (text, reasoning, or one tool call by its
 * `index`) and closes it when another kind of delta arrives.
 *
 * Parallel tool calls: OpenAI streams each call whole before the next, but
 * other servers start several in one chunk and then interleave their
 * argument pieces by index. Canonical blocks are one at a time, so the first
 * call streams live and every call that starts while it is open is gathered
 * and emitted whole, in order, once the live one closes (at the finish, or
 * when text follows). A piece is never sent after its block's stop.
 */
interface PendingCall {
  id: string
  name: string
  args: string
}

export class ChatStreamDecoder implements StreamDecoder {
  #started = false
  #blocks = new OpenBlock()
  /** The chat index of the tool call streaming live as the open block, and that block's index */
  #live: number | undefined
  #liveBlock = 0
  /**
   * Calls started while the live one was open, by chat index (in arrival
   * order). Made at the first tool call, like #closed: a text-only stream
   * (most, and every slow one) keeps no empty hash tables for its whole life.
   */
  #pending: Map<number, PendingCall> | null = null
  /** Chat indices already emitted and closed: later pieces for them have no block to go to */
  #closed: Set<number> | null = null
  /** A chunk showed the answer's one web search: a search model's first (isChatSearchModel), or one citing the web */
  #searched = false
  /** A `refusal` delta came: the finish ("stop") is a refusal */
  #refused = false

  /** [DONE] came: whatever a broken upstream sends after it is not part of the answer */
  #done = false

  push(event: { data: string }): CanonicalEvent[] {
    if (this.#done) return []
    if (event.data === '[DONE]') {
      this.#done = true
      return []
    }
    const chunk = parseJson(event.data) as ChatChunk | null
    if (!chunk || typeof chunk !== 'object') return []
    const out: CanonicalEvent[] = []
    if (chunk.error) {
      out.push({ type: 'error', message: String(chunk.error.message ?? 'upstream error') })
      return out
    }
    // A search model's stream: its search ran before the first chunk (billed per call, cited or not).
    let cited = false
    if (!this.#started) {
      this.#started = true
      out.push({ type: 'start', id: String(chunk.id ?? ''), model: String(chunk.model ?? '') })
      cited = isChatSearchModel(chunk.model)
    }
    const choice = chunk.choices?.[0]
    const delta = choice?.delta
    if (delta) {
      const reasoning = delta.reasoning_content ?? delta.reasoning
      if (typeof reasoning === 'string' && reasoning) {
        this.#closeTools(out)
        out.push({ type: 'delta', index: this.#blocks.ensure(out, 'reasoning'), kind: 'reasoning', value: reasoning })
      }
      if (typeof delta.content === 'string' && delta.content) {
        this.#closeTools(out)
        out.push({ type: 'delta', index: this.#blocks.ensure(out, 'text'), kind: 'text', value: delta.content })
      }
      if (typeof delta.refusal === 'string' && delta.refusal) {
        this.#closeTools(out)
        this.#refused = true
        out.push({ type: 'delta', index: this.#blocks.ensure(out, 'text', true), kind: 'text', value: delta.refusal })
      }
      for (const call of delta.tool_calls ?? []) this.#toolPiece(out, call)
      // Images made (OpenRouter's `delta.images`), each whole: the open block closed first, so the text keeps its order.
      if (Array.isArray(delta.images)) {
        for (const image of delta.images) {
          if (typeof image?.image_url?.url !== 'string') continue
          this.#closeTools(out)
          this.#blocks.close(out)
          out.push({ type: 'image', image: imageFromUrl(image.image_url.url) })
        }
      }
    }
    if (choice?.finish_reason) {
      this.#closeTools(out)
      this.#blocks.close(out)
      out.push({ type: 'stop', reason: stopOfFinish(choice.finish_reason, this.#refused) })
    }
    // The usage chunk's counts (with the search a chunk showed before it); a chunk showing the search before it
    // (a search model's first, or one citing the web): its one search, a partial usage (a stream cut before the
    // usage chunk is billed it).
    const counts = decodeChatUsage(chunk.usage)
    if (!cited && !this.#searched) cited = citesWeb(chunk.choices)
    if (counts !== null) {
      if (cited || this.#searched) counts.webSearches = 1
      out.push({ type: 'usage', usage: counts })
    } else if (cited && !this.#searched) out.push({ type: 'usage', usage: withWebSearches(null, 1), partial: true })
    if (cited) this.#searched = true
    return out
  }

  end(): CanonicalEvent[] {
    const out: CanonicalEvent[] = []
    this.#closeTools(out)
    this.#blocks.close(out)
    return out
  }

  #toolPiece(out: CanonicalEvent[], call: ChatToolCallDelta) {
    const chatIndex = Number(call.index ?? 0)
    const args = typeof call.function?.arguments === 'string' ? call.function.arguments : ''
    if (chatIndex === this.#live) {
      if (args) out.push({ type: 'delta', index: this.#liveBlock, kind: 'arguments', value: args })
      return
    }
    const pending = this.#pending?.get(chatIndex)
    if (pending) {
      pending.args += args
      return
    }
    if (this.#closed?.has(chatIndex)) return
    // A server that gives no id: one unique per call (a count per answer repeats across a conversation)
    const id = call.id ? String(call.id) : newToolCallId()
    const name = String(call.function?.name ?? '')
    if (this.#live !== undefined) {
      ;(this.#pending ??= new Map()).set(chatIndex, { id, name, args })
      return
    }
    this.#liveBlock = this.#blocks.open(out, { type: 'tool_call', id, name })
    this.#live = chatIndex
    if (args) out.push({ type: 'delta', index: this.#liveBlock, kind: 'arguments', value: args })
  }

  /** Closes the live call, then emits the gathered ones whole, in order. */
  #closeTools(out: CanonicalEvent[]) {
    if (this.#live === undefined) return
    const closed = (this.#closed ??= new Set())
    closed.add(this.#live)
    this.#live = undefined
    this.#blocks.close(out)
    if (this.#pending === null) return
    for (const [chatIndex, call] of this.#pending) {
      const index = this.#blocks.open(out, { type: 'tool_call', id: call.id, name: call.name })
      if (call.args) out.push({ type: 'delta', index, kind: 'arguments', value: call.args })
      this.#blocks.close(out)
      closed.add(chatIndex)
    }
    this.#pending.clear()
  }
}
