import type { CanonicalUsage } from '#gateway/dialects/canonical'
import type { ResponsesItem } from '#gateway/dialects/openai_responses/types'
import { encodeResponsesUsage } from '#gateway/dialects/openai_responses/response'

/**
 * Codex's remote compaction (`POST /responses/compact`) emulated for a model
 * served through another format: what the summarisation call asks, and the
 * replacement history answered in the compaction's shape.
 *
 * The v1 answer carries plain `message` items only, never a `compaction`
 * item: OpenAI's `encrypted_content` is nothing the gateway can write. Codex
 * replaces its history with `output` as it comes (codex-api CompactClient
 * reads `output: Vec<ResponseItem>`; a message's content may be input_text /
 * output_text / input_image only), and these items are ordinary Responses
 * input on the next turn, here or anywhere. Compaction v2 requires exactly
 * one `compaction` item: the gateway's sealed summary (sealedSummary), which
 * only the gateway reads back.
 *
 * The history built is the one Codex's own local compaction builds
 * (codex-rs/core/src/compact.rs): the user's messages, newest first within a
 * budget, in their order, then one user message holding the summary after
 * Codex's summary prefix (so a later local compaction recognises it as a
 * summary and does not keep it as a user message).
 */

/** What the routed model is asked after the history: a hand-off summary (our wording). */
export const SUMMARISATION_PROMPT = [
  'Context checkpoint: the conversation above is about to be replaced by a summary. Write that summary now, as a hand-off',
  'to another assistant that will continue the task without seeing the conversation.',
  '',
  'Cover:',
  "- the user's goal and any constraints or preferences they stated",
  '- what has been done so far and the decisions taken (files, commands, results that matter)',
  '- what remains to be done, as concrete next steps',
  '- any data, names, paths or references needed to continue',
  '',
  'Be concise and structured. Do not call tools; answer with the summary only.',
].join('\n')

/**
 * Codex's summary prefix (codex-rs/core/templates/compact/summary_prefix.md), byte for byte: Codex
 * tells a summary from a user message by it (`is_summary_message`).
 */
export const SUMMARY_PREFIX =
  'Another language model started to solve this problem and produced a summary of its thinking process. You also have access to the state of the tools that were used by that language model. Use this to build on the work that has already been done and avoid duplicating work. Here is the summary produced by the other language model, use the information in this summary to  assist with your own analysis:'

/** The user messages kept: Codex's own bound (COMPACT_USER_MESSAGE_MAX_TOKENS), at its 4 bytes a token. */
const KEPT_USER_TOKENS = 20_000
const BYTES_PER_TOKEN = 4

/**
 * Codex's compaction v2 asks through an ordinary `/responses` call whose input ends with this item; the
 * answer must be exactly one `compaction` item (OpenAI's encrypted summary). Only the last item is looked
 * at: that is where Codex puts it, and a request pays one property read for the check.
 */
export function asksCompactionV2(body: Record<string, any>): boolean {
  const input = body.input
  if (!Array.isArray(input) || input.length === 0) return false
  return input[input.length - 1]?.type === 'compaction_trigger'
}

/** The compact body as a Responses request for the summarisation call: the history, then the prompt. */
export function summarisationRequest(body: Record<string, any>): Record<string, any> {
  const input: ResponsesItem[] = [...(body.input as ResponsesItem[])]
  input.push({ type: 'message', role: 'user', content: [{ type: 'input_text', text: SUMMARISATION_PROMPT }] })
  const request: Record<string, any> = { model: body.model, input, store: false }
  if (typeof body.instructions === 'string' && body.instructions.length > 0) request.instructions = body.instructions
  // Tools stay declared (a history with tool calls needs them at Anthropic), but none may be called.
  if (Array.isArray(body.tools) && body.tools.length > 0) {
    request.tools = body.tools
    request.tool_choice = 'none'
  }
  if (body.reasoning && typeof body.reasoning === 'object') request.reasoning = body.reasoning
  return request
}

/** The replacement history: the user's messages (bounded, oldest cut first), then the summary. */
export function replacementHistory(input: readonly unknown[], summary: string): ResponsesItem[] {
  const texts: string[] = []
  for (const item of input) {
    const text = userMessageText(item)
    if (text !== null && !text.startsWith(`${SUMMARY_PREFIX}\n`)) texts.push(text)
  }
  const kept: string[] = []
  let room = KEPT_USER_TOKENS * BYTES_PER_TOKEN
  for (let i = texts.length - 1; i >= 0 && room > 0; i--) {
    const bytes = Buffer.byteLength(texts[i])
    if (bytes <= room) {
      kept.push(texts[i])
      room -= bytes
    } else {
      kept.push(truncatedMiddle(texts[i], room))
      room = 0
    }
  }
  kept.reverse()
  const history: ResponsesItem[] = kept.map((text) => ({ type: 'message', role: 'user', content: [{ type: 'input_text', text }] }))
  history.push({ type: 'message', role: 'user', content: [{ type: 'input_text', text: summaryMessage(summary) }] })
  return history
}

/** The compaction's answer (`object: "response.compaction"`), with the summarisation call's usage. */
export function compactionAnswer(id: string, output: ResponsesItem[], usage: CanonicalUsage) {
  return { id, object: 'response.compaction', created_at: Math.floor(Date.now() / 1000), output, usage: encodeResponsesUsage(usage) }
}

/**
 * The `encrypted_content` of a compaction item the gateway wrote (compaction v2 emulated): the
 * summary's UTF-8 bytes in base64 after a marker. Encoded, not encrypted: it is the client's own
 * conversation, and only the gateway's Responses decoder reads it back (unsealedSummary).
 */
const SEALED = 'gateway-summary-v1:'

export function sealedSummary(summary: string): string {
  return SEALED + Buffer.from(summary, 'utf8').toString('base64')
}

/** The summary in a compaction item's content the gateway wrote, or null (OpenAI's own: unreadable). */
export function unsealedSummary(content: unknown): string | null {
  if (typeof content !== 'string' || !content.startsWith(SEALED)) return null
  return Buffer.from(content.slice(SEALED.length), 'base64').toString('utf8')
}

/** A sealed summary as the message it stands for in a translated conversation. */
export function summaryMessage(summary: string): string {
  return `${SUMMARY_PREFIX}\n${summary.trim().length > 0 ? summary : '(no summary available)'}`
}

/** The SSE events of an emulated v2 compaction: created, the one item added and done, completed. */
export function compactionV2Events(response: Record<string, any>, item: Record<string, unknown>): string {
  let sequence = 0
  const event = (type: string, data: Record<string, unknown>) => `event: ${type}\ndata: ${JSON.stringify({ type, sequence_number: sequence++, ...data })}\n\n`
  const opening = { ...response, status: 'in_progress', output: [], usage: null }
  return (
    event('response.created', { response: opening }) +
    event('response.in_progress', { response: opening }) +
    event('response.output_item.added', { output_index: 0, item }) +
    event('response.output_item.done', { output_index: 0, item }) +
    event('response.completed', { response })
  )
}

/** A user message's text (its text parts joined by newlines), or null for anything else. */
function userMessageText(item: unknown): string | null {
  if (!item || typeof item !== 'object') return null
  const message = item as ResponsesItem
  if ((message.type ?? 'message') !== 'message' || message.role !== 'user') return null
  if (typeof message.content === 'string') return message.content.length > 0 ? message.content : null
  if (!Array.isArray(message.content)) return null
  const pieces: string[] = []
  for (const part of message.content) {
    if ((part?.type === 'input_text' || part?.type === 'output_text') && typeof part.text === 'string' && part.text.length > 0) pieces.push(part.text)
  }
  return pieces.length > 0 ? pieces.join('\n') : null
}

/** A text cut to about `bytes`: its start and its end, with what was left out said in between. */
function truncatedMiddle(text: string, bytes: number): string {
  const half = Math.max(0, Math.floor(bytes / 2))
  // Characters, not bytes: close enough for a bound, and never a split UTF-8 sequence.
  const head = text.slice(0, half)
  const tail = text.slice(Math.max(half, text.length - half))
  return `${head}\n…[${text.length - head.length - tail.length} characters truncated]…\n${tail}`
}
