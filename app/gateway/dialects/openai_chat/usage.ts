import type { TokenUsage } from '#gateway/types'

/** OpenAI `usage` object -> TokenUsage (prompt_tokens includes cached tokens, as OpenAI bills). */
export function usageFromOpenAi(usage: any): TokenUsage | null {
  if (!usage || typeof usage !== 'object') return null
  const promptTokens = Number(usage.prompt_tokens ?? usage.input_tokens ?? 0) || 0
  const completionTokens = Number(usage.completion_tokens ?? usage.output_tokens ?? 0) || 0
  return {
    promptTokens,
    completionTokens,
    totalTokens: Number(usage.total_tokens ?? promptTokens + completionTokens) || promptTokens + completionTokens,
    cachedTokens: Number(usage.prompt_tokens_details?.cached_tokens ?? 0) || 0,
    reasoningTokens: Number(usage.completion_tokens_details?.reasoning_tokens ?? 0) || 0,
    estimated: false,
  }
}
