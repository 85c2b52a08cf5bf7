import { streamFailureMessage } from '#gateway/http/client_message'
import type { StreamScreen } from '#gateway/content_filter/word_filter'
import type { CanonicalEvent, CanonicalUsage, StreamDecoder } from '#gateway/dialects/canonical'
import { parseJson, type Dialect, type EncoderOptions } from '#gateway/dialects/dialect'
import { screenedAt } from '#gateway/relay/answer_screen'
import { ClientStream } from '#gateway/relay/client_stream'
import { TextPieces, type KeptText as CompletionText } from '#gateway/relay/text_pieces'
import { endsWithBlankLine, SseParser, type SseEvent } from '#gateway/sse/sse_parser'
import { forEachChunk } from '#gateway/upstream/dispatcher'
import type { ChunkSink } from '#gateway/upstream/upstream_body'
import type { StreamHold } from '#gateway/metering/stream_hold'
import type { GatewayError } from '#exceptions/gateway_error'

export interface PassThroughOptions {
  /** What the client asked for (usage chunk, framing) */
  encoder: EncoderOptions
  /** Rewrite the model in events to the client's name (model mapping) */
  clientModel: string | null
  stream: ClientStream
  /** The sensitive-word answer check (null: answers are not checked, the usual case) */
  screen?: StreamScreen | null
  /**
   * The upstream's own error event is relayed as it came, but without the
   * channel's key and address (upstream/channel_secrets.ts): asked of that one
   * event only.
   */
  conceal?: ((text: string) => string) | null
  /** The answer's hold on the balance, kept ahead of its cost (null: its tokens cost nothing) */
  hold?: StreamHold | null
  /** Told each event the relay parsed anyway (a stored Responses answer's id, on its final event); absent: nothing more is done */
  onParsed?: ((parsed: Record<string, any>) => void) | null
}

/**
 * What the relay needs of a wire format: its pass-through rules, and a stream
 * decoder to count the text of a stream that ends without usage. A dialect
 * is one; so is a format that is only ever passed through (legacy completions).
 */
export type PassThroughFormat = Pick<Dialect, 'passThrough' | 'streamDecoder'>

export interface StreamOutcome {
  usage: CanonicalUsage | null
  /** The usage is the upstream's final count (not a partial one from a cut stream) */
  usageFinal: boolean
  /** Streamed completion text, for counting when the upstream reported no usage (its first KEPT_TEXT_CHARS, and its length) */
  completionText: () => CompletionText
  /** Upstream failure after the stream started, if any */
  error: Error | null
  clientClosed: boolean
  /**
   * The answer check stopped the stream: a listed word completed in the
   * answer, the event that completed it was not relayed, the client got a
   * clean content-filter end, and the upstream request was ended.
   */
  withheld: boolean
  /**
   * The balance (or the key's spend cap) could not cover the answer's next
   * text (metering/stream_hold.ts): the stream was cut before it, the client
   * got the quota error in its format, the upstream request was ended. Why
   * (also in `error`); null otherwise.
   */
  outOfFunds: GatewayError | null
}

/**
 * Relays a same-dialect stream event by event, as each arrives. Only events
 * that may carry usage (or the model, when it is mapped) are parsed; the rest
 * are written as received (byte for byte when a chunk holds whole events).
 * Events are kept only until usage shows up, so the text can be counted if
 * the stream ends without it.
 */
export async function relayPassThroughStream(
  upstream: AsyncIterable<Buffer>,
  dialect: PassThroughFormat,
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
  /** The upstream's own error event, relayed as it came (rules.upstreamError) */
  let upstreamError: string | null = null
  /** Events seen: none at all means the body was no event stream (a JSON answer labelled as one) */
  let seen = 0
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

  // The upstream's own bytes go to the client when nothing in them is to
  // change: no model to rewrite, no array framing. Then a chunk that holds
  // whole events (the parser between events before it, a blank line at its
  // end) is written as it came, comments, ids and line ends included; it is
  // still parsed, for the usage and the last event. A chunk that starts or
  // ends inside an event, or carries an event the client did not ask for
  // (the usage chunk the gateway requested for itself), is written re-framed.
  const bytesAllowed = !arrayFraming && options.clientModel === null
  // The previous chunk ended with a blank line: none of its bytes (not even
  // part of a UTF-8 character) wait in the parser for this one.
  let previousEndedEvent = true

  // The client asked for events amended (chat: reasoning left out, usage's cost): chosen once per
  // stream, so an ordinary one pays nothing for it.
  const amending = rules.amend !== undefined && (options.encoder.reasoningExcluded === true || !!options.encoder.usageCost)

  /** What the last frameEvents() call relayed includes the format's last event */
  let last = false

  /** `count` of a chunk's events, framed (or the chunk as it came, `asIs`); their usage read. */
  const frameEvents = (chunk: Buffer, events: SseEvent[], asIs: boolean, count: number): string | Buffer => {
    let text = ''
    last = false
    seen += count
    for (let i = 0; i < count; i++) {
      let event = events[i]
      if (rules.isLast?.(event)) last = true
      if (upstreamError === null && rules.upstreamError) {
        upstreamError = rules.upstreamError(event)
        const data = upstreamError !== null && options.conceal ? options.conceal(event.data) : event.data
        if (data !== event.data) {
          upstreamError = options.conceal!(upstreamError!)
          event = { event: event.event, data }
          // Changed: the chunk cannot go as it came; what came before this event is framed now.
          if (asIs) {
            asIs = false
            for (let j = 0; j < i; j++) text += frame(events[j])
          }
        }
      }
      if (event.data === rules.sentinel) {
        if (!asIs && !arrayFraming) text += `data: ${event.data}\n\n`
        continue
      }
      let data = event.data
      if (options.clientModel || rules.carriesUsage(event) || (amending && rules.mayAmend!(event, options.encoder))) {
        const parsed = parseJson(data)
        if (parsed && typeof parsed === 'object') {
          options.onParsed?.(parsed)
          const found = rules.readUsage(parsed, usage)
          if (found && found !== usage) {
            usage = found
            if (rules.isFinal?.(parsed) ?? true) {
              usageFinal = true
              kept = null
            }
          }
          // Also when its counts were not believed (token_counts.ts): the client did not ask for it.
          if (rules.isUnrequested?.(parsed, options.encoder)) {
            // Dropped: the chunk cannot go as it came; what came before this event is framed now.
            if (asIs) {
              asIs = false
              for (let j = 0; j < i; j++) text += frame(events[j])
            }
            continue
          }
          let changed = options.clientModel !== null && rules.rewriteModel(parsed, options.clientModel)
          // The upstream's own bill first (it never goes out); then what the client asked for (its cost, the gateway's).
          const dropped = rules.dropUpstreamCost?.(parsed) === true
          const amended = amending && rules.amend!(parsed, options.encoder, usage)
          if (dropped || amended) {
            changed = true
            // Changed: the chunk cannot go as it came; what came before this event is framed now.
            if (asIs) {
              asIs = false
              for (let j = 0; j < i; j++) text += frame(events[j])
            }
          }
          if (changed) data = JSON.stringify(parsed)
        }
      }
      kept?.push(event)
      if (!asIs) text += frame(data === event.data ? event : { event: event.event, data })
    }
    return asIs ? chunk : text
  }

  /** Writes a chunk's relayed piece. A promise: wait before the next chunk; false: stop. */
  const send = (piece: string | Buffer): void | false | Promise<void> => {
    if (last && !arrayFraming) {
      out.end(piece)
      ended = true
      return
    }
    const wait = out.send(piece)
    if (out.gone) return false
    return wait
  }

  /** Takes a chunk into the parser; whether it may go as it came is left in `chunkAsIs`. */
  let chunkAsIs = false
  const parse = (chunk: Buffer): SseEvent[] => {
    const endsEvent = endsWithBlankLine(chunk)
    chunkAsIs = bytesAllowed && previousEndedEvent && endsEvent && parser.atBoundary
    previousEndedEvent = endsEvent
    const events = parser.push(chunk)
    if (chunkAsIs && !parser.atBoundary) chunkAsIs = false
    return events
  }

  const hold = options.hold ?? null
  let outOfFunds: GatewayError | null = null

  /** One upstream chunk: its events relayed in one write. A promise: wait before the next chunk; false: stop. */
  const relayChunk = (chunk: Buffer): void | false | Promise<void | false> => {
    if (ended) return
    const events = parse(chunk)
    if (hold === null || kept === null) return send(frameEvents(chunk, events, chunkAsIs, events.length))
    kept.mark()
    const piece = frameEvents(chunk, events, chunkAsIs, events.length)
    // Null now when the chunk brought the final usage: the count is the upstream's.
    const counted = kept as KeptText | null
    if (counted === null || counted.chars <= hold.next) return send(piece)
    // Still raw events (a short answer): covered by a raise to the most they can hold, not decoded to be counted.
    if (counted.raw && hold.coverUncounted(KEPT_EVENT_BYTES > counted.chars ? KEPT_EVENT_BYTES : counted.chars)) return send(piece)
    const { text, before } = counted.decoded()
    return relayChecked(piece, text, before)
  }

  /**
   * A chunk whose text took the answer past its hold's `next`: the hold
   * checked (and raised, as the balance allows) before it goes out; when it
   * cannot cover it, the stream ends here with the quota error.
   */
  const relayChecked = (piece: string | Buffer, text: TextPieces, before: number): void | false | Promise<void | false> => {
    if (text.chars <= hold!.next) return send(piece)
    const verdict = hold!.check(text, before, usage)
    if (verdict === true) return send(piece)
    if (verdict === false) return cutForFunds()
    return verdict.then((admit) => (admit ? send(piece) : cutForFunds()))
  }

  /** The chunk is not relayed: the quota error in the client's format ends the stream, and the upstream request (false). */
  const cutForFunds = (): false => {
    outOfFunds = hold!.stopped
    ended = true
    let piece = frame(rules.errorEvent(outOfFunds!.message, 'quota'))
    if (arrayFraming) piece += ']'
    out.end(piece)
    return false
  }

  // The answer check (chosen once per stream: without it, a chunk pays nothing for it). Each
  // event is decoded by the format's decoder, its text goes through the screen from where the
  // last piece left it, and the text is kept for the count as KeptText would have kept it.
  const screen = options.screen ?? null
  const cut = screen === null ? null : rules.streamCut()
  const decoder = screen === null ? null : dialect.streamDecoder()
  const screenedText = screen === null ? null : new TextPieces()
  if (screen !== null) kept = null
  let withheld = false

  /**
   * A chunk of a checked answer: relayed up to the event that completes a
   * listed word, then the format's clean end. Made only for a checked stream
   * (a stream lasts minutes: an unchecked one holds no function it never calls).
   */
  const relayScreened: ChunkSink | null =
    screen === null
      ? null
      : (chunk) => {
          if (ended) return
          const events = parse(chunk)
          const before = screenedText!.chars
          for (let i = 0; i < events.length; i++) {
            const decoded = decoder!.push(events[i])
            if (screenedAt(screen!, decoded, screenedText!) === -1) {
              cut!.seen(events[i], decoded)
              continue
            }
            // Not relayed: the client gets what came before it, and the end.
            let piece = frameEvents(chunk, events, false, i) as string
            // The usage it carried is the upstream's count so far (final when it came with the stop).
            let stop = false
            for (const event of decoded) {
              if (event.type === 'usage') usage = event.usage
              else if (event.type === 'stop') stop = true
            }
            usageFinal = stop && usage !== null
            for (const event of cut!.end(usage, options.clientModel)) piece += frame(event)
            if (arrayFraming) piece += first ? '[]' : ']'
            withheld = true
            ended = true
            out.end(piece)
            // The upstream request ends here (UpstreamBody: a sink's false aborts it).
            return false
          }
          const piece = frameEvents(chunk, events, chunkAsIs, events.length)
          if (hold !== null && screenedText!.chars > hold.next) return relayChecked(piece, screenedText!, before)
          return send(piece)
        }

  try {
    await forEachChunk(upstream, relayScreened ?? relayChunk)
  } catch (caught) {
    // After the last event the answer is complete: a failure while draining the rest is not the client's.
    if (!ended) error = caught as Error
  }

  const clientClosed = out.closedEarly
  // A body with no event in it: the client would get an empty stream and the row a success.
  if (!ended && !error && !clientClosed && seen === 0) error = new Error('the answer is not an event stream')
  if (!ended) {
    if (error && !clientClosed) {
      const message = streamFailureMessage(error)
      await out.write(frame(rules.errorEvent(message))).catch(() => {})
    }
    if (arrayFraming) await out.write(first ? '[]' : ']').catch(() => {})
    out.end()
  }

  // The upstream told the client itself, or stopped before its format's last event
  // ([DONE], message_stop): the client has the upstream's bytes as they came; the row
  // says the stream was interrupted (and its usage is completed by counting).
  if (!error && !clientClosed) {
    if (upstreamError !== null) error = new Error(upstreamError)
    else if (rules.isLast && !ended && !arrayFraming) error = new Error('the stream ended before its last event')
  }
  // Cut for the balance: the text counted is what the client got (the check took back the rest).
  if (outOfFunds !== null) error = outOfFunds
  const text = kept
  return {
    usage,
    usageFinal: usageFinal && !error,
    error,
    // A cut stream ended itself (the client may close its side right after the last write).
    clientClosed: outOfFunds === null && (clientClosed || (error !== null && out.gone)),
    completionText: screenedText !== null ? () => screenedText.kept() : () => (text ? text.finish() : NO_TEXT),
    withheld,
    outOfFunds,
  }
}

const NO_TEXT: CompletionText = Object.freeze({ text: '', chars: 0 })

/** Raw event bytes kept as they came (a short answer, the usual case, is never decoded). */
const KEPT_EVENT_BYTES = 2048
/** ...and only while the stream is this young: a slow stream switches to text at its second chunk. */
const KEPT_EVENT_MS = 250

/**
 * What a stream's events said, kept until the upstream's usage arrives, so
 * that a stream cut before it can still be counted. A short stream keeps its
 * events as they came: nothing is decoded when the usage does arrive, the
 * usual case. Past KEPT_EVENT_BYTES, or KEPT_EVENT_MS after the stream
 * started, it switches to keeping text: the
 * kept events are decoded into their completion text, and every later event
 * is decoded as it passes, so only its few bytes of text stay. A long stream
 * therefore holds its text, not its transcript, and (measured with 5,000
 * slow streams) raw events do not outlive their chunk: an event (and the
 * chunk's text it slices) kept for seconds is promoted to V8's old generation
 * and, once dropped, is garbage there until the next major GC.
 */
class KeptText {
  #events: SseEvent[] = []
  #bytes = 0
  #decoder: StreamDecoder | null = null
  #text = new TextPieces()
  #since = performance.now()
  /** Where the chunk being relayed began in the text (mark()); kept as an event index until the events are decoded */
  #mark = 0
  #markEvent = -1

  constructor(private dialect: PassThroughFormat) {}

  /** Characters of text so far: exact once decoding, else the kept events' data length (never fewer) */
  get chars(): number {
    return this.#decoder ? this.#text.chars : this.#bytes
  }

  /** Events kept as they came, not decoded yet: `chars` is their data's length, an upper bound of the text's */
  get raw(): boolean {
    return this.#decoder === null
  }

  /** A chunk's events come next: where they begin in the text is kept (for a hold check that cuts before them). */
  mark() {
    if (this.#decoder) this.#mark = this.#text.chars
    else this.#markEvent = this.#events.length
  }

  /** The text, decoded now if it was not yet, and where the last marked chunk began in it */
  decoded(): { text: TextPieces; before: number } {
    if (!this.#decoder) this.#switchToText()
    return { text: this.#text, before: this.#mark }
  }

  push(event: SseEvent) {
    if (this.#decoder) return this.#decode(event)
    // A copy, not the parser's own event object. The parser makes one per
    // event at one allocation site; V8 watches how many of a site's objects
    // outlive young-generation collections and past a threshold allocates all
    // of them directly in the old generation. Kept here for a second (a slow
    // stream's first event waits for its second chunk), thousands of streams
    // opening at once taught V8 that, and from then on every chunk's events
    // of every stream were born old, holding the chunk's young text alive
    // until a major GC: ~1.8 MB/s of old garbage at 5,000 streams, 60-80 MB
    // of the peak (docs/benchmarks.md, sixteenth pass).
    this.#events.push({ event: event.event, data: event.data })
    this.#bytes += event.data.length
    if (this.#bytes > KEPT_EVENT_BYTES || performance.now() - this.#since > KEPT_EVENT_MS) this.#switchToText()
  }

  /** The completion text of everything pushed, through the dialect's own decoder. */
  finish(): CompletionText {
    if (!this.#decoder) this.#switchToText()
    for (const event of this.#decoder!.end()) take(event, this.#text)
    return this.#text.kept()
  }

  #switchToText() {
    this.#decoder = this.dialect.streamDecoder()
    const events = this.#events
    for (let i = 0; i < events.length; i++) {
      if (i === this.#markEvent) this.#mark = this.#text.chars
      this.#decode(events[i])
    }
    if (this.#markEvent >= events.length) this.#mark = this.#text.chars
    this.#markEvent = -1
    this.#events = []
  }

  #decode(event: SseEvent) {
    for (const decoded of this.#decoder!.push(event)) take(decoded, this.#text)
  }
}

function take(event: CanonicalEvent, text: TextPieces) {
  if (event.type === 'delta') text.push(event.value)
  else if (event.type === 'block_start' && event.block.type === 'tool_call') text.push(event.block.name)
}
