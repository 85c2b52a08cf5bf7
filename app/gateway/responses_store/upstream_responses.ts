import { channelRequest } from '#gateway/batches/upstream_calls'
import { azureAddressing } from '#gateway/providers/azure/azure_adapter'
import { withChannelHeaders, type UpstreamRequest } from '#gateway/providers/provider_adapter'
import type { ChannelInfo } from '#gateway/types'

/**
 * A call to a channel's Responses API: under its base with its key as a
 * Bearer token (OpenAI and compatible servers), or, for Azure OpenAI, its
 * `api-key` and the api-version its Responses API needs. `accept`: a
 * stream's GET (`?stream=true`) asks for events.
 */
export function responsesRequest(
  channel: ChannelInfo,
  method: 'GET' | 'DELETE' | 'POST',
  path: string,
  search?: URLSearchParams,
  accept = 'application/json'
): UpstreamRequest {
  if (channel.provider !== 'azure') {
    const query = search === undefined ? '' : `?${search}`
    const request = channelRequest(channel, { method, path: `${path}${query}` })
    request.headers.accept = accept
    return request
  }
  const addressing = azureAddressing(channel.baseUrl)
  let query = addressing.responsesQuery
  if (search !== undefined) query += `${query === '' ? '?' : '&'}${search}`
  const headers: Record<string, string> = { accept }
  if (channel.apiKey) headers['api-key'] = channel.apiKey
  withChannelHeaders(headers, channel, {}, [])
  return { method, origin: addressing.origin, path: `${addressing.basePath}${path}${query}`, headers, body: '' }
}
