import type { DialectName } from '#gateway/dialects/canonical'
import { OPENAI_PATHS } from '#gateway/providers/openai_compatible/openai_compatible_adapter'
import {
  socketOrigin,
  splitBaseUrl,
  withChannelHeaders,
  type ProviderAdapter,
  type UpstreamCall,
  type UpstreamRequest,
  type RelayedService,
  type UpstreamSocketRequest,
} from '#gateway/providers/provider_adapter'
import { VENDORS } from '#gateway/providers/vendors'
import type { ChannelInfo } from '#gateway/types'

/** Azure's current GA data-plane version, for classic bases that name none */
export const AZURE_DEFAULT_API_VERSION = '2024-10-21'
/** The first version serving the Responses API on classic bases (preview only) */
export const AZURE_RESPONSES_API_VERSION = '2025-03-01-preview'
/** The first version serving image edits (`/images/edits`, gpt-image-1) on classic bases (preview only) */
export const AZURE_IMAGE_EDITS_API_VERSION = '2025-04-01-preview'

/** The Realtime API's version on classic bases (preview only there) */
export const AZURE_REALTIME_API_VERSION = '2025-04-01-preview'

/** How one channel's requests are addressed, worked out once per channel snapshot. */
export interface AzureAddressing {
  origin: string
  /** `/openai` (classic) or `/openai/v1` */
  basePath: string
  /** v1 API: OpenAI's paths, model in the body; classic: `/deployments/{model}/...` */
  v1: boolean
  /** Appended to every path: `?api-version=...` (classic always; v1 only when the base URL names one) */
  query: string
  /** The same for the Responses API, which classic serves only from 2025-03-01-preview on */
  responsesQuery: string
  /** The same for image edits, which classic serves only from 2025-04-01-preview on */
  imageEditsQuery: string
  /**
   * The v1 API's base whatever the shape, for what Azure serves there only
   * (Sora 2's Videos API): a classic base's `/openai/v1`, without its dated
   * api-version (the v1 path refuses one: "API version not supported"); a v1
   * base's own, with its pasted query.
   */
  v1BasePath: string
  v1Query: string
}

/** Reads a channel's base URL: the shape from its path, the api-version from its query. */
export function azureAddressing(baseUrl: string): AzureAddressing {
  const { origin, basePath } = splitBaseUrl(baseUrl)
  // Empty is none (`?api-version=` was every call's 400); written back encoded, one parameter whatever it holds
  // (`2024-10-21%26x%3Dy` was decoded into a second parameter, `%23` into a fragment cutting the query).
  const pasted = new URL(baseUrl).searchParams.get('api-version') || null
  const encoded = pasted === null ? null : encodeURIComponent(pasted)
  const v1 = /\/openai\/v1$/.test(basePath)
  if (v1) {
    const query = encoded ? `?api-version=${encoded}` : ''
    return { origin, basePath, v1, query, responsesQuery: query, imageEditsQuery: query, v1BasePath: basePath, v1Query: query }
  }
  const version = encoded ?? AZURE_DEFAULT_API_VERSION
  // Dated versions compare as strings; the pasted one wins when it serves the operation already.
  const atLeast = (first: string) => `?api-version=${pasted && pasted >= first.slice(0, 10) ? encoded : first}`
  return {
    origin,
    basePath,
    v1,
    query: `?api-version=${version}`,
    responsesQuery: atLeast(AZURE_RESPONSES_API_VERSION),
    imageEditsQuery: atLeast(AZURE_IMAGE_EDITS_API_VERSION),
    v1BasePath: `${basePath}/v1`,
    v1Query: '',
  }
}

const addressings = new WeakMap<ChannelInfo, AzureAddressing>()

/** A channel's addressing, read once per channel snapshot (the adapter's calls and the Files / Batch API's). */
export function addressingOf(channel: ChannelInfo): AzureAddressing {
  let addressing = addressings.get(channel)
  if (!addressing) {
    addressing = azureAddressing(channel.baseUrl)
    addressings.set(channel, addressing)
  }
  return addressing
}

/**
 * The path of one call: the v1 API takes OpenAI's paths (model in the body);
 * classic bases put the deployment (the channel's upstream model name, which
 * the model mapping sets) in the path, except for the Responses API.
 */
export function azurePath(addressing: AzureAddressing, endpoint: string, model: string, responses = false, query = addressing.query): string {
  if (responses) return `${addressing.basePath}${endpoint}${addressing.responsesQuery}`
  if (addressing.v1) return `${addressing.basePath}${endpoint}${query}`
  return `${addressing.basePath}/deployments/${encodeURIComponent(model)}${endpoint}${query}`
}

/**
 * Azure OpenAI: OpenAI's bodies and answers, its own addressing (two URL
 * shapes, see azureAddressing) and an `api-key` header. No rerank,
 * moderations or image variations endpoint (dall-e-2 is not deployed there).
 */
export class AzureAdapter implements ProviderAdapter {
  dialects(): readonly DialectName[] {
    return VENDORS.azure.dialects
  }

  encodeHints() {
    return VENDORS.azure.encodeHints
  }

  countsTokens() {
    return false
  }

  embeddings() {
    return 'openai' as const
  }

  /** Azure serves images (generations and edits), completions and audio; it has no rerank, moderations or image variations. */
  offers(_channel: ChannelInfo, service: RelayedService) {
    return service !== 'rerank' && service !== 'moderations' && service !== 'image_variations' && service !== 'predict'
  }

  request(channel: ChannelInfo, call: UpstreamCall): UpstreamRequest {
    const addressing = addressingOf(channel)
    const headers: Record<string, string> = {
      'content-type': call.contentType ?? 'application/json',
      'accept': call.operation.startsWith('audio_') ? '*/*' : 'application/json, text/event-stream',
    }
    // Azure also takes `Authorization: Bearer` for Entra ID tokens; a resource key goes in api-key.
    if (channel.apiKey) headers['api-key'] = channel.apiKey
    withChannelHeaders(headers, channel, call.clientHeaders, VENDORS.azure.forwardHeaders)
    const endpoint = OPENAI_PATHS[call.operation === 'generate' ? call.dialect : call.operation] ?? OPENAI_PATHS.openai_chat
    const responses = call.operation === 'generate' && call.dialect === 'openai_responses'
    const query = call.operation === 'image_edits' ? addressing.imageEditsQuery : addressing.query
    return { origin: addressing.origin, path: azurePath(addressing, endpoint, call.model, responses, query), headers, body: call.body }
  }

  /**
   * The Realtime API: v1 bases at `{base}/realtime?model=`; classic at
   * `{base}/realtime?api-version=&deployment=` (the deployment is the upstream
   * model), with the pasted api-version when it is a preview from 2024-10-01
   * on (the GA versions have no realtime), else AZURE_REALTIME_API_VERSION.
   */
  realtime(channel: ChannelInfo, model: string): UpstreamSocketRequest {
    const addressing = addressingOf(channel)
    const headers: Record<string, string> = {}
    if (channel.apiKey) headers['api-key'] = channel.apiKey
    withChannelHeaders(headers, channel, {}, [])
    const base = `${socketOrigin(addressing.origin)}${addressing.basePath}/realtime`
    const name = encodeURIComponent(model)
    if (addressing.v1) return { url: `${base}${addressing.query ? `${addressing.query}&` : '?'}model=${name}`, headers }
    const pasted = new URL(channel.baseUrl).searchParams.get('api-version')
    const version = pasted && pasted.endsWith('-preview') && pasted >= '2024-10-01' ? pasted : AZURE_REALTIME_API_VERSION
    return { url: `${base}?api-version=${encodeURIComponent(version)}&deployment=${name}`, headers }
  }

  /** v1: `{base}/models`; classic: `{base}/models?api-version=...` (the resource's models). */
  modelsPath(channel: ChannelInfo): UpstreamRequest {
    const addressing = addressingOf(channel)
    const headers: Record<string, string> = {}
    if (channel.apiKey) headers['api-key'] = channel.apiKey
    withChannelHeaders(headers, channel, {}, [])
    return { method: 'GET', origin: addressing.origin, path: `${addressing.basePath}/models${addressing.query}`, headers, body: '' }
  }
}

export const azureAdapter = new AzureAdapter()
