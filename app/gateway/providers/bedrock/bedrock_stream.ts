import type { BodyDecoder } from '#gateway/providers/provider_adapter'
import { EventStreamDecoder, type EventMessage } from '#gateway/providers/bedrock/event_stream'

/**
 * Bedrock's InvokeModelWithResponseStream answer, as the Anthropic SSE the
 * relays read: each `chunk` event's payload is `{"bytes": base64}` holding
 * one Anthropic stream event's JSON, written as `event: {type}` /
 * `data: {json}`. An exception message (throttling, a model error mid-stream)
 * becomes Anthropic's `event: error`, which the stream checks treat as the
 * upstream's error (before the first event: the next channel is tried).
 */
export class BedrockToAnthropicSse implements BodyDecoder {
  #frames = new EventStreamDecoder()

  push(chunk: Buffer): Buffer | null {
    const messages = this.#frames.push(chunk)
    if (messages.length === 0) return null
    let out = ''
    for (const message of messages) out += sseOf(message)
    return out ? Buffer.from(out) : null
  }

  /** A body that ends inside a frame was cut: the read fails (the stream's interruption), never a clean end. */
  end(): Buffer | null {
    this.#frames.end()
    return null
  }
}

const TYPE_FIRST = /^\s*\{\s*"type"\s*:\s*"([a-z_]+)"/

function sseOf(message: EventMessage): string {
  const kind = message.headers[':message-type']
  if (kind === 'exception' || kind === 'error') return errorEventOf(message)
  if (message.headers[':event-type'] !== 'chunk') return ''
  const bytes = JSON.parse(message.payload.toString('utf8'))?.bytes
  if (typeof bytes !== 'string') return ''
  let json = Buffer.from(bytes, 'base64').toString('utf8')
  // Bedrock's events are compact JSON with `type` first; anything else is read whole.
  let type = TYPE_FIRST.exec(json)?.[1]
  if (type === undefined || json.includes('\n') || json.includes('\r')) {
    const parsed = JSON.parse(json)
    type = typeof parsed?.type === 'string' ? parsed.type : 'message'
    json = JSON.stringify(parsed)
  }
  return `event: ${type}\ndata: ${json}\n\n`
}

/** An exception message (throttling, a model error mid-stream) as Anthropic's `event: error` (InvokeModel's and Converse's streams). */
export function errorEventOf(message: EventMessage): string {
  const type = String(message.headers[':exception-type'] ?? message.headers[':error-code'] ?? 'exception')
  let text = typeof message.headers[':error-message'] === 'string' ? (message.headers[':error-message'] as string) : ''
  try {
    const parsed = JSON.parse(message.payload.toString('utf8'))
    if (typeof parsed?.message === 'string') text = parsed.message
  } catch {}
  const error = { type: 'error', error: { type: anthropicErrorType(type), message: `${type}: ${text}`.slice(0, 1000) } }
  return `event: error\ndata: ${JSON.stringify(error)}\n\n`
}

/** Bedrock's exception names as the Anthropic error types clients and the stream checks know. */
function anthropicErrorType(exception: string): string {
  const name = exception.toLowerCase()
  if (name.startsWith('throttling') || name.startsWith('modelnotready')) return 'rate_limit_error'
  if (name.startsWith('serviceunavailable')) return 'overloaded_error'
  if (name.startsWith('validation')) return 'invalid_request_error'
  if (name.startsWith('accessdenied')) return 'permission_error'
  return 'api_error'
}
