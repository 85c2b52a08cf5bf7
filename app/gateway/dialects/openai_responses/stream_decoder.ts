import type { CanonicalEvent, CanonicalUsage, StreamDecoder, TextPart } from '#gateway/dialects/canonical'
import { parseJson } from '#gateway/dialects/dialect'
import { addResponsesCitation, finalResponsesUsage, stopOfResponse, usageAfterItemDone, withSearchQueries } from '#gateway/dialects/openai_responses/response'

interface OpenBlock {
  index: number
  kind: string
  filled: boolean
  /** A message's text so far (UTF-16 units), and where its current output_text (`part`) began: annotations' spans are into that output_text */
  length: number
  part: number
  partFrom: number
  /** Its annotations came as annotation.added events (not read again from output_item.done) */
  cited: boolean
}

/**
 * Responses SSE -> canonical events. Output items become blocks (by
 * output_index); an item whose deltas never came (some servers send only the
 * finished item) is filled in from `output_item.done`. The final usage and
 * stop reason come with response.completed / response.incomplete.
 */
export class ResponsesStreamDecoder implements StreamDecoder {
  #started = false
  #blocks = new Map<number, OpenBlock>()
  #next = 0
  #sawTool = false
  /** The web searches shown so far (web_search_call items done), as a partial usage; null: none */
  #usage: CanonicalUsage | null = null

  /** The terminal response.* event came: whatever a broken upstream sends after it is not part of the answer */
  #done = false

  push(event: { event?: string; data: string }): CanonicalEvent[] {
    if (this.#done) return []
    const payload = parseJson(event.data)
    if (!payload || typeof payload !== 'object') return []
    const type: string = payload.type ?? event.event ?? ''
    const out: CanonicalEvent[] = []
    if (!this.#started && payload.response) {
      this.#started = true
      out.push({ type: 'start', id: String(payload.response.id ?? ''), model: String(payload.response.model ?? '') })
    }
    switch (type) {
      case 'response.output_item.added':
        this.#itemAdded(Number(payload.output_index), payload.item ?? {}, out)
        break
      case 'response.output_text.delta':
      case 'response.refusal.delta':
        this.#delta(payload, 'text', out)
        break
      case 'response.reasoning_summary_text.delta':
      case 'response.reasoning_text.delta':
        this.#delta(payload, 'reasoning', out)
        break
      case 'response.function_call_arguments.delta':
      case 'response.custom_tool_call_input.delta':
        this.#delta(payload, 'arguments', out)
        break
      case 'response.output_text.annotation.added':
        this.#annotation(payload, out)
        break
      case 'response.output_item.done': {
        // What a web search looked for (a Gemini client's webSearchQueries)
        if (payload.item?.type === 'web_search_call') for (const query of withSearchQueries(undefined, payload.item) ?? []) out.push({ type: 'search', query })
        // A web search: counted now (usageAfterItemDone), for a stream cut before response.completed.
        const usage = usageAfterItemDone(payload, this.#usage)
        if (usage !== this.#usage && usage !== null) out.push({ type: 'usage', usage: (this.#usage = usage), partial: true })
        this.#itemDone(Number(payload.output_index), payload.item ?? {}, out)
        break
      }
      case 'response.completed':
      case 'response.incomplete': {
        // Only a count the terminal event carries: the searches shown alone are no final usage (the relay would bill them as one).
        const usage = finalResponsesUsage(payload.response, this.#usage)
        if (usage !== null && usage !== this.#usage) out.push({ type: 'usage', usage })
        out.push({ type: 'stop', reason: stopOfResponse(payload.response ?? {}, this.#sawTool) })
        this.#done = true
        break
      }
      case 'response.failed':
        out.push({ type: 'error', message: String(payload.response?.error?.message ?? 'upstream response failed') })
        this.#done = true
        break
      case 'error':
        out.push({ type: 'error', message: String(payload.message ?? payload.error?.message ?? 'upstream error') })
        break
    }
    return out
  }

  end(): CanonicalEvent[] {
    const out: CanonicalEvent[] = []
    for (const [outputIndex, block] of this.#blocks) {
      out.push({ type: 'block_stop', index: block.index })
      this.#blocks.delete(outputIndex)
    }
    return out
  }

  #itemAdded(outputIndex: number, item: any, out: CanonicalEvent[]) {
    const index = this.#next++
    if (item.type === 'message') {
      out.push({ type: 'block_start', index, block: { type: 'text' } })
    } else if (item.type === 'reasoning') {
      out.push({ type: 'block_start', index, block: { type: 'reasoning', id: item.id } })
    } else if (item.type === 'function_call' || item.type === 'custom_tool_call') {
      this.#sawTool = true
      const block = { type: 'tool_call' as const, id: String(item.call_id), name: String(item.name), custom: item.type === 'custom_tool_call' || undefined }
      out.push({ type: 'block_start', index, block })
    } else {
      this.#next--
      return
    }
    this.#blocks.set(outputIndex, { index, kind: item.type, filled: false, length: 0, part: 0, partFrom: 0, cited: false })
  }

  #delta(payload: any, kind: 'text' | 'reasoning' | 'arguments', out: CanonicalEvent[]) {
    const block = this.#blocks.get(Number(payload.output_index))
    if (!block || typeof payload.delta !== 'string') return
    block.filled = true
    if (kind === 'text') {
      const part = Number(payload.content_index ?? 0)
      if (part !== block.part) {
        block.part = part
        block.partFrom = block.length
      }
      block.length += payload.delta.length
    }
    out.push({ type: 'delta', index: block.index, kind, value: payload.delta })
  }

  /** A page the open message's text cites (url_citation), its span into the output_text named: after that text, before the item is done */
  #annotation(payload: any, out: CanonicalEvent[]) {
    const block = this.#blocks.get(Number(payload.output_index))
    if (block?.kind !== 'message') return
    block.cited = true
    // An earlier output_text's annotation: its place in the block is no longer known, it cites the whole block
    const offset = Number(payload.content_index ?? 0) === block.part ? block.partFrom : null
    this.#cite(block.index, [payload.annotation], offset, out)
  }

  /** Citation events for annotations into an output_text that begins `offset` characters into the block */
  #cite(index: number, annotations: unknown[], offset: number | null, out: CanonicalEvent[]) {
    const part: TextPart = { type: 'text', text: '' }
    for (const annotation of annotations) addResponsesCitation(part, annotation, offset)
    for (const citation of part.citations ?? []) out.push({ type: 'citation', index, citation })
  }

  #itemDone(outputIndex: number, item: any, out: CanonicalEvent[]) {
    const block = this.#blocks.get(outputIndex)
    if (!block) return
    const index = block.index
    if (item.type === 'message' && !block.cited && Array.isArray(item.content)) {
      // Annotations only on the finished item: each output_text's, over its span of the block
      let from = 0
      for (const part of item.content) {
        if (Array.isArray(part?.annotations)) this.#cite(index, part.annotations, from, out)
        from += String(part?.text ?? part?.refusal ?? '').length
      }
    }
    if (!block.filled) {
      if (item.type === 'message') {
        const text = (item.content ?? []).map((p: any) => p.text ?? p.refusal ?? '').join('')
        if (text) out.push({ type: 'delta', index, kind: 'text', value: text })
      } else if (item.type === 'reasoning') {
        const text = (item.summary ?? []).map((s: any) => s.text).join('\n\n')
        if (text) out.push({ type: 'delta', index, kind: 'reasoning', value: text })
      } else {
        const args = item.type === 'custom_tool_call' ? item.input : item.arguments
        if (args) out.push({ type: 'delta', index, kind: 'arguments', value: String(args) })
      }
    }
    if (item.type === 'reasoning' && item.encrypted_content) out.push({ type: 'signature', index, value: item.encrypted_content })
    out.push({ type: 'block_stop', index })
    this.#blocks.delete(outputIndex)
  }
}
