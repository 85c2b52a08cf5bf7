import type { IncomingMessage } from 'node:http'
import { GatewayError } from '#exceptions/gateway_error'

const MAX_BODY_BYTES = 64 * 1024 * 1024

/**
 * The request body as sent, bytes untouched (the /v1 routes bypass the body
 * parser so unknown fields reach the upstream exactly as the client wrote them).
 */
export function readRawBody(req: IncomingMessage): Promise<Buffer> {
  // Events rather than async iteration: this runs on every request.
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    const onData = (chunk: Buffer) => {
      size += chunk.length
      if (size > MAX_BODY_BYTES) {
        cleanup()
        req.resume()
        reject(new GatewayError(413, 'request_too_large', 'Request body is too large'))
        return
      }
      chunks.push(chunk)
    }
    const onEnd = () => {
      cleanup()
      resolve(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks))
    }
    // The client hung up while sending: nothing to answer, but the request is still accounted.
    const onGone = () => {
      cleanup()
      reject(new GatewayError(499, 'client_closed', 'Client closed the connection'))
    }
    const onClose = () => {
      if (!req.readableEnded) onGone()
    }
    const cleanup = () => {
      req.off('data', onData)
      req.off('end', onEnd)
      req.off('error', onGone)
      req.off('close', onClose)
    }
    if (req.readableEnded) return resolve(Buffer.alloc(0))
    // Gone before we started reading (the key lookup awaited): no event will come.
    if (req.destroyed) return reject(new GatewayError(499, 'client_closed', 'Client closed the connection'))
    req.on('data', onData)
    req.on('end', onEnd)
    req.on('error', onGone)
    req.on('close', onClose)
  })
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
