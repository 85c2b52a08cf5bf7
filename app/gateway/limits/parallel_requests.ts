import { GatewayError } from '#exceptions/gateway_error'
import { retryAfterHeaders } from '#gateway/http/retry_after'
import type { KeyInfo } from '#gateway/types'

/**
 * A key's cap on requests in flight at once (api_keys.max_parallel;
 * LiteLLM's `max_parallel_requests`, new-api's token concurrency): a team
 * hands a coding agent a key that may run N calls at a time, however long
 * each streams. Counted per key in this process, like the memory rate
 * limits: with several instances each allows N.
 *
 * A request holds its place from admission until its response closes
 * (answered, streamed to the end, failed, or the client gone), which every
 * admitted request reaches whatever path it takes, so no place is lost.
 * Keys without a cap pay one comparison (authenticate.ts). A realtime
 * session (WebSocket /v1/realtime) holds its place until its socket closes.
 */
const inFlight = new Map<number, number>()

/** What a place is held by: a response, or a realtime session's socket; the place frees at its 'close'. */
export interface ClosesOnce {
  once(event: 'close', listener: () => void): unknown
}

/** Takes a place for this request, or throws 429 concurrency_limit_exceeded when the key's are all taken. */
export function enterParallel(key: KeyInfo, limit: number, res: ClosesOnce): void {
  const id = key.id
  const taken = inFlight.get(id) ?? 0
  if (taken >= limit) throw refused(limit)
  inFlight.set(id, taken + 1)
  res.once('close', () => leave(id))
}

/** Requests in flight through a key in this process (for tests and the key's page). */
export function parallelInFlight(keyId: number): number {
  return inFlight.get(keyId) ?? 0
}

function leave(id: number) {
  const taken = (inFlight.get(id) ?? 1) - 1
  if (taken <= 0) inFlight.delete(id)
  else inFlight.set(id, taken)
}

function refused(limit: number) {
  const error = new GatewayError(
    429,
    'concurrency_limit_exceeded',
    `Too many requests in flight for this API key: it may run ${limit} at once. Retry when one finishes.`,
    'rate_limit_error'
  )
  // No window resets: a place frees when a request ends; clients' retry back-off starts at this.
  error.headers = retryAfterHeaders(1000)
  return error
}
