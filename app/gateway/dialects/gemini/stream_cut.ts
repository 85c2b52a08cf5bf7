import type { CanonicalEvent, CanonicalUsage } from '#gateway/dialects/canonical'
import type { StreamCut } from '#gateway/dialects/dialect'
import { encodeGeminiUsage } from '#gateway/dialects/gemini/response'
import type { GeminiResponse } from '#gateway/dialects/gemini/types'
import type { SseEvent } from '#gateway/sse/sse_parser'

/**
 * A Gemini stream stopped by the gateway: a last chunk with finishReason
 * "SAFETY" (how Gemini ends an answer its own filter stops) and the usage
 * known so far, under the stream's responseId and modelVersion.
 */
export class GeminiStreamCut implements StreamCut {
  #id = ''
  #model = ''

  seen(_event: SseEvent, decoded: readonly CanonicalEvent[]) {
    if (decoded.length > 0 && decoded[0].type === 'start') {
      this.#id = decoded[0].id
      this.#model = decoded[0].model
    }
  }

  end(usage: CanonicalUsage | null, model: string | null): SseEvent[] {
    const chunk: GeminiResponse = {
      candidates: [{ content: { role: 'model', parts: [{ text: '' }] }, finishReason: 'SAFETY', index: 0 }],
      modelVersion: model ?? this.#model,
      responseId: this.#id,
    }
    if (usage) chunk.usageMetadata = encodeGeminiUsage(usage)
    return [{ data: JSON.stringify(chunk) }]
  }
}
