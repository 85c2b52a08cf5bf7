import {
  fileText,
  unsupportedAttachment,
  type CanonicalMessage,
  type CanonicalRequest,
  type CanonicalTool,
  type ContentPart,
  type FilePart,
  type ImagePart,
  type ReasoningConfig,
  type TextPart,
  type ToolChoice,
} from '#gateway/dialects/canonical'
import type {
  AnthropicBlock,
  AnthropicMessage,
  AnthropicRequest,
  AnthropicTool,
} from '#gateway/dialects/anthropic_messages/types'

// xhigh: OpenAI's effort above high (gpt-5.x), which OpenRouter's reasoning.effort also takes.
const EFFORT_BUDGETS: Record<string, number> = { minimal: 1024, low: 2048, medium: 8192, high: 24_576, xhigh: 32_000, max: 32_000 }
const DEFAULT_MAX_TOKENS = 8192

/** The thinking budget a reasoning asks of Anthropic (0: none): its budget, else its effort's (medium by default), at least Anthropic's 1,024. */
export function anthropicThinkingBudget(reasoning: ReasoningConfig): number {
  const budget = reasoning.budgetTokens ?? EFFORT_BUDGETS[reasoning.effort ?? 'medium']
  return budget ? Math.max(1024, budget) : 0
}

/** Anthropic requires max_tokens above the thinking budget: a smaller one (or none) becomes the budget plus the default. */
export function maxTokensAbove(maxTokens: number | undefined, budget: number): number {
  return typeof maxTokens === 'number' && maxTokens > budget ? maxTokens : budget + DEFAULT_MAX_TOKENS
}

/** Anthropic Messages request -> canonical. A role:"system" message inside messages stays in place. */
export function decodeAnthropicRequest(body: AnthropicRequest): CanonicalRequest {
  const system: TextPart[] =
    typeof body.system === 'string'
      ? [{ type: 'text', text: body.system }]
      : (body.system ?? []).filter((b) => b?.type === 'text').map((b) => text(b.text, b.cache_control))
  const messages: CanonicalMessage[] = []
  for (const message of body.messages ?? []) {
    if (!message || typeof message !== 'object') continue
    const content = decodeBlocks(message.content)
    if (message.role === 'system') {
      messages.push({ role: 'system', content: content.filter((p) => p.type === 'text') })
    } else {
      messages.push({ role: message.role === 'assistant' ? 'assistant' : 'user', content })
    }
  }
  const request: CanonicalRequest = {
    model: body.model,
    stream: body.stream === true,
    system,
    messages,
    tools: (body.tools ?? []).map(decodeTool).filter((t): t is CanonicalTool => t !== null),
    toolChoice: decodeToolChoice(body.tool_choice),
    maxTokens: body.max_tokens,
    temperature: body.temperature,
    topP: body.top_p,
    topK: body.top_k,
    stop: body.stop_sequences,
    user: body.metadata?.user_id,
  }
  if (body.tool_choice?.disable_parallel_tool_use) request.parallelToolCalls = false
  const thinking = body.thinking
  if (thinking?.type === 'enabled' || thinking?.type === 'adaptive') {
    request.reasoning = { budgetTokens: thinking.budget_tokens, effort: body.output_config?.effort }
  }
  const format = body.output_config?.format
  if (format?.type === 'json_schema' && format.schema) request.responseFormat = { type: 'json_schema', schema: format.schema }
  return request
}

function text(value: string, cacheControl?: Record<string, unknown>): TextPart {
  return cacheControl ? { type: 'text', text: value, cacheControl } : { type: 'text', text: value }
}

function decodeBlocks(content: AnthropicMessage['content']): ContentPart[] {
  if (typeof content === 'string') return [{ type: 'text', text: content }]
  if (!Array.isArray(content)) return []
  const parts: ContentPart[] = []
  for (const block of content as any[]) {
    switch (block?.type) {
      case 'text':
        parts.push(text(String(block.text ?? ''), block.cache_control))
        break
      case 'image': {
        const image = decodeImage(block)
        if (image) parts.push(image)
        break
      }
      case 'document': {
        const document = decodeDocument(block)
        if (document) parts.push(document)
        break
      }
      case 'thinking':
        parts.push({ type: 'reasoning', text: String(block.thinking ?? ''), signature: block.signature })
        break
      case 'redacted_thinking':
        parts.push({ type: 'reasoning', text: '', redacted: String(block.data ?? '') })
        break
      case 'tool_use':
        parts.push({
          type: 'tool_call',
          id: String(block.id),
          name: String(block.name),
          arguments: JSON.stringify(block.input ?? {}),
          cacheControl: block.cache_control,
        })
        break
      case 'tool_result':
        parts.push({
          type: 'tool_result',
          toolCallId: String(block.tool_use_id),
          content:
            typeof block.content === 'string'
              ? block.content
              : decodeBlocks(block.content ?? []).filter(
                  (p): p is TextPart | ImagePart | FilePart => p.type === 'text' || p.type === 'image' || p.type === 'file'
                ),
          isError: block.is_error === true ? true : undefined,
          cacheControl: block.cache_control,
        })
        break
    }
  }
  return parts
}

function decodeImage(block: any): ImagePart | null {
  const source = block?.source
  if (source?.type === 'base64') {
    return { type: 'image', mediaType: source.media_type, data: source.data, cacheControl: block.cache_control }
  }
  if (source?.type === 'url') return { type: 'image', url: source.url, cacheControl: block.cache_control }
  return null
}

/**
 * A document block: a base64 PDF, plain text (kept as base64 text/plain, like
 * every file's data), a URL, content blocks (their text), or a Files API id.
 */
function decodeDocument(block: any): FilePart | null {
  const source = block?.source
  const base: Pick<FilePart, 'filename' | 'cacheControl'> = {}
  if (typeof block.title === 'string' && block.title) base.filename = block.title
  if (block.cache_control) base.cacheControl = block.cache_control
  const text = (value: string): FilePart => ({ type: 'file', mediaType: 'text/plain', data: Buffer.from(value, 'utf8').toString('base64'), ...base })
  switch (source?.type) {
    case 'base64':
      return { type: 'file', mediaType: String(source.media_type ?? 'application/pdf'), data: String(source.data ?? ''), ...base }
    case 'text':
      return text(String(source.data ?? ''))
    case 'url':
      return typeof source.url === 'string' ? { type: 'file', mediaType: 'application/pdf', url: source.url, ...base } : null
    case 'content':
      if (typeof source.content === 'string') return text(source.content)
      return text((Array.isArray(source.content) ? source.content : []).map((b: any) => (typeof b?.text === 'string' ? b.text : '')).join('\n'))
    case 'file':
      if (typeof source.file_id !== 'string') return null
      return { type: 'file', mediaType: 'application/octet-stream', fileId: { provider: 'anthropic', id: source.file_id }, ...base }
  }
  return null
}

function decodeTool(tool: AnthropicTool): CanonicalTool | null {
  // Server tools (web_search_..., bash_...) have no schema and cannot be offered to another dialect.
  if (!tool?.name || (!tool.input_schema && tool.type && tool.type !== 'custom')) return null
  return { name: tool.name, description: tool.description, parameters: tool.input_schema, cacheControl: tool.cache_control }
}

function decodeToolChoice(choice: AnthropicRequest['tool_choice']): ToolChoice | undefined {
  switch (choice?.type) {
    case 'auto':
      return { type: 'auto' }
    case 'any':
      return { type: 'required' }
    case 'none':
      return { type: 'none' }
    case 'tool':
      return choice.name ? { type: 'tool', name: choice.name } : undefined
  }
  return undefined
}

/**
 * Canonical -> Anthropic Messages request. System messages inside the
 * conversation are hoisted into `system`; consecutive same-role turns merge.
 */
export function encodeAnthropicRequest(request: CanonicalRequest, model: string): AnthropicRequest {
  const system = request.system.map(encodeText)
  const messages: AnthropicMessage[] = []
  for (const message of request.messages) {
    if (message.role === 'system') {
      for (const part of message.content) if (part.type === 'text') system.push(encodeText(part))
      continue
    }
    const blocks = message.content.map(encodeBlock).filter((b): b is AnthropicBlock => b !== null)
    if (blocks.length === 0) continue
    const last = messages[messages.length - 1]
    if (last?.role === message.role) (last.content as AnthropicBlock[]).push(...blocks)
    else messages.push({ role: message.role, content: blocks })
  }
  const body: AnthropicRequest = { model, messages, max_tokens: request.maxTokens ?? DEFAULT_MAX_TOKENS }
  if (system.length > 0) body.system = system
  if (request.stream) body.stream = true
  if (request.tools.length > 0) body.tools = request.tools.map(encodeTool)
  const choice = encodeToolChoice(request.toolChoice, request.parallelToolCalls)
  if (choice && request.tools.length > 0) body.tool_choice = choice
  if (request.stop?.length) body.stop_sequences = request.stop
  if (request.user) body.metadata = { user_id: request.user }
  // Anthropic refuses thinking with a forced tool ("Thinking may not be enabled when tool_choice forces
  // tool use"): the forced call is the client's contract, the thinking is not. Likewise an open tool
  // loop whose calls come back without their signed thinking (another format's reasoning has no
  // Anthropic signature): Anthropic answers 400 "a final assistant message must start with a thinking
  // block", and says to disable thinking instead.
  const forced = body.tool_choice?.type === 'any' || body.tool_choice?.type === 'tool'
  const thinkable = request.reasoning && !forced && !unsignedToolLoop(messages)
  const budget = thinkable ? anthropicThinkingBudget(request.reasoning!) : 0
  if (budget) {
    body.thinking = { type: 'enabled', budget_tokens: budget }
    body.max_tokens = maxTokensAbove(body.max_tokens, budget)
  } else {
    // Sampling parameters are rejected alongside thinking. Anthropic's temperature runs 0-1 (OpenAI's
    // 0-2, Gemini's 0-2), and its current models refuse temperature and top_p together: temperature wins.
    if (request.temperature !== undefined) body.temperature = Math.min(1, Math.max(0, request.temperature))
    else if (request.topP !== undefined) body.top_p = request.topP
    if (request.topK !== undefined) body.top_k = request.topK
  }
  const format = request.responseFormat
  if (format?.type === 'json_schema') {
    // Structured outputs: Anthropic constrains the answer to the schema, whose objects must be closed.
    body.output_config = { format: { type: 'json_schema', schema: closedObjects(format.schema) } }
  }
  return body
}

/**
 * Does the conversation end in a tool loop (the last assistant turn called tools, the user message after
 * it holds their results) whose assistant turn does not start with thinking? Anthropic requires that
 * turn's thinking, signed, when thinking is on.
 */
export function unsignedToolLoop(messages: AnthropicMessage[]): boolean {
  const last = messages[messages.length - 1]
  const assistant = messages[messages.length - 2]
  if (last?.role !== 'user' || assistant?.role !== 'assistant' || !Array.isArray(assistant.content)) return false
  const results = Array.isArray(last.content) && last.content.some((b) => b.type === 'tool_result')
  if (!results || !assistant.content.some((b) => b.type === 'tool_use')) return false
  const first = assistant.content[0]?.type
  return first !== 'thinking' && first !== 'redacted_thinking'
}

/**
 * A JSON schema whose objects all say `additionalProperties: false` (Anthropic's
 * structured outputs require it, as OpenAI's strict mode does; Anthropic's own
 * SDK adds it the same way). An object that allows more keeps its rule.
 */
export function closedObjects(schema: unknown): any {
  if (Array.isArray(schema)) return schema.map(closedObjects)
  if (!schema || typeof schema !== 'object') return schema
  const out: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(schema)) {
    if (DATA_KEYWORDS.has(key)) out[key] = value
    else if (SCHEMA_MAPS.has(key)) out[key] = mapValues(value)
    else out[key] = closedObjects(value)
  }
  const type = out.type
  if ((type === 'object' || (Array.isArray(type) && type.includes('object'))) && out.additionalProperties === undefined) {
    out.additionalProperties = false
  }
  return out
}

/** Keywords whose values are data (an enum's values), not schemas to walk. */
const DATA_KEYWORDS = new Set(['enum', 'const', 'default', 'examples', 'required'])
/** Keywords whose values map names to schemas (a property named "type" is not a type). */
const SCHEMA_MAPS = new Set(['properties', 'patternProperties', '$defs', 'definitions'])

function mapValues(value: unknown): unknown {
  if (!value || typeof value !== 'object' || Array.isArray(value)) return value
  return Object.fromEntries(Object.entries(value).map(([name, schema]) => [name, closedObjects(schema)]))
}

function encodeText(part: TextPart): { type: 'text'; text: string; cache_control?: Record<string, unknown> } {
  return part.cacheControl ? { type: 'text', text: part.text, cache_control: part.cacheControl } : { type: 'text', text: part.text }
}

function encodeImage(part: ImagePart): AnthropicBlock {
  const source = part.url
    ? { type: 'url' as const, url: part.url }
    : { type: 'base64' as const, media_type: part.mediaType ?? 'image/png', data: part.data ?? '' }
  return part.cacheControl ? { type: 'image', source, cache_control: part.cacheControl } : { type: 'image', source }
}

/**
 * A `document` block: a PDF (base64 or URL), plain text as a text source, a
 * file uploaded to Anthropic. Messages take no audio or video, no other
 * document types, and no other provider's file id.
 */
function encodeDocument(part: FilePart): AnthropicBlock {
  const refuse = (why: string) => unsupportedAttachment(part, 'Anthropic Messages', why)
  let source: Record<string, unknown>
  if (part.fileId) {
    if (part.fileId.provider !== 'anthropic') throw refuse('a file id is only valid with the provider it was uploaded to')
    source = { type: 'file', file_id: part.fileId.id }
  } else if (part.mediaType === 'application/pdf') {
    source = part.url ? { type: 'url', url: part.url } : { type: 'base64', media_type: 'application/pdf', data: part.data ?? '' }
  } else if (part.mediaType.startsWith('text/')) {
    const text = fileText(part)
    if (text === null) throw refuse('a text document must be given as data, not by URL')
    source = { type: 'text', media_type: 'text/plain', data: text }
  } else {
    throw refuse('Claude takes images, PDF and plain-text documents; not audio, video or other file types')
  }
  const block: AnthropicBlock = { type: 'document', source }
  if (part.filename) block.title = part.filename
  if (part.cacheControl) block.cache_control = part.cacheControl
  return block
}

function encodeBlock(part: ContentPart): AnthropicBlock | null {
  switch (part.type) {
    case 'text':
      return part.text ? encodeText(part) : null
    case 'image':
      return encodeImage(part)
    case 'file':
      return encodeDocument(part)
    case 'reasoning':
      // Only signed thinking can be sent back; another vendor's reasoning cannot.
      if (part.redacted) return { type: 'redacted_thinking', data: part.redacted }
      return part.signature ? { type: 'thinking', thinking: part.text, signature: part.signature } : null
    case 'tool_call': {
      const block: AnthropicBlock = { type: 'tool_use', id: part.id, name: part.name, input: toolInput(part.arguments, part.custom) }
      if (part.cacheControl) block.cache_control = part.cacheControl
      return block
    }
    case 'tool_result': {
      const content =
        typeof part.content === 'string'
          ? part.content
          : part.content.map((p) => (p.type === 'text' ? encodeText(p) : p.type === 'image' ? encodeImage(p) : encodeDocument(p)))
      const block: AnthropicBlock = { type: 'tool_result', tool_use_id: part.toolCallId, content }
      if (part.isError) block.is_error = true
      if (part.cacheControl) block.cache_control = part.cacheControl
      return block
    }
  }
}

/** Tool-call arguments as an object (custom tools carry raw text: wrapped as {input}). */
export function toolInput(args: string, custom?: boolean): unknown {
  if (custom) return { input: args }
  if (!args) return {}
  try {
    const parsed = JSON.parse(args)
    return parsed && typeof parsed === 'object' ? parsed : { value: parsed }
  } catch {
    return { _raw: args }
  }
}

function encodeTool(tool: CanonicalTool): AnthropicTool {
  const encoded: AnthropicTool = {
    name: tool.name,
    input_schema: tool.custom
      ? { type: 'object', properties: { input: { type: 'string' } }, required: ['input'] }
      : (tool.parameters ?? { type: 'object', properties: {} }),
  }
  if (tool.description) encoded.description = tool.description
  if (tool.cacheControl) encoded.cache_control = tool.cacheControl
  return encoded
}

function encodeToolChoice(choice: ToolChoice | undefined, parallel: boolean | undefined): AnthropicRequest['tool_choice'] {
  const disable = parallel === false ? { disable_parallel_tool_use: true } : {}
  if (!choice) return parallel === false ? { type: 'auto', ...disable } : undefined
  if (choice.type === 'tool') return { type: 'tool', name: choice.name, ...disable }
  if (choice.type === 'required') return { type: 'any', ...disable }
  if (choice.type === 'none') return { type: 'none' }
  return { type: 'auto', ...disable }
}
