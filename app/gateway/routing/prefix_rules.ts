import type { ProviderKind } from '#gateway/types'

/**
 * Seed 000's routing table, used when no channel lists the requested model:
 * the model name's prefix picks the provider kind (and, for `openrouter/`,
 * the name sent upstream).
 */
export interface PrefixRoute {
  provider: ProviderKind
  upstreamModel: string
}

const OPENAI_PREFIXES = ['gpt-', 'o1-', 'o3-', 'o4-', 'chatgpt-']

export function routeByPrefix(model: string): PrefixRoute {
  const lower = model.toLowerCase()
  if (OPENAI_PREFIXES.some((p) => lower.startsWith(p)) || lower === 'o1' || lower === 'o3' || lower === 'o4-mini') {
    return { provider: 'openai', upstreamModel: model }
  }
  if (lower.startsWith('gemini-')) return { provider: 'gemini', upstreamModel: model }
  if (lower.startsWith('google/')) return { provider: 'gemini', upstreamModel: model.slice('google/'.length) }
  if (lower.startsWith('deepseek-')) return { provider: 'deepseek', upstreamModel: model }
  if (lower.startsWith('deepseek/')) return { provider: 'deepseek', upstreamModel: model.slice('deepseek/'.length) }
  if (lower.startsWith('openrouter/')) {
    return { provider: 'openrouter', upstreamModel: model.slice('openrouter/'.length) }
  }
  if (lower.startsWith('zai/')) return { provider: 'zai', upstreamModel: model.slice('zai/'.length) }
  if (lower.startsWith('claude-')) return { provider: 'anthropic', upstreamModel: model }
  if (model.includes('/')) return { provider: 'openrouter', upstreamModel: model }
  return { provider: 'openai', upstreamModel: model }
}
