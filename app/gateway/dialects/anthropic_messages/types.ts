/** Anthropic Messages wire types (the parts the gateway reads or writes). */

export type AnthropicBlock =
  | { type: 'text'; text: string; cache_control?: Record<string, unknown>; citations?: unknown }
  | {
      type: 'image'
      source: { type: 'base64'; media_type: string; data: string } | { type: 'url'; url: string }
      cache_control?: Record<string, unknown>
    }
  | { type: 'thinking'; thinking: string; signature?: string }
  | { type: 'redacted_thinking'; data: string }
  | { type: 'tool_use'; id: string; name: string; input: unknown; cache_control?: Record<string, unknown> }
  | {
      type: 'tool_result'
      tool_use_id: string
      content?: string | AnthropicBlock[]
      is_error?: boolean
      cache_control?: Record<string, unknown>
    }
  | { type: string; [key: string]: unknown }

export interface AnthropicMessage {
  role: 'user' | 'assistant' | 'system'
  content: string | AnthropicBlock[]
}

export interface AnthropicTool {
  type?: string
  name: string
  description?: string
  input_schema?: Record<string, unknown>
  cache_control?: Record<string, unknown>
}

export interface AnthropicRequest {
  model: string
  messages: AnthropicMessage[]
  system?: string | Array<{ type: 'text'; text: string; cache_control?: Record<string, unknown> }>
  max_tokens?: number
  stream?: boolean
  tools?: AnthropicTool[]
  tool_choice?: { type: 'auto' | 'any' | 'tool' | 'none'; name?: string; disable_parallel_tool_use?: boolean }
  temperature?: number
  top_p?: number
  top_k?: number
  stop_sequences?: string[]
  thinking?: { type: 'enabled' | 'disabled' | 'adaptive'; budget_tokens?: number }
  output_config?: { effort?: string; format?: { type: string; schema?: Record<string, unknown> } }
  metadata?: { user_id?: string }
}

export interface AnthropicUsage {
  input_tokens: number
  output_tokens: number
  cache_creation_input_tokens?: number | null
  cache_read_input_tokens?: number | null
  /** The cache writes by lifetime (their sum is cache_creation_input_tokens): the one-hour ones cost more */
  cache_creation?: { ephemeral_5m_input_tokens?: number | null; ephemeral_1h_input_tokens?: number | null } | null
  /** Server tools the API ran (web_search: billed per search) */
  server_tool_use?: { web_search_requests?: number | null; web_fetch_requests?: number | null } | null
  /** The output's reasoning (thinking_tokens is part of output_tokens); absent from older answers */
  output_tokens_details?: { thinking_tokens?: number | null } | null
}

export interface AnthropicResponse {
  id: string
  type: 'message'
  role: 'assistant'
  model: string
  content: AnthropicBlock[]
  stop_reason: string | null
  stop_sequence: string | null
  usage: AnthropicUsage
}
