import { GatewayError } from '#exceptions/gateway_error'
import type { PassThroughRules } from '#gateway/dialects/dialect'
import { SseParser, type SseEvent } from '#gateway/sse/sse_parser'
import { ClientGoneError, describe } from '#gateway/upstream/dispatcher'
import type { UpstreamBody } from '#gateway/upstream/upstream_body'

/**
 * A stream's opening, looked at inside its attempt, while nothing has
 * reached the client (ClientStream writes the head with the first bytes):
 * a stream that fails before its first event, ends without one, or whose
 * first event is the upstream's own error (rules.upstreamError: a proxy's
 * `data: {"error":...}` with 200, Anthropic's `event: error`) is the
 * upstream's failure, thrown as a GatewayError so that dispatch tries the
 * next candidate, as for a 5xx. Later failures stay the relay's (the client
 * already has bytes).
 *
 * Waits only for the first chunk that closes an event (or a comment: a
 * keep-alive must not be held back), which the relay would wait for anyway:
 * no latency added. A usual first chunk costs two byte scans; only one that
 * mentions an error, or a body complete without a whole event, is parsed.
 */
export async function checkStreamOpening(body: UpstreamBody, rules: Pick<PassThroughRules, 'upstreamError'>): Promise<void> {
  let chunks: readonly Buffer[] = []
  let seen: number
  try {
    do {
      seen = chunks.length
      chunks = await body.held(seen)
    } while (chunks.length > seen && chunks.length < MAX_OPENING_CHUNKS && !body.complete && !closesEvent(chunks[chunks.length - 1]))
  } catch (error) {
    if (error instanceof ClientGoneError) throw error
    throw GatewayError.providerError(`Upstream stream failed before its first event: ${describe(error)}`)
  }
  const complete = body.complete
  // No error mentioned, and an event closed (or more to come): the opening is fine, unparsed.
  // (A short answer often arrives whole in its first chunk: parsing it all here cost every such stream.)
  if (!chunks.some(mentionsError) && (!complete || chunks.some(closesEvent))) return
  const first = firstEvent(chunks, complete)
  if (first === undefined) return
  if (first === null) throw GatewayError.providerError('Upstream stream ended before its first event')
  const message = rules.upstreamError?.(first)
  if (message) throw GatewayError.providerError(`Upstream stream began with an error: ${message.slice(0, 500)}`)
}

/** Past this many chunks without a whole event the opening is left to the relay (held() stops at its own bound too) */
const MAX_OPENING_CHUNKS = 16

const LF_LF = Buffer.from('\n\n')
const CRLF_CRLF = Buffer.from('\r\n\r\n')
const CR_CR = Buffer.from('\r\r')

function closesEvent(chunk: Buffer | undefined): boolean {
  return chunk !== undefined && (chunk.includes(LF_LF) || chunk.includes(CRLF_CRLF) || chunk.includes(CR_CR))
}

function mentionsError(chunk: Buffer): boolean {
  return chunk.includes('error')
}

/** The first event of the held chunks; null: none in a complete body; undefined: none yet, or unreadable (the relay's case). */
function firstEvent(chunks: readonly Buffer[], complete: boolean): SseEvent | null | undefined {
  const parser = new SseParser()
  try {
    for (const chunk of chunks) {
      const events = parser.push(chunk)
      if (events.length > 0) return events[0]
    }
    if (!complete) return undefined
    return parser.end()[0] ?? null
  } catch {
    return undefined
  }
}
