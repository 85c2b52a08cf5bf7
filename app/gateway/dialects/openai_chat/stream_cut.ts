import type { CanonicalEvent } from '#gateway/dialects/canonical'
import type { StreamCut } from '#gateway/dialects/dialect'
import { chatId } from '#gateway/dialects/openai_chat/response'
import type { SseEvent } from '#gateway/sse/sse_parser'

/**
 * A chat stream stopped by the gateway: a last chunk with finish_reason
 * "content_filter" (as Azure OpenAI ends a filtered answer) under the
 * stream's id and model, then `[DONE]`. The usage chunk is not written: a
 * chat upstream sends its usage after the finish, so none is known yet.
 */
export class ChatStreamCut implements StreamCut {
  #id = ''
  #model = ''

  seen(_event: SseEvent, decoded: readonly CanonicalEvent[]) {
    if (decoded.length > 0 && decoded[0].type === 'start') {
      this.#id = decoded[0].id
      this.#model = decoded[0].model
    }
  }

  end(_usage: unknown, model: string | null): SseEvent[] {
    const chunk = {
      id: chatId(this.#id),
      object: 'chat.completion.chunk',
      created: Math.floor(Date.now() / 1000),
      model: model ?? this.#model,
      choices: [{ index: 0, delta: {}, logprobs: null, finish_reason: 'content_filter' }],
    }
    return [{ data: JSON.stringify(chunk) }, { data: '[DONE]' }]
  }
}
