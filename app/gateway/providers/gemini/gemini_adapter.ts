import type { DialectName } from '#gateway/dialects/canonical'
import {
  baseOf,
  withChannelHeaders,
  type ProviderAdapter,
  type UpstreamCall,
  type UpstreamRequest,
} from '#gateway/providers/provider_adapter'
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

  /** Only OpenAI's family offers the relayed services. */
  offers() {
    return false
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
    default:
      return call.stream ? 'streamGenerateContent?alt=sse' : 'generateContent'
  }
}

export const geminiAdapter = new GeminiAdapter()
