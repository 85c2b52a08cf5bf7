import type { DialectName } from '#gateway/dialects/canonical'
import { azureAdapter } from '#gateway/providers/azure/azure_adapter'
import { bedrockAdapter } from '#gateway/providers/bedrock/bedrock_adapter'
import { anthropicAdapter } from '#gateway/providers/anthropic/anthropic_adapter'
import { vertexAdapter } from '#gateway/providers/vertex/vertex_adapter'
import { geminiAdapter } from '#gateway/providers/gemini/gemini_adapter'
import { openAiCompatibleAdapter } from '#gateway/providers/openai_compatible/openai_compatible_adapter'
import type { ProviderAdapter } from '#gateway/providers/provider_adapter'
import type { ChannelInfo, ProviderKind } from '#gateway/types'

/** Provider kind -> adapter: Anthropic and Google are native, Azure addresses OpenAI's API its own way, Bedrock serves Claude signed with SigV4, Vertex serves Gemini with a service account's token, the rest OpenAI-compatible. */
const ADAPTERS: Record<ProviderKind, ProviderAdapter> = {
  openai: openAiCompatibleAdapter,
  openrouter: openAiCompatibleAdapter,
  deepseek: openAiCompatibleAdapter,
  zai: openAiCompatibleAdapter,
  gemini: openAiCompatibleAdapter,
  anthropic: anthropicAdapter,
  google: geminiAdapter,
  azure: azureAdapter,
  bedrock: bedrockAdapter,
  vertex: vertexAdapter,
  custom: openAiCompatibleAdapter,
}

export function adapterFor(kind: ProviderKind): ProviderAdapter {
  return ADAPTERS[kind] ?? openAiCompatibleAdapter
}

/**
 * The dialect to talk to a channel in, for an upstream model: the client's
 * own when the channel speaks it (pass-through). The model matters where one
 * channel serves publishers of several formats (Vertex: Gemini and Claude).
 */
export function upstreamDialect(channel: ChannelInfo, ingress: DialectName, upstreamModel: string): DialectName {
  const spoken = adapterFor(channel.provider).dialects(channel, upstreamModel)
  return spoken.includes(ingress) ? ingress : spoken[0]
}
