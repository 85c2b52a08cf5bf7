import { MAX_CITATIONS, withSearchQuery, type CanonicalEvent, type CanonicalUsage, type StopReason, type StreamEncoder, type StreamFailureKind, type UrlCitation } from '#gateway/dialects/canonical'
import { GroundingWriter } from '#gateway/dialects/gemini/grounding'
import { geminiStreamError } from '#gateway/dialects/stream_failure'
import type { EncoderOptions } from '#gateway/dialects/dialect'
import { encodeGeminiUsage, geminiFinish, partOfImage, toolCallPart } from '#gateway/dialects/gemini/response'
import type { GeminiPart, GeminiResponse } from '#gateway/dialects/gemini/types'

/**
 * Canonical events -> Gemini stream chunks, as SSE (`alt=sse`) or as one
 * JSON array. Text, thoughts and images go out as they arrive; a function call goes
 * out whole when its arguments are complete. The last chunk carries
 * finishReason and usageMetadata (Gemini CLI retries without them), and,
 * for an answer citing web pages or telling its searches, groundingMetadata
 * (where Gemini streams it: on a late chunk, after the text). A stream keeps
 * no text: each cited block is one segment, its byte offsets from a count of
 * the text's UTF-8 bytes (one Buffer.byteLength per text delta).
 */
export class GeminiStreamEncoder implements StreamEncoder {
  readonly contentType: string
  #first = true
  #id = ''
  #tools = new Map<number, { id: string; name: string; args: string; signature?: string; custom?: boolean }>()
  #thoughts = new Set<number>()
  #usage: CanonicalUsage | null = null
  #stop: StopReason | null = null
  /** UTF-8 bytes of the answer's text so far (thoughts not counted): where a cited block's segment begins and ends */
  #bytes = 0
  /** The open text block: its index, where it began, the pages it cites (null: none yet) */
  #text = -1
  #textFrom = 0
  #cited: UrlCitation[] | null = null
  #grounding: GroundingWriter | null = null
  #queries: string[] | undefined

  constructor(private options: EncoderOptions) {
    this.contentType = options.jsonArray ? 'application/json; charset=utf-8' : 'text/event-stream; charset=utf-8'
  }

  push(event: CanonicalEvent): string {
    switch (event.type) {
      case 'start':
        this.#id = event.id
        return ''
      case 'block_start':
        if (event.block.type === 'tool_call') {
          const { id, name, custom } = event.block
          this.#tools.set(event.index, { id, name, args: '', custom })
        } else if (event.block.type === 'reasoning') {
          this.#thoughts.add(event.index)
        } else {
          this.#closeText()
          this.#text = event.index
          this.#textFrom = this.#bytes
        }
        return ''
      case 'delta': {
        const tool = this.#tools.get(event.index)
        if (tool) {
          tool.args += event.value
          return ''
        }
        if (event.kind === 'reasoning') return this.#chunk([{ text: event.value, thought: true }])
        this.#bytes += Buffer.byteLength(event.value)
        return this.#chunk([{ text: event.value }])
      }
      case 'signature': {
        const tool = this.#tools.get(event.index)
        if (tool) tool.signature = event.value
        else if (this.#thoughts.has(event.index)) return this.#chunk([{ text: '', thought: true, thoughtSignature: event.value }])
        return ''
      }
      case 'citation':
        if (event.index === this.#text && (this.#cited?.length ?? 0) < MAX_CITATIONS) (this.#cited ??= []).push(event.citation)
        return ''
      case 'search':
        this.#queries = withSearchQuery(this.#queries, event.query)
        return ''
      case 'block_stop': {
        if (event.index === this.#text) this.#closeText()
        const tool = this.#tools.get(event.index)
        if (!tool) return ''
        this.#tools.delete(event.index)
        const args = tool.custom ? JSON.stringify({ input: tool.args }) : tool.args
        return this.#chunk([toolCallPart(tool.id, tool.name, args, tool.signature)])
      }
      case 'image':
        // As Gemini streams one: the whole image in a chunk of its own.
        return this.#chunk([partOfImage(event.image)])
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
    if (error) {
      const payload = JSON.stringify(geminiStreamError(error, kind))
      return this.options.jsonArray ? `${this.#first ? '[' : ',\r\n'}${payload}]` : `data: ${payload}\r\n\r\n`
    }
    this.#closeText()
    const candidate: NonNullable<GeminiResponse['candidates']>[number] = { content: { role: 'model', parts: [{ text: '' }] }, finishReason: geminiFinish(this.#stop ?? 'end_turn'), index: 0 }
    if (this.#queries) this.#grounding ??= new GroundingWriter()
    const grounding = this.#grounding?.grounding(this.#queries)
    if (grounding) candidate.groundingMetadata = grounding
    const final: GeminiResponse = { candidates: [candidate], modelVersion: this.options.model, responseId: this.#id }
    if (this.#usage) final.usageMetadata = encodeGeminiUsage(this.#usage)
    const out = this.#frame(final)
    return this.options.jsonArray ? out + ']' : out
  }

  /** The open text block ends: its pages, if it cites any, over its segment of the text's bytes */
  #closeText() {
    if (this.#cited !== null) (this.#grounding ??= new GroundingWriter()).add(this.#cited, null, undefined, this.#textFrom, this.#bytes)
    this.#text = -1
    this.#cited = null
  }

  #chunk(parts: GeminiPart[]): string {
    return this.#frame({
      candidates: [{ content: { role: 'model', parts }, index: 0 }],
      modelVersion: this.options.model,
      responseId: this.#id,
    })
  }

  #frame(chunk: GeminiResponse): string {
    const payload = JSON.stringify(chunk)
    if (!this.options.jsonArray) return `data: ${payload}\r\n\r\n`
    const prefix = this.#first ? '[' : ',\r\n'
    this.#first = false
    return prefix + payload
  }
}
