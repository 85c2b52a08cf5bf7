import { GatewayError } from '#exceptions/gateway_error'

/** IPv4 and bracketed IPv6 with optional port, URLs, and host:port */
const ADDRESS =
  /\b(?:\d{1,3}\.){3}\d{1,3}(?::\d{1,5})?\b|\[[0-9a-fA-F:.]+\](?::\d{1,5})?|\b[a-z][a-z0-9+.-]*:\/\/[^\s'"<>)]+|\b(?=[a-zA-Z0-9-]*[a-zA-Z])[a-zA-Z0-9-]+(?:\.[a-zA-Z0-9-]+)*:\d{2,5}\b/g
/** What Node's resolver names: `getaddrinfo ENOTFOUND some.internal.host` */
const RESOLVER = /\b(getaddrinfo \w+) \S+/g

/** A message with the network addresses in it replaced (the upstream's location is the operator's business). */
export function redactAddresses(message: string): string {
  return message.replace(RESOLVER, '$1 [upstream]').replace(ADDRESS, '[upstream]')
}

const NETWORK_FAILURE = 'Upstream request failed: '

/**
 * The error as the client sees it. A gateway-side failure (5xx) keeps its
 * status and code, but not where the upstream lives: a network failure is
 * told by its kind only ("Upstream request failed: ECONNREFUSED"), anything
 * else with addresses removed. The full detail stays in the logs and the
 * request's attempt records.
 */
export function clientFacing(error: GatewayError): GatewayError {
  if (error.status < 500) return error
  let message = error.message
  if (message.startsWith(NETWORK_FAILURE)) {
    const detail = message.slice(NETWORK_FAILURE.length)
    const cut = detail.indexOf(' (')
    message = NETWORK_FAILURE + (cut > 0 ? detail.slice(0, cut) : detail)
  }
  message = redactAddresses(message)
  if (message === error.message) return error
  const shown = new GatewayError(error.status, error.code, message, error.type)
  shown.headers = error.headers
  return shown
}

/** JavaScript's own error classes: thrown by the gateway's code, never by an upstream or the network. */
const ENGINE_ERRORS = [TypeError, RangeError, ReferenceError, SyntaxError, EvalError, URIError]

/**
 * What a client's stream says when relaying it failed part-way. The
 * upstream's failures (a reset, a timeout, an answer past its bounds) are
 * told with their addresses removed; a failure of the gateway's own code (a
 * TypeError, a stack overflow on a pathological event) is not the upstream's
 * and its message means nothing to the client: it is said generically and
 * logged with its stack.
 */
export function streamFailureMessage(error: Error): string {
  if (ENGINE_ERRORS.some((kind) => error instanceof kind)) {
    // Lazily: the relays are also used where the app (and its logger) is not booted.
    import('@adonisjs/core/services/logger')
      .then(({ default: logger }) => logger.error({ err: error }, 'relaying a stream failed in the gateway'))
      .catch(() => {})
    return 'The gateway could not relay the rest of the stream'
  }
  return redactAddresses(`Upstream stream failed: ${error.message || 'connection reset'}`)
}
