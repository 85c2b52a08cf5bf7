import type { DialectName } from '#gateway/dialects/canonical'
import type { EncodeHints } from '#gateway/dialects/dialect'
import type { ProviderKind } from '#gateway/types'

/**
 * Provider kinds differ by configuration, not code: default base URL, the
 * wire dialects the upstream speaks (preferred first), which client headers
 * are forwarded, and the env var that creates a channel at first start.
 *
 * | kind       | adapter            | dialects                     | default base URL                                          |
 * |------------|--------------------|------------------------------|-----------------------------------------------------------|
 * | openai     | openai_compatible  | chat, responses, embeddings, images | https://api.openai.com/v1                          |
 * | openrouter | openai_compatible  | chat                         | https://openrouter.ai/api/v1                              |
 * | deepseek   | openai_compatible  | chat                         | https://api.deepseek.com/v1                               |
 * | zai        | openai_compatible  | chat                         | https://api.z.ai/api/paas/v4                              |
 * | gemini     | openai_compatible  | chat (Gemini's OpenAI endpoint) | https://generativelanguage.googleapis.com/v1beta/openai |
 * | google     | gemini (native)    | generateContent family       | https://generativelanguage.googleapis.com/v1beta          |
 * | anthropic  | anthropic (native) | Messages API                 | https://api.anthropic.com/v1                              |
 * | custom     | openai_compatible  | chat                         | (required)                                                |
 *
 * `gemini-*` models reach a `gemini` channel through the prefix table; a
 * `google` channel serves the models it lists (bootstrap: `gemini-*`).
 */
export interface VendorConfig {
  defaultBaseUrl: string | null
  dialects: readonly DialectName[]
  /** Lower-case client header names relayed upstream (attribution, API versions) */
  forwardHeaders: readonly string[]
  /** Env var whose presence at first start creates a channel of this kind */
  envKey: string | null
  /** Globs a bootstrap channel of this kind serves */
  defaultModels: readonly string[]
  /** How translated requests must be phrased for this vendor */
  encodeHints?: EncodeHints
}

const CHAT: readonly DialectName[] = ['openai_chat']

export const VENDORS: Record<ProviderKind, VendorConfig> = {
  openai: {
    defaultBaseUrl: 'https://api.openai.com/v1',
    dialects: ['openai_chat', 'openai_responses'],
    forwardHeaders: ['openai-organization', 'openai-project'],
    envKey: 'OPENAI_API_KEY',
    defaultModels: ['gpt-*', 'o1*', 'o3*', 'o4*', 'chatgpt-*', 'text-embedding-*', 'dall-e-*', 'gpt-image-*'],
    encodeHints: { maxTokensField: 'max_completion_tokens' },
  },
  openrouter: {
    defaultBaseUrl: 'https://openrouter.ai/api/v1',
    dialects: CHAT,
    forwardHeaders: ['http-referer', 'x-title', 'x-openrouter-title'],
    envKey: 'OPENROUTER_API_KEY',
    defaultModels: ['*/*'],
  },
  deepseek: {
    defaultBaseUrl: 'https://api.deepseek.com/v1',
    dialects: CHAT,
    forwardHeaders: [],
    envKey: 'DEEPSEEK_API_KEY',
    defaultModels: ['deepseek-*'],
  },
  zai: {
    defaultBaseUrl: 'https://api.z.ai/api/paas/v4',
    dialects: CHAT,
    forwardHeaders: [],
    envKey: 'ZAI_API_KEY',
    defaultModels: ['glm-*'],
  },
  gemini: {
    defaultBaseUrl: 'https://generativelanguage.googleapis.com/v1beta/openai',
    dialects: CHAT,
    forwardHeaders: [],
    envKey: 'GEMINI_API_KEY',
    defaultModels: ['gemini-*'],
  },
  google: {
    defaultBaseUrl: 'https://generativelanguage.googleapis.com/v1beta',
    dialects: ['gemini'],
    forwardHeaders: [],
    envKey: 'GOOGLE_API_KEY',
    defaultModels: ['gemini-*'],
  },
  anthropic: {
    defaultBaseUrl: 'https://api.anthropic.com/v1',
    dialects: ['anthropic_messages'],
    forwardHeaders: ['anthropic-version', 'anthropic-beta'],
    envKey: 'ANTHROPIC_API_KEY',
    defaultModels: ['claude-*'],
  },
  custom: {
    defaultBaseUrl: null,
    dialects: CHAT,
    forwardHeaders: [],
    envKey: null,
    defaultModels: [],
  },
}
