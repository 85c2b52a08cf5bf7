import type { DialectName } from '#gateway/dialects/canonical'
import {
  baseOf,
  withChannelHeaders,
  type ProviderAdapter,
  type RelayedService,
  type UpstreamCall,
  type UpstreamRequest,
} from '#gateway/providers/provider_adapter'
import { isImagenModel } from '#gateway/google_images'
import type { ChannelInfo } from '#gateway/types'

const DIALECTS: readonly DialectName[] = ['gemini']

/**
 * Google's native Gemini API (provider kind `google`):
 * `{base}/models/{model}:generateContent` and friends, base default
 * https://generativelanguage.googleapis.com/v1beta, key in `x-goog-api-key`.
 * Streams are always requested as SSE (`alt=sse`).
 */
export class GeminiAdapter implements ProviderAdapter {
  dialects() {
    return DIALECTS
  }

  countsTokens() {
    return true
  }

  embeddings() {
    return 'gemini' as const
  }

  /** OpenAI's images and image edits, translated (google_images.ts: Imagen's `:predict`, Gemini's image models); and Imagen's `:predict` relayed; no other relayed service */
  offers(_channel: ChannelInfo, service: RelayedService) {
    return service === 'images' || service === 'image_edits' || service === 'predict'
  }

  request(channel: ChannelInfo, call: UpstreamCall): UpstreamRequest {
    const { origin, basePath } = baseOf(channel)
    const headers: Record<string, string> = { 'content-type': 'application/json' }
    if (channel.apiKey) headers['x-goog-api-key'] = channel.apiKey
    withChannelHeaders(headers, channel, call.clientHeaders, [])
    const model = encodeURIComponent(call.model.replace(/^models\//, ''))
    return { origin, path: `${basePath}/models/${model}:${methodOf(call)}`, headers, body: call.body }
  }

  modelsPath(channel: ChannelInfo): UpstreamRequest {
    const { origin, basePath } = baseOf(channel)
    const headers: Record<string, string> = {}
    if (channel.apiKey) headers['x-goog-api-key'] = channel.apiKey
    withChannelHeaders(headers, channel, {}, [])
    return { method: 'GET', origin, path: `${basePath}/models`, headers, body: '' }
  }
}

function methodOf(call: UpstreamCall): string {
  switch (call.operation) {
    case 'count_tokens':
      return 'countTokens'
    case 'embeddings':
      return 'batchEmbedContents'
    case 'predict':
      return 'predict'
    // OpenAI's images, translated: Imagen's predict, or a Gemini image model's generateContent.
    case 'images':
      return isImagenModel(call.model) ? 'predict' : 'generateContent'
    default:
      return call.stream ? 'streamGenerateContent?alt=sse' : 'generateContent'
  }
}

export const geminiAdapter = new GeminiAdapter()
