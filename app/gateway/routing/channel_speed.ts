import type { MeterEvent } from '#gateway/metering/meter_event'

/**
 * The gateway's own measure of each channel's speed, for OpenRouter's
 * `:nitro` and `provider.sort` ("throughput", "latency"): moving averages of
 * what this process saw of the channel's answered generations, the wait for
 * the first byte and the output tokens per second after it (a whole answer:
 * over its whole wait). Per channel, not per model: the client-chosen names
 * of a glob channel would make a per-model table unbounded, and the channels
 * of one model are what is compared.
 *
 * Fed from the meter's record hook (gateway.ts): per answered row, one Map
 * lookup and a few float operations; nothing else on the request path.
 */
export interface ChannelSpeed {
  /** ms to the first byte, moving average */
  latencyMs: number
  /** output tokens per second, moving average (0: none measured yet) */
  tokensPerSecond: number
  samples: number
}

/** Weight of a new sample: about the last 10 answers count */
const ALPHA = 0.2
/** Fewer output tokens than this say nothing of throughput (a one-word answer is all latency) */
const MIN_THROUGHPUT_TOKENS = 16

const speeds = new Map<number, ChannelSpeed>()

/** A metered row: an answered generation of a channel counts; errors, cache hits and other operations do not. */
export function recordChannelSpeed(event: MeterEvent) {
  if (event.channelId === null || event.status !== 200 || event.errorCode !== null || event.cacheHit === true || event.ttftMs === null) return
  let speed = speeds.get(event.channelId)
  const firstByte = event.ttftMs
  const generating = event.stream ? event.latencyMs - firstByte : event.latencyMs
  const tokens = event.usage.completionTokens
  const rate = tokens >= MIN_THROUGHPUT_TOKENS && generating > 0 ? (tokens * 1000) / generating : 0
  if (speed === undefined) {
    speeds.set(event.channelId, { latencyMs: firstByte, tokensPerSecond: rate, samples: 1 })
    return
  }
  speed.latencyMs += ALPHA * (firstByte - speed.latencyMs)
  if (rate > 0) speed.tokensPerSecond = speed.tokensPerSecond === 0 ? rate : speed.tokensPerSecond + ALPHA * (rate - speed.tokensPerSecond)
  speed.samples++
}

export function channelSpeed(channelId: number): ChannelSpeed | undefined {
  return speeds.get(channelId)
}

/** Forgets every measure (tests; a channel deleted keeps its few bytes until then) */
export function resetChannelSpeeds() {
  speeds.clear()
}
