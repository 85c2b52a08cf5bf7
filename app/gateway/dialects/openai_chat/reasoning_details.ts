import type { CanonicalResponse, DialectName, ReasoningPart, ToolCallPart } from '#gateway/dialects/canonical'

/**
 * OpenRouter's structured reasoning on chat completions: `reasoning_details`
 * on the answer's message (and on each reasoning delta of a stream), which
 * its clients (the OpenRouter SDK, the AI SDK's OpenRouter provider, Cline,
 * Roo Code, Kilo Code, OpenCode) keep and send back on the assistant
 * message of the next request, so that Claude's signed and redacted
 * thinking and Gemini's thought signatures survive a tool loop on a wire
 * format that has no place for them.
 * https://openrouter.ai/docs/guides/best-practices/reasoning-tokens
 */
export type ReasoningDetail =
  | { type: 'reasoning.text'; text?: string | null; signature?: string | null; id?: string | null; format?: string | null; index?: number }
  | { type: 'reasoning.encrypted'; data: string; id?: string | null; format?: string | null; index?: number }
  | { type: 'reasoning.summary'; summary: string; id?: string | null; format?: string | null; index?: number }

/** OpenRouter's names for whose reasoning a detail is */
export type ReasoningFormat = 'anthropic-claude-v1' | 'google-gemini-v1'

/**
 * The format of the reasoning an upstream of this dialect gives: only
 * Anthropic's and Gemini's carry what a client must send back (signatures,
 * redacted thinking); other upstreams' answers get no details.
 */
export function reasoningFormatOf(upstream: DialectName | undefined): ReasoningFormat | null {
  if (upstream === 'anthropic_messages') return 'anthropic-claude-v1'
  if (upstream === 'gemini') return 'google-gemini-v1'
  return null
}

/** A reasoning block's text (and Anthropic signature) as one detail */
export function textDetail(text: string, signature: string | undefined, format: ReasoningFormat, index: number): ReasoningDetail {
  const detail: ReasoningDetail = { type: 'reasoning.text', text, format, index }
  // Gemini's thought-part signature is not sent back (the Gemini encoder sends no thoughts): Claude's only.
  if (signature && format === 'anthropic-claude-v1') detail.signature = signature
  return detail
}

/** Anthropic's redacted thinking, or a Gemini function call's thought signature (`id`: the call's id) */
export function encryptedDetail(data: string, format: ReasoningFormat, index: number, id?: string): ReasoningDetail {
  return id === undefined ? { type: 'reasoning.encrypted', data, format, index } : { type: 'reasoning.encrypted', data, id, format, index }
}

/** The details of a whole translated answer, in its order; empty when there are none. */
export function detailsOfResponse(content: CanonicalResponse['content'], format: ReasoningFormat): ReasoningDetail[] {
  const details: ReasoningDetail[] = []
  for (const part of content) {
    if (part.type === 'reasoning') {
      if (part.redacted) details.push(encryptedDetail(part.redacted, format, details.length))
      else if (part.text || part.signature) details.push(textDetail(part.text, part.signature, format, details.length))
    } else if (part.type === 'tool_call' && part.signature && format === 'google-gemini-v1') {
      details.push(encryptedDetail(part.signature, format, details.length, part.id))
    }
  }
  return details
}

/**
 * Claude's details: those saying so, and those naming no format (OpenRouter's SDKs read a missing one as
 * Claude's). `unknown` is not: it is what OpenRouter calls reasoning it cannot place.
 */
const isClaude = (format: unknown) => format === undefined || format === null || format === 'anthropic-claude-v1'

/**
 * An assistant message's `reasoning_details` as canonical reasoning parts
 * (Claude's thinking with its signature, its redacted thinking as such,
 * other vendors' text as unsigned reasoning, which no encoder sends as
 * signed), and Gemini's function-call thought signatures set on the calls
 * they name (`calls`: the message's tool calls). Text streamed in pieces
 * and sent back as they came (the same `index` in a row) is one block
 * again. Empty when the field holds no reasoning this reads.
 */
export function partsOfDetails(details: unknown, calls: ToolCallPart[]): ReasoningPart[] {
  if (!Array.isArray(details)) return []
  const parts: ReasoningPart[] = []
  let lastIndex: unknown
  let last: ReasoningPart | null = null
  for (const detail of details) {
    if (detail === null || typeof detail !== 'object') continue
    const { type, format, index } = detail as Record<string, unknown>
    if (type === 'reasoning.text') {
      const { text, signature } = detail as { text?: unknown; signature?: unknown }
      const piece = typeof text === 'string' ? text : ''
      const signed = isClaude(format) && typeof signature === 'string' && signature !== '' ? signature : undefined
      if (last !== null && typeof index === 'number' && index === lastIndex) {
        last.text += piece
        if (signed) last.signature = signed
        continue
      }
      if (!piece && !signed) continue
      last = signed ? { type: 'reasoning', text: piece, signature: signed } : { type: 'reasoning', text: piece }
      lastIndex = index
      parts.push(last)
      continue
    }
    last = null
    if (type === 'reasoning.summary') {
      const { summary } = detail as { summary?: unknown }
      if (typeof summary === 'string' && summary) parts.push({ type: 'reasoning', text: summary })
    } else if (type === 'reasoning.encrypted') {
      const { data, id } = detail as { data?: unknown; id?: unknown }
      if (typeof data !== 'string' || data === '') continue
      // Gemini's thought signature belongs to the function call it names.
      const call = typeof id === 'string' && id !== '' ? calls.find((c) => c.id === id) : undefined
      if (call !== undefined && format !== 'anthropic-claude-v1') call.signature = data
      else if (isClaude(format)) parts.push({ type: 'reasoning', text: '', redacted: data })
    }
  }
  return parts
}
