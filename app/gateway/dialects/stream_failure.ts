import type { StreamFailureKind } from '#gateway/dialects/canonical'

/**
 * The error a stream ends with, in each format: one place for the pass-through
 * rules (errorEvent) and the stream encoders (end), so a passed-through and a
 * translated stream end alike. `quota` (the balance or the key's spend cap ran
 * out mid-stream, metering/stream_hold.ts) is told as each format tells an
 * exhausted quota, the way its SDKs surface it: OpenAI's `insufficient_quota`
 * (the openai SDKs throw APIError with that code and type; Codex reads a
 * `response.failed` of that code as its quota error), Anthropic's
 * `billing_error` (APIError of that type), Google's 402 as the gateway
 * answers it before a stream (@google/genai throws ApiError, status 402).
 */

/** OpenAI chat and legacy completions: a chunk holding only `error` */
export function chatStreamError(message: string, kind: StreamFailureKind = 'upstream') {
  return kind === 'quota'
    ? { error: { message, type: 'insufficient_quota', code: 'insufficient_quota' } }
    : { error: { message, type: 'upstream_error', code: 'provider_error' } }
}

/** Anthropic Messages: the `error` event's data */
export function anthropicStreamError(message: string, kind: StreamFailureKind = 'upstream') {
  return { type: 'error', error: { type: kind === 'quota' ? 'billing_error' : 'api_error', message } }
}

/** Gemini: a chunk holding only `error` */
export function geminiStreamError(message: string, kind: StreamFailureKind = 'upstream') {
  return kind === 'quota'
    ? { error: { code: 402, message, status: 'FAILED_PRECONDITION' } }
    : { error: { code: 500, message, status: 'INTERNAL' } }
}

/** OpenAI Responses: the failed response's `error` */
export function responsesStreamError(message: string, kind: StreamFailureKind = 'upstream') {
  return { code: kind === 'quota' ? 'insufficient_quota' : 'server_error', message }
}
