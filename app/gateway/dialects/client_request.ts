import { GatewayError } from '#exceptions/gateway_error'
import type { CanonicalRequest } from '#gateway/dialects/canonical'
import type { Dialect } from '#gateway/dialects/dialect'

/**
 * The translation of a client's body is the client's business: when a field
 * has a shape the codecs cannot read (`tools: {}`), that is a 400 in the
 * client's format, never an upstream failure (it must not count against a
 * channel's health), and never a 500.
 */
export function asClientError(error: unknown): GatewayError {
  if (error instanceof GatewayError) return error
  return GatewayError.invalidRequest(
    'The request body could not be translated for the upstream: a field has a type or shape this endpoint does not accept',
    'invalid_request'
  )
}

/** The client's body in canonical form; a body the decoder cannot read is a 400. */
export function decodeClientRequest(dialect: Dialect, body: Record<string, any>): CanonicalRequest {
  try {
    return dialect.decodeRequest(body)
  } catch (error) {
    throw asClientError(error)
  }
}
