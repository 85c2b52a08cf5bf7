import type { ProviderKind } from '#gateway/types'

/**
 * The OpenAI-compatible family differs by configuration, not code: default
 * base URL, which client headers are forwarded, and the env var that creates
 * a channel at first start.
 */
export interface VendorConfig {
  defaultBaseUrl: string | null
  /** Lower-case client header names relayed upstream (attribution headers) */
  forwardHeaders: readonly string[]
  /** Env var whose presence at first start creates a channel of this kind */
  envKey: string | null
  /** Globs a bootstrap channel of this kind serves */
  defaultModels: readonly string[]
}

export const VENDORS: Record<ProviderKind, VendorConfig> = {
  openai: {
    defaultBaseUrl: 'https://api.openai.com/v1',
    forwardHeaders: ['openai-organization', 'openai-project'],
    envKey: 'OPENAI_API_KEY',
    defaultModels: ['gpt-*', 'o1*', 'o3*', 'o4*', 'chatgpt-*', 'text-embedding-*', 'dall-e-*', 'gpt-image-*'],
  },
  openrouter: {
    defaultBaseUrl: 'https://openrouter.ai/api/v1',
    forwardHeaders: ['http-referer', 'x-title', 'x-openrouter-title'],
    envKey: 'OPENROUTER_API_KEY',
    defaultModels: ['*/*'],
  },
  deepseek: {
    defaultBaseUrl: 'https://api.deepseek.com/v1',
    forwardHeaders: [],
    envKey: 'DEEPSEEK_API_KEY',
    defaultModels: ['deepseek-*'],
  },
  zai: {
    defaultBaseUrl: 'https://api.z.ai/api/paas/v4',
    forwardHeaders: [],
    envKey: 'ZAI_API_KEY',
    defaultModels: ['glm-*'],
  },
  gemini: {
    defaultBaseUrl: 'https://generativelanguage.googleapis.com/v1beta/openai',
    forwardHeaders: [],
    envKey: 'GEMINI_API_KEY',
    defaultModels: ['gemini-*'],
  },
  anthropic: {
    // Anthropic's OpenAI-compatible endpoint; the native Messages adapter builds on the same channel.
    defaultBaseUrl: 'https://api.anthropic.com/v1',
    forwardHeaders: ['anthropic-version', 'anthropic-beta'],
    envKey: 'ANTHROPIC_API_KEY',
    defaultModels: ['claude-*'],
  },
  custom: {
    defaultBaseUrl: null,
    forwardHeaders: [],
    envKey: null,
    defaultModels: [],
  },
}
