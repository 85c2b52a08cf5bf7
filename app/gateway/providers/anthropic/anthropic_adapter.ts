import type { DialectName } from '#gateway/dialects/canonical'
import {
  baseOf,
  withChannelHeaders,
  type ProviderAdapter,
  type UpstreamCall,
  type UpstreamRequest,
} from '#gateway/providers/provider_adapter'
import { VENDORS } from '#gateway/providers/vendors'
import type { ChannelInfo } from '#gateway/types'

export const DEFAULT_ANTHROPIC_VERSION = '2023-06-01'
const DIALECTS: readonly DialectName[] = ['anthropic_messages']

/**
 * Anthropic's native Messages API: `{base}/messages` (base default
 * https://api.anthropic.com/v1) with `x-api-key`, the client's
 * `anthropic-version` (2023-06-01 when it sent none) and `anthropic-beta`.
 */
export class AnthropicAdapter implements ProviderAdapter {
  dialects() {
    return DIALECTS
  }

  countsTokens() {
    return true
  }

  embeddings() {
    return null
  }

  /** Only OpenAI's family offers the relayed services. */
  offers() {
    return false
  }

  request(channel: ChannelInfo, call: UpstreamCall): UpstreamRequest {
    const { origin, basePath } = baseOf(channel)
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'accept': call.stream ? 'text/event-stream' : 'application/json',
    }
    if (channel.apiKey) headers['x-api-key'] = channel.apiKey
    // Beta flags only mean something to a same-dialect client.
    const forward = call.dialect === 'anthropic_messages' ? VENDORS.anthropic.forwardHeaders : []
    withChannelHeaders(headers, channel, call.clientHeaders, forward)
    headers['anthropic-version'] ??= DEFAULT_ANTHROPIC_VERSION
    const path = call.operation === 'count_tokens' ? '/messages/count_tokens' : '/messages'
    return { origin, path: `${basePath}${path}`, headers, body: call.body }
  }

  modelsPath(channel: ChannelInfo): UpstreamRequest {
    const { origin, basePath } = baseOf(channel)
    const headers: Record<string, string> = { 'anthropic-version': DEFAULT_ANTHROPIC_VERSION }
    if (channel.apiKey) headers['x-api-key'] = channel.apiKey
    withChannelHeaders(headers, channel, {}, [])
    return { method: 'GET', origin, path: `${basePath}/models`, headers, body: '' }
  }
}

export const anthropicAdapter = new AnthropicAdapter()
