import { redactAddresses } from '#gateway/http/client_message'
import type { CanonicalUsage } from '#gateway/dialects/canonical'
import { parseJson, type Dialect, type EncoderOptions } from '#gateway/dialects/dialect'
import { ClientStream } from '#gateway/relay/client_stream'
import { SseParser, type SseEvent } from '#gateway/sse/sse_parser'

export interface PassThroughOptions {
  /** What the client asked for (usage chunk, framing) */
  encoder: EncoderOptions
  /** Rewrite the model in events to the client's name (model mapping) */
  clientModel: string | null
  stream: ClientStream
}

export interface StreamOutcome {
  usage: CanonicalUsage | null
  /** The usage is the upstream's final count (not a partial one from a cut stream) */
  usageFinal: boolean
  /** Streamed completion text, for counting when the upstream reported no usage */
  completionText: () => string
  /** Upstream failure after the stream started, if any */
  error: Error | null
  clientClosed: boolean
}

/**
 * Relays a same-dialect stream event by event, as each arrives. Only events
 * that may carry usage (or the model, when it is mapped) are parsed; the rest
 * are written as received. Events are kept only until usage shows up, so the
 * text can be counted if the stream ends without it.
 */
export async function relayPassThroughStream(
  upstream: AsyncIterable<Buffer>,
  dialect: Dialect,
  options: PassThroughOptions
): Promise<StreamOutcome> {
  const rules = dialect.passThrough
  const out = options.stream
  const arrayFraming = options.encoder.jsonArray === true
  const parser = new SseParser()
  let usage: CanonicalUsage | null = null
  let usageFinal = false
  let kept: SseEvent[] | null = []
  let error: Error | null = null
  let first = true

  const frame = (event: SseEvent): string => {
    if (!arrayFraming) return event.event ? `event: ${event.event}\ndata: ${event.data}\n\n` : `data: ${event.data}\n\n`
    const prefix = first ? '[' : ',\r\n'
    first = false
    return prefix + event.data
  }

  // Set once the dialect's last event was relayed together with the end of
  // the answer; whatever the upstream still sends is read and dropped, so its
  // connection can be reused.
  let ended = false

  try {
    for await (const chunk of upstream) {
      if (ended) continue
      let text = ''
      let last = false
      for (const event of parser.push(chunk)) {
        if (rules.isLast?.(event)) last = true
        if (event.data === rules.sentinel) {
          if (!arrayFraming) text += `data: ${event.data}\n\n`
          continue
        }
        let data = event.data
        if (options.clientModel || rules.carriesUsage(event)) {
          const parsed = parseJson(data)
          if (parsed && typeof parsed === 'object') {
            const found = rules.readUsage(parsed, usage)
            if (found && found !== usage) {
              usage = found
              if (rules.isFinal?.(parsed) ?? true) {
                usageFinal = true
                kept = null
              }
              if (rules.isUnrequested?.(parsed, options.encoder)) continue
            }
            if (options.clientModel && rules.rewriteModel(parsed, options.clientModel)) data = JSON.stringify(parsed)
          }
        }
        if (kept) kept.push(event)
        text += frame(data === event.data ? event : { event: event.event, data })
      }
      if (last && !arrayFraming) {
        out.end(text)
        ended = true
      } else if (text) await out.write(text)
      if (out.gone) break
    }
  } catch (caught) {
    // After the last event the answer is complete: a failure while draining the rest is not the client's.
    if (!ended) error = caught as Error
  }

  const clientClosed = out.closedEarly
  if (!ended) {
    if (error && !clientClosed) {
      const message = redactAddresses(`Upstream stream failed: ${error.message || 'connection reset'}`)
      await out.write(frame(rules.errorEvent(message))).catch(() => {})
    }
    if (arrayFraming) await out.write(first ? '[]' : ']').catch(() => {})
    out.end()
  }

  const events = kept
  return {
    usage,
    usageFinal: usageFinal && !error,
    error,
    clientClosed: clientClosed || (error !== null && out.gone),
    completionText: () => (events ? streamedText(dialect, events) : ''),
  }
}

/** The completion text of kept events, through the dialect's own decoder. */
function streamedText(dialect: Dialect, events: SseEvent[]): string {
  const decoder = dialect.streamDecoder()
  let text = ''
  for (const event of [...events.flatMap((e) => decoder.push(e)), ...decoder.end()]) {
    if (event.type === 'delta') text += event.value
    else if (event.type === 'block_start' && event.block.type === 'tool_call') text += event.block.name
  }
  return text
}
