import type { ServerResponse } from 'node:http'
import type { Logger } from '@adonisjs/core/logger'
import { GatewayError } from '#exceptions/gateway_error'
import { dialectForPath, renderError, type ErrorDialect } from '#gateway/http/error_renderers'
import { clientFacing } from '#gateway/http/client_message'
import { retryAfterHeaders } from '#gateway/http/retry_after'

/**
 * An API error as the client gets it, written on the raw response: status,
 * headers and the body in the wire format of the endpoint called (never a
 * stack trace). The exception handler (router) and the API lane both answer
 * through this. A stream already started can only be ended.
 */
export function sendApiError(error: unknown, path: string, res: ServerResponse, dialect: ErrorDialect = dialectForPath(path)) {
  if (res.headersSent) {
    if (!res.writableEnded) res.end()
    return
  }
  const gatewayError = clientFacing(toGatewayError(error))
  const json = JSON.stringify(renderError(dialect, gatewayError))
  if (gatewayError.headers) for (const name in gatewayError.headers) res.setHeader(name, gatewayError.headers[name])
  if (isFinal(gatewayError)) res.setHeader('x-should-retry', 'false')
  // A body not received whole (refused on its headers: no key, a bad key, an unknown upload): the connection
  // closes after the answer. Kept open, Node reads the rest and throws it away however long the client takes to
  // send it, a streamed upload's 2 GB included (up to its 5-minute request timeout), a key or not.
  if (res.req?.complete === false) res.setHeader('connection', 'close')
  res.writeHead(gatewayError.status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(json) })
  res.end(json)
}

/** 4xx statuses the same request meets again however often it is sent. */
const FINAL_STATUSES = new Set([400, 401, 402, 403, 404, 405, 413, 415, 422])

/**
 * An error a retry of the same request cannot cure: the key, the body, the
 * model's permission, the balance, a monthly quota. It says so with
 * `x-should-retry: false`, the header Anthropic's API sends and the
 * Stainless SDKs (Anthropic, OpenAI) obey before their status rules. Without
 * it Claude Code retries a 401 ten times with backoff (about 90 s of silence
 * before "invalid key"), and every SDK retries a monthly quota's 429 (Claude
 * Code ten times) though it cannot pass before the month ends. Rate windows,
 * timeouts and 5xx keep the SDKs' own rules.
 */
function isFinal(error: GatewayError): boolean {
  return FINAL_STATUSES.has(error.status) || error.code === 'token_limit_exceeded'
}

/** Expected outcomes (client errors, upstream failures) log one line at most; anything else with its stack. */
export function reportApiError(error: unknown, logger: Logger) {
  if (error instanceof GatewayError) {
    if (error.status >= 500) logger.warn({ code: error.code, status: error.status }, error.message)
    return
  }
  const status = (error as { status?: number })?.status
  if (typeof status === 'number' && status < 500) return
  // The client's value refused by the database (toGatewayError's 400): not the gateway's failure.
  if (isDataException(error)) return
  logger.error({ err: error }, (error as Error)?.message ?? 'API request failed')
}

/** Framework errors (404 route, body too large, ...) keep their status; anything unknown is a 500. */
export function toGatewayError(error: unknown): GatewayError {
  if (error instanceof GatewayError) return error
  const e = error as { status?: number; code?: string; message?: string }
  if (e?.status === 404) return new GatewayError(404, 'not_found', e.message || 'Not found', 'not_found_error')
  if (e?.status === 413) return new GatewayError(413, 'request_too_large', 'Request body is too large')
  if (e?.status && e.status >= 400 && e.status < 500) {
    return new GatewayError(e.status, (e.code || 'invalid_request').toLowerCase(), e.message || 'Bad request')
  }
  if (isDataException(error)) {
    // Postgres refused a value the client sent (an id past bigint, a NUL in a text): the client's 400, not a 500.
    return GatewayError.invalidRequest('A value in the request is out of range or contains characters that cannot be stored', 'invalid_value')
  }
  if (isDatabaseUnavailable(error)) {
    // A read the caches could not serve (a key not seen yet) during a Postgres outage.
    const unavailable = new GatewayError(503, 'database_unavailable', 'The gateway cannot reach its database; retry shortly', 'service_unavailable')
    unavailable.headers = retryAfterHeaders(5000)
    return unavailable
  }
  return GatewayError.internal()
}

/** Postgres is down, restarting or unreachable (not a bug of the request). */
function isDatabaseUnavailable(error: unknown): boolean {
  const e = error as { code?: string; message?: string }
  if (typeof e?.code === 'string' && /^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|57P0[1-3]|08\d{3})$/.test(e.code)) return true
  return /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error/.test(e?.message ?? '')
}

/**
 * A PostgreSQL data exception (SQLSTATE class 22: numeric value out of range,
 * invalid text representation, a NUL byte in a text...), raised by a value
 * a request carried into a query.
 */
export function isDataException(error: unknown): boolean {
  const e = error as { code?: unknown; severity?: unknown }
  return typeof e?.code === 'string' && typeof e.severity === 'string' && /^22[0-9A-Z]{3}$/.test(e.code)
}
