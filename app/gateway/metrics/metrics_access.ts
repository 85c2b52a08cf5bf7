import type { IncomingMessage, ServerResponse } from 'node:http'
import { createHash, timingSafeEqual } from 'node:crypto'
import { GatewayError } from '#exceptions/gateway_error'
import { authenticate } from '#gateway/auth/authenticate'
import { extractApiKey } from '#gateway/auth/key_resolver'
import type { Gateway } from '#gateway/gateway'

/**
 * Who may read GET /metrics. By default only an administrator's management
 * key (Bearer, as the management API takes it): the figures name channels,
 * models and spend. METRICS_TOKEN adds a scrape-only secret, so Prometheus
 * holds no key that can manage the gateway; METRICS_PUBLIC=true serves it
 * to anyone (LiteLLM's default, for a port only the monitoring network
 * reaches).
 */
export interface MetricsAccess {
  /** A bearer token that may read the metrics and nothing else (METRICS_TOKEN); null: none */
  token: string | null
  /** No authentication at all (METRICS_PUBLIC=true) */
  public: boolean
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest()
}

/** The scrape token compared in constant time (hashed first: the lengths may differ). */
function isMetricsToken(access: MetricsAccess, presented: string | null): boolean {
  if (access.token === null || access.token === '' || presented === null) return false
  return timingSafeEqual(digest(access.token), digest(presented))
}

/**
 * Resolves when the caller may read the metrics; throws the API's 401 (no
 * key, an unknown one) or 403 (a key without the management scope) in
 * OpenAI's error format otherwise.
 */
export async function assertMetricsAccess(gateway: Gateway, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const access = gateway.metricsAccess
  if (access.public) return
  const presented = extractApiKey(req.headers, req.url)
  if (isMetricsToken(access, presented)) return
  const principal = await authenticate(gateway, req, res, presented)
  if (!principal.key.manage || principal.user.role !== 'admin') {
    throw new GatewayError(
      403,
      'admin_required',
      'GET /metrics needs a management key of an administrator, or the METRICS_TOKEN bearer token',
      'permission_error'
    )
  }
}
