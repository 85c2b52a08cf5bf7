import {
  asksImageOutput,
  attachmentFromData,
  audioFormat,
  audioMediaType,
  fileName,
  fileText,
  fileToDataUrl,
  imageFromUrl,
  imageToUrl,
  resultText,
  unsupportedAttachment,
  type CanonicalMessage,
  type CanonicalRequest,
  type CanonicalTool,
  type ContentPart,
  type FilePart,
  type ReasoningConfig,
  type ImagePart,
  type TextPart,
  type ToolCallPart,
  type ToolChoice,
} from '#gateway/dialects/canonical'
import { partsOfDetails } from '#gateway/dialects/openai_chat/reasoning_details'
import { reasoningRules, type EncodeHints } from '#gateway/dialects/dialect'
import type { ChatContentPart, ChatMessage, ChatRequest, ChatTool, OpenRouterReasoning } from '#gateway/dialects/openai_chat/types'

/** OpenAI chat request -> canonical. Leading system/developer messages become the system prompt. */
export function decodeChatRequest(body: ChatRequest): CanonicalRequest {
  const system: TextPart[] = []
  const messages: CanonicalMessage[] = []
  let leading = true
  for (const message of body.messages ?? []) {
    if (!message || typeof message !== 'object') continue
    if (message.role === 'system' || message.role === 'developer') {
      const parts = userParts(message.content).filter((p): p is TextPart => p.type === 'text')
      if (leading) system.push(...parts)
      else messages.push({ role: 'system', content: parts })
      continue
    }
    leading = false
    if (message.role === 'tool') {
      const part: ContentPart = {
        type: 'tool_result',
        toolCallId: String(message.tool_call_id ?? ''),
        content: typeof message.content === 'string' ? message.content : resultParts(message.content),
      }
      const last = messages[messages.length - 1]
      if (last?.role === 'user' && last.content.every((p) => p.type === 'tool_result')) last.content.push(part)
      else messages.push({ role: 'user', content: [part] })
    } else if (message.role === 'assistant') {
      messages.push({ role: 'assistant', content: assistantParts(message) })
    } else {
      messages.push({ role: 'user', content: userParts(message.content) })
    }
  }
  const request: CanonicalRequest = {
    model: body.model,
    stream: body.stream === true,
    system,
    messages,
    tools: (body.tools ?? []).map(decodeTool).filter((t): t is CanonicalTool => t !== null),
    toolChoice: decodeToolChoice(body.tool_choice),
    parallelToolCalls: body.parallel_tool_calls,
    maxTokens: body.max_completion_tokens ?? body.max_tokens,
    temperature: body.temperature,
    topP: body.top_p,
    stop: typeof body.stop === 'string' ? [body.stop] : body.stop,
    user: body.user,
  }
  if (body.reasoning_effort && body.reasoning_effort !== 'none') request.reasoning = { effort: body.reasoning_effort }
  else if (body.reasoning !== undefined && !body.reasoning_effort) {
    // OpenRouter's reasoning object (apps written against OpenRouter send it for every model).
    const asked = openRouterReasoning(body.reasoning)
    if (asked !== null) request.reasoning = asked
  } else {
    // Anthropic-style thinking on chat, as LiteLLM takes it (Cline's LiteLLM provider sends it for Claude).
    const budget = thinkingBudget(body.thinking)
    if (budget !== null) request.reasoning = { budgetTokens: budget }
  }
  const format = body.response_format
  if (format?.type === 'json_object') request.responseFormat = { type: 'json_object' }
  if (format?.type === 'json_schema' && format.json_schema?.schema) {
    request.responseFormat = { type: 'json_schema', ...format.json_schema, schema: format.json_schema.schema }
  }
  // Images asked of an image model (OpenRouter's and LiteLLM's modalities ["image", "text"], OpenRouter's image_config).
  if (Array.isArray(body.modalities)) {
    request.outputModalities = body.modalities.filter((m): m is string => typeof m === 'string').map((m) => m.toLowerCase())
  }
  const image = body.image_config
  if (image && typeof image === 'object') {
    request.imageConfig = {}
    if (typeof image.aspect_ratio === 'string') request.imageConfig.aspectRatio = image.aspect_ratio
    if (typeof image.image_size === 'string') request.imageConfig.imageSize = image.image_size
  }
  return request
}

function userParts(content: ChatMessage['content']): Array<TextPart | ImagePart | FilePart> {
  if (typeof content === 'string') return [{ type: 'text', text: content }]
  if (!Array.isArray(content)) return []
  const parts: Array<TextPart | ImagePart | FilePart> = []
  for (const part of content) {
    if (part?.type === 'text' && typeof part.text === 'string') {
      parts.push(part.cache_control ? { type: 'text', text: part.text, cacheControl: part.cache_control } : { type: 'text', text: part.text })
    } else if (part?.type === 'image_url' && part.image_url?.url) {
      parts.push(imageFromUrl(part.image_url.url, part.image_url.detail))
    } else if (part?.type === 'file' && part.file) {
      const { file_data: data, file_id: id, filename } = part.file
      if (typeof data === 'string' && data) parts.push(attachmentFromData(data, filename, part.cache_control))
      else if (typeof id === 'string' && id) parts.push({ type: 'file', mediaType: 'application/octet-stream', fileId: { provider: 'openai', id }, filename })
    } else if (part?.type === 'input_audio' && typeof part.input_audio?.data === 'string') {
      parts.push({ type: 'file', mediaType: audioMediaType(part.input_audio.format), data: part.input_audio.data })
    }
  }
  return parts
}

function resultParts(content: ChatMessage['content']): Array<TextPart | ImagePart | FilePart> {
  return userParts(content)
}

function assistantParts(message: ChatMessage): ContentPart[] {
  const calls: ToolCallPart[] = []
  for (const call of message.tool_calls ?? []) {
    if (call.type === 'custom' && call.custom) {
      calls.push({ type: 'tool_call', id: call.id, name: call.custom.name, arguments: call.custom.input, custom: true })
    } else if (call.function) {
      calls.push({ type: 'tool_call', id: call.id, name: call.function.name, arguments: call.function.arguments ?? '' })
    }
  }
  // OpenRouter's reasoning_details, sent back as they came: Claude's signed and redacted thinking, Gemini's
  // call signatures. They hold the reasoning text too, so the plain `reasoning` is read only without them.
  const parts: ContentPart[] = message.reasoning_details === undefined ? [] : partsOfDetails(message.reasoning_details, calls)
  const reasoning = message.reasoning_content ?? message.reasoning
  if (parts.length === 0 && typeof reasoning === 'string' && reasoning) parts.push({ type: 'reasoning', text: reasoning })
  for (const part of userParts(message.content)) if (part.type === 'text' && part.text) parts.push(part)
  // The images of an earlier answer, sent back as they came (OpenRouter's `images`): the model edits them next.
  if (Array.isArray(message.images)) {
    for (const image of message.images) if (typeof image?.image_url?.url === 'string') parts.push(imageFromUrl(image.image_url.url))
  }
  parts.push(...calls)
  return parts
}

function decodeTool(tool: ChatTool): CanonicalTool | null {
  if (tool?.type === 'function' && tool.function?.name) {
    return { name: tool.function.name, description: tool.function.description, parameters: tool.function.parameters }
  }
  if (tool?.type === 'custom' && tool.custom?.name) {
    return { name: tool.custom.name, description: tool.custom.description, custom: { format: tool.custom.format } }
  }
  return null
}

function decodeToolChoice(choice: ChatRequest['tool_choice']): ToolChoice | undefined {
  if (choice === 'auto' || choice === 'none' || choice === 'required') return { type: choice }
  if (choice && typeof choice === 'object' && choice.function?.name) return { type: 'tool', name: choice.function.name }
  return undefined
}

/** Canonical -> OpenAI chat request (for any OpenAI-compatible upstream). */
export function encodeChatRequest(request: CanonicalRequest, model: string, hints: EncodeHints = {}): ChatRequest {
  const messages: ChatMessage[] = []
  const keepCache = hints.cacheControl === true
  if (request.system.length > 0) messages.push({ role: 'system', content: textContent(request.system, keepCache) })
  for (const message of request.messages) {
    if (message.role === 'system') {
      messages.push({ role: 'system', content: textContent(message.content.filter((p) => p.type === 'text'), keepCache) })
    } else if (message.role === 'assistant') {
      messages.push(encodeAssistant(message.content, hints.reasoningContent))
    } else {
      const rest: Array<TextPart | ImagePart | FilePart> = []
      for (const part of message.content) {
        if (part.type === 'tool_result') {
          const content = typeof part.content === 'string' ? part.content : resultText(part.content)
          messages.push({ role: 'tool', tool_call_id: part.toolCallId, content: part.isError && !content ? 'error' : content })
          // A tool message is text only: the result's documents follow the tool messages, in the user message.
          if (typeof part.content !== 'string') for (const p of part.content) if (p.type === 'file') rest.push(p)
        } else if (part.type === 'text' || part.type === 'image' || part.type === 'file') {
          rest.push(part)
        }
      }
      if (rest.length > 0) messages.push({ role: 'user', content: userContent(rest, keepCache) })
    }
  }
  const body: ChatRequest = { model, messages }
  if (request.stream) {
    body.stream = true
    body.stream_options = { include_usage: true }
  }
  if (request.tools.length > 0) body.tools = request.tools.map(encodeTool)
  if (request.toolChoice) {
    body.tool_choice =
      request.toolChoice.type === 'tool'
        ? { type: 'function', function: { name: request.toolChoice.name } }
        : request.toolChoice.type
  }
  if (request.parallelToolCalls !== undefined && request.tools.length > 0) body.parallel_tool_calls = request.parallelToolCalls
  if (request.maxTokens !== undefined) body[hints.maxTokensField ?? 'max_tokens'] = request.maxTokens
  const rules = reasoningRules(model, hints)
  if (request.temperature !== undefined && (rules.sampling || request.temperature === 1)) body.temperature = request.temperature
  if (request.topP !== undefined && rules.sampling) body.top_p = request.topP
  if (request.stop?.length) body.stop = request.stop
  if (rules.effort && request.reasoning?.effort) body.reasoning_effort = request.reasoning.effort
  else if (rules.effort && request.reasoning?.budgetTokens) body.reasoning_effort = effortOfBudget(request.reasoning.budgetTokens)
  else if (request.reasoning?.budgetTokens === 0 && hints.thinkingOffEffort) body.reasoning_effort = hints.thinkingOffEffort
  if (request.responseFormat?.type === 'json_object') body.response_format = { type: 'json_object' }
  if (request.responseFormat?.type === 'json_schema') {
    const { name, schema, strict } = request.responseFormat
    body.response_format = { type: 'json_schema', json_schema: { name: name ?? 'response', schema, strict } }
  }
  if (request.user) body.user = request.user
  // Images asked for (a Gemini client's responseModalities): OpenRouter's and LiteLLM's field; image_config is OpenRouter's alone.
  if (asksImageOutput(request)) {
    body.modalities = request.outputModalities!.filter((m) => m === 'text' || m === 'image')
    const config = request.imageConfig
    if (hints.openRouterFields && config && (config.aspectRatio || config.imageSize)) {
      body.image_config = {}
      if (config.aspectRatio) body.image_config.aspect_ratio = config.aspectRatio
      if (config.imageSize) body.image_config.image_size = config.imageSize
    }
  }
  return body
}

/**
 * The budget of LiteLLM's (Anthropic's) `thinking` on a chat request:
 * `{type: "enabled", budget_tokens}`; null when thinking is not asked for
 * (absent, `disabled`, or no positive whole budget).
 */
export function thinkingBudget(thinking: unknown): number | null {
  if (thinking === null || typeof thinking !== 'object') return null
  const { type, budget_tokens: budget } = thinking as { type?: unknown; budget_tokens?: unknown }
  if (type !== 'enabled' || typeof budget !== 'number' || !Number.isSafeInteger(budget) || budget <= 0) return null
  return budget
}

/**
 * The reasoning OpenRouter's `reasoning` object asks for: a token budget
 * (`max_tokens`, Anthropic-style), an effort (OpenAI-style), or `enabled:
 * true` alone (OpenRouter's default, medium). Null when it asks for none:
 * `enabled: false`, effort "none", or only `exclude` (which hides reasoning,
 * and turns none on). https://openrouter.ai/docs/use-cases/reasoning-tokens
 */
export function openRouterReasoning(reasoning: unknown): ReasoningConfig | null {
  if (reasoning === null || typeof reasoning !== 'object' || Array.isArray(reasoning)) return null
  const { effort, max_tokens: budget, enabled } = reasoning as OpenRouterReasoning
  if (enabled === false || effort === 'none') return null
  if (typeof budget === 'number' && Number.isSafeInteger(budget) && budget > 0) return { budgetTokens: budget }
  if (typeof effort === 'string' && effort !== '') return { effort }
  return enabled === true ? { effort: 'medium' } : null
}

/** OpenRouter's `reasoning.exclude`: the client wants no reasoning text back. */
export function reasoningExcluded(body: { reasoning?: unknown }): boolean {
  const reasoning = body.reasoning as OpenRouterReasoning | undefined
  return reasoning !== null && typeof reasoning === 'object' && reasoning.exclude === true
}

export function effortOfBudget(budget: number): string {
  if (budget <= 2048) return 'low'
  if (budget <= 12_000) return 'medium'
  return 'high'
}

/** System text: one string, or parts when they carry cache marks the vendor reads. */
function textContent(parts: ContentPart[], keepCache: boolean): string | ChatContentPart[] {
  const texts = parts.filter((p): p is TextPart => p.type === 'text')
  if (keepCache && texts.some((p) => p.cacheControl)) return userContent(texts, keepCache) as ChatContentPart[]
  return texts.map((p) => p.text).join('\n\n')
}

function userContent(parts: Array<TextPart | ImagePart | FilePart>, keepCache: boolean): string | ChatContentPart[] {
  if (parts.length === 1 && parts[0].type === 'text' && !(keepCache && parts[0].cacheControl)) return parts[0].text
  return parts.map((part): ChatContentPart => {
    if (part.type === 'text') {
      return keepCache && part.cacheControl
        ? { type: 'text', text: part.text, cache_control: part.cacheControl }
        : { type: 'text', text: part.text }
    }
    if (part.type === 'file') return fileContent(part)
    const image: ChatContentPart = { type: 'image_url', image_url: { url: imageToUrl(part) } }
    if (part.detail) image.image_url!.detail = part.detail
    return image
  })
}

function encodeAssistant(parts: ContentPart[], reasoningContent: EncodeHints['reasoningContent']): ChatMessage {
  const text = parts.filter((p): p is TextPart => p.type === 'text').map((p) => p.text).join('')
  const message: ChatMessage = { role: 'assistant', content: text || null }
  const calls = parts.filter((p) => p.type === 'tool_call')
  if (reasoningContent) {
    // Redacted or signature-only reasoning has no text a chat server could read.
    const reasoning = parts.map((p) => (p.type === 'reasoning' ? p.text : '')).join('')
    if (reasoning || (reasoningContent === 'always' && calls.length > 0)) message.reasoning_content = reasoning
  }
  if (calls.length > 0) {
    message.tool_calls = calls.map((call) => ({
      id: call.id,
      type: 'function' as const,
      function: { name: call.name, arguments: call.custom ? JSON.stringify({ input: call.arguments }) : call.arguments || '{}' },
    }))
  }
  return message
}

function encodeTool(tool: CanonicalTool): ChatTool {
  return {
    type: 'function',
    function: {
      name: tool.name,
      description: tool.description,
      parameters: tool.custom ? customToolSchema(tool) : (tool.parameters ?? { type: 'object', properties: {} }),
    },
  }
}

/** A custom (free-form) tool offered to an upstream that only knows JSON functions: one string argument. */
export function customToolSchema(tool: CanonicalTool): Record<string, unknown> {
  const format = tool.custom?.format as { definition?: string; syntax?: string } | undefined
  const hint = format?.definition ? ` Must follow this ${format.syntax ?? ''} grammar:\n${format.definition}` : ''
  return {
    type: 'object',
    properties: { input: { type: 'string', description: `The raw tool input.${hint}` } },
    required: ['input'],
  }
}

/**
 * A document as OpenAI's chat takes it: a `file` part (data: URL and file
 * name, or an OpenAI file_id), wav/mp3 audio as `input_audio`, plain text as
 * text. Audio in another format or by URL, video, a URL document (the part
 * has no URL field) and another provider's file id have no chat form.
 */
function fileContent(part: FilePart): ChatContentPart {
  const refuse = (why: string) => unsupportedAttachment(part, 'OpenAI chat completions', why)
  if (part.fileId) {
    if (part.fileId.provider === 'openai') return { type: 'file', file: { file_id: part.fileId.id } }
    throw refuse('a file id is only valid with the provider it was uploaded to')
  }
  if (part.mediaType.startsWith('audio/')) {
    const format = audioFormat(part.mediaType)
    if (!format) throw refuse('input_audio takes wav or mp3 audio only')
    if (part.data === undefined) throw refuse('input_audio takes base64 data, not a URL')
    return { type: 'input_audio', input_audio: { data: part.data, format } }
  }
  if (part.mediaType.startsWith('video/')) throw refuse('chat messages cannot carry video')
  if (part.data === undefined) throw refuse('a chat file part takes base64 file_data, not a URL')
  const text = fileText(part)
  if (text !== null) return { type: 'text', text }
  return { type: 'file', file: { filename: fileName(part), file_data: fileToDataUrl(part) } }
}
