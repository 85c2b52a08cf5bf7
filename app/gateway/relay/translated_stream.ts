import { redactAddresses, streamFailureMessage } from '#gateway/http/client_message'
import type { StreamScreen } from '#gateway/content_filter/word_filter'
import type { CanonicalEvent, CanonicalUsage, StreamDecoder, StreamEncoder } from '#gateway/dialects/canonical'
import type { ClientStream } from '#gateway/relay/client_stream'
import type { StreamOutcome } from '#gateway/relay/pass_through_stream'
import type { StreamHold } from '#gateway/metering/stream_hold'
import type { GatewayError } from '#exceptions/gateway_error'
import { screenedAt } from '#gateway/relay/answer_screen'
import { TextPieces } from '#gateway/relay/text_pieces'
import { SseParser } from '#gateway/sse/sse_parser'
import { forEachChunk } from '#gateway/upstream/dispatcher'
import type { ChunkSink } from '#gateway/upstream/upstream_body'

/** A canonical-to-canonical step between decoder and encoder (e.g. custom-tool unwrapping). */
export type EventTransform = (event: CanonicalEvent) => CanonicalEvent[]

/**
 * Relays an upstream stream in another dialect: upstream SSE -> the upstream
 * dialect's decoder -> canonical events -> the client dialect's encoder. Each
 * upstream chunk is written as soon as it is translated.
 *
 * Like the pass-through relay, it reads the body by callback
 * (`UpstreamBody.forEach`): a stream that idles between chunks holds no
 * promise, iterator step or chunk of the one before, which with thousands of
 * slow streams open is most of a stream's memory; it waits only when the
 * client is not keeping up.
 */
export async function relayTranslatedStream(
  upstream: AsyncIterable<Buffer>,
  decoder: StreamDecoder,
  encoder: StreamEncoder,
  out: ClientStream,
  transform?: EventTransform,
  /** The sensitive-word answer check (null: answers are not checked, the usual case) */
  screen: StreamScreen | null = null,
  /** The upstream's own error message without the channel's key and address (upstream/channel_secrets.ts) */
  conceal: ((text: string) => string) | null = null,
  /** The answer's hold on the balance, kept ahead of its cost (null: its tokens cost nothing) */
  hold: StreamHold | null = null
): Promise<StreamOutcome> {
  const parser = new SseParser()
  let usage: CanonicalUsage | null = null
  const text = new TextPieces()
  let error: Error | null = null
  let upstreamError: string | null = null
  let stopped = false
  /**
   * The usage is the final count: it came with the stop (Anthropic's message_delta, Gemini's
   * last chunk, Responses' response.completed) or after it (chat's usage chunk). A count that
   * came only before, message_start's, is partial: a final one the decoder did not believe
   * (token_counts.ts) leaves it, and it must not be billed as the whole answer.
   */
  let finalUsage = false

  /** Where the last encode() stopped: the delta a hold check must admit first (-1: none) */
  let checkAt = -1

  /**
   * Encodes events from `from` on. `held`: the events are already transformed,
   * and encoding stops before a delta that takes the text past the hold's
   * `next` (checkAt); `admitted`: the first one's text was pushed and checked.
   */
  const encode = (events: CanonicalEvent[], from = 0, held = false, admitted = false): string => {
    let bytes = ''
    const stoppedBefore = stopped
    let counted = false
    checkAt = -1
    outer: for (let i = from; i < events.length; i++) {
      const original = events[i]
      for (const event of held || !transform ? [original] : transform(original)) {
        if (event.type === 'usage') {
          usage = event.usage
          if (event.partial !== true) counted = true
        } else if (event.type === 'stop') stopped = true
        else if (event.type === 'delta') {
          if (!held) text.push(event.value)
          else if (admitted && i === from) admitted = false
          else if (text.chars + event.value.length > hold!.next) {
            checkAt = i
            break outer
          } else text.push(event.value)
        } else if (event.type === 'error') {
          upstreamError = conceal ? conceal(event.message) : event.message
          continue
        }
        bytes += encoder.push(event)
      }
    }
    if (counted && (stoppedBefore || stopped)) finalUsage = true
    return bytes
  }

  /** One upstream chunk, translated and written. A promise: wait before the next chunk; false: stop. */
  const relayChunk = (chunk: Buffer): void | false | Promise<void | false> => {
    const events: CanonicalEvent[] = []
    for (const event of parser.push(chunk)) events.push(...decoder.push(event))
    if (hold !== null) return relayHeld(transform ? events.flatMap(transform) : events, 0, false)
    const wait = out.send(encode(events))
    if (out.gone) return false
    return wait
  }

  /** The balance (or the key's cap) could not cover the answer's next text: why, once cut */
  let outOfFunds: GatewayError | null = null

  /**
   * A chunk's (transformed) events from `from` on, with the hold checked
   * before each delta that takes the text past it (metering/stream_hold.ts):
   * relayed up to there, then on if the check admits it, else the stream
   * ends with the quota error in the client's format and the upstream
   * request ends (false).
   */
  const relayHeld = (events: CanonicalEvent[], from: number, admitted: boolean): void | false | Promise<void | false> => {
    for (;;) {
      const wait = out.send(encode(events, from, true, admitted))
      if (out.gone) return false
      if (checkAt === -1) return wait
      const at = checkAt
      const before = text.chars
      text.push((events[at] as { value: string }).value)
      const verdict = hold!.check(text, before, usage)
      if (verdict === false) return cutForFunds()
      if (verdict !== true || wait) return Promise.all([verdict, wait]).then(([admit]) => (admit ? relayHeld(events, at, true) : cutForFunds()))
      // Admitted at once: on from that delta (a loop, not a call per check: a chunk may hold many deltas).
      from = at
      admitted = true
    }
  }

  /** The stream ends with the quota error in the client's format, and the upstream request with it (false). */
  const cutForFunds = (): false => {
    outOfFunds = hold!.stopped
    out.end(encoder.end(outOfFunds!.message, 'quota'))
    return false
  }

  let withheld = false

  /**
   * The answer check stopped the stream at `events[at]` (its text completed a
   * listed word): what came before it is encoded, then a content_filter stop
   * and the encoder's end, in one last write. The usage the rest of the
   * upstream's event carried is kept (final when it came with the stop).
   */
  const withhold =
    screen === null
      ? null
      : (events: CanonicalEvent[], at: number) => {
          const cutEvent = events[at] as { value?: string }
          if (typeof cutEvent.value === 'string') text.push(cutEvent.value)
          let piece = encode(events.slice(0, at))
          let stop = false
          for (let i = at + 1; i < events.length; i++) {
            const event = events[i]
            if (event.type === 'usage') {
              usage = event.usage
              piece += encoder.push(event)
            } else if (event.type === 'stop') stop = true
          }
          finalUsage = stop && usage !== null
          piece += encoder.push({ type: 'stop', reason: 'content_filter' }) + encoder.end()
          withheld = true
          out.end(piece)
        }

  /**
   * A chunk of a checked answer. Made only for a checked stream (a stream
   * lasts minutes: an unchecked one holds no function it never calls).
   */
  const relayScreened: ChunkSink | null =
    screen === null
      ? null
      : (chunk) => {
          const events: CanonicalEvent[] = []
          for (const event of parser.push(chunk)) events.push(...decoder.push(event))
          const at = screenedAt(screen, events, null)
          if (at === -1) {
            if (hold !== null) return relayHeld(transform ? events.flatMap(transform) : events, 0, false)
            const wait = out.send(encode(events))
            if (out.gone) return false
            return wait
          }
          withhold!(events, at)
          // The upstream request ends here (UpstreamBody: a sink's false aborts it).
          return false
        }

  try {
    await forEachChunk(upstream, relayScreened ?? relayChunk)
    if (!withheld && outOfFunds === null) {
      const tail: CanonicalEvent[] = []
      for (const event of parser.end()) tail.push(...decoder.push(event))
      tail.push(...decoder.end())
      const at = screen === null ? -1 : screenedAt(screen, tail, null)
      if (at !== -1) withhold!(tail, at)
      else if (hold === null) await out.write(encode(tail))
      // The last, unterminated event's text is held like any other (a cut here ends the stream too).
      else await relayHeld(transform ? tail.flatMap(transform) : tail, 0, false)
    }
  } catch (caught) {
    error = caught as Error
  }

  if (withheld) {
    return {
      usage,
      usageFinal: finalUsage,
      error: null,
      clientClosed: false,
      completionText: () => text.kept(),
      withheld,
      outOfFunds: null,
    }
  }
  if (outOfFunds !== null) {
    // Cut for the balance: the text counted is what the client got (the check took back the rest).
    const cut: GatewayError = outOfFunds
    return { usage, usageFinal: false, error: cut, clientClosed: false, completionText: () => text.kept(), withheld, outOfFunds: cut }
  }
  const clientClosed = out.closedEarly
  // The upstream ended without saying it was done (no finish reason, no message_stop, a JSON
  // body labelled as a stream): the client's format needs an end, and a clean one would pass
  // a cut answer off as complete.
  if (!error && upstreamError === null && !stopped && !clientClosed) upstreamError = 'Upstream stream ended before it was complete'
  if (!clientClosed) {
    const failure = error ? streamFailureMessage(error) : upstreamError === null ? null : redactAddresses(upstreamError)
    if (error) await out.write(encode(decoder.end())).catch(() => {})
    await out.write(encoder.end(failure ?? undefined)).catch(() => {})
    if (upstreamError && !error) error = new Error(upstreamError)
  }
  out.end()
  return {
    usage,
    usageFinal: finalUsage && stopped && !error,
    error,
    clientClosed: clientClosed || (error !== null && out.gone),
    completionText: () => text.kept(),
    withheld,
    outOfFunds: null,
  }
}
