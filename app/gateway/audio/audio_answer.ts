import { GatewayError } from '#exceptions/gateway_error'
import { dialectOf } from '#gateway/dialects/registry'
import { answerLimits } from '#gateway/upstream/answer_limits'
import { ClientGoneError, describe, readBody } from '#gateway/upstream/dispatcher'
import { checkStreamOpening } from '#gateway/upstream/stream_opening'
import { answerProblem, parseAnswer } from '#gateway/upstream/upstream_answer'
import type { UpstreamBody } from '#gateway/upstream/upstream_body'
import { relayedUpstreamHeader } from '#gateway/upstream/relayed_headers'

/**
 * The audio endpoints' AnswerChecks (dispatcher.ts): a 2xx that is no
 * answer fails its attempt like a 5xx (the next channel is tried, the
 * channel's health counts it, `invalid_answer` on the attempt), as for
 * generations and the JSON operations (upstream_answer.ts). What "no answer"
 * means depends on what was asked: a transcript in a JSON or a text format,
 * or audio bytes.
 */

/** A transcription's whole answer, read in its attempt: relayed with its content type. */
export interface TranscriptAnswer {
  bytes: Buffer
  contentType: string
}

/** The `response_format`s whose answer is a JSON object with the transcript's `text` (json is the default) */
const JSON_FORMATS = new Set(['json', 'verbose_json', 'diarized_json'])

/**
 * A transcription or translation answer, read and checked inside its
 * attempt: empty, an error body with a success status (JSON, whatever its
 * label), not JSON or JSON without `text` when a JSON format was asked
 * (`response_format` json, verbose_json, diarized_json, or no format), an
 * HTML page, or a `vtt` that is not WebVTT is no answer. `text` and `srt`
 * are otherwise taken as they come (any non-empty text). Null for a stream
 * the client asked for, once its opening was checked (stream_opening.ts).
 */
export async function readTranscript(body: UpstreamBody, format: string | undefined, stream: boolean): Promise<TranscriptAnswer | null> {
  // Relayed with the transcript (relayed_headers.ts): json, text, srt or vtt as the upstream labelled it.
  const contentType = relayedUpstreamHeader(body.headers, 'content-type') ?? 'application/json'
  if (stream && contentType.startsWith('text/event-stream')) {
    // gpt-4o-transcribe's SSE: an error event first, or no event at all, fails over like chat's.
    await checkStreamOpening(body, dialectOf('openai_chat').passThrough)
    return null
  }
  const bytes = await readBody(body)
  if (bytes.length === 0) throw GatewayError.providerError('Upstream returned an empty answer')
  const asked = format ?? 'json'
  if (JSON_FORMATS.has(asked) || contentType.includes('json')) {
    const parsed = parseAnswer(bytes)
    // Asked for text and answered a JSON object that is no error: relayed as it came (as before).
    if (JSON_FORMATS.has(asked) && typeof parsed.text !== 'string') {
      throw GatewayError.providerError('Upstream returned an answer without its transcript')
    }
    return { bytes, contentType }
  }
  // text, srt, vtt: an error body labelled as text, a proxy's HTML page, a vtt that is not one.
  const problem = jsonErrorIn(bytes)
  if (problem !== null) throw GatewayError.providerError(problem)
  if (contentType.startsWith('text/html')) throw GatewayError.providerError('Upstream returned an HTML page, not a transcript')
  if (asked === 'vtt' && !startsWithText(bytes, 'WEBVTT')) throw GatewayError.providerError('Upstream returned a vtt answer that is not WebVTT')
  return { bytes, contentType }
}

/**
 * Speech's opening, looked at before a byte reaches the client (the relay
 * waits for the first chunk anyway: no latency added, nothing buffered but
 * what undici already holds): a JSON or text answer where audio was asked
 * (an error body sent with 200; read for its first 64 KB only), an empty
 * body, or a body that fails before its first byte is no answer. One whole
 * small body under an audio label that is a JSON error is no answer either.
 */
export async function checkSpeechOpening(body: UpstreamBody): Promise<void> {
  const contentType = headerOf(body.headers['content-type']) ?? ''
  if (contentType.includes('json') || contentType.startsWith('text/')) {
    const bytes = await body.collectPrefix(answerLimits.errorBytes).catch((error) => {
      if (error instanceof ClientGoneError) throw error
      return Buffer.alloc(0)
    })
    const problem = jsonErrorIn(bytes)
    const label = contentType.split(';')[0].trim()
    throw GatewayError.providerError(problem ?? `Upstream returned ${label} instead of audio`)
  }
  let chunks: readonly Buffer[]
  try {
    chunks = await body.held(0)
  } catch (error) {
    if (error instanceof ClientGoneError) throw error
    throw GatewayError.providerError(`Upstream audio failed before its first byte: ${describe(error)}`)
  }
  if (!body.complete) return
  if (chunks.every((chunk) => chunk.length === 0)) throw GatewayError.providerError('Upstream returned no audio (an empty body)')
  if (chunks.length === 1) {
    const problem = jsonErrorIn(chunks[0])
    if (problem !== null) throw GatewayError.providerError(problem)
  }
}

/** Why bytes that read as a JSON object are an error answer, or null (not JSON, or JSON that is no error). */
function jsonErrorIn(bytes: Buffer): string | null {
  if (firstNonSpace(bytes) !== 0x7b /* { */) return null
  let parsed: unknown
  try {
    parsed = JSON.parse(bytes.toString('utf8'))
  } catch {
    return null
  }
  const error = (parsed as { error?: unknown }).error
  return error !== null && typeof error === 'object' ? answerProblem(parsed) : null
}

function firstNonSpace(bytes: Buffer): number | undefined {
  for (let i = 0; i < bytes.length && i < 64; i++) {
    const b = bytes[i]
    if (b !== 0x20 && b !== 0x0a && b !== 0x0d && b !== 0x09) return b
  }
  return undefined
}

/** The text begins with `prefix` (after a UTF-8 byte order mark, which WebVTT allows). */
function startsWithText(bytes: Buffer, prefix: string): boolean {
  const start = bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf ? 3 : 0
  return bytes.subarray(start, start + prefix.length).toString('latin1') === prefix
}

function headerOf(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value
}
