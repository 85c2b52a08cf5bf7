import type { CanonicalUsage } from '#gateway/dialects/canonical'
import { errorMessageOf, isCount, type Dialect } from '#gateway/dialects/dialect'
import { decodeAnthropicRequest, encodeAnthropicRequest } from '#gateway/dialects/anthropic_messages/request'
import {
  decodeAnthropicResponse,
  decodeAnthropicUsage,
  encodeAnthropicResponse,
  mergeAnthropicUsage,
  usageAfterBlockStart,
} from '#gateway/dialects/anthropic_messages/response'
import { AnthropicStreamDecoder } from '#gateway/dialects/anthropic_messages/stream_decoder'
import { AnthropicStreamEncoder } from '#gateway/dialects/anthropic_messages/stream_encoder'
import { AnthropicStreamCut } from '#gateway/dialects/anthropic_messages/stream_cut'
import { withoutForeignCitations } from '#gateway/dialects/anthropic_messages/foreign_citations'
import { anthropicStreamError } from '#gateway/dialects/stream_failure'

/** Anthropic Messages (`POST /v1/messages`). */
export const anthropicMessages: Dialect = {
  name: 'anthropic_messages',
  decodeRequest: (body) => decodeAnthropicRequest(body as any),
  encodeRequest: (request, model) => encodeAnthropicRequest(request, model) as unknown as Record<string, unknown>,
  decodeResponse: (body) => decodeAnthropicResponse(body),
  encodeResponse: (response, model) => encodeAnthropicResponse(response, model) as unknown as Record<string, unknown>,
  streamDecoder: () => new AnthropicStreamDecoder(),
  streamEncoder: (options) => new AnthropicStreamEncoder(options),
  usageOfBody: (body) => decodeAnthropicUsage(body?.usage),
  isAnswer: (body) => Array.isArray(body?.content),
  encodeTokenCount: (tokens) => ({ input_tokens: tokens }),
  isTokenCount: (body) => isCount(body?.input_tokens),
  passThrough: {
    // Usage lives in message_start (input, cache) and message_delta (output); a web search is counted as it
    // starts (its server_tool_use block), for a stream cut before message_delta (only those blocks are parsed).
    carriesUsage: (event) =>
      event.event === 'message_start' ||
      event.event === 'message_delta' ||
      (event.event === 'content_block_start' && event.data.includes('"server_tool_use"')),
    readUsage(parsed, known): CanonicalUsage | null {
      if (parsed?.type === 'message_start') return decodeAnthropicUsage(parsed.message?.usage) ?? known
      if (parsed?.type === 'content_block_start') return usageAfterBlockStart(parsed.content_block, known)
      if (parsed?.type !== 'message_delta' || !parsed.usage) return known
      return mergeAnthropicUsage(parsed.usage, known)
    },
    isFinal: (parsed) => parsed?.type === 'message_delta',
    isLast: (event) => event.event === 'message_stop',
    streamCut: () => new AnthropicStreamCut(),
    upstreamError: (event) => (event.event === 'error' ? (errorMessageOf(event.data) ?? 'upstream error') : null),
    rewriteModel(parsed, model) {
      if (parsed?.type !== 'message_start' || typeof parsed.message?.model !== 'string') return false
      parsed.message.model = model
      return true
    },
    upstreamBody(body, upstreamModel, clientModel) {
      // Citations the gateway wrote (an empty encrypted_index), sent back in the history: Anthropic cannot resolve them
      const cleaned = withoutForeignCitations(body)
      if (cleaned !== null) return { ...cleaned, model: upstreamModel }
      return upstreamModel === clientModel ? null : { ...body, model: upstreamModel }
    },
    errorEvent: (message, kind) => ({ event: 'error', data: JSON.stringify(anthropicStreamError(message, kind)) }),
  },
}
