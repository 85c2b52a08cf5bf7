/**
 * Where a request's prompt text is, per endpoint: each function hands every
 * text string of the parsed body to `visit` (true: stop, something was
 * found), without copying or joining them. Text only: image, audio and file
 * bytes are skipped. The body was validated as an envelope only, so every
 * field is checked for its type here.
 */
export type TextVisitor = (text: string) => boolean

const MAX_DEPTH = 8

/** Every string inside a JSON value (a Gemini functionResponse, a tool result object), to a bounded depth. */
function strings(value: unknown, visit: TextVisitor, depth = 0): boolean {
  if (typeof value === 'string') return visit(value)
  if (depth >= MAX_DEPTH || value === null || typeof value !== 'object') return false
  if (Array.isArray(value)) {
    for (const item of value) if (strings(item, visit, depth + 1)) return true
    return false
  }
  for (const key in value as Record<string, unknown>) if (strings((value as Record<string, unknown>)[key], visit, depth + 1)) return true
  return false
}

/** OpenAI content: a string, or parts whose text is `text` (chat's `text`, Responses' `input_text`/`output_text`). */
function openaiContent(content: unknown, visit: TextVisitor): boolean {
  if (typeof content === 'string') return visit(content)
  if (!Array.isArray(content)) return false
  for (const part of content) {
    if (typeof part === 'string') {
      if (visit(part)) return true
    } else if (part !== null && typeof part === 'object' && typeof part.text === 'string' && visit(part.text)) return true
  }
  return false
}

/** Chat Completions: every message's content (system, user, assistant, tool results). */
function chat(body: Record<string, any>, visit: TextVisitor): boolean {
  const messages = body.messages
  if (!Array.isArray(messages)) return false
  for (const message of messages) {
    if (message !== null && typeof message === 'object' && openaiContent(message.content, visit)) return true
  }
  return false
}

/** Responses: instructions, and the input (a string, or items: messages, function and custom tool outputs). */
function responses(body: Record<string, any>, visit: TextVisitor): boolean {
  if (typeof body.instructions === 'string' && visit(body.instructions)) return true
  const input = body.input
  if (typeof input === 'string') return visit(input)
  if (!Array.isArray(input)) return false
  for (const item of input) {
    if (item === null || typeof item !== 'object') continue
    if (item.content !== undefined && openaiContent(item.content, visit)) return true
    if (item.output !== undefined && openaiContent(item.output, visit)) return true
  }
  return false
}

/** Anthropic content: a string, or blocks (text; tool_result with its own content). */
function anthropicContent(content: unknown, visit: TextVisitor): boolean {
  if (typeof content === 'string') return visit(content)
  if (!Array.isArray(content)) return false
  for (const block of content) {
    if (block === null || typeof block !== 'object') continue
    if (typeof block.text === 'string' && visit(block.text)) return true
    if (block.type === 'tool_result' && anthropicContent(block.content, visit)) return true
  }
  return false
}

/** Anthropic Messages: system (a string or text blocks) and every message. */
function messages(body: Record<string, any>, visit: TextVisitor): boolean {
  if (anthropicContent(body.system, visit)) return true
  if (!Array.isArray(body.messages)) return false
  for (const message of body.messages) {
    if (message !== null && typeof message === 'object' && anthropicContent(message.content, visit)) return true
  }
  return false
}

/** Gemini parts: text, and a function response's values (the tool result). */
function geminiParts(content: unknown, visit: TextVisitor): boolean {
  const parts = (content as any)?.parts
  if (!Array.isArray(parts)) return false
  for (const part of parts) {
    if (part === null || typeof part !== 'object') continue
    if (typeof part.text === 'string' && visit(part.text)) return true
    if (part.functionResponse && strings(part.functionResponse.response, visit)) return true
  }
  return false
}

/** Gemini generateContent: systemInstruction and contents (also inside a batch-style generateContentRequest). */
function gemini(body: Record<string, any>, visit: TextVisitor): boolean {
  const request = body.generateContentRequest ?? body
  if (request === null || typeof request !== 'object') return false
  if (geminiParts(request.systemInstruction ?? request.system_instruction, visit)) return true
  if (!Array.isArray(request.contents)) return false
  for (const content of request.contents) if (geminiParts(content, visit)) return true
  return false
}

/** A string, or a list of strings (token ids are skipped: numbers name no word). */
function stringOrStrings(value: unknown, visit: TextVisitor): boolean {
  if (typeof value === 'string') return visit(value)
  if (!Array.isArray(value)) return false
  for (const item of value) if (typeof item === 'string' && visit(item)) return true
  return false
}

/** Legacy completions: prompt and the fill-in-the-middle suffix. */
function completions(body: Record<string, any>, visit: TextVisitor): boolean {
  return stringOrStrings(body.prompt, visit) || (typeof body.suffix === 'string' && visit(body.suffix))
}

function embeddings(body: Record<string, any>, visit: TextVisitor): boolean {
  return stringOrStrings(body.input, visit)
}

function geminiEmbed(body: Record<string, any>, visit: TextVisitor): boolean {
  return geminiParts(body.content, visit)
}

function geminiBatchEmbed(body: Record<string, any>, visit: TextVisitor): boolean {
  if (!Array.isArray(body.requests)) return false
  for (const request of body.requests) if (request !== null && typeof request === 'object' && geminiParts(request.content, visit)) return true
  return false
}

/** Image generation and edits: the prompt describing the image (an edit's multipart `prompt` field, image_upload.ts). */
function imagePrompt(body: Record<string, any>, visit: TextVisitor): boolean {
  return typeof body.prompt === 'string' && visit(body.prompt)
}

/** Imagen's `:predict`: each instance's prompt (and its negative prompt says what not to draw: not screened). */
function imagenInstances(body: Record<string, any>, visit: TextVisitor): boolean {
  if (!Array.isArray(body.instances)) return false
  for (const instance of body.instances) if (typeof instance?.prompt === 'string' && visit(instance.prompt)) return true
  return false
}

/** Speech: the text to be read out (and the voice instructions some models take). */
function speechInput(body: Record<string, any>, visit: TextVisitor): boolean {
  return (typeof body.input === 'string' && visit(body.input)) || (typeof body.instructions === 'string' && visit(body.instructions))
}

/** The endpoints whose prompts are checked (withAccount's endpoint names), with their walkers. */
export const PROMPT_TEXTS = new Map<string, (body: Record<string, any>, visit: TextVisitor) => boolean>([
  ['chat.completions', chat],
  ['responses', responses],
  // Codex's remote compaction: the same body (instructions, input items); its summary is the model's answer.
  ['responses.compact', responses],
  ['messages', messages],
  ['gemini.generateContent', gemini],
  ['gemini.streamGenerateContent', gemini],
  ['completions', completions],
  ['embeddings', embeddings],
  ['gemini.embedContent', geminiEmbed],
  ['gemini.batchEmbedContents', geminiBatchEmbed],
  ['images.generations', imagePrompt],
  ['images.edits', imagePrompt],
  ['gemini.predict', imagenInstances],
  ['audio.speech', speechInput],
])
