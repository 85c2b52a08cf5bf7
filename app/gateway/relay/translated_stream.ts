import { redactAddresses, streamFailureMessage } from '#gateway/http/client_message'
import type { CanonicalEvent, CanonicalUsage, StreamDecoder, StreamEncoder } from '#gateway/dialects/canonical'
import type { ClientStream } from '#gateway/relay/client_stream'
import type { StreamOutcome } from '#gateway/relay/pass_through_stream'
import { TextPieces } from '#gateway/relay/text_pieces'
import { SseParser } from '#gateway/sse/sse_parser'
import { forEachChunk } from '#gateway/upstream/dispatcher'

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
  transform?: EventTransform
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

  const encode = (events: CanonicalEvent[]): string => {
    let bytes = ''
    const stoppedBefore = stopped
    let counted = false
    for (const original of events) {
      for (const event of transform ? transform(original) : [original]) {
        if (event.type === 'usage') {
          usage = event.usage
          counted = true
        } else if (event.type === 'stop') stopped = true
        else if (event.type === 'delta') text.push(event.value)
        else if (event.type === 'error') {
          upstreamError = event.message
          continue
        }
        bytes += encoder.push(event)
      }
    }
    if (counted && (stoppedBefore || stopped)) finalUsage = true
    return bytes
  }

  /** One upstream chunk, translated and written. A promise: wait before the next chunk; false: stop. */
  const relayChunk = (chunk: Buffer): void | false | Promise<void> => {
    const events: CanonicalEvent[] = []
    for (const event of parser.push(chunk)) events.push(...decoder.push(event))
    const wait = out.send(encode(events))
    if (out.gone) return false
    return wait
  }

  try {
    await forEachChunk(upstream, relayChunk)
    const tail: CanonicalEvent[] = []
    for (const event of parser.end()) tail.push(...decoder.push(event))
    tail.push(...decoder.end())
    await out.write(encode(tail))
  } catch (caught) {
    error = caught as Error
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
  }
}
