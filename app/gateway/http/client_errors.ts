import { STATUS_CODES, type Server } from 'node:http'
import type { Socket } from 'node:net'
import { GatewayError } from '#exceptions/gateway_error'
import { dialectForPath, renderError } from '#gateway/http/error_renderers'
import { isApiPath } from '#gateway/http/api_paths'

/** What Node's HTTP parser refuses, as Node's own default answer would classify it */
function describe(error: NodeJS.ErrnoException): GatewayError {
  switch (error.code) {
    case 'HPE_HEADER_OVERFLOW':
      return new GatewayError(431, 'headers_too_large', 'Request headers are too large')
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return new GatewayError(413, 'request_too_large', 'Chunk extensions are too large')
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return new GatewayError(408, 'request_timeout', 'The request was not received in time')
    default:
      return GatewayError.invalidRequest(
        'Malformed HTTP request: a header line, header value or Content-Length the HTTP parser refuses',
        'invalid_http_request'
      )
  }
}

const REQUEST_LINE = /^[A-Z]{3,7} (\/[^\s?]*)/

/** The path of the request line, when the refused bytes hold it (they are what the parser was reading). */
function pathOf(rawPacket: unknown): string | null {
  if (!Buffer.isBuffer(rawPacket)) return null
  const match = REQUEST_LINE.exec(rawPacket.toString('latin1', 0, Math.min(rawPacket.length, 2048)))
  return match ? match[1] : null
}

/**
 * A request Node's HTTP parser refuses before any handler sees it (a header
 * over the size limit, CR or NUL in a header value, a Content-Length that is
 * not a number, an obsolete folded header) is answered like every other API
 * error: the status Node would send, with a body in the error format of the
 * endpoint the request line names, instead of Node's bare status line. A
 * page (or a request line the refused bytes do not hold) keeps Node's
 * answer. The connection closes: the parser cannot go on after an error.
 */
export function answerClientErrors(server: Server): Server {
  server.on('clientError', (error: NodeJS.ErrnoException & { rawPacket?: unknown }, socket: Socket) => {
    // Same guard as Node's default: nothing to answer on a reset socket or mid-response.
    const inFlight = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage
    if (error.code === 'ECONNRESET' || !socket.writable || inFlight?.headersSent) {
      socket.destroy(error)
      return
    }
    const refusal = describe(error)
    const path = pathOf(error.rawPacket)
    const statusLine = `HTTP/1.1 ${refusal.status} ${STATUS_CODES[refusal.status]}\r\n`
    if (path === null || !isApiPath(path)) {
      socket.end(`${statusLine}Connection: close\r\n\r\n`)
      return
    }
    const body = JSON.stringify(renderError(dialectForPath(path), refusal))
    // The same bytes sent again meet the same refusal; a timeout may pass.
    const final = refusal.status === 408 ? '' : 'x-should-retry: false\r\n'
    socket.end(
      `${statusLine}Content-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
        `${final}Connection: close\r\n\r\n${body}`
    )
  })
  return server
}
