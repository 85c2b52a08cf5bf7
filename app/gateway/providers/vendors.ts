import type { DialectName } from '#gateway/dialects/canonical'
import type { EncodeHints } from '#gateway/dialects/dialect'
import type { Operation } from '#gateway/providers/provider_adapter'
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
 * | deepseek   | openai_compatible  | chat (completions: /beta)    | https://api.deepseek.com/v1                               |
 * | zai        | openai_compatible  | chat                         | https://api.z.ai/api/paas/v4                              |
 * | gemini     | openai_compatible  | chat (Gemini's OpenAI endpoint) | https://generativelanguage.googleapis.com/v1beta/openai |
 * | google     | gemini (native)    | generateContent family       | https://generativelanguage.googleapis.com/v1beta          |
 * | anthropic  | anthropic (native) | Messages API                 | https://api.anthropic.com/v1                              |
 * | azure      | azure              | chat, responses, embeddings, images | (required: https://{resource}.openai.azure.com/openai[/v1]) |
 * | bedrock    | bedrock            | Messages API (Claude: InvokeModel; others: Converse) | (required: https://bedrock-runtime.{region}.amazonaws.com, or the region) |
 * | vertex     | vertex             | generateContent family (Gemini on Vertex AI) | (required: https://{location}-aiplatform.googleapis.com/v1, or the location) |
 * | custom     | openai_compatible  | chat                         | (required)                                                |
 *
 * Base URLs are stored in the form above; `baseUrl` says how pasted shorter
 * forms are completed (base_url.ts).
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
  /** Env var giving that first channel's base URL, for kinds without a default (Azure's resource endpoint) */
  envBaseUrl?: string
  /** Globs a bootstrap channel of this kind serves */
  defaultModels: readonly string[]
  /** How translated requests must be phrased for this vendor */
  encodeHints?: EncodeHints
  /** How a pasted base URL is completed to the canonical one (base_url.ts) */
  baseUrl: BaseUrlForm
  /** Serves OpenAI's legacy text completions (`/completions`, FIM); default true for the OpenAI-compatible kinds */
  textCompletions?: boolean
  /** Serves OpenAI's Realtime API (WebSocket `{base}/realtime?model=`): only OpenAI and custom servers do */
  realtime?: boolean
  /**
   * Operations the vendor serves under another path than the channel's base
   * URL: [pattern on the base path, its replacement], applied when the
   * request is addressed (openai_compatible_adapter.ts). A base path the
   * pattern does not match is kept as the operator set it.
   */
  operationBases?: Partial<Record<Operation, readonly [RegExp, string]>>
}

/**
 * The canonical base URL of a kind is the one requests are appended to
 * (`{base}/chat/completions`, `{base}/messages`, `{base}/models/x:generateContent`).
 * People paste shorter forms: a bare host, or the base the vendor's SDK
 * takes (Anthropic's and Google's SDKs add the version path themselves).
 */
export interface BaseUrlForm {
  /** Path a bare host gets: https://api.openai.com -> https://api.openai.com/v1 */
  hostPath: string
  /** Shorter pasted paths and the tail completing them, first match wins (never applied to a bare host) */
  completions?: readonly (readonly [RegExp, string])[]
  /** The form the channel expects, shown when it answers 404 */
  expected: string
  /** An example for the channel form when the kind has no default base URL */
  example?: string
  /** Query parameters kept in the base URL (Azure's `api-version`); any other query is refused */
  query?: readonly string[]
}

/** A path ending in an API version segment: /v1, /v4, /v1beta, /v1alpha */
const VERSIONED = /\/v\d+(?:alpha|beta)?$/
/** A path not ending in one (the SDK convention of Anthropic and Google: the version is appended) */
const UNVERSIONED = /(?<!\/v\d+(?:alpha|beta)?)$/

const CHAT: readonly DialectName[] = ['openai_chat']

const OPENAI_MODELS = ['gpt-*', 'o1*', 'o3*', 'o4*', 'chatgpt-*', 'text-embedding-*', 'dall-e-*', 'gpt-image-*']
// o1, o3, o4-mini, gpt-5*, codex-*: reasoning models; gpt-5-chat-latest and the GPT-4 family are not.
const OPENAI_HINTS: EncodeHints = {
  maxTokensField: 'max_completion_tokens',
  reasoningModels: /^(o\d|gpt-5(?![\w.-]*-chat)|codex-)/i,
  refusesThinking: true,
}

export const VENDORS: Record<ProviderKind, VendorConfig> = {
  openai: {
    defaultBaseUrl: 'https://api.openai.com/v1',
    dialects: ['openai_chat', 'openai_responses'],
    forwardHeaders: ['openai-organization', 'openai-project'],
    envKey: 'OPENAI_API_KEY',
    defaultModels: OPENAI_MODELS,
    encodeHints: OPENAI_HINTS,
    baseUrl: { hostPath: '/v1', expected: 'https://api.openai.com/v1 (or another OpenAI-compatible base ending in /v1)' },
    realtime: true,
  },
  openrouter: {
    defaultBaseUrl: 'https://openrouter.ai/api/v1',
    dialects: CHAT,
    forwardHeaders: ['http-referer', 'x-title', 'x-openrouter-title'],
    envKey: 'OPENROUTER_API_KEY',
    defaultModels: ['*/*'],
    encodeHints: { cacheControl: true, openRouterFields: true },
    baseUrl: { hostPath: '/api/v1', completions: [[/^\/api$/, '/v1']], expected: 'https://openrouter.ai/api/v1' },
  },
  deepseek: {
    defaultBaseUrl: 'https://api.deepseek.com/v1',
    dialects: CHAT,
    forwardHeaders: [],
    envKey: 'DEEPSEEK_API_KEY',
    defaultModels: ['deepseek-*'],
    encodeHints: { reasoningContent: 'always' },
    baseUrl: { hostPath: '/v1', expected: 'https://api.deepseek.com/v1' },
    // Completions and FIM (prompt + suffix) are DeepSeek's beta: https://api.deepseek.com/beta/completions.
    operationBases: { completions: [/\/v1$/, '/beta'] },
  },
  zai: {
    defaultBaseUrl: 'https://api.z.ai/api/paas/v4',
    dialects: CHAT,
    forwardHeaders: [],
    envKey: 'ZAI_API_KEY',
    defaultModels: ['glm-*'],
    encodeHints: { reasoningContent: 'when_known' },
    // Z.ai's docs: https://api.z.ai/api/paas/v4, the coding plan https://api.z.ai/api/coding/paas/v4
    baseUrl: {
      hostPath: '/api/paas/v4',
      completions: [[/\/paas$/, '/v4']],
      expected: 'https://api.z.ai/api/paas/v4 (coding plan: https://api.z.ai/api/coding/paas/v4)',
    },
  },
  gemini: {
    defaultBaseUrl: 'https://generativelanguage.googleapis.com/v1beta/openai',
    dialects: CHAT,
    // https://ai.google.dev/gemini-api/docs/openai: reasoning_effort "none" turns thinking off.
    encodeHints: { thinkingOffEffort: 'none' },
    forwardHeaders: [],
    envKey: 'GEMINI_API_KEY',
    defaultModels: ['gemini-*'],
    // Google's OpenAI-compatible endpoint has chat, embeddings and images, no legacy completions.
    textCompletions: false,
    baseUrl: {
      hostPath: '/v1beta/openai',
      completions: [[VERSIONED, '/openai']],
      expected: 'https://generativelanguage.googleapis.com/v1beta/openai',
    },
  },
  google: {
    defaultBaseUrl: 'https://generativelanguage.googleapis.com/v1beta',
    dialects: ['gemini'],
    forwardHeaders: [],
    envKey: 'GOOGLE_API_KEY',
    defaultModels: ['gemini-*'],
    // Like Google's SDKs (and Gemini CLI's GOOGLE_GEMINI_BASE_URL): a base without a version gets /v1beta.
    baseUrl: {
      hostPath: '/v1beta',
      completions: [[UNVERSIONED, '/v1beta']],
      expected: 'https://generativelanguage.googleapis.com/v1beta',
    },
  },
  anthropic: {
    defaultBaseUrl: 'https://api.anthropic.com/v1',
    dialects: ['anthropic_messages'],
    forwardHeaders: ['anthropic-version', 'anthropic-beta'],
    envKey: 'ANTHROPIC_API_KEY',
    defaultModels: ['claude-*'],
    // Like Anthropic's SDKs (ANTHROPIC_BASE_URL), which add /v1/messages: a base without /v1 gets it.
    baseUrl: {
      hostPath: '/v1',
      completions: [[UNVERSIONED, '/v1']],
      expected: 'https://api.anthropic.com/v1 (or an Anthropic-compatible base ending in /v1)',
    },
  },
  azure: {
    // Per resource: https://{resource}.openai.azure.com/openai (classic deployments) or .../openai/v1 (v1 API).
    defaultBaseUrl: null,
    dialects: ['openai_chat', 'openai_responses'],
    forwardHeaders: [],
    envKey: 'AZURE_OPENAI_API_KEY',
    envBaseUrl: 'AZURE_OPENAI_ENDPOINT',
    defaultModels: OPENAI_MODELS,
    encodeHints: OPENAI_HINTS,
    // A bare resource host gets /openai (the classic shape, like the Azure SDKs' azure_endpoint).
    baseUrl: {
      hostPath: '/openai',
      query: ['api-version'],
      example: 'https://my-resource.openai.azure.com/openai',
      expected:
        'https://{resource}.openai.azure.com/openai (deployments, optional ?api-version=2024-10-21) or https://{resource}.openai.azure.com/openai/v1',
    },
  },
  bedrock: {
    // Per region: https://bedrock-runtime.{region}.amazonaws.com (a bare region is completed to it: base_url.ts).
    defaultBaseUrl: null,
    dialects: ['anthropic_messages'],
    // Beta flags go in the body on Bedrock (bedrock_adapter.ts), no client header is relayed.
    forwardHeaders: [],
    envKey: null,
    defaultModels: [],
    // Another base (a proxy, a VPC endpoint) names the region to sign for: http://proxy:8080?region=us-east-1
    baseUrl: {
      hostPath: '',
      query: ['region'],
      example: 'https://bedrock-runtime.us-east-1.amazonaws.com',
      expected: 'https://bedrock-runtime.{region}.amazonaws.com (or just the region, us-east-1; another base with ?region=)',
    },
  },
  vertex: {
    // Per location: https://{location}-aiplatform.googleapis.com/v1 (a bare location is completed to it: base_url.ts).
    defaultBaseUrl: null,
    dialects: ['gemini'],
    forwardHeaders: [],
    envKey: null,
    defaultModels: [],
    // Another base (a proxy) names the location (and may name the project): http://proxy:8080/v1?location=us-central1
    baseUrl: {
      hostPath: '/v1',
      query: ['location', 'project'],
      example: 'https://us-central1-aiplatform.googleapis.com/v1',
      expected:
        'https://{location}-aiplatform.googleapis.com/v1 (or just the location, us-central1; global: https://aiplatform.googleapis.com/v1; another base with ?location=)',
    },
  },
  custom: {
    defaultBaseUrl: null,
    dialects: CHAT,
    forwardHeaders: [],
    envKey: null,
    defaultModels: [],
    // vLLM, SGLang, Ollama, Moonshot, DashScope and the like: reasoning came from them, so they read it back.
    encodeHints: { reasoningContent: 'when_known' },
    baseUrl: {
      hostPath: '/v1',
      example: 'http://localhost:8000/v1',
      expected:
        "the server's OpenAI-compatible base, usually ending in /v1 (vLLM http://host:8000/v1, Ollama http://host:11434/v1, LM Studio http://host:1234/v1)",
    },
    realtime: true,
  },
}
