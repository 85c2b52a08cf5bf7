import { newToolCallId, withWebSearches, type CanonicalEvent, type CanonicalUsage, type StreamDecoder } from '#gateway/dialects/canonical'
import { parseJson } from '#gateway/dialects/dialect'
import { OpenBlock } from '#gateway/dialects/open_block'
import { decodeGeminiUsage, groundingSearches, imageOfPart, stopOfChunk } from '#gateway/dialects/gemini/response'
import type { GeminiResponse } from '#gateway/dialects/gemini/types'
import { groundingCitations, type GeminiGrounding } from '#gateway/dialects/gemini/grounding'

/**
 * Gemini stream chunks (GenerateContentResponse each) -> canonical events.
 * Text and thought parts extend the open block of their kind; a function
 * call arrives whole and becomes a complete block, an image (inlineData)
 * an `image` event. usageMetadata is
 * cumulative, so each one is a full snapshot. A blocked prompt comes as one
 * chunk with promptFeedback and no candidate.
 */
export class GeminiStreamDecoder implements StreamDecoder {
  #started = false
  #blocks = new OpenBlock()
  #sawTool = false
  /** The last usage pushed, and the most searches a chunk's grounding showed (groundingSearches) */
  #usage: CanonicalUsage | null = null
  #searches = 0
  /** The grounding's pages were cited (a later chunk repeating groundingMetadata cites nothing more) */
  #cited = false

  push(event: { data: string }): CanonicalEvent[] {
    const chunk = parseJson(event.data) as (GeminiResponse & { error?: { message?: string } }) | null
    if (!chunk || typeof chunk !== 'object') return []
    const out: CanonicalEvent[] = []
    if (chunk.error) return [{ type: 'error', message: String(chunk.error.message ?? 'upstream error') }]
    if (!this.#started) {
      this.#started = true
      out.push({ type: 'start', id: String(chunk.responseId ?? ''), model: String(chunk.modelVersion ?? '') })
    }
    const candidate = chunk.candidates?.[0]
    for (const part of candidate?.content?.parts ?? []) {
      if (part.functionCall) {
        // A function call arrives whole: a complete block.
        this.#sawTool = true
        const id = part.functionCall.id || newToolCallId()
        const index = this.#blocks.open(out, { type: 'tool_call', id, name: part.functionCall.name })
        out.push({ type: 'delta', index, kind: 'arguments', value: JSON.stringify(part.functionCall.args ?? {}) })
        if (part.thoughtSignature) out.push({ type: 'signature', index, value: part.thoughtSignature })
        this.#blocks.close(out)
      } else if (typeof part.text === 'string') {
        const kind = part.thought ? 'reasoning' : 'text'
        if (!part.text && !(kind === 'reasoning' && part.thoughtSignature)) continue
        const index = this.#blocks.ensure(out, kind)
        if (part.text) out.push({ type: 'delta', index, kind, value: part.text })
        if (kind === 'reasoning' && part.thoughtSignature) out.push({ type: 'signature', index, value: part.thoughtSignature })
      } else {
        // An image arrives whole, in one chunk: the text before it is closed, so what follows keeps its order.
        const image = imageOfPart(part)
        if (image) {
          this.#blocks.close(out)
          out.push({ type: 'image', image })
        }
      }
    }
    // Each chunk's snapshot, with the most searches a chunk's grounding showed; a chunk grounding without
    // counts: partial (a stream cut before its last chunk is billed its searches).
    const counts = decodeGeminiUsage(chunk.usageMetadata)
    const shown = this.#searches
    const grounded = groundingSearches(chunk)
    if (grounded > shown) this.#searches = grounded
    if (counts !== null) {
      if (this.#searches > 0) counts.webSearches = this.#searches
      out.push({ type: 'usage', usage: (this.#usage = counts) })
    } else if (this.#searches > shown) {
      out.push({ type: 'usage', usage: (this.#usage = withWebSearches(this.#usage, this.#searches)), partial: true })
    }
    // Google Search grounding, on a late chunk: its pages cite the open text block (their spans went by with its text)
    if (candidate?.groundingMetadata && !this.#cited) this.#cite(out, candidate.groundingMetadata)
    // As the non-stream answer says it: a finishReason, or a blocked prompt (content_filter, not an empty "stop")
    const stop = stopOfChunk(chunk, this.#sawTool)
    if (stop) {
      this.#blocks.close(out)
      out.push({ type: 'stop', reason: stop })
    }
    return out
  }

  #cite(out: CanonicalEvent[], grounding: GeminiGrounding) {
    const index = this.#blocks.openText
    if (index === null) return
    for (const { citation } of groundingCitations(grounding, null)) {
      this.#cited = true
      out.push({ type: 'citation', index, citation })
    }
  }

  end(): CanonicalEvent[] {
    const out: CanonicalEvent[] = []
    this.#blocks.close(out)
    return out
  }
}
