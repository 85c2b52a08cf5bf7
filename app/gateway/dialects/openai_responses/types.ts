/** OpenAI Responses wire types (the parts the gateway reads or writes). */

export interface ResponsesContentPart {
  type: 'input_text' | 'input_image' | 'input_file' | 'output_text' | 'refusal' | string
  text?: string
  refusal?: string
  image_url?: string
  detail?: string
  /** input_file: a data: URL, a URL, or an uploaded file's id */
  file_data?: string
  file_url?: string
  file_id?: string
  filename?: string
  annotations?: unknown[]
}

export interface ResponsesItem {
  type?: 'message' | 'function_call' | 'function_call_output' | 'custom_tool_call' | 'custom_tool_call_output' | 'reasoning' | string
  id?: string
  role?: 'user' | 'assistant' | 'system' | 'developer'
  content?: string | ResponsesContentPart[]
  status?: string
  call_id?: string
  name?: string
  arguments?: string
  input?: string
  output?: string | ResponsesContentPart[]
  summary?: Array<{ type: 'summary_text'; text: string }>
  encrypted_content?: string | null
}

export interface ResponsesTool {
  type: 'function' | 'custom' | string
  name?: string
  description?: string
  parameters?: Record<string, unknown>
  strict?: boolean
  format?: Record<string, unknown>
}

export interface ResponsesRequest {
  model: string
  input?: string | ResponsesItem[]
  instructions?: string
  stream?: boolean
  tools?: ResponsesTool[]
  tool_choice?: 'auto' | 'none' | 'required' | { type: string; name?: string }
  parallel_tool_calls?: boolean
  max_output_tokens?: number
  temperature?: number
  top_p?: number
  reasoning?: { effort?: string; summary?: string }
  text?: { format?: { type: string; name?: string; schema?: Record<string, unknown>; strict?: boolean } }
  store?: boolean
  include?: string[]
  user?: string
}

export interface ResponsesUsage {
  input_tokens: number
  input_tokens_details?: { cached_tokens?: number }
  output_tokens: number
  output_tokens_details?: { reasoning_tokens?: number }
  total_tokens: number
}

export interface ResponsesResponse {
  id: string
  object: 'response'
  created_at: number
  status: 'completed' | 'incomplete' | 'in_progress' | 'failed'
  model: string
  output: ResponsesItem[]
  usage: ResponsesUsage | null
  incomplete_details: { reason: string } | null
  error: { code: string; message: string } | null
  [key: string]: unknown
}
