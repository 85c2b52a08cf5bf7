import { Agent, request } from 'undici'
import { SsoError } from '#services/sso/sso_error'

/**
 * The provider calls of a sign-in (discovery, JWKS, token, userinfo, GitHub's
 * API): bounded in time (connect, first byte, whole call) and in size, no
 * redirect followed (a token request's credentials would go wherever it
 * points). Anything wrong is an SsoError('provider') whose detail names the
 * URL and what happened, for the log.
 */
const CONNECT_MS = 5_000
const HEADERS_MS = 10_000
const TOTAL_MS = 15_000
/** Discovery documents, key sets and token answers are a few KB; 256 KB leaves room */
export const MAX_ANSWER_BYTES = 256 * 1024

const agent = new Agent({ connect: { timeout: CONNECT_MS }, headersTimeout: HEADERS_MS, bodyTimeout: HEADERS_MS })

export interface SsoCall {
  method?: 'GET' | 'POST'
  headers?: Record<string, string>
  /** A form body (token requests) */
  form?: Record<string, string>
}

export interface SsoAnswer {
  status: number
  json: unknown
}

/** One call whose answer must be JSON (any status: the caller reads error bodies too). */
export async function ssoJson(url: string, call: SsoCall = {}): Promise<SsoAnswer> {
  const body = call.form ? new URLSearchParams(call.form).toString() : undefined
  const headers: Record<string, string> = { 'accept': 'application/json', 'user-agent': 'gateway-sso', ...call.headers }
  if (body) headers['content-type'] = 'application/x-www-form-urlencoded'
  let answer
  try {
    answer = await request(url, {
      method: call.method ?? 'GET',
      headers,
      body,
      dispatcher: agent,
      signal: AbortSignal.timeout(TOTAL_MS),
    })
  } catch (error: any) {
    throw new SsoError('provider', `${call.method ?? 'GET'} ${url}: ${error?.code ?? error?.name ?? 'error'} ${error?.message ?? ''}`.trim())
  }
  const chunks: Buffer[] = []
  let size = 0
  try {
    for await (const chunk of answer.body) {
      size += chunk.length
      if (size > MAX_ANSWER_BYTES) {
        answer.body.destroy()
        throw new SsoError('provider', `${url}: answer larger than ${MAX_ANSWER_BYTES} bytes`)
      }
      chunks.push(chunk)
    }
  } catch (error: any) {
    if (error instanceof SsoError) throw error
    throw new SsoError('provider', `${url}: answer cut (${error?.code ?? error?.message ?? 'error'})`)
  }
  if (answer.statusCode >= 300 && answer.statusCode < 400) {
    throw new SsoError('provider', `${url}: redirect ${answer.statusCode} not followed`)
  }
  const text = Buffer.concat(chunks).toString('utf8')
  try {
    return { status: answer.statusCode, json: JSON.parse(text) }
  } catch {
    throw new SsoError('provider', `${url}: HTTP ${answer.statusCode}, not JSON`)
  }
}

/** A JSON object or nothing (arrays and scalars are no answer the flow reads). */
export function asObject(value: unknown): Record<string, unknown> | null {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : null
}

/** A URL the flow may call or send the browser to: http(s) only. */
export function httpUrl(value: unknown): string | null {
  if (typeof value !== 'string') return null
  try {
    const url = new URL(value)
    return url.protocol === 'https:' || url.protocol === 'http:' ? url.toString() : null
  } catch {
    return null
  }
}
