import { GatewayError } from '#exceptions/gateway_error'

/**
 * A whole 2xx answer, once its bytes are read (dispatcher.ts readBody: a body
 * cut off or too large is already a provider_error there): what makes it no
 * answer the client can use is the upstream's failure too. Thrown inside the
 * attempt (an AnswerCheck), it fails over like a 5xx; with no candidate left
 * it is the client's 502 provider_error in its format, never a 500 and never
 * a success on the usage row.
 */

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

/**
 * A passed-through answer's bytes, naming the model as the client knows it
 * (a fallback's name, or the one asked for when the channel maps it to
 * another): the upstream's bytes untouched when the names agree.
 */
export function answeredAs(bytes: Buffer, parsed: any, publicModel: string, upstreamModel: string): Buffer {
  if (upstreamModel === publicModel || typeof parsed.model !== 'string') return bytes
  parsed.model = publicModel
  // A body nested too deeply to serialise again (JSON.stringify recurses) is no answer the client can use.
  return Buffer.from(decodeAnswer(() => JSON.stringify(parsed)))
}
