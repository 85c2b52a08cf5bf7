import type { IncomingMessage } from 'node:http'
import { GatewayError } from '#exceptions/gateway_error'

const MAX_BODY_BYTES = 64 * 1024 * 1024

/**
 * The request body as sent, bytes untouched (the /v1 routes bypass the body
 * parser so unknown fields reach the upstream exactly as the client wrote them).
 */
export async function readRawBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = []
  let size = 0
  try {
    for await (const chunk of req) {
      size += (chunk as Buffer).length
      if (size > MAX_BODY_BYTES) {
        throw new GatewayError(413, 'request_too_large', 'Request body is too large')
      }
      chunks.push(chunk as Buffer)
    }
  } catch (error) {
    if (error instanceof GatewayError) throw error
    // The client hung up while sending: nothing to answer, but the request is still accounted.
    throw new GatewayError(499, 'client_closed', 'Client closed the connection')
  }
  return chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)
}

/** Parses a JSON object body; anything else is 400 invalid_json. */
export function parseJsonObject(raw: Buffer): Record<string, any> {
  if (raw.length === 0) throw GatewayError.invalidJson('Request body is empty; expected a JSON object')
  let parsed: unknown
  try {
    parsed = JSON.parse(raw.toString('utf8'))
  } catch {
    throw GatewayError.invalidJson()
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw GatewayError.invalidJson('Request body must be a JSON object')
  }
  return parsed as Record<string, any>
}
