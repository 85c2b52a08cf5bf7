import type { ServerResponse } from 'node:http'
import { GatewayError } from '#exceptions/gateway_error'
import { bodyBudget } from '#gateway/http/body_limits'
import { retryAfterHeaders } from '#gateway/http/retry_after'

/**
 * A body the gateway builds for a request, counted in the instance's body
 * budget (BODY_INFLIGHT_MAX_MB) like a received one: a Responses follow-up's
 * conversation read from the store, item references resolved. The client
 * sent a few bytes; the body sent upstream can be the whole 32 MB the limit
 * allows, held for the request's life. Uncounted, a burst of follow-ups on
 * large conversations took memory the budget exists to bound.
 *
 * Takes `bytes` more for the request (called again as the body grows: its
 * earlier items first, then what the built body adds), given back when its
 * response closes, on every path: answered, refused, failed, client gone.
 * Over the budget: 503 `overloaded` with Retry-After, as a received body.
 */
export function holdBuiltBody(res: ServerResponse, bytes: number) {
  if (bytes <= 0) return
  if (!bodyBudget.tryTake(bytes)) {
    const error = new GatewayError(503, 'overloaded', 'Too many large requests in flight; retry shortly', 'service_unavailable')
    error.headers = retryAfterHeaders(1000)
    throw error
  }
  // Gone already: its 'close' is past, and a listener added now would never give the bytes back.
  if (res.closed) return bodyBudget.give(bytes)
  res.once('close', () => bodyBudget.give(bytes))
}
