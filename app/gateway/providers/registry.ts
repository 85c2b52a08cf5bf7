import { openAiCompatibleAdapter } from '#gateway/providers/openai_compatible/openai_compatible_adapter'
import type { ProviderAdapter } from '#gateway/providers/provider_adapter'
import type { ProviderKind } from '#gateway/types'

/** Provider kind -> adapter. Every kind of the core speaks the OpenAI dialect. */
const ADAPTERS: Record<ProviderKind, ProviderAdapter> = {
  openai: openAiCompatibleAdapter,
  openrouter: openAiCompatibleAdapter,
  deepseek: openAiCompatibleAdapter,
  zai: openAiCompatibleAdapter,
  gemini: openAiCompatibleAdapter,
  anthropic: openAiCompatibleAdapter,
  custom: openAiCompatibleAdapter,
}

export function adapterFor(kind: ProviderKind): ProviderAdapter {
  return ADAPTERS[kind] ?? openAiCompatibleAdapter
}
