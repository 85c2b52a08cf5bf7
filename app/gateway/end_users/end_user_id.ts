import { createHash } from 'node:crypto'
import type { IncomingHttpHeaders } from 'node:http'
import { GatewayError } from '#exceptions/gateway_error'
import { rememberBounded } from '#gateway/bounded_memo'

/**
 * The end user of a request: the id an app that resells through one gateway
 * key sends for its own customer, so spend can be tracked, limited and
 * blocked per customer (LiteLLM's "customers"). Where clients put it:
 *
 * - LiteLLM's `x-litellm-end-user-id` header (any endpoint, uploads too);
 * - OpenAI's (and OpenRouter's) `user` body field: chat, Responses,
 *   embeddings, images, completions, moderations, speech; then OpenAI's
 *   `safety_identifier` (its newer name on chat and Responses);
 * - LiteLLM's `litellm_metadata.user` (taken out of what goes upstream with
 *   the rest of litellm_metadata: litellm_fields.ts);
 * - Anthropic's `metadata.user_id` (Messages, count_tokens).
 *
 * The first one present wins, in that order. Only the gateway reads them
 * here: `user` and `metadata.user_id` still go upstream as the client sent
 * them (providers use them for abuse tracking).
 *
 * An end user is 1 to MAX_END_USER_LENGTH characters with no control
 * characters. In the gateway's own fields (the header, litellm_metadata.user)
 * a longer or odd one is refused (400 `invalid_end_user`). The providers'
 * fields (`user`, `metadata.user_id`) are sent for the provider's sake and
 * are never refused: Claude Code sends a `metadata.user_id` of ~200
 * characters with every request (a JSON of device, account and session
 * ids). Such a value is kept as its first 96 characters (controls as `?`),
 * `…` and 16 hex digits of its SHA-256: bounded, and never shared by two
 * values that only begin alike (a cut would make them one budget and one
 * block). Empty strings and values that are not strings count as no end
 * user (the provider judges its own field).
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
  if (typeof user === 'string' && user !== '') return boundedEndUser(user)
  // OpenAI's newer name for it (chat, Responses): `user` is deprecated in favour of safety_identifier.
  const safety = body.safety_identifier
  if (typeof safety === 'string' && safety !== '') return boundedEndUser(safety)
  const litellm = body.litellm_metadata
  if (litellm !== null && typeof litellm === 'object' && typeof litellm.user === 'string' && litellm.user !== '') {
    return checkedEndUser(litellm.user, 'litellm_metadata.user')
  }
  const metadata = body.metadata
  if (metadata !== null && typeof metadata === 'object' && typeof metadata.user_id === 'string' && metadata.user_id !== '') {
    return boundedEndUser(metadata.user_id)
  }
  return null
}

/** Bounded forms already made (a client sends the same long id with every request) */
const bounded = new Map<string, string>()
const BOUNDED_MEMO = 1024
const CONTROLS = /[\u0000-\u001f\u007f]/g

/** A provider field's value as the usage row keeps it: as sent when it fits, else its bounded form (never refused). */
export function boundedEndUser(value: string): string {
  if (value.length <= MAX_END_USER_LENGTH && !CONTROL.test(value)) return value
  let kept = bounded.get(value)
  if (kept === undefined) {
    const digest = createHash('sha256').update(value).digest('hex').slice(0, 16)
    kept = `${value.slice(0, 96).replace(CONTROLS, '?')}…${digest}`
    // Only ids of a sane size are remembered: 1,024 hostile 1 MB ids would hold 1 GB.
    if (value.length <= 1024) rememberBounded(bounded, value, kept, BOUNDED_MEMO)
  }
  return kept
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
