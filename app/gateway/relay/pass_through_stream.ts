import { redactAddresses } from '#gateway/http/client_message'
import type { CanonicalEvent, CanonicalUsage, StreamDecoder } from '#gateway/dialects/canonical'
import { parseJson, type Dialect, type EncoderOptions } from '#gateway/dialects/dialect'
import { ClientStream } from '#gateway/relay/client_stream'
import { SseParser, type SseEvent } from '#gateway/sse/sse_parser'
import { UpstreamBody } from '#gateway/upstream/dispatcher'

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
  let kept: KeptText | null = new KeptText(dialect)
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

  /** One upstream chunk: its events relayed in one write. A promise: wait before the next chunk; false: stop. */
  const relayChunk = (chunk: Buffer): void | false | Promise<void> => {
    if (ended) return
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
      kept?.push(event)
      text += frame(data === event.data ? event : { event: event.event, data })
    }
    if (last && !arrayFraming) {
      out.end(text)
      ended = true
      return
    }
    const wait = out.send(text)
    if (out.gone) return false
    return wait
  }

  try {
    if (upstream instanceof UpstreamBody) {
      await upstream.forEach(relayChunk)
    } else {
      for await (const chunk of upstream) {
        const next = relayChunk(chunk)
        if (next === false) break
        if (next) await next
      }
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

  const text = kept
  return {
    usage,
    usageFinal: usageFinal && !error,
    error,
    clientClosed: clientClosed || (error !== null && out.gone),
    completionText: () => (text ? text.finish() : ''),
  }
}

/** Raw event bytes kept before they are folded into text (a short answer is never decoded). */
const KEPT_EVENT_BYTES = 2048

/**
 * What a stream's events said, kept until the upstream's usage arrives, so
 * that a stream cut before it can still be counted. A short stream keeps its
 * events as they came (nothing is decoded when the usage does arrive, the
 * usual case); past KEPT_EVENT_BYTES they are decoded into their completion
 * text (a few bytes per event instead of the event's JSON), so a long stream
 * holds its text, not its whole transcript, while it runs. The text is kept
 * flat (joined per fold): appending piece by piece would keep a rope of one
 * 32-byte node per event.
 */
class KeptText {
  #events: SseEvent[] = []
  #bytes = 0
  #decoder: StreamDecoder | null = null
  #text = ''

  constructor(private dialect: Dialect) {}

  push(event: SseEvent) {
    this.#events.push(event)
    this.#bytes += event.data.length
    if (this.#bytes > KEPT_EVENT_BYTES) this.#fold()
  }

  /** The completion text of everything pushed, through the dialect's own decoder. */
  finish(): string {
    this.#fold()
    const pieces = [this.#text]
    for (const event of this.#decoder!.end()) take(event, pieces)
    return pieces.join('')
  }

  #fold() {
    this.#decoder ??= this.dialect.streamDecoder()
    const pieces = [this.#text]
    for (const event of this.#events) for (const decoded of this.#decoder.push(event)) take(decoded, pieces)
    this.#text = pieces.join('')
    this.#events = []
    this.#bytes = 0
  }
}

function take(event: CanonicalEvent, pieces: string[]) {
  if (event.type === 'delta') pieces.push(event.value)
  else if (event.type === 'block_start' && event.block.type === 'tool_call') pieces.push(event.block.name)
}
