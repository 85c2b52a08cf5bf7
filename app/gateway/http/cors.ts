import type { IncomingMessage, ServerResponse } from 'node:http'
import { isApiPath } from '#gateway/http/api_paths'

type NodeHandler = (req: IncomingMessage, res: ServerResponse) => unknown

/**
 * CORS for the API, so a web app can call the gateway from the browser (the
 * OpenAI SDK with `dangerouslyAllowBrowser`, browser-side chat UIs), as
 * OpenAI's, OpenRouter's and LiteLLM's APIs allow. The API authenticates by
 * a key in a header, never by a cookie, so allowing any origin gives a page
 * nothing it could not do with the key anyway; credentials are not allowed.
 * The pages (cookie sessions) get no CORS headers.
 *
 * CORS_ORIGINS: `*` (the default), a comma-separated list of origins
 * (`https://chat.example.com`), or `off`.
 *
 * Only a request with an `Origin` header (what browsers send) is touched: a
 * server-side client costs one property read.
 */
/** Headers a browser script may read on an answer (the simple ones need no listing). */
const EXPOSED = [
  'x-request-id',
  'request-id',
  'retry-after',
  'retry-after-ms',
  'x-should-retry',
  'x-gateway-cache',
  // A WebRTC call's id (POST /v1/realtime/calls), which the page hands its server for the call's hangup
  'location',
  'x-ratelimit-limit-requests',
  'x-ratelimit-remaining-requests',
  'x-ratelimit-reset-requests',
  'x-ratelimit-limit-tokens',
  'x-ratelimit-remaining-tokens',
  'x-ratelimit-reset-tokens',
  // LiteLLM's (http/litellm_headers.ts)
  'x-litellm-call-id',
  'x-litellm-response-cost',
  'x-litellm-model-group',
  'x-litellm-model-id',
  'x-litellm-model-api-base',
  'x-litellm-response-duration-ms',
  'x-litellm-attempted-retries',
  'x-litellm-attempted-fallbacks',
  'x-litellm-key-spend',
  'x-litellm-key-max-budget',
].join(', ')

const METHODS = 'GET, POST, PUT, PATCH, DELETE, OPTIONS'
/** Asked for when a preflight names none (it always does, but a default keeps the answer useful) */
const DEFAULT_HEADERS = 'authorization, content-type, x-api-key, x-goog-api-key, api-key, anthropic-version, anthropic-beta'

export interface CorsPolicy {
  /** null: any origin */
  origins: Set<string> | null
}

/** The policy from CORS_ORIGINS; null when CORS is off. */
export function corsPolicy(raw = process.env.CORS_ORIGINS): CorsPolicy | null {
  const value = (raw ?? '*').trim()
  if (value === '' || value.toLowerCase() === 'off' || value.toLowerCase() === 'false') return null
  if (value === '*') return { origins: null }
  const origins = value
    .split(',')
    .map((o) => o.trim().replace(/\/+$/, '').toLowerCase())
    .filter(Boolean)
  return { origins: new Set(origins) }
}

/** The handler with CORS in front of it (or the handler itself when CORS is off). */
export function withCors(handler: NodeHandler, policy = corsPolicy()): NodeHandler {
  if (policy === null) return handler
  return (req, res) => {
    const origin = req.headers.origin
    if (origin === undefined || !isApiPath(req.url ?? '/')) return handler(req, res)
    const allowed = policy.origins === null || policy.origins.has(origin.toLowerCase())
    if (!allowed) return handler(req, res)
    // Any origin: `*` (no credentials are ever allowed); a list: the origin itself, varying by it.
    res.setHeader('access-control-allow-origin', policy.origins === null ? '*' : origin)
    if (policy.origins !== null) res.setHeader('vary', 'Origin')
    if (req.method === 'OPTIONS' && req.headers['access-control-request-method'] !== undefined) {
      // A preflight: answered here, before authentication (a browser sends no key with it).
      const asked = req.headers['access-control-request-headers']
      res.writeHead(204, {
        'access-control-allow-methods': METHODS,
        'access-control-allow-headers': typeof asked === 'string' && asked.trim() !== '' ? asked : DEFAULT_HEADERS,
        'access-control-max-age': '86400',
        'content-length': '0',
      })
      res.end()
      return
    }
    res.setHeader('access-control-expose-headers', EXPOSED)
    return handler(req, res)
  }
}
