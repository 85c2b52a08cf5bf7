import { VENDORS } from '#gateway/providers/vendors'
import type { ProviderKind } from '#gateway/types'
import { VERTEX_LOCATION, vertexBaseUrl, vertexLocation } from '#gateway/providers/vertex/vertex_settings'
import { AWS_REGION, bedrockBaseUrl, bedrockRegion } from '#gateway/providers/bedrock/bedrock_settings'

/** A base URL that cannot be used as given; the message says what to change. */
export class BaseUrlError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'BaseUrlError'
  }
}

/**
 * Endpoint paths people paste along with the base (from a curl example):
 * cut off, since the adapters append them. `/models` only after a version
 * segment (`.../v1/models`): some bases end in it (Azure AI's
 * https://x.services.ai.azure.com/models). Azure's classic endpoints come
 * with their deployment (`/openai/deployments/{name}/chat/completions`).
 */
const PASTED_ENDPOINT =
  /\/(?:deployments\/[^/]+\/)?(?:chat\/completions|completions|responses|embeddings|images\/generations|rerank|moderations|audio\/(?:transcriptions|translations|speech)|messages(?:\/count_tokens)?|models\/[^/]+:[A-Za-z]+)$|(?<=\/v\d+(?:alpha|beta)?)\/models$/

/**
 * The one canonical form of a channel's base URL for its provider kind, the
 * one requests are appended to: scheme, lower-case host (default port
 * dropped), the version path completed, no trailing slash.
 *
 * Accepts what people paste: with or without the version path
 * (https://api.anthropic.com, https://generativelanguage.googleapis.com,
 * http://host:11434, https://openrouter.ai/api), trailing slashes, repeated
 * slashes, a pasted endpoint (`.../v1/chat/completions`). The rules per kind
 * are data in vendors.ts (`baseUrl`). Idempotent: a canonical URL comes back
 * unchanged.
 *
 * Throws BaseUrlError for what the gateway would silently not send: a query
 * string (but the parameters the kind keeps, Azure's `api-version`), a
 * fragment, credentials in the URL, a scheme other than http(s).
 */
export function normaliseBaseUrl(kind: ProviderKind, input: string): string {
  if (kind === 'bedrock') return normaliseBedrockBaseUrl(input)
  if (kind === 'vertex') return normaliseVertexBaseUrl(input)
  return normalisedUrl(kind, input)
}

/**
 * Bedrock: a bare region is its runtime endpoint; any base must name the
 * region requests are signed for (its AWS host, or `?region=`).
 */
function normaliseBedrockBaseUrl(input: string): string {
  const trimmed = input.trim()
  const normalised = normalisedUrl('bedrock', AWS_REGION.test(trimmed) ? bedrockBaseUrl(trimmed) : trimmed)
  if (bedrockRegion(normalised) === null) {
    throw new BaseUrlError(
      `A Bedrock base URL names its region: ${expectedBaseUrl('bedrock')}, e.g. ${normalised}?region=us-east-1`
    )
  }
  return normalised
}

/**
 * Vertex AI: a bare location is its endpoint; any base must name the
 * location (its Google host, a /projects/{p}/locations/{l} path, or `?location=`).
 */
function normaliseVertexBaseUrl(input: string): string {
  const trimmed = input.trim()
  const normalised = normalisedUrl('vertex', VERTEX_LOCATION.test(trimmed) ? vertexBaseUrl(trimmed) : trimmed)
  if (vertexLocation(normalised) === null) {
    throw new BaseUrlError(`A Vertex AI base URL names its location: ${expectedBaseUrl('vertex')}, e.g. ${normalised}?location=us-central1`)
  }
  return normalised
}

function normalisedUrl(kind: ProviderKind, input: string): string {
  let url: URL
  try {
    url = new URL(input.trim())
  } catch {
    throw new BaseUrlError(`"${input}" is not a URL; expected one like ${expectedBaseUrl(kind)}`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new BaseUrlError(`The base URL must start with http:// or https:// (got ${url.protocol})`)
  }
  if (url.username || url.password) {
    throw new BaseUrlError("Credentials in the base URL are not sent upstream: give the key as the channel's API key")
  }
  const query = keptQuery(kind, url.searchParams)
  if ((url.search && query === null) || url.hash) {
    throw new BaseUrlError(
      `The base URL's ${url.hash ? 'fragment' : 'query string'} is not sent upstream: remove it` +
        (url.searchParams.has('key') ? " and give the key as the channel's API key" : '')
    )
  }
  return `${url.protocol}//${url.host}${canonicalPath(kind, url.pathname)}${query ?? ''}`
}

/**
 * The query a kind keeps in its base URL (Azure's `?api-version=`, sent with
 * every request), canonical: '' for none, null when it holds anything else.
 */
function keptQuery(kind: ProviderKind, params: URLSearchParams): string | null {
  const allowed = (VENDORS[kind] ?? VENDORS.custom).baseUrl.query ?? []
  const kept: string[] = []
  for (const [name, value] of params) {
    if (!allowed.includes(name)) return null
    if (!/^[\w.-]+$/.test(value)) throw new BaseUrlError(`The base URL's ${name} "${value}" is not a version like 2024-10-21`)
    kept.push(`${name}=${value}`)
  }
  return kept.length ? `?${kept.join('&')}` : ''
}

/** The base-URL form a provider kind expects, for error messages. */
export function expectedBaseUrl(kind: ProviderKind): string {
  return (VENDORS[kind] ?? VENDORS.custom).baseUrl.expected
}

function canonicalPath(kind: ProviderKind, pathname: string): string {
  const form = (VENDORS[kind] ?? VENDORS.custom).baseUrl
  const path = pathname.replace(/\/{2,}/g, '/').replace(/\/+$/, '').replace(PASTED_ENDPOINT, '')
  if (path === '') return form.hostPath
  for (const [pattern, tail] of form.completions ?? []) {
    if (pattern.test(path)) return path + tail
  }
  return path
}

/**
 * What a channel's 404 tells its operator. A wrong base URL answers 404 to
 * every call, often with a bare "Not Found": name the URL that was called,
 * the channel's base URL and the form its kind expects. For the channel's
 * last error and the attempt record, never for the client (it would expose
 * the upstream's address).
 */
export function describeNotFound(
  channel: { provider: ProviderKind; baseUrl: string },
  request: { method?: string; origin: string; path: string },
  upstreamMessage: string
): string {
  // Some hosts answer an HTML page: keep a short, one-line excerpt.
  const excerpt = upstreamMessage.replace(/\s+/g, ' ').trim().slice(0, 200)
  const said = excerpt ? ` (${excerpt})` : ''
  return (
    `HTTP 404 from ${request.method ?? 'POST'} ${request.origin}${request.path}${said}. ` +
    `If the model exists, check the channel's base URL ${channel.baseUrl}: ` +
    `provider kind ${channel.provider} expects ${expectedBaseUrl(channel.provider)}`
  )
}
