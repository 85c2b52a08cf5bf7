import type { IncomingHttpHeaders } from 'node:http'
import { GatewayError } from '#exceptions/gateway_error'

/**
 * Request tags for cost attribution (LiteLLM's spend tags, Portkey's
 * metadata): `x-gateway-tags: a,b,c`, LiteLLM's `x-litellm-tags` header, and
 * in OpenAI-format bodies `metadata.tags`. They land on the usage row
 * (`usage_records.tags`, NULL when untagged) and are what spend is reported
 * by (/api/admin/spend/tags).
 *
 * Tags keep their case (as LiteLLM does: `Team-A` and `team-a` are two tags),
 * are trimmed, empties dropped, duplicates kept once in first-seen order. At
 * most MAX_TAGS, each at most MAX_TAG_LENGTH characters of [A-Za-z0-9_.:/-]:
 * anything else is the client's 400 `invalid_tags`, not a silent drop, so a
 * typo never makes spend vanish from a report. The character set leaves out
 * the comma, which the meter relies on (it sends a row's tags joined by ',').
 */
export const MAX_TAGS = 10
export const MAX_TAG_LENGTH = 64
const TAG = /^[A-Za-z0-9_.:/-]{1,64}$/

export const TAG_HEADER = 'x-gateway-tags'
export const LITELLM_TAG_HEADER = 'x-litellm-tags'

/**
 * The tags of a request's headers; null when it sent none (the usual case:
 * two property lookups on the parsed headers, nothing allocated).
 */
export function tagsFromHeaders(headers: IncomingHttpHeaders): string[] | null {
  const ours = headers[TAG_HEADER]
  const litellm = headers[LITELLM_TAG_HEADER]
  if (ours === undefined && litellm === undefined) return null
  let tags: string[] | null = null
  if (ours !== undefined) tags = addListed(tags, ours, TAG_HEADER)
  if (litellm !== undefined) tags = addListed(tags, litellm, LITELLM_TAG_HEADER)
  return tags
}

/**
 * Adds an OpenAI-format body's `metadata.tags` (an array of strings, or one
 * comma-separated string, which OpenAI's own `metadata` accepts: its values
 * are strings) to the header tags. The body is read only by the endpoints
 * that parse it anyway. A list of tags is taken out of the body sent
 * upstream (GatewayService: OpenAI refuses a list in `metadata`); a string stays.
 */
export function withBodyTags(tags: string[] | null, body: Record<string, any>): string[] | null {
  const metadata = body.metadata
  if (metadata === null || typeof metadata !== 'object') return tags
  const listed = metadata.tags
  if (listed === undefined || listed === null) return tags
  if (typeof listed === 'string') return addListed(tags, listed, 'metadata.tags')
  if (!Array.isArray(listed)) throw invalidTags('metadata.tags must be an array of strings')
  for (const tag of listed) {
    if (typeof tag !== 'string') throw invalidTags('metadata.tags must be an array of strings')
    tags = addTag(tags, tag.trim(), 'metadata.tags')
  }
  return tags
}

/** A comma-separated list (a header repeated arrives as an array: each is a list). */
function addListed(tags: string[] | null, raw: string | string[], source: string): string[] | null {
  if (Array.isArray(raw)) {
    for (const each of raw) tags = addListed(tags, each, source)
    return tags
  }
  for (const part of raw.split(',')) tags = addTag(tags, part.trim(), source)
  return tags
}

function addTag(tags: string[] | null, tag: string, source: string): string[] | null {
  if (tag === '') return tags
  if (!TAG.test(tag)) {
    const shown = tag.length > MAX_TAG_LENGTH ? `${tag.slice(0, MAX_TAG_LENGTH)}…` : tag
    throw invalidTags(
      `${source}: tag "${shown}" is not allowed (at most ${MAX_TAG_LENGTH} characters of letters, digits and _ . : / -)`
    )
  }
  if (tags === null) return [tag]
  if (tags.includes(tag)) return tags
  if (tags.length >= MAX_TAGS) throw invalidTags(`A request may carry at most ${MAX_TAGS} tags`)
  tags.push(tag)
  return tags
}

function invalidTags(message: string) {
  return new GatewayError(400, 'invalid_tags', message)
}

/** A usage filter's tag: a valid tag, else null (a filter that could never match). */
export function isTag(value: string): boolean {
  return TAG.test(value)
}
