import type { IncomingMessage, ServerResponse } from 'node:http'
import { extractApiKey, resolvePrincipal } from '#gateway/auth/key_resolver'
import { clientAddress } from '#gateway/auth/client_address'
import { ipAllowed } from '#gateway/auth/ip_allowlist'
import { GatewayError } from '#exceptions/gateway_error'
import type { Gateway } from '#gateway/gateway'
import { admit, hasLimits } from '#gateway/limits/rate_limits'
import { enterParallel, type ClosesOnce } from '#gateway/limits/parallel_requests'
import type { Principal } from '#gateway/types'

/**
 * Key auth and rate limits of an API request: the key (any of the headers
 * clients use) to its key, owner and plan, from memory; then the key's and
 * plan's limits for calls that do work (POST; listing models or usage is
 * free). The limit headers go on the raw response, so they reach every
 * answer, relayed streams included. Run by the API key middleware, the
 * management API's and the API lane alike.
 *
 * A key with a cap on calls in flight (max_parallel) is refused 429
 * concurrency_limit_exceeded while that many of its calls run
 * (limits/parallel_requests.ts), before its rate windows count the call.
 *
 * A key with an IP allowlist is refused (403 ip_not_allowed) from any other
 * address before its rate limits count the call; like a bad key's 401, the
 * request is not admitted, so it has no usage row. A key without one pays a
 * null comparison.
 */
export async function authenticate(
  gateway: Gateway,
  req: IncomingMessage,
  res: ServerResponse,
  /** The key, when the caller found it elsewhere than the headers (a realtime browser client's subprotocol) */
  rawKey: string | null = extractApiKey(req.headers, req.url),
  /**
   * What holds a POST's place among the key's calls in flight: its response, or a WebRTC call (held for the
   * call's life); null for a POST that ends work (a call's hangup): not admitted, as a GET (a key capped to
   * one call at once, or out of its rate window, could not end the call that holds its place)
   */
  holder: ClosesOnce | null = res
): Promise<Principal> {
  // The server may accept connections before boot has loaded the catalog.
  if (!gateway.catalog.loaded) await gateway.catalog.ensureLoaded()
  const principal = await resolvePrincipal(gateway.catalog, rawKey, req.headers)
  const allowedIps = principal.key.allowedIps
  if (allowedIps !== null) {
    const address = clientAddress(req)
    if (!ipAllowed(allowedIps, address)) throw GatewayError.ipNotAllowed(address)
  }
  if (req.method === 'POST' && holder !== null) {
    // Synchronous with the in-memory counters (the default store): no promise to wait for.
    const admitted = admitCall(principal, res, holder)
    if (admitted) await admitted
  }
  return principal
}

/**
 * A call that does work counted against the key: its place among the key's
 * calls in flight (given back when `holder` closes: the response, or a
 * realtime session's socket), then the key's and plan's rate windows.
 */
export function admitCall(principal: Principal, res: ServerResponse, holder: ClosesOnce): void | Promise<void> {
  const maxParallel = principal.key.maxParallel
  if (maxParallel !== null) enterParallel(principal.key, maxParallel, holder)
  if (hasLimits(principal)) return admit(principal, res)
}
