import { GatewayError } from '#exceptions/gateway_error'
import { closedObjects } from '#gateway/dialects/anthropic_messages/request'
import { converseFamily, type ConverseFamily } from '#gateway/providers/bedrock/converse_models'

/**
 * The Anthropic Messages body the gateway hands a bedrock channel (every
 * client's request, translated through the canonical form by the Anthropic
 * encoder) as Bedrock's Converse request
 * (https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html),
 * for the models InvokeModel's Anthropic body does not fit (Llama, Mistral,
 * Nova, ...):
 *
 * - `system` -> `system: [{text}]`; messages' blocks: text -> `{text}`,
 *   base64 image -> `{image: {format, source: {bytes}}}`, base64 PDF ->
 *   `{document}`, tool_use -> `{toolUse}`, tool_result -> `{toolResult}`,
 *   thinking / redacted_thinking -> `{reasoningContent}` (its signature
 *   kept: Claude refuses a tool loop whose turn lost its signed thinking);
 *   a `cache_control` mark -> a `{cachePoint}` after its block;
 * - max_tokens, temperature, top_p, stop_sequences -> `inferenceConfig`;
 * - thinking, output_config.effort, top_k and the client's betas ->
 *   `additionalModelRequestFields` in the model family's own names
 *   (modelFieldsOf; converse_models.ts), dropped for a family that has none;
 * - tools and tool_choice -> `toolConfig` (Converse has no "none": the tools
 *   stay, as Bedrock wants them whenever the conversation holds tool calls,
 *   and no choice is forced); a conversation with tool calls but no tools
 *   declares the tools it called (toolsOfHistory);
 * - output_config.format (structured output: a JSON schema) -> Converse's
 *   `outputConfig.textFormat` for Claude, else a tool forced on the model
 *   whose input is the answer (jsonToolOf), read back as text by
 *   converse_answer.ts.
 *
 * What Converse cannot take is a 400 in the client's format: an image or
 * document by URL (Converse reads bytes or S3 only), Anthropic's server tools.
 */
export interface ConverseRequest {
  body: Record<string, unknown>
  /** The tool forced for a JSON schema answer, whose call is the answer's text; null when none */
  jsonTool: string | null
}

export interface ConverseTarget {
  /** The Bedrock model id (or ARN) called */
  model: string
  /** The model name the client asked for (an opaque profile's family is read from it) */
  clientModel?: string
  /** The client's `anthropic-beta` header, for Claude */
  betas?: string[]
}

export function converseRequest(body: Record<string, any>, target: ConverseTarget): ConverseRequest {
  const family = converseFamily(target.model, target.clientModel)
  const out: Record<string, unknown> = { messages: messagesOf(body.messages) }
  const system = systemOf(body.system)
  if (system.length) out.system = system
  const inference: Record<string, unknown> = {}
  if (typeof body.max_tokens === 'number') inference.maxTokens = body.max_tokens
  if (typeof body.temperature === 'number') inference.temperature = body.temperature
  if (typeof body.top_p === 'number') inference.topP = body.top_p
  if (Array.isArray(body.stop_sequences) && body.stop_sequences.length) inference.stopSequences = body.stop_sequences
  const fields = modelFieldsOf(body, family, inference, target.betas)
  if (Object.keys(inference).length) out.inferenceConfig = inference
  if (fields) out.additionalModelRequestFields = fields
  const schema = schemaOf(body.output_config)
  let jsonTool: string | null = null
  let tools = toolConfigOf(body.tools, body.tool_choice)
  if (schema && family === 'anthropic') {
    out.outputConfig = { textFormat: { type: 'json_schema', structure: { jsonSchema: { schema: JSON.stringify(closedObjects(schema)), name: 'response' } } } }
  } else if (schema) {
    jsonTool = jsonToolName(body.tools)
    tools = jsonToolOf(tools, jsonTool, schema)
  }
  tools ??= toolsOfHistory(out.messages as Block[])
  if (tools) out.toolConfig = tools
  return { body: out, jsonTool }
}

/** The Converse body alone (unit tests, and callers with no JSON schema to read back). */
export function converseBody(body: Record<string, any>, target: ConverseTarget = { model: '' }): Record<string, unknown> {
  return converseRequest(body, target).body
}

/** Anthropic's effort names as the low / medium / high other families take */
const EFFORTS: Record<string, string> = { minimal: 'low', low: 'low', medium: 'medium', high: 'high', xhigh: 'high', max: 'high' }

/**
 * The Anthropic body's thinking, effort, top_k and betas as the family's
 * `additionalModelRequestFields` (null: none). Claude's are its Messages
 * fields as they are; Nova 2 thinks with `reasoningConfig` at an effort (the
 * request's, else its thinking budget's: up to 2,048 low, up to 8,192
 * medium, more high, as the gateway's efforts map to budgets), and at high
 * effort refuses maxTokens, temperature and topP ("must be unset"): they are
 * left out; gpt-oss takes `reasoning_effort`. A family without a field drops it.
 */
function modelFieldsOf(body: Record<string, any>, family: ConverseFamily, inference: Record<string, unknown>, betas?: string[]): Record<string, unknown> | null {
  const fields: Record<string, unknown> = {}
  const thinking = body.thinking?.type === 'enabled' || body.thinking?.type === 'adaptive' ? body.thinking : null
  const stated = typeof body.output_config?.effort === 'string' ? body.output_config.effort : undefined
  const topK = typeof body.top_k === 'number' ? body.top_k : undefined
  if (family === 'anthropic') {
    if (thinking) fields.thinking = thinking
    if (stated) fields.output_config = { effort: stated }
    if (topK !== undefined) fields.top_k = topK
    const beta = Array.isArray(body.anthropic_beta) ? body.anthropic_beta : betas
    if (beta?.length) fields.anthropic_beta = beta
  } else if (family === 'nova2' || family === 'nova') {
    const effort = thinking && family === 'nova2' ? (EFFORTS[stated ?? ''] ?? effortOfBudget(thinking.budget_tokens)) : null
    if (effort) fields.reasoningConfig = { type: 'enabled', maxReasoningEffort: effort }
    if (effort === 'high') {
      delete inference.maxTokens
      delete inference.temperature
      delete inference.topP
    } else if (topK !== undefined) fields.inferenceConfig = { topK }
  } else if (family === 'gpt_oss' && thinking) {
    fields.reasoning_effort = EFFORTS[stated ?? ''] ?? effortOfBudget(thinking.budget_tokens)
  }
  return Object.keys(fields).length ? fields : null
}

function effortOfBudget(budget: unknown): string {
  if (typeof budget !== 'number') return 'medium'
  return budget <= 2048 ? 'low' : budget <= 8192 ? 'medium' : 'high'
}

/** The JSON schema a structured-output request asks for (Anthropic's `output_config.format`), else null */
function schemaOf(config: any): Record<string, unknown> | null {
  const format = config?.format
  return format?.type === 'json_schema' && format.schema && typeof format.schema === 'object' ? format.schema : null
}

/** The forced answer tool's name, unlike any of the client's tools */
function jsonToolName(tools: unknown): string {
  const taken = new Set(Array.isArray(tools) ? tools.map((tool: any) => tool?.name) : [])
  let name = 'json_response'
  for (let n = 2; taken.has(name); n++) name = `json_response_${n}`
  return name
}

/**
 * A JSON schema answer for a model without Converse's structured output
 * (what Bedrock lists for it is Claude and a few open-weight models): a tool
 * whose input schema is the answer's, forced (`tool`), or, beside the
 * client's own tools, any tool required (the model calls one of the
 * client's or answers through this one). A tool the client forced stays
 * forced. The call comes back as the answer's text (converse_answer.ts).
 */
function jsonToolOf(config: Record<string, any> | null, name: string, schema: Record<string, unknown>): Record<string, unknown> {
  const spec = { toolSpec: { name, description: 'Answer with a JSON value that follows this schema.', inputSchema: { json: schema } } }
  if (!config) return { tools: [spec], toolChoice: { tool: { name } } }
  return { tools: [...config.tools, spec], toolChoice: config.toolChoice?.tool ? config.toolChoice : { any: {} } }
}

/**
 * Bedrock refuses toolUse / toolResult blocks without a toolConfig ("The
 * toolConfig field must be defined when using toolUse and toolResult content
 * blocks"), which Anthropic's API does not ask for (a conversation
 * summarised, or carried on without its tools): the tools the conversation
 * called are declared again, with an open schema, and none forced.
 */
function toolsOfHistory(messages: Block[]): Record<string, unknown> | null {
  const names = new Set<string>()
  let toolBlocks = false
  for (const message of messages) {
    for (const block of message.content as Block[]) {
      const use = block.toolUse as { name?: unknown } | undefined
      if (use && typeof use.name === 'string') names.add(use.name)
      if (use || block.toolResult) toolBlocks = true
    }
  }
  if (!toolBlocks) return null
  // A toolResult whose call is not in the conversation: a name Bedrock accepts, never called.
  if (names.size === 0) names.add('tool')
  return {
    tools: [...names].map((name) => ({
      toolSpec: { name, description: 'A tool called earlier in this conversation', inputSchema: { json: { type: 'object' } } },
    })),
  }
}

type Block = Record<string, unknown>

const CACHE_POINT: Block = { cachePoint: { type: 'default' } }

function systemOf(system: unknown): Block[] {
  if (typeof system === 'string') return system ? [{ text: system }] : []
  if (!Array.isArray(system)) return []
  const out: Block[] = []
  for (const part of system) {
    if (part?.type !== 'text' || typeof part.text !== 'string') continue
    out.push({ text: part.text })
    if (part.cache_control) out.push(CACHE_POINT)
  }
  return out
}

function messagesOf(messages: unknown): Block[] {
  // None: Bedrock says what is missing (a ValidationException, the client's 400).
  if (!Array.isArray(messages)) return []
  return messages.map((message: any) => ({
    role: message?.role === 'assistant' ? 'assistant' : 'user',
    content: contentOf(message?.content),
  }))
}

function contentOf(content: unknown): Block[] {
  if (typeof content === 'string') return [{ text: content }]
  if (!Array.isArray(content)) return []
  const out: Block[] = []
  for (const block of content) {
    const converted = blockOf(block)
    if (!converted) continue
    out.push(converted)
    if (block.cache_control) out.push(CACHE_POINT)
  }
  return out
}

function blockOf(block: any): Block | null {
  switch (block?.type) {
    case 'text':
      // Converse refuses an empty text block ("The text field in the ContentBlock object is blank").
      return typeof block.text === 'string' && block.text ? { text: block.text } : null
    case 'image':
      return { image: { format: imageFormat(block.source), source: { bytes: bytesOf(block.source, 'image') } } }
    case 'document':
      return documentOf(block)
    case 'tool_use':
      return { toolUse: { toolUseId: block.id, name: block.name, input: block.input ?? {} } }
    case 'tool_result':
      return {
        toolResult: {
          toolUseId: block.tool_use_id,
          content: toolResultContent(block.content),
          ...(block.is_error ? { status: 'error' } : {}),
        },
      }
    case 'thinking': {
      // Signed thinking whose text was left out (Claude's display "omitted") still goes back: Claude checks its signature.
      const text = typeof block.thinking === 'string' ? block.thinking : ''
      const signature = typeof block.signature === 'string' ? block.signature : ''
      return text || signature ? { reasoningContent: { reasoningText: { text, ...(signature ? { signature } : {}) } } } : null
    }
    case 'redacted_thinking':
      return typeof block.data === 'string' ? { reasoningContent: { redactedContent: block.data } } : null
    default:
      // Server tools' blocks (web search results, ...) have no Converse form; other models never made them.
      return null
  }
}

function toolResultContent(content: unknown): Block[] {
  if (typeof content === 'string') return [{ text: content }]
  if (!Array.isArray(content) || content.length === 0) return [{ text: '' }]
  const out: Block[] = []
  for (const part of content) {
    if (part?.type === 'text' && typeof part.text === 'string') out.push({ text: part.text })
    else if (part?.type === 'image') out.push({ image: { format: imageFormat(part.source), source: { bytes: bytesOf(part.source, 'image') } } })
    else if (part?.type === 'document') {
      const document = documentOf(part)
      if (document) out.push(document)
    }
  }
  return out.length ? out : [{ text: '' }]
}

const IMAGE_FORMATS: Record<string, string> = { 'image/png': 'png', 'image/jpeg': 'jpeg', 'image/jpg': 'jpeg', 'image/gif': 'gif', 'image/webp': 'webp' }

function imageFormat(source: any): string {
  const format = IMAGE_FORMATS[String(source?.media_type ?? '').toLowerCase()]
  if (source?.type === 'base64' && !format) {
    throw GatewayError.invalidRequest('Bedrock takes png, jpeg, gif and webp images', 'invalid_request', 'messages')
  }
  return format ?? 'png'
}

/** Converse's `bytes` are base64 in its JSON, as Anthropic's `data` is: passed on as they are. */
function bytesOf(source: any, what: string): string {
  if (source?.type === 'base64' && typeof source.data === 'string') return source.data
  throw GatewayError.invalidRequest(`Bedrock's Converse API takes an ${what} as bytes, not by URL`, 'invalid_request', 'messages')
}

function documentOf(block: any): Block | null {
  const source = block.source
  if (source?.type === 'text' && typeof source.data === 'string') {
    return { document: { format: 'txt', name: documentName(block), source: { bytes: Buffer.from(source.data).toString('base64') } } }
  }
  if (source?.media_type && source.media_type !== 'application/pdf') {
    throw GatewayError.invalidRequest('Bedrock takes PDF and plain-text documents here', 'invalid_request', 'messages')
  }
  return { document: { format: 'pdf', name: documentName(block), source: { bytes: bytesOf(source, 'document') } } }
}

/** Converse wants a name (letters, digits, spaces, hyphens, brackets): the title's, else "document". */
function documentName(block: any): string {
  const title = typeof block.title === 'string' ? block.title.replace(/[^A-Za-z0-9\s\-()[\]]/g, ' ').replace(/\s+/g, ' ').trim() : ''
  return title.slice(0, 200) || 'document'
}

function toolConfigOf(tools: unknown, choice: any): Record<string, unknown> | null {
  if (!Array.isArray(tools) || tools.length === 0) return null
  const specs = tools.map((tool: any) => {
    if (tool?.type && tool.type !== 'custom') {
      throw GatewayError.invalidRequest(`Bedrock's Converse API has no server tool ${tool.type}`, 'invalid_request', 'tools')
    }
    return {
      toolSpec: {
        name: tool.name,
        ...(tool.description ? { description: tool.description } : {}),
        inputSchema: { json: tool.input_schema ?? { type: 'object', properties: {} } },
      },
    }
  })
  const config: Record<string, unknown> = { tools: specs }
  if (choice?.type === 'auto') config.toolChoice = { auto: {} }
  else if (choice?.type === 'any') config.toolChoice = { any: {} }
  else if (choice?.type === 'tool' && typeof choice.name === 'string') config.toolChoice = { tool: { name: choice.name } }
  return config
}
