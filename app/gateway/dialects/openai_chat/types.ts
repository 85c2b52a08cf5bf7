import type { ReasoningDetail } from '#gateway/dialects/openai_chat/reasoning_details'

/** OpenAI chat-completions wire types (the parts the gateway reads or writes). */

export interface ChatContentPart {
  type: 'text' | 'image_url' | 'input_audio' | 'file' | string
  text?: string
  image_url?: { url: string; detail?: string }
  /** A document: `file_data` a data: URL (OpenAI; OpenRouter also takes a URL), or an uploaded `file_id` */
  file?: { file_data?: string; file_id?: string; filename?: string }
  /** Base64 audio, `format` wav or mp3 */
  input_audio?: { data: string; format: string }
  cache_control?: Record<string, unknown>
}

export interface ChatToolCall {
  id: string
  type: 'function' | 'custom'
  function?: { name: string; arguments: string }
  custom?: { name: string; input: string }
}

export interface ChatMessage {
  role: 'system' | 'developer' | 'user' | 'assistant' | 'tool'
  content?: string | ChatContentPart[] | null
  name?: string
  tool_calls?: ChatToolCall[]
  tool_call_id?: string
  reasoning_content?: string
  reasoning?: string
  /** OpenRouter's structured reasoning (reasoning_details.ts): written on translated answers, read back on assistant messages */
  reasoning_details?: ReasoningDetail[]
  /** Images the model made (OpenRouter's and LiteLLM's shape): written on answers, read back on assistant messages */
  images?: ChatImage[]
  /** Pages the answer cites (url_citation): written on answers translated from a citing upstream */
  annotations?: unknown[]
}

/** An image of an answer: `{type: "image_url", image_url: {url: "data:image/png;base64,..."}}` */
export interface ChatImage {
  type: 'image_url'
  image_url: { url: string }
  index?: number
}

export interface ChatTool {
  type: 'function' | 'custom'
  function?: { name: string; description?: string; parameters?: Record<string, unknown>; strict?: boolean }
  custom?: { name: string; description?: string; format?: Record<string, unknown> }
}

export interface ChatRequest {
  model: string
  messages: ChatMessage[]
  stream?: boolean
  stream_options?: { include_usage?: boolean }
  tools?: ChatTool[]
  tool_choice?: 'auto' | 'none' | 'required' | { type: 'function'; function: { name: string } }
  parallel_tool_calls?: boolean
  max_tokens?: number
  max_completion_tokens?: number
  temperature?: number
  top_p?: number
  stop?: string | string[]
  reasoning_effort?: string
  /** Anthropic-style extended thinking, as LiteLLM takes it on chat (not OpenAI's: read, never sent to OpenAI) */
  thinking?: { type?: string; budget_tokens?: number }
  /** OpenRouter's reasoning control (not OpenAI's: read, sent only to OpenRouter) */
  reasoning?: OpenRouterReasoning
  /** OpenRouter's usage accounting: `{include: true}` asks for the usage's cost */
  usage?: { include?: boolean }
  response_format?: { type: string; json_schema?: { name?: string; schema?: Record<string, unknown>; strict?: boolean } }
  user?: string
  /** What the answer may hold: ["text"], ["image", "text"] (OpenRouter, LiteLLM), ["text", "audio"] (OpenAI) */
  modalities?: string[]
  /** OpenRouter's shape of a generated image */
  image_config?: { aspect_ratio?: string; image_size?: string }
}

/** OpenRouter's `reasoning` on a chat request: an effort or a token budget (not both), `exclude`, `enabled` */
export interface OpenRouterReasoning {
  effort?: string
  max_tokens?: number
  exclude?: boolean
  enabled?: boolean
}

export interface ChatUsage {
  prompt_tokens: number
  completion_tokens: number
  total_tokens: number
  prompt_tokens_details?: { cached_tokens?: number; cache_write_tokens?: number; audio_tokens?: number }
  completion_tokens_details?: { reasoning_tokens?: number; audio_tokens?: number; image_tokens?: number }
  /** DeepSeek */
  prompt_cache_hit_tokens?: number
  /** OpenRouter's usage accounting: USD (here: what the gateway bills), only when the client asked */
  cost?: number
}

export interface ChatCompletion {
  id: string
  object: 'chat.completion'
  created: number
  model: string
  choices: Array<{
    index: number
    message: ChatMessage & { refusal?: string | null }
    logprobs?: unknown
    finish_reason: string | null
  }>
  usage?: ChatUsage
}

export interface ChatChunk {
  id: string
  object: 'chat.completion.chunk'
  created: number
  model: string
  choices: Array<{
    index: number
    delta: {
      role?: string
      content?: string | null
      refusal?: string | null
      reasoning_content?: string
      reasoning?: string
      reasoning_details?: ReasoningDetail[]
      tool_calls?: ChatToolCallDelta[]
      images?: ChatImage[]
    }
    logprobs?: unknown
    finish_reason: string | null
  }>
  usage?: ChatUsage | null
  error?: { message?: string }
}

/** One piece of a streamed tool call: the first names it (id, name), later ones carry only `index` and arguments. */
export interface ChatToolCallDelta {
  index: number
  id?: string
  type?: string
  function?: { name?: string; arguments?: string }
}
