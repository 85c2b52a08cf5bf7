import type { IncomingHttpHeaders } from 'node:http'
import { GatewayError } from '#exceptions/gateway_error'

/**
 * The end user of a request: the id an app that resells through one gateway
 * key sends for its own customer, so spend can be tracked, limited and
 * blocked per customer (LiteLLM's "customers"). Where clients put it:
 *
 * - LiteLLM's `x-litellm-end-user-id` header (any endpoint, uploads too);
 * - OpenAI's (and OpenRouter's) `user` body field: chat, Responses,
 *   embeddings, images, completions, moderations, speech;
 * - LiteLLM's `litellm_metadata.user` (taken out of what goes upstream with
 *   the rest of litellm_metadata: litellm_fields.ts);
 * - Anthropic's `metadata.user_id` (Messages, count_tokens).
 *
 * The first one present wins, in that order. Only the gateway reads them
 * here: `user` and `metadata.user_id` still go upstream as the client sent
 * them (providers use them for abuse tracking).
 *
 * An end user is 1 to MAX_END_USER_LENGTH characters with no control
 * characters. A longer or odd one is refused (400 `invalid_end_user`), not
 * cut: two customers whose ids share their first 128 characters would share
 * one budget and one block. Empty strings and values that are not strings
 * count as no end user (the provider judges its own field).
 */
export const END_USER_HEADER = 'x-litellm-end-user-id'
export const MAX_END_USER_LENGTH = 128
/** C0 controls and DEL (a NUL cannot be stored in Postgres text; the rest corrupt logs and CSVs) */
const CONTROL = /[\u0000-\u001f\u007f]/

/** The header's end user; null when absent (one property lookup). */
export function endUserFromHeaders(headers: IncomingHttpHeaders): string | null {
  const raw = headers[END_USER_HEADER]
  if (raw === undefined) return null
  // A repeated header arrives as an array (Node joins most headers, not unknown x- ones in every version).
  return checkedEndUser(Array.isArray(raw) ? raw[0] : raw, END_USER_HEADER)
}

/** A parsed body's end user; null when it names none (three property lookups on the usual body). */
export function endUserFromBody(body: Record<string, any>): string | null {
  const user = body.user
  if (typeof user === 'string' && user !== '') return checkedEndUser(user, 'user')
  const litellm = body.litellm_metadata
  if (litellm !== null && typeof litellm === 'object' && typeof litellm.user === 'string' && litellm.user !== '') {
    return checkedEndUser(litellm.user, 'litellm_metadata.user')
  }
  const metadata = body.metadata
  if (metadata !== null && typeof metadata === 'object' && typeof metadata.user_id === 'string' && metadata.user_id !== '') {
    return checkedEndUser(metadata.user_id, 'metadata.user_id')
  }
  return null
}

/** The value as the usage row keeps it, or a 400 naming where it came from. */
export function checkedEndUser(value: string | undefined, source: string): string | null {
  if (value === undefined || value === '') return null
  if (value.length > MAX_END_USER_LENGTH || CONTROL.test(value)) {
    const error = new GatewayError(
      400,
      'invalid_end_user',
      `${source}: an end user id is at most ${MAX_END_USER_LENGTH} characters without control characters`
    )
    error.param = source
    throw error
  }
  return value
}

/** A usage filter's or a form's end user: valid, else null. */
export function isEndUser(value: string): boolean {
  return value.length > 0 && value.length <= MAX_END_USER_LENGTH && !CONTROL.test(value)
}
