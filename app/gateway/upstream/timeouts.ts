import type { ChannelTimeouts } from '#gateway/types'

/**
 * Upstream timeouts when a channel sets none (ms). Generous on purpose: a
 * non-streamed completion sends its headers only when generation is done.
 * Override per channel (channels.*_timeout_ms) or globally with
 * UPSTREAM_{CONNECT,FIRST_BYTE,IDLE,TOTAL}_TIMEOUT_MS.
 */
export const DEFAULT_TIMEOUTS: ChannelTimeouts = {
  connect: Number(process.env.UPSTREAM_CONNECT_TIMEOUT_MS) || 10_000,
  firstByte: Number(process.env.UPSTREAM_FIRST_BYTE_TIMEOUT_MS) || 300_000,
  idle: Number(process.env.UPSTREAM_IDLE_TIMEOUT_MS) || 120_000,
  total: Number(process.env.UPSTREAM_TOTAL_TIMEOUT_MS) || 900_000,
}
