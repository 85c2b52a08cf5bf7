/**
 * The bounds of a realtime session (README, "Realtime"), read once from the
 * environment. Mutable for tests, like GatewayService.maxInFlight.
 */
export interface RealtimeLimits {
  /** A session is ended (error event `session_expired`, close 1000) after this long: REALTIME_MAX_SESSION_MINUTES, 60 */
  maxSessionMs: number
  /** Largest frame either side may send (close 1009 beyond): REALTIME_MAX_MESSAGE_MB, 16 */
  maxMessageBytes: number
  /** Pings both sides this often; a side that did not answer the last one is dropped */
  heartbeatMs: number
  /** Longest wait for a cancelled response's response.done (its usage) when a session ends */
  cancelWaitMs: number
  /** A side's send buffer above this pauses reading its peer (backpressure) */
  highWaterBytes: number
  /** A transcription session opened without its model waits this long for the update naming it (transcription_opening.ts) */
  modelWaitMs: number
}

function positive(name: string, fallback: number): number {
  const value = Number(process.env[name])
  return Number.isFinite(value) && value > 0 ? value : fallback
}

export const realtimeLimits: RealtimeLimits = {
  // A timer longer than 2^31-1 ms would fire at once: about 24 days at most.
  maxSessionMs: Math.min(positive('REALTIME_MAX_SESSION_MINUTES', 60) * 60_000, 2 ** 31 - 1),
  maxMessageBytes: Math.floor(positive('REALTIME_MAX_MESSAGE_MB', 16) * 1024 * 1024),
  heartbeatMs: 30_000,
  cancelWaitMs: 5_000,
  highWaterBytes: 1024 * 1024,
  modelWaitMs: 30_000,
}
