import { GatewayError } from '#exceptions/gateway_error'
import {
  attachmentFromData,
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
  type ImagePart,
  type TextPart,
  type ToolChoice,
  type ToolResultPart,
} from '#gateway/dialects/canonical'
import type { ResponsesContentPart, ResponsesItem, ResponsesRequest, ResponsesTool } from '#gateway/dialects/openai_responses/types'
import { effortOfBudget } from '#gateway/dialects/openai_chat/request'
import { summaryMessage, unsealedSummary } from '#gateway/dialects/openai_responses/compaction'

/**
 * Responses request -> canonical. `instructions` and leading system /
 * developer items are the system prompt; function calls, their outputs and
 * reasoning items (with encrypted_content as the signature) join the turns
 * they belong to. Items with no canonical form (additional_tools, built-in
 * tool calls, OpenAI's encrypted `compaction` items) are dropped. Item
 * references are dropped too, their ids listed in `itemReferences`: the
 * gateway resolves them from its store and decodes the resolved input again.
 */
export function decodeResponsesRequest(body: ResponsesRequest): CanonicalRequest {
  const system: TextPart[] = body.instructions ? [{ type: 'text', text: body.instructions }] : []
  const messages: CanonicalMessage[] = []
  const push = (role: CanonicalMessage['role'], part: ContentPart, mergeable: boolean) => {
    const last = messages[messages.length - 1]
    if (mergeable && last?.role === role) last.content.push(part)
    else messages.push({ role, content: [part] })
  }
  const items: ResponsesItem[] = typeof body.input === 'string' ? [{ role: 'user', content: body.input }] : (body.input ?? [])
  let leading = true
  const extraTools: CanonicalTool[] = []
  let references: string[] | undefined
  for (let index = 0; index < items.length; index++) {
    const item = items[index]
    if (!item || typeof item !== 'object') continue
    const type = item.type ?? 'message'
    if (type === 'message') {
      if (item.role === 'system' || item.role === 'developer') {
        const parts = contentParts(item.content).filter((p): p is TextPart => p.type === 'text')
        if (leading) system.push(...parts)
        else messages.push({ role: 'system', content: parts })
        continue
      }
      leading = false
      const role = item.role === 'assistant' ? 'assistant' : 'user'
      const parts = contentParts(item.content)
      const last = messages[messages.length - 1]
      if (role === 'assistant' && last?.role === 'assistant') last.content.push(...parts)
      else messages.push({ role, content: parts })
      continue
    }
    leading = false
    switch (type) {
      case 'function_call':
        push('assistant', { type: 'tool_call', id: String(item.call_id), name: String(item.name), arguments: item.arguments ?? '' }, true)
        break
      case 'custom_tool_call':
        push('assistant', { type: 'tool_call', id: String(item.call_id), name: String(item.name), arguments: item.input ?? '', custom: true }, true)
        break
      case 'function_call_output':
      case 'custom_tool_call_output': {
        const output = item.output
        const content = typeof output === 'string' ? output : contentParts(output)
        const part: ContentPart = { type: 'tool_result', toolCallId: String(item.call_id), content }
        if (type === 'custom_tool_call_output') part.custom = true
        const last = messages[messages.length - 1]
        push('user', part, last?.content.every((p) => p.type === 'tool_result') ?? false)
        break
      }
      case 'additional_tools':
        // Codex declares its own models' tools here (namespaced), with tools: [] at the top level.
        extraTools.push(...collectTools((item as any).tools))
        break
      case 'compaction':
      case 'compaction_summary': {
        // The gateway's own (compaction v2 emulated): the summary it stands for, as Codex's summary message.
        const summary = unsealedSummary(item.encrypted_content)
        if (summary !== null) {
          messages.push({ role: 'user', content: [{ type: 'text', text: summaryMessage(summary) }] })
          break
        }
        // OpenAI's (from /responses/compact or compaction v2): a summary only OpenAI can decrypt. Dropped,
        // deliberately: refusing it would end the Codex session that carries it for good (it stays in
        // Codex's history), while the turns after it still read. What it summarised is lost to this model.
        break
      }
      case 'reasoning': {
        const text = (item.summary ?? []).map((s) => s.text).join('\n\n')
        push('assistant', { type: 'reasoning', text, signature: item.encrypted_content ?? undefined, id: item.id }, true)
        break
      }
      case 'item_reference':
        // An earlier output item sent back by id (the AI SDK, the Agents SDK with store on).
        // Its id is what is looked up: anything but a string is the client's mistake, said as such.
        if (typeof item.id !== 'string' || item.id === '') {
          throw GatewayError.invalidRequest(`An item_reference's 'id' must be a non-empty string`, 'invalid_type', `input[${index}].id`)
        }
        ;(references ??= []).push(item.id)
        break
    }
  }
  const request: CanonicalRequest = {
    model: body.model,
    stream: body.stream === true,
    system,
    messages,
    tools: [...collectTools(body.tools), ...extraTools],
    toolChoice: decodeToolChoice(body.tool_choice),
    parallelToolCalls: body.parallel_tool_calls,
    maxTokens: body.max_output_tokens,
    temperature: body.temperature,
    topP: body.top_p,
    user: body.user,
  }
  if (references) request.itemReferences = references
  if (body.reasoning?.effort && body.reasoning.effort !== 'none') {
    request.reasoning = { effort: body.reasoning.effort, summary: body.reasoning.summary }
  }
  const format = body.text?.format
  if (format?.type === 'json_schema' && format.schema) {
    request.responseFormat = { type: 'json_schema', name: format.name, schema: format.schema, strict: format.strict }
  } else if (format?.type === 'json_object') {
    request.responseFormat = { type: 'json_object' }
  }
  return request
}

function contentParts(content: ResponsesItem['content']): Array<TextPart | ImagePart | FilePart> {
  if (typeof content === 'string') return [{ type: 'text', text: content }]
  if (!Array.isArray(content)) return []
  const parts: Array<TextPart | ImagePart | FilePart> = []
  for (const part of content) {
    if ((part?.type === 'input_text' || part?.type === 'output_text' || part?.type === 'text') && typeof part.text === 'string') {
      parts.push({ type: 'text', text: part.text })
    } else if (part?.type === 'refusal' && part.refusal) {
      parts.push({ type: 'text', text: part.refusal })
    } else if (part?.type === 'input_image' && typeof part.image_url === 'string') {
      parts.push(imageFromUrl(part.image_url, part.detail))
    } else if (part?.type === 'input_file') {
      const filename = typeof part.filename === 'string' ? part.filename : undefined
      const source = typeof part.file_data === 'string' && part.file_data ? part.file_data : part.file_url
      if (typeof source === 'string' && source) parts.push(attachmentFromData(source, filename))
      else if (typeof part.file_id === 'string' && part.file_id) {
        parts.push({ type: 'file', mediaType: 'application/octet-stream', fileId: { provider: 'openai', id: part.file_id }, filename })
      }
    }
  }
  return parts
}

/** Function and custom tools of a list, including those nested in namespace entries. */
function collectTools(list: unknown): CanonicalTool[] {
  if (!Array.isArray(list)) return []
  const tools: CanonicalTool[] = []
  for (const entry of list as ResponsesTool[]) {
    const tool = decodeTool(entry)
    if (tool) tools.push(tool)
    else if (Array.isArray((entry as any)?.tools)) tools.push(...collectTools((entry as any).tools))
  }
  return tools
}

function decodeTool(tool: ResponsesTool): CanonicalTool | null {
  if (tool?.type === 'function' && tool.name) return { name: tool.name, description: tool.description, parameters: tool.parameters }
  if (tool?.type === 'custom' && tool.name) return { name: tool.name, description: tool.description, custom: { format: tool.format } }
  return null
}

function decodeToolChoice(choice: ResponsesRequest['tool_choice']): ToolChoice | undefined {
  if (choice === 'auto' || choice === 'none' || choice === 'required') return { type: choice }
  if (choice && typeof choice === 'object' && choice.name) return { type: 'tool', name: choice.name }
  return undefined
}

/** Canonical -> Responses request (store:false; reasoning comes back encrypted so it can be replayed). */
export function encodeResponsesRequest(request: CanonicalRequest, model: string): ResponsesRequest {
  const input: ResponsesItem[] = []
  for (const message of request.messages) {
    let pending: ResponsesContentPart[] = []
    const flush = () => {
      if (pending.length > 0) input.push({ type: 'message', role: message.role, content: pending })
      pending = []
    }
    for (const part of message.content) {
      switch (part.type) {
        case 'text':
          pending.push({ type: message.role === 'assistant' ? 'output_text' : 'input_text', text: part.text })
          break
        case 'image':
          pending.push({ type: 'input_image', image_url: imageToUrl(part), detail: part.detail ?? 'auto' })
          break
        case 'file':
          pending.push(fileContent(part))
          break
        case 'reasoning':
          flush()
          if (part.signature) {
            input.push({ type: 'reasoning', id: part.id, summary: part.text ? [{ type: 'summary_text', text: part.text }] : [], encrypted_content: part.signature })
          }
          break
        case 'tool_call':
          flush()
          input.push(
            part.custom
              ? { type: 'custom_tool_call', call_id: part.id, name: part.name, input: part.arguments }
              : { type: 'function_call', call_id: part.id, name: part.name, arguments: part.arguments }
          )
          break
        case 'tool_result':
          flush()
          input.push({
            type: part.custom ? 'custom_tool_call_output' : 'function_call_output',
            call_id: part.toolCallId,
            output: resultOutput(part.content),
          })
          break
      }
    }
    flush()
  }
  const body: ResponsesRequest = { model, input, store: false }
  if (request.system.length > 0) body.instructions = request.system.map((p) => p.text).join('\n\n')
  if (request.stream) body.stream = true
  if (request.tools.length > 0) {
    body.tools = request.tools.map((tool) =>
      tool.custom
        ? { type: 'custom', name: tool.name, description: tool.description, format: tool.custom.format }
        : { type: 'function', name: tool.name, description: tool.description, parameters: tool.parameters ?? { type: 'object', properties: {} } }
    )
  }
  if (request.toolChoice) {
    body.tool_choice = request.toolChoice.type === 'tool' ? { type: 'function', name: request.toolChoice.name } : request.toolChoice.type
  }
  if (request.parallelToolCalls !== undefined) body.parallel_tool_calls = request.parallelToolCalls
  if (request.maxTokens !== undefined) body.max_output_tokens = request.maxTokens
  if (request.temperature !== undefined) body.temperature = request.temperature
  if (request.topP !== undefined) body.top_p = request.topP
  // A budget of 0 is thinking off (a `-nothinking` model name: routing/model_suffix.ts).
  if (request.reasoning && request.reasoning.budgetTokens !== 0) {
    const { effort, budgetTokens, summary } = request.reasoning
    body.reasoning = { effort: effort ?? (budgetTokens ? effortOfBudget(budgetTokens) : 'medium'), summary: summary ?? 'auto' }
    body.include = ['reasoning.encrypted_content']
  }
  const format = request.responseFormat
  if (format?.type === 'json_schema') body.text = { format: { type: 'json_schema', name: format.name ?? 'response', schema: format.schema, strict: format.strict } }
  else if (format?.type === 'json_object') body.text = { format: { type: 'json_object' } }
  if (request.user) body.user = request.user
  return body
}

/** A tool result's output: its text, or input_* parts when it carries images or documents. */
function resultOutput(content: ToolResultPart['content']): string | ResponsesContentPart[] {
  if (typeof content === 'string' || content.every((p) => p.type === 'text')) return resultText(content)
  return content.map((part): ResponsesContentPart => {
    if (part.type === 'text') return { type: 'input_text', text: part.text }
    if (part.type === 'image') return { type: 'input_image', image_url: imageToUrl(part), detail: part.detail ?? 'auto' }
    return fileContent(part)
  })
}

/**
 * A document as the Responses API takes it: `input_file` with a data: URL and
 * file name, a URL, or an OpenAI file_id; plain text as input_text. Audio and
 * video have no input part here, and another provider's file id is not valid.
 */
function fileContent(part: FilePart): ResponsesContentPart {
  const refuse = (why: string) => unsupportedAttachment(part, 'OpenAI Responses', why)
  if (part.fileId) {
    if (part.fileId.provider === 'openai') return { type: 'input_file', file_id: part.fileId.id }
    throw refuse('a file id is only valid with the provider it was uploaded to')
  }
  if (part.mediaType.startsWith('audio/') || part.mediaType.startsWith('video/')) {
    throw refuse('Responses input takes text, images and files, not audio or video')
  }
  if (part.url) return { type: 'input_file', file_url: part.url }
  const text = fileText(part)
  if (text !== null) return { type: 'input_text', text }
  return { type: 'input_file', filename: fileName(part), file_data: fileToDataUrl(part) }
}
