import {
  type CanonicalMessage,
  type CanonicalRequest,
  type CanonicalTool,
  type ContentPart,
  type FilePart,
  type ReasoningConfig,
  type TextPart,
  type ToolChoice,
  asksImageOutput,
  mediaTypeOfName,
  resultText,
  toolNamesById,
  unsupportedAttachment,
} from '#gateway/dialects/canonical'
import type { GeminiContent, GeminiPart, GeminiRequest } from '#gateway/dialects/gemini/types'
import { camelCaseKeys } from '#gateway/dialects/gemini/snake_case'

const EFFORT_BUDGETS: Record<string, number> = { minimal: 512, low: 2048, medium: 8192, high: 24_576 }

/** The thinkingConfig a reasoning asks of Gemini: its budget, else its effort's, else dynamic (-1); budget 0 is thinking off. */
export function geminiThinkingConfig(reasoning: ReasoningConfig): { includeThoughts?: boolean; thinkingBudget: number } {
  const budget = reasoning.budgetTokens ?? EFFORT_BUDGETS[reasoning.effort ?? ''] ?? -1
  return budget === 0 ? { thinkingBudget: 0 } : { includeThoughts: true, thinkingBudget: budget }
}

/**
 * Ids for function calls that came without one, paired with their responses by
 * name and order. These live only in the one upstream request decoded here
 * (the answer's calls get ids of their own, newToolCallId), where the count
 * over the whole conversation keeps them unique; they stay deterministic so
 * the same history gives the same bytes turn after turn (an upstream's prompt
 * cache matches on them).
 */
class CallIds {
  #n = 0
  #pending = new Map<string, string[]>()

  call(name: string, id?: string): string {
    const assigned = id || `call_${name}_${++this.#n}`
    const queue = this.#pending.get(name) ?? []
    queue.push(assigned)
    this.#pending.set(name, queue)
    return assigned
  }

  response(name: string, id?: string): string {
    const queue = this.#pending.get(name) ?? []
    if (id) {
      const at = queue.indexOf(id)
      if (at >= 0) queue.splice(at, 1)
      return id
    }
    return queue.shift() ?? `call_${name}_${++this.#n}`
  }
}

/** Gemini request -> canonical. Thought parts are reasoning; function calls keep their id and thoughtSignature. */
export function decodeGeminiRequest(input: GeminiRequest): CanonicalRequest {
  // snake_case fields (Google reads both spellings) as the camelCase the types name
  const normal = camelCaseKeys(input)
  const body = normal.generateContentRequest ?? normal
  const ids = new CallIds()
  const instruction = typeof body.systemInstruction === 'string' ? { parts: [{ text: body.systemInstruction }] } : body.systemInstruction
  const system: TextPart[] = (instruction?.parts ?? []).filter((p) => typeof p.text === 'string').map((p) => ({ type: 'text', text: p.text! }))
  const messages: CanonicalMessage[] = []
  for (const content of body.contents ?? []) {
    const role = content?.role === 'model' ? 'assistant' : 'user'
    const parts: ContentPart[] = []
    for (const part of content?.parts ?? []) {
      if (typeof part.text === 'string') {
        if (part.thought) parts.push({ type: 'reasoning', text: part.text, signature: part.thoughtSignature })
        else parts.push({ type: 'text', text: part.text })
      } else if (part.inlineData) {
        // Images are image parts; PDFs, audio, video and text are files (an image block of type application/pdf is a 400).
        const { mimeType, data } = part.inlineData
        if (isImage(mimeType)) parts.push({ type: 'image', mediaType: mimeType, data })
        else parts.push({ type: 'file', mediaType: String(mimeType).toLowerCase(), data })
      } else if (part.fileData) {
        const { mimeType, fileUri } = part.fileData
        if (isImage(mimeType)) parts.push({ type: 'image', mediaType: mimeType, url: fileUri })
        else parts.push({ type: 'file', mediaType: String(mimeType).toLowerCase(), url: fileUri })
      } else if (part.functionCall) {
        const call = part.functionCall
        parts.push({
          type: 'tool_call',
          id: ids.call(call.name, call.id),
          name: call.name,
          arguments: JSON.stringify(call.args ?? {}),
          signature: part.thoughtSignature,
        })
      } else if (part.functionResponse) {
        const result = part.functionResponse
        parts.push({
          type: 'tool_result',
          toolCallId: ids.response(result.name, result.id),
          name: result.name,
          content: JSON.stringify(result.response ?? {}),
        })
      }
    }
    const last = messages[messages.length - 1]
    if (last?.role === role) last.content.push(...parts)
    else messages.push({ role, content: parts })
  }
  const config = body.generationConfig ?? {}
  const request: CanonicalRequest = {
    model: '',
    stream: false,
    system,
    messages,
    tools: (body.tools ?? []).flatMap((t) => t.functionDeclarations ?? []).map(
      (f): CanonicalTool => ({ name: f.name, description: f.description, parameters: toJsonSchema(f.parametersJsonSchema ?? f.parameters) })
    ),
    toolChoice: decodeToolChoice(body.toolConfig?.functionCallingConfig),
    maxTokens: config.maxOutputTokens,
    temperature: config.temperature,
    topP: config.topP,
    topK: config.topK,
    stop: config.stopSequences,
  }
  const thinking = config.thinkingConfig
  if (thinking && (thinking.includeThoughts || (thinking.thinkingBudget ?? 0) > 0 || thinking.thinkingLevel)) {
    request.reasoning = {
      budgetTokens: thinking.thinkingBudget && thinking.thinkingBudget > 0 ? thinking.thinkingBudget : undefined,
      effort: thinking.thinkingLevel?.toLowerCase(),
    }
  }
  const schema = config.responseJsonSchema ?? config.responseSchema
  if (config.responseMimeType === 'application/json') {
    request.responseFormat = schema ? { type: 'json_schema', name: 'response', schema: toJsonSchema(schema)! } : { type: 'json_object' }
  }
  // Images asked of an image model (responseModalities ["TEXT", "IMAGE"], imageConfig): carried to a chat upstream as OpenRouter's modalities.
  if (Array.isArray(config.responseModalities)) {
    request.outputModalities = config.responseModalities.filter((m): m is string => typeof m === 'string').map((m) => m.toLowerCase())
  }
  const image = config.imageConfig
  if (image && typeof image === 'object') {
    request.imageConfig = {}
    if (typeof image.aspectRatio === 'string') request.imageConfig.aspectRatio = image.aspectRatio
    if (typeof image.imageSize === 'string') request.imageConfig.imageSize = image.imageSize
  }
  return request
}

/** An image media type; a part without one is taken as an image, as before documents were told apart. */
function isImage(mimeType: string | undefined): boolean {
  return !mimeType || /^image\//i.test(mimeType)
}

/** Gemini's OpenAPI schemas may spell types in capitals ("OBJECT"); JSON Schema wants lower case. */
const lowerCase = (type: unknown) => (typeof type === 'string' ? type.toLowerCase() : type)

/** Keywords whose values are data, not schemas: kept as given. */
const VALUE_KEYWORDS = new Set(['enum', 'const', 'default', 'example', 'examples', 'required'])
/** Keywords whose values map names to schemas. */
const SCHEMA_MAPS = new Set(['properties', 'patternProperties', '$defs', 'definitions', 'dependentSchemas'])

/**
 * Gemini's OpenAPI-style schema -> JSON Schema, recursively, for the other
 * vendors (strict ones refuse keywords they do not know): types in lower case
 * ("OBJECT" -> "object"), `nullable: true` as a "null" type, `nullable` and
 * `propertyOrdering` (Gemini's output order, nothing to validate) dropped.
 */
function toJsonSchema(schema: Record<string, unknown> | undefined): Record<string, unknown> | undefined {
  if (!schema || typeof schema !== 'object') return schema
  return jsonSchemaOf(schema) as Record<string, unknown>
}

function jsonSchemaOf(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(jsonSchemaOf)
  if (!value || typeof value !== 'object') return value
  const out: Record<string, unknown> = {}
  for (const [key, child] of Object.entries(value)) {
    if (key === 'nullable' || key === 'propertyOrdering') continue
    if (key === 'type') out.type = Array.isArray(child) ? child.map(lowerCase) : lowerCase(child)
    else if (VALUE_KEYWORDS.has(key)) out[key] = child
    else if (SCHEMA_MAPS.has(key) && child && typeof child === 'object' && !Array.isArray(child)) {
      out[key] = Object.fromEntries(Object.entries(child).map(([name, schema]) => [name, jsonSchemaOf(schema)]))
    } else out[key] = jsonSchemaOf(child)
  }
  return (value as { nullable?: unknown }).nullable === true ? withNull(out) : out
}

/** A schema that also takes null: "null" among its types (and its enum), or a null alternative. */
function withNull(schema: Record<string, unknown>): Record<string, unknown> {
  const out = { ...schema }
  if (Array.isArray(out.enum) && !out.enum.includes(null)) out.enum = [...out.enum, null]
  const type = out.type
  if (typeof type === 'string') {
    if (type !== 'null') out.type = [type, 'null']
    return out
  }
  if (Array.isArray(type)) {
    if (!type.includes('null')) out.type = [...type, 'null']
    return out
  }
  if (Array.isArray(out.anyOf)) {
    out.anyOf = [...out.anyOf, { type: 'null' }]
    return out
  }
  // No type of its own ($ref, allOf, oneOf): null as an alternative; a schema with no constraint takes null already.
  if ('$ref' in out || 'allOf' in out || 'oneOf' in out) return { anyOf: [out, { type: 'null' }] }
  return out
}

function decodeToolChoice(config: { mode?: string; allowedFunctionNames?: string[] } | undefined): ToolChoice | undefined {
  switch (config?.mode) {
    case 'AUTO':
    case 'VALIDATED':
      return { type: 'auto' }
    case 'NONE':
      return { type: 'none' }
    case 'ANY':
      return config.allowedFunctionNames?.length === 1 ? { type: 'tool', name: config.allowedFunctionNames[0] } : { type: 'required' }
  }
  return undefined
}

/**
 * Canonical -> Gemini request. System messages anywhere become
 * systemInstruction; tool results become functionResponse parts named after
 * their call. Gemini 3 rejects function calls without a thought signature,
 * so calls from another vendor carry Google's documented placeholder.
 */
export function encodeGeminiRequest(request: CanonicalRequest, model: string): GeminiRequest {
  const names = toolNamesById(request.messages)
  const systemParts: GeminiPart[] = request.system.map((p) => ({ text: p.text }))
  const contents: GeminiContent[] = []
  const needsSignature = /^(models\/)?gemini-3/i.test(model)
  for (const message of request.messages) {
    if (message.role === 'system') {
      for (const part of message.content) if (part.type === 'text') systemParts.push({ text: part.text })
      continue
    }
    const parts: GeminiPart[] = []
    // A functionResponse holds JSON only: a result's documents follow the message's parts, as parts of the same turn.
    const resultFiles: GeminiPart[] = []
    for (const part of message.content) {
      switch (part.type) {
        case 'text':
          if (part.text) parts.push({ text: part.text })
          break
        case 'image':
          parts.push(
            part.data
              ? { inlineData: { mimeType: part.mediaType ?? 'image/png', data: part.data } }
              : { fileData: { mimeType: part.mediaType ?? imageTypeOfUrl(part.url), fileUri: part.url ?? '' } }
          )
          break
        case 'file':
          parts.push(filePart(part))
          break
        case 'tool_call': {
          const call: GeminiPart = { functionCall: { id: part.id, name: part.name, args: argsObject(part.arguments, part.custom) } }
          const signature = part.signature ?? (needsSignature ? 'skip_thought_signature_validator' : undefined)
          if (signature) call.thoughtSignature = signature
          parts.push(call)
          break
        }
        case 'tool_result': {
          const text = typeof part.content === 'string' ? part.content : resultText(part.content)
          const name = part.name ?? names.get(part.toolCallId) ?? 'tool'
          parts.push({ functionResponse: { id: part.toolCallId, name, response: responseObject(text, part.isError) } })
          if (typeof part.content !== 'string') for (const p of part.content) if (p.type === 'file') resultFiles.push(filePart(p))
          break
        }
      }
    }
    parts.push(...resultFiles)
    if (parts.length === 0) continue
    const role = message.role === 'assistant' ? 'model' : 'user'
    const last = contents[contents.length - 1]
    if (last?.role === role) last.parts.push(...parts)
    else contents.push({ role, parts })
  }
  const body: GeminiRequest = { contents }
  if (systemParts.length > 0) body.systemInstruction = { parts: systemParts }
  if (request.tools.length > 0) {
    body.tools = [
      {
        functionDeclarations: request.tools.map((tool) => ({
          name: tool.name,
          description: tool.description ?? '',
          parametersJsonSchema: tool.custom
            ? { type: 'object', properties: { input: { type: 'string' } }, required: ['input'] }
            : (tool.parameters ?? { type: 'object', properties: {} }),
        })),
      },
    ]
  }
  const choice = request.toolChoice
  if (choice && request.tools.length > 0) {
    const mode = choice.type === 'auto' ? 'AUTO' : choice.type === 'none' ? 'NONE' : 'ANY'
    body.toolConfig = { functionCallingConfig: choice.type === 'tool' ? { mode, allowedFunctionNames: [choice.name] } : { mode } }
  }
  const config: NonNullable<GeminiRequest['generationConfig']> = {}
  if (request.maxTokens !== undefined) config.maxOutputTokens = request.maxTokens
  if (request.temperature !== undefined) config.temperature = request.temperature
  if (request.topP !== undefined) config.topP = request.topP
  if (request.topK !== undefined) config.topK = request.topK
  if (request.stop?.length) config.stopSequences = request.stop
  if (request.reasoning) config.thinkingConfig = geminiThinkingConfig(request.reasoning)
  if (request.responseFormat) {
    config.responseMimeType = 'application/json'
    if (request.responseFormat.type === 'json_schema') config.responseJsonSchema = request.responseFormat.schema
  }
  // Images asked for (chat's modalities ["image", "text"]): Gemini's image models answer them as inlineData parts.
  if (asksImageOutput(request)) {
    config.responseModalities = request.outputModalities!.filter((m) => m === 'text' || m === 'image').map((m) => m.toUpperCase())
  }
  if (request.imageConfig && (request.imageConfig.aspectRatio || request.imageConfig.imageSize)) config.imageConfig = { ...request.imageConfig }
  if (Object.keys(config).length > 0) body.generationConfig = config
  return body
}

/** A document as Gemini takes it: inline data, or a URI (fileData). Another provider's file id means nothing to Google. */
function filePart(part: FilePart): GeminiPart {
  if (part.fileId) throw unsupportedAttachment(part, 'Google Gemini', 'a file id is only valid with the provider it was uploaded to')
  if (part.url) return { fileData: { mimeType: part.mediaType, fileUri: part.url } }
  return { inlineData: { mimeType: part.mediaType, data: part.data ?? '' } }
}

function argsObject(args: string, custom?: boolean): Record<string, unknown> {
  if (custom) return { input: args }
  try {
    const parsed = JSON.parse(args || '{}')
    return parsed && typeof parsed === 'object' && !Array.isArray(parsed) ? parsed : { value: parsed }
  } catch {
    return { _raw: args }
  }
}

function responseObject(text: string, isError?: boolean): Record<string, unknown> {
  try {
    const parsed = JSON.parse(text)
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) return parsed
  } catch {}
  return isError ? { error: text } : { result: text }
}

/**
 * fileData must say its mimeType, and an image URL (chat image_url, Anthropic
 * url source) comes without one: the extension of the URL's path tells it
 * (not the query's: signed URLs end in tokens). Without one, JPEG: the most
 * common image on the web, and one Gemini reads.
 */
function imageTypeOfUrl(url: string | undefined): string {
  let path = url ?? ''
  try {
    path = new URL(path).pathname
  } catch {}
  return mediaTypeOfName(path, 'image/jpeg')
}
