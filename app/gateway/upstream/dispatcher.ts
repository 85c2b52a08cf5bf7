import type { Dispatcher } from 'undici'
import { GatewayError } from '#exceptions/gateway_error'
import type { UpstreamRequest } from '#gateway/providers/provider_adapter'
import type { RouteCandidate } from '#gateway/routing/channel_router'
import { poolFor } from '#gateway/upstream/upstream_pool'

/** What the dispatcher returns: the channel that answered and its response (status < 400, body unread). */
export interface DispatchResult {
  candidate: RouteCandidate
  response: Dispatcher.ResponseData
}

/** Thrown when the client went away while waiting for the upstream. */
export class ClientGoneError extends Error {
  constructor() {
    super('client closed the connection')
  }
}

/**
 * Sends a request to the route's candidates and returns the first usable
 * response. Owns everything about *getting* an answer (attempts, timeouts,
 * which failures move on to the next channel); relaying the answer belongs
 * to the caller's dialect.
 *
 * Upstream 4xx (other than 429) are the client's problem and are returned as
 * GatewayError carrying the upstream's status and message; 5xx and network
 * failures become 502 provider_error.
 */
export async function dispatch(
  candidates: RouteCandidate[],
  build: (candidate: RouteCandidate) => UpstreamRequest,
  signal: AbortSignal,
  onAttempt?: (candidate: RouteCandidate) => void
): Promise<DispatchResult> {
  const candidate = candidates[0]
  onAttempt?.(candidate)
  const request = build(candidate)
  let response: Dispatcher.ResponseData
  try {
    response = await send(request, signal)
  } catch (error) {
    if (signal.aborted) throw new ClientGoneError()
    throw GatewayError.providerError(`Upstream request failed: ${describe(error)}`)
  }
  if (response.statusCode >= 400) {
    const bytes = await readBody(response).catch(() => Buffer.alloc(0))
    throw upstreamFailure(response.statusCode, bytes)
  }
  return { candidate, response }
}

function send(request: UpstreamRequest, signal: AbortSignal) {
  return poolFor(request.origin).request({
    method: request.method ?? 'POST',
    path: request.path,
    headers: request.headers,
    body: request.method === 'GET' ? undefined : request.body,
    signal,
  })
}

export async function readBody(upstream: Dispatcher.ResponseData): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of upstream.body) chunks.push(chunk as Buffer)
  return chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)
}

/** Upstream 4xx reach the client with their status and message; 5xx become 502 provider_error. */
export function upstreamFailure(status: number, bytes: Buffer): GatewayError {
  let message = ''
  let code: string | null = null
  try {
    const parsed = JSON.parse(bytes.toString('utf8'))
    const detail = Array.isArray(parsed) ? parsed[0] : parsed
    message = detail?.error?.message ?? detail?.message ?? ''
    if (typeof message !== 'string') message = JSON.stringify(message)
    if (typeof detail?.error?.code === 'string') code = detail.error.code
    else if (typeof detail?.error?.type === 'string') code = detail.error.type
  } catch {
    message = bytes.toString('utf8').slice(0, 500)
  }
  if (status >= 500) {
    return GatewayError.providerError(`Upstream provider returned HTTP ${status}${message ? `: ${message}` : ''}`)
  }
  const error = new GatewayError(status, code ?? upstreamCode(status), message || `Upstream returned HTTP ${status}`)
  error.upstreamBody = bytes
  if (status === 429) error.type = 'rate_limit_error'
  return error
}

function upstreamCode(status: number): string {
  if (status === 429) return 'upstream_rate_limited'
  if (status === 401 || status === 403) return 'upstream_auth_error'
  return 'upstream_error'
}

export function describe(error: unknown): string {
  const e = error as any
  return e?.code ? `${e.code}${e.message ? ` (${e.message})` : ''}` : String(e?.message ?? e)
}
