import type { IncomingMessage, ServerResponse } from 'node:http'
import { GatewayError } from '#exceptions/gateway_error'
import { bodyBudget, bodyTiming } from '#gateway/http/body_limits'
import { checkJsonStructure } from '#gateway/http/json_guard'
import { retryAfterHeaders } from '#gateway/http/retry_after'
import { continueIfAwaited } from '#gateway/http/expect_continue'

/** Refusals that leave the body unread: the connection closes after the answer so the upload stops. */
const CLOSE = { connection: 'close' }

/** 413 request_too_large (the connection closes after it) */
export function tooLarge(limit: number) {
  const error = new GatewayError(
    413,
    'request_too_large',
    `Request body is too large: this endpoint accepts at most ${formatBytes(limit)}`
  )
  error.headers = CLOSE
  return error
}

function budgetExhausted() {
  const error = new GatewayError(503, 'overloaded', 'Too many large requests in flight; retry shortly', 'service_unavailable')
  error.headers = { ...CLOSE, ...retryAfterHeaders(1000) }
  return error
}

/** 408 request_timeout (the connection closes after it) */
export function timedOut(ms: number) {
  const error = new GatewayError(408, 'request_timeout', `Request body was not received within ${Math.round(ms / 1000)} s`)
  error.headers = CLOSE
  return error
}

export function unsupportedEncoding(encoding: string) {
  const error = new GatewayError(
    415,
    'unsupported_content_encoding',
    `Content-Encoding '${encoding.slice(0, 32)}' is not supported: send the request body uncompressed`
  )
  error.headers = CLOSE
  return error
}

/**
 * A body with a Content-Encoding other than identity (gzip, br, zstd...)
 * is refused unread: the gateway forwards the client's bytes and reads them
 * as JSON, so a compressed body used to be a puzzling "not valid JSON" (and
 * an uncompressed one labelled gzip went upstream with a header that lied).
 */
export function encodingOf(req: IncomingMessage): string | null {
  const encoding = req.headers['content-encoding']
  if (encoding === undefined || encoding === '') return null
  return encoding.trim().toLowerCase() === 'identity' ? null : encoding
}

/**
 * The request body as sent, bytes untouched (the /v1 routes bypass the body
 * parser so unknown fields reach the upstream exactly as the client wrote them).
 *
 * Bounded three ways: the endpoint's size limit (a declared Content-Length
 * over it is refused before a byte is read), the instance-wide budget of body
 * bytes held at once (taken as the bytes arrive, released when the response
 * ends), and a time limit for the whole body (slow senders).
 *
 * The budget counts bytes received, not bytes announced: taking a declared
 * Content-Length up front let eight connections announcing 32 MB and sending
 * one byte hold the whole 256 MB for the body timeout, every other request
 * with a body answered 503 meanwhile (and again as they reconnected).
 */
export function readRawBody(req: IncomingMessage, res: ServerResponse, limit: number): Promise<Buffer> {
  let held = 0
  const take = (bytes: number) => {
    if (!bodyBudget.tryTake(bytes)) return false
    if (held === 0) {
      // The client left while the request waited (its key or user was being loaded): the
      // response's 'close' is already past, and a listener added now would never give the
      // bytes back. The budget would shrink by each such request until it refused every body.
      if (res.closed) {
        bodyBudget.give(bytes)
        return true
      }
      res.once('close', release)
    }
    held += bytes
    return true
  }
  const release = () => {
    bodyBudget.give(held)
    held = 0
  }

  const encoding = encodingOf(req)
  if (encoding !== null) return Promise.reject(unsupportedEncoding(encoding))

  const declared = req.headers['content-length']
  if (declared !== undefined && Number(declared) > limit) return Promise.reject(tooLarge(limit))
  // Everything the headers decide is decided: a client waiting on `Expect: 100-continue` may send.
  continueIfAwaited(req, res)

  // A small body usually arrives in the packet of the headers: by the time the
  // key is resolved, the parser has already buffered all of it and ended the
  // stream. Take it from the buffer at once, with the same bounds: no timer,
  // listeners or stream ticks per call.
  if (req.complete && !req.readableEnded && !req.readableFlowing) {
    const whole = (req.read() as Buffer | null) ?? Buffer.alloc(0)
    if (whole.length > limit) return Promise.reject(tooLarge(limit))
    if (whole.length > 0 && !take(whole.length)) return Promise.reject(budgetExhausted())
    return Promise.resolve(whole)
  }

  // Events rather than async iteration: this runs on every request.
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    let timer: NodeJS.Timeout | undefined
    const fail = (error: GatewayError) => {
      cleanup()
      reject(error)
    }
    const onData = (chunk: Buffer) => {
      size += chunk.length
      if (size > limit) return fail(tooLarge(limit))
      if (!take(chunk.length)) return fail(budgetExhausted())
      chunks.push(chunk)
    }
    const onEnd = () => {
      cleanup()
      resolve(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks))
    }
    // The client hung up while sending: nothing to answer, but the request is still accounted.
    const onGone = () => fail(new GatewayError(499, 'client_closed', 'Client closed the connection'))
    const onClose = () => {
      if (!req.readableEnded) onGone()
    }
    const cleanup = () => {
      clearTimeout(timer)
      req.off('data', onData)
      req.off('end', onEnd)
      req.off('error', onGone)
      req.off('close', onClose)
    }
    if (req.readableEnded) return resolve(Buffer.alloc(0))
    // Gone before we started reading (the key lookup awaited): no event will come.
    if (req.destroyed) return reject(new GatewayError(499, 'client_closed', 'Client closed the connection'))
    const timeoutMs = bodyTiming.timeoutMs
    timer = setTimeout(() => fail(timedOut(timeoutMs)), timeoutMs)
    req.on('data', onData)
    req.on('end', onEnd)
    req.on('error', onGone)
    req.on('close', onClose)
  })
}

/**
 * Parses a JSON object body; anything else is 400 invalid_json (too deep,
 * duplicate keys: 400 too). `parse` is JSON.parse, or a stricter one (the
 * management API refuses prototype keys, as Adonis's body parser did).
 * `path`: requests nested in the body, their keys checked too (json_guard.ts).
 */
export function parseJsonObject(
  raw: Buffer,
  parse: (text: string) => unknown = JSON.parse,
  path?: readonly string[]
): Record<string, any> {
  if (raw.length === 0) throw GatewayError.invalidJson('Request body is empty; expected a JSON object')
  checkJsonStructure(raw, path)
  let parsed: unknown
  try {
    parsed = parse(raw.toString('utf8'))
  } catch {
    // A byte order mark (some Windows tools write one) is refused, not skipped: the body goes upstream as sent.
    if (raw[0] === 0xef && raw[1] === 0xbb && raw[2] === 0xbf) {
      throw GatewayError.invalidJson('Request body is not valid JSON: it starts with a UTF-8 byte order mark (EF BB BF); send it without one')
    }
    throw GatewayError.invalidJson()
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw GatewayError.invalidJson('Request body must be a JSON object')
  }
  return parsed as Record<string, any>
}

function formatBytes(bytes: number): string {
  return bytes >= 1024 * 1024 ? `${Math.round((bytes / (1024 * 1024)) * 10) / 10} MB` : `${Math.round(bytes / 1024)} KB`
}
