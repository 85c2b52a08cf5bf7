import { GatewayError } from '#exceptions/gateway_error'
import { redactAddresses } from '#gateway/http/client_message'
import { ClientGoneError, describe, readBody } from '#gateway/upstream/dispatcher'

/**
 * A whole upstream answer's bytes, for the callers that relay or decode it
 * in one piece. Its head was fine, so dispatch() returned it; the body can
 * still fail: the connection reset mid-JSON, the idle or total limit
 * reached while it trickles. That is the upstream's failure, not the
 * gateway's: 502 provider_error in the client's format (an unexpected error
 * would be a 500 "Unexpected gateway error" with the stack in the log), and
 * the usage row says so. A client that went away stays a ClientGoneError
 * (its row is a 499).
 */
export async function readAnswer(body: AsyncIterable<Buffer>): Promise<Buffer> {
  try {
    return await readBody(body)
  } catch (error) {
    if (error instanceof ClientGoneError || error instanceof GatewayError) throw error
    throw GatewayError.providerError(redactAddresses(`Upstream answer was cut off: ${describe(error)}`))
  }
}

/**
 * Decodes an upstream answer that parsed as JSON but whose shape a decoder
 * could not take (a member of the wrong type, a list of nulls): the
 * upstream's failure, told in the client's format, never a 500.
 */
export function decodeAnswer<T>(decode: () => T): T {
  try {
    return decode()
  } catch (error) {
    if (error instanceof GatewayError) throw error
    throw GatewayError.providerError('Upstream returned an answer of an unexpected shape')
  }
}

/**
 * A whole 2xx answer's JSON: not JSON, or JSON that is no answer
 * (answerProblem), is the upstream's failure, 502 provider_error.
 */
export function parseAnswer(bytes: Buffer): any {
  let parsed: unknown
  try {
    parsed = JSON.parse(bytes.toString('utf8'))
  } catch {
    throw GatewayError.providerError('Upstream returned a response that is not valid JSON')
  }
  const problem = answerProblem(parsed)
  if (problem !== null) throw GatewayError.providerError(problem)
  return parsed
}

/**
 * Why a 2xx JSON answer is not an answer, or null: JSON that is no object
 * (`null`, a list, a number), or an error body sent with a success status
 * (buggy proxies do; a Responses answer that failed carries its error too).
 * Relayed, the client would get a 200 it cannot read, or an empty message
 * once translated, and the row would say it succeeded.
 */
export function answerProblem(parsed: unknown): string | null {
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return 'Upstream returned JSON that is not an answer'
  const error = (parsed as { error?: unknown }).error
  if (error === null || typeof error !== 'object') return null
  const message = (error as { message?: unknown }).message
  return `Upstream returned an error with a success status${typeof message === 'string' && message ? `: ${message.slice(0, 500)}` : ''}`
}
