import { errorMessageOf, isCount, type Dialect } from '#gateway/dialects/dialect'
import { decodeGeminiRequest, encodeGeminiRequest } from '#gateway/dialects/gemini/request'
import { decodeGeminiResponse, encodeGeminiResponse, geminiChunkUsage, geminiUsageOfBody, stopOfChunk } from '#gateway/dialects/gemini/response'
import { GeminiStreamDecoder } from '#gateway/dialects/gemini/stream_decoder'
import { GeminiStreamEncoder } from '#gateway/dialects/gemini/stream_encoder'
import { GeminiStreamCut } from '#gateway/dialects/gemini/stream_cut'
import { geminiStreamError } from '#gateway/dialects/stream_failure'

/** Gemini generateContent family (`/v1beta/models/{model}:generateContent` etc.). The model is in the path. */
export const gemini: Dialect = {
  name: 'gemini',
  decodeRequest: (body) => decodeGeminiRequest(body as any),
  encodeRequest: (request, model) => encodeGeminiRequest(request, model) as unknown as Record<string, unknown>,
  decodeResponse: (body) => decodeGeminiResponse(body),
  encodeResponse: (response, model) => encodeGeminiResponse(response, model) as unknown as Record<string, unknown>,
  streamDecoder: () => new GeminiStreamDecoder(),
  streamEncoder: (options) => new GeminiStreamEncoder(options),
  usageOfBody: geminiUsageOfBody,
  isAnswer: (body) => Array.isArray(body?.candidates) || (body?.promptFeedback !== null && typeof body?.promptFeedback === 'object'),
  encodeTokenCount: (tokens) => ({ totalTokens: tokens }),
  // Google's JSON leaves out a field at its default: a count of 0 may come as no totalTokens.
  isTokenCount: (body) => body?.totalTokens === undefined || isCount(body.totalTokens),
  passThrough: {
    // usageMetadata is cumulative: the chunk with finishReason has the final count (a blocked prompt's, its only chunk).
    // A chunk with groundingMetadata before it is parsed too: its searches are billed if the stream is cut there.
    carriesUsage: (event) =>
      event.data.includes('"finishReason"') || event.data.includes('"blockReason"') || event.data.includes('"groundingMetadata"'),
    readUsage: geminiChunkUsage,
    isFinal: (parsed) => stopOfChunk(parsed, false) !== null,
    rewriteModel(parsed, model) {
      if (typeof parsed?.modelVersion !== 'string') return false
      parsed.modelVersion = model
      return true
    },
    upstreamBody: () => null,
    streamCut: () => new GeminiStreamCut(),
    upstreamError: (event) => (event.data.includes('"error"') ? errorMessageOf(event.data) : null),
    errorEvent: (message, kind) => ({ data: JSON.stringify(geminiStreamError(message, kind)) }),
  },
}
