import { imageOmittedNote, MAX_CITATIONS, type BlockInfo, type CanonicalEvent, type CanonicalUsage, type StopReason, type StreamEncoder, type StreamFailureKind, type UrlCitation } from '#gateway/dialects/canonical'
import { responsesStreamError } from '#gateway/dialects/stream_failure'
import type { EncoderOptions } from '#gateway/dialects/dialect'
import {
  incompleteReason,
  messageItem,
  reasoningItem,
  refusalItem,
  responseId,
  responseObject,
  responsesAnnotation,
  storedResponseObject,
  toolItem,
} from '#gateway/dialects/openai_responses/response'
import type { ResponsesItem } from '#gateway/dialects/openai_responses/types'

interface OpenItem {
  outputIndex: number
  itemId: string
  block: BlockInfo
  text: string
  signature?: string
  /** The pages a text item cites (citation events), annotated when it closes (its end known then) */
  cited?: UrlCitation[]
}

/**
 * Canonical events -> the Responses event stream Codex depends on:
 * response.created, response.in_progress, then per output item
 * output_item.added, its part/summary events and deltas, the .done events and
 * output_item.done with the full item, and finally response.completed (or
 * response.incomplete) with the usage. Each event carries a sequence_number.
 */
export class ResponsesStreamEncoder implements StreamEncoder {
  readonly contentType = 'text/event-stream; charset=utf-8'
  #sequence = 0
  #id = ''
  #started = false
  #open: OpenItem | null = null
  #blocks = new Map<number, OpenItem>()
  #output: ResponsesItem[] = []
  #usage: CanonicalUsage | null = null
  #stop: StopReason | null = null
  /** A refusal item was written (a refusal stop is then a completed answer) */
  #refused = false

  constructor(private options: EncoderOptions) {}

  push(event: CanonicalEvent): string {
    switch (event.type) {
      case 'start':
        return this.#start(event.id)
      case 'block_start':
        return this.#start('') + this.#closeOpen() + this.#openItem(event.index, event.block)
      case 'delta': {
        const item = this.#blocks.get(event.index)
        if (!item) return ''
        item.text += event.value
        const base = { item_id: item.itemId, output_index: item.outputIndex }
        if (item.block.type === 'text') {
          if (item.block.refusal) return this.#event('response.refusal.delta', { ...base, content_index: 0, delta: event.value })
          return this.#event('response.output_text.delta', { ...base, content_index: 0, delta: event.value, logprobs: [] })
        }
        if (item.block.type === 'reasoning') {
          return this.#event('response.reasoning_summary_text.delta', { ...base, summary_index: 0, delta: event.value })
        }
        const type = item.block.custom ? 'response.custom_tool_call_input.delta' : 'response.function_call_arguments.delta'
        return this.#event(type, { ...base, delta: event.value })
      }
      case 'signature': {
        const item = this.#blocks.get(event.index)
        if (item) item.signature = event.value
        return ''
      }
      case 'citation': {
        const item = this.#blocks.get(event.index)
        if (item?.block.type === 'text' && !item.block.refusal && (item.cited?.length ?? 0) < MAX_CITATIONS) (item.cited ??= []).push(event.citation)
        return ''
      }
      case 'block_stop':
        return this.#open && this.#blocks.get(event.index) === this.#open ? this.#closeOpen() : ''
      case 'image': {
        // No image output in Responses: a message item of its own says what was left out (the gateway's words, not billed).
        const block = -1 - this.#output.length
        let out = this.#start('') + this.#closeOpen() + this.#openItem(block, { type: 'text' })
        out += this.push({ type: 'delta', index: block, kind: 'text', value: imageOmittedNote(event.image) })
        this.#blocks.delete(block)
        return out + this.#closeOpen()
      }
      case 'usage':
        this.#usage = event.usage
        return ''
      case 'stop':
        this.#stop = event.reason
        return ''
      default:
        return ''
    }
  }

  end(error?: string, kind?: StreamFailureKind): string {
    let out = this.#start('') + this.#closeOpen()
    if (error) {
      const response = { ...this.#response('failed'), error: responsesStreamError(error, kind) }
      return out + this.#event('response.failed', { response })
    }
    const incomplete = this.#incomplete()
    const response = this.#response(incomplete ? 'incomplete' : 'completed')
    out += this.#event(incomplete ? 'response.incomplete' : 'response.completed', { response })
    // Stored (responses_store/): the finished response, for the store once the stream is sent.
    if (this.options.stored) this.options.stored.final = response
    return out
  }

  #incomplete() {
    return incompleteReason(this.#stop, this.#refused)
  }

  #response(status: 'in_progress' | 'completed' | 'incomplete' | 'failed') {
    const final = status !== 'in_progress'
    const incomplete = status === 'incomplete' ? this.#incomplete() : null
    const response = responseObject(this.#id, this.options.model, status, final ? this.#output : [], final ? this.#usage : null, incomplete)
    return this.options.stored ? storedResponseObject(response, this.options.stored) : response
  }

  #start(id: string): string {
    if (this.#started) return ''
    this.#started = true
    this.#id = this.options.stored?.id ?? responseId(id)
    return (
      this.#event('response.created', { response: this.#response('in_progress') }) +
      this.#event('response.in_progress', { response: this.#response('in_progress') })
    )
  }

  #openItem(index: number, block: BlockInfo): string {
    const outputIndex = this.#output.length
    const prefix = block.type === 'text' ? 'msg' : block.type === 'reasoning' ? 'rs' : 'fc'
    const itemId = block.type === 'reasoning' && block.id ? block.id : `${prefix}_${this.#id.slice(5)}_${outputIndex}`
    const item: OpenItem = { outputIndex, itemId, block, text: '' }
    this.#open = item
    this.#blocks.set(index, item)
    const base = { item_id: itemId, output_index: outputIndex }
    if (block.type === 'text') {
      const part = block.refusal ? { type: 'refusal', refusal: '' } : { type: 'output_text', text: '', annotations: [] }
      return (
        this.#event('response.output_item.added', { output_index: outputIndex, item: { ...messageItem(itemId, '', 'in_progress'), content: [] } }) +
        this.#event('response.content_part.added', { ...base, content_index: 0, part })
      )
    }
    if (block.type === 'reasoning') {
      return (
        this.#event('response.output_item.added', { output_index: outputIndex, item: { type: 'reasoning', id: itemId, summary: [] } }) +
        this.#event('response.reasoning_summary_part.added', { ...base, summary_index: 0, part: { type: 'summary_text', text: '' } })
      )
    }
    return this.#event('response.output_item.added', {
      output_index: outputIndex,
      item: toolItem(itemId, { id: block.id, name: block.name, arguments: '', custom: block.custom }, 'in_progress'),
    })
  }

  #closeOpen(): string {
    const item = this.#open
    if (!item) return ''
    this.#open = null
    const { block, itemId, outputIndex, text } = item
    const base = { item_id: itemId, output_index: outputIndex }
    let out = ''
    let done: ResponsesItem
    if (block.type === 'text' && block.refusal) {
      this.#refused = true
      done = refusalItem(itemId, text)
      out += this.#event('response.refusal.done', { ...base, content_index: 0, refusal: text })
      out += this.#event('response.content_part.done', { ...base, content_index: 0, part: { type: 'refusal', refusal: text } })
    } else if (block.type === 'text') {
      // Its citations, as OpenAI streams a search's: one annotation.added each after the text they cover, then in the .done events
      const annotations = item.cited ? item.cited.map((citation) => responsesAnnotation(citation, 0, text.length)) : []
      annotations.forEach((annotation, annotation_index) => {
        out += this.#event('response.output_text.annotation.added', { ...base, content_index: 0, annotation_index, annotation })
      })
      done = messageItem(itemId, text, 'completed', annotations)
      const part = { type: 'output_text', text, annotations }
      out += this.#event('response.output_text.done', { ...base, content_index: 0, text, logprobs: [] })
      out += this.#event('response.content_part.done', { ...base, content_index: 0, part })
    } else if (block.type === 'reasoning') {
      done = reasoningItem(itemId, { text, signature: item.signature })
      if (!text) done.summary = []
      out += this.#event('response.reasoning_summary_text.done', { ...base, summary_index: 0, text })
      out += this.#event('response.reasoning_summary_part.done', { ...base, summary_index: 0, part: { type: 'summary_text', text } })
    } else {
      done = toolItem(itemId, { id: block.id, name: block.name, arguments: text, custom: block.custom })
      out += block.custom
        ? this.#event('response.custom_tool_call_input.done', { ...base, input: text })
        : this.#event('response.function_call_arguments.done', { ...base, arguments: text })
    }
    this.#output.push(done)
    return out + this.#event('response.output_item.done', { output_index: outputIndex, item: done })
  }

  #event(type: string, data: Record<string, unknown>): string {
    return `event: ${type}\ndata: ${JSON.stringify({ type, sequence_number: this.#sequence++, ...data })}\n\n`
  }
}
