import type { CanonicalEvent, CanonicalUsage } from '#gateway/dialects/canonical'
import type { StreamCut } from '#gateway/dialects/dialect'
import { responseId, responseObject } from '#gateway/dialects/openai_responses/response'
import type { SseEvent } from '#gateway/sse/sse_parser'

/**
 * A Responses stream stopped by the gateway: response.incomplete with
 * incomplete_details.reason "content_filter" (what the translated stream
 * and a Responses upstream's own filter say), numbered after the events
 * relayed. Its response holds no output: the answer is withheld, as the
 * non-streamed check withholds it (the deltas already sent stay sent).
 */
export class ResponsesStreamCut implements StreamCut {
  #events = 0
  #id = ''
  #model = ''

  seen(_event: SseEvent, decoded: readonly CanonicalEvent[]) {
    this.#events++
    if (decoded.length > 0 && decoded[0].type === 'start') {
      this.#id = decoded[0].id
      this.#model = decoded[0].model
    }
  }

  end(usage: CanonicalUsage | null, model: string | null): SseEvent[] {
    const response = responseObject(responseId(this.#id), model ?? this.#model, 'incomplete', [], usage, 'content_filter')
    return [
      {
        event: 'response.incomplete',
        data: JSON.stringify({ type: 'response.incomplete', sequence_number: this.#events, response }),
      },
    ]
  }
}
