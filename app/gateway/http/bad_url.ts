import type { IncomingMessage, ServerResponse } from 'node:http'
import { GatewayError } from '#exceptions/gateway_error'
import { isApiPath } from '#gateway/http/api_paths'
import { dialectForPath, renderError } from '#gateway/http/error_renderers'

/**
 * The answer to a URL the router cannot decode (`%` not followed by two hex
 * digits, invalid UTF-8): a 400 in the error format of the endpoint the path
 * names, like every other API error, instead of the framework's plain text.
 * Runs before routing, so it has only the raw URL.
 */
export function answerBadUrl(req: IncomingMessage, res: ServerResponse) {
  const path = req.url ?? '/'
  if (!isApiPath(path)) {
    // Pages keep the framework's plain answer.
    res.writeHead(400, { 'content-type': 'text/plain' })
    res.end('Bad Request')
    return
  }
  const error = GatewayError.invalidRequest('Malformed percent-encoding in the URL', 'invalid_url')
  const body = JSON.stringify(renderError(dialectForPath(path), error))
  res.writeHead(400, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body), 'x-should-retry': 'false' })
  res.end(body)
}
