import { citationSpan, imageOmittedNote, withSearchQuery, MAX_CITATIONS, num, urlCitationOf, usageOfCounts, countsReported, type CanonicalResponse, type CanonicalUsage, type StopReason, type TextPart, type UrlCitation } from '#gateway/dialects/canonical'
import { toolInput } from '#gateway/dialects/anthropic_messages/request'
import type { AnthropicBlock, AnthropicResponse, AnthropicUsage } from '#gateway/dialects/anthropic_messages/types'

const STOP_REASONS: Record<string, StopReason> = {
  end_turn: 'end_turn',
  max_tokens: 'max_tokens',
  stop_sequence: 'stop_sequence',
  tool_use: 'tool_use',
  pause_turn: 'pause_turn',
  refusal: 'refusal',
  model_context_window_exceeded: 'max_tokens',
}

export const stopOfAnthropic = (reason: string | null | undefined): StopReason => STOP_REASONS[reason ?? ''] ?? 'end_turn'
export const anthropicStop = (reason: StopReason): string => (reason === 'content_filter' ? 'refusal' : reason)

/**
 * A stream's content_block_start: a web search the server tool starts (a
 * `server_tool_use` block named web_search) is one more search on the usage
 * message_start reported (`known` itself for any other block, or when there
 * is none: no counts are made up). message_delta's
 * `server_tool_use.web_search_requests` states the count; a stream cut
 * before it (the client gone, the balance spent) is billed the searches it
 * showed, which the provider ran and bills. A new object: the relays compare
 * usages by identity.
 */
export function usageAfterBlockStart(block: any, known: CanonicalUsage | null): CanonicalUsage | null {
  if (known === null || block?.type !== 'server_tool_use' || block.name !== 'web_search') return known
  return { ...known, webSearches: (known.webSearches ?? 0) + 1 }
}

/**
 * Anthropic usage -> canonical: input_tokens excludes cache reads/writes, canonical input includes them;
 * `output_tokens_details.thinking_tokens` (the thinking within output_tokens) is the reasoning count.
 */
export function decodeAnthropicUsage(usage: Partial<AnthropicUsage> | null | undefined): CanonicalUsage | null {
  if (!usage || typeof usage !== 'object' || !countsReported(usage.input_tokens, usage.output_tokens)) return null
  const cacheRead = num(usage.cache_read_input_tokens)
  const cacheWrite = num(usage.cache_creation_input_tokens)
  const thinking = num(usage.output_tokens_details?.thinking_tokens)
  const counts = usageOfCounts(num(usage.input_tokens) + cacheRead + cacheWrite, num(usage.output_tokens), cacheRead, cacheWrite, thinking)
  // Writes to the one-hour cache (ttl "1h"), priced apart: a believed count, within the writes.
  const hour = num(usage.cache_creation?.ephemeral_1h_input_tokens)
  if (counts !== null && hour > 0 && counts.cacheWriteTokens > 0) counts.cacheWrite1hTokens = Math.min(hour, counts.cacheWriteTokens)
  // The web_search server tool's searches (Claude Code's WebSearch), billed per search
  const searches = num(usage.server_tool_use?.web_search_requests)
  if (counts !== null && searches > 0) counts.webSearches = searches
  return counts
}

/**
 * Anthropic's message_delta usage is cumulative but may leave counts out (often all but output_tokens):
 * what it leaves out is what message_start said (`known`).
 */
export function mergeAnthropicUsage(delta: Partial<AnthropicUsage>, known: CanonicalUsage | null): CanonicalUsage | null {
  return decodeAnthropicUsage({
    input_tokens: delta.input_tokens ?? (known ? known.inputTokens - known.cacheReadTokens - known.cacheWriteTokens : 0),
    cache_read_input_tokens: delta.cache_read_input_tokens ?? known?.cacheReadTokens,
    cache_creation_input_tokens: delta.cache_creation_input_tokens ?? known?.cacheWriteTokens,
    output_tokens: delta.output_tokens ?? known?.outputTokens,
    output_tokens_details: delta.output_tokens_details ?? (known ? { thinking_tokens: known.reasoningTokens } : undefined),
    cache_creation: delta.cache_creation ?? (known?.cacheWrite1hTokens ? { ephemeral_1h_input_tokens: known.cacheWrite1hTokens } : undefined),
    server_tool_use: delta.server_tool_use ?? (known?.webSearches ? { web_search_requests: known.webSearches } : undefined),
  })
}

export function encodeAnthropicUsage(usage: CanonicalUsage): AnthropicUsage {
  const encoded: AnthropicUsage = {
    input_tokens: Math.max(0, usage.inputTokens - usage.cacheReadTokens - usage.cacheWriteTokens),
    output_tokens: usage.outputTokens,
    cache_creation_input_tokens: usage.cacheWriteTokens,
    cache_read_input_tokens: usage.cacheReadTokens,
  }
  // The SDKs (@anthropic-ai/sdk 1.x Usage.output_tokens_details) read the reasoning here.
  if (usage.reasoningTokens) encoded.output_tokens_details = { thinking_tokens: usage.reasoningTokens }
  return encoded
}

/** A text block, with the web pages it cites (urlCitationOf) */
function textOfBlock(block: any): TextPart {
  const part: TextPart = { type: 'text', text: String(block.text ?? '') }
  if (Array.isArray(block.citations)) {
    for (const citation of block.citations) {
      const found = urlCitationOf(citation)
      if (found !== null && (part.citations?.length ?? 0) < MAX_CITATIONS) (part.citations ??= []).push(found)
    }
  }
  return part
}

export function decodeAnthropicResponse(body: AnthropicResponse): CanonicalResponse {
  const content: CanonicalResponse['content'] = []
  let searchQueries: string[] | undefined
  for (const block of (body?.content ?? []) as any[]) {
    if (block?.type === 'text') content.push(textOfBlock(block))
    else if (block?.type === 'server_tool_use' && block.name === 'web_search') searchQueries = withSearchQuery(searchQueries, block.input?.query)
    else if (block?.type === 'thinking') content.push({ type: 'reasoning', text: String(block.thinking ?? ''), signature: block.signature })
    else if (block?.type === 'redacted_thinking') content.push({ type: 'reasoning', text: '', redacted: block.data })
    else if (block?.type === 'tool_use') {
      content.push({ type: 'tool_call', id: String(block.id), name: String(block.name), arguments: JSON.stringify(block.input ?? {}) })
    }
  }
  return {
    id: String(body?.id ?? ''),
    model: String(body?.model ?? ''),
    content,
    stopReason: stopOfAnthropic(body?.stop_reason),
    stopSequence: body?.stop_sequence ?? undefined,
    usage: decodeAnthropicUsage(body?.usage),
    ...(searchQueries && { searchQueries }),
  }
}

/**
 * A cited page as Anthropic's web search citation. Another vendor's citation
 * has no `encrypted_index` (Anthropic's handle on its own search result): ''.
 */
export function anthropicCitation(citation: UrlCitation) {
  return { type: 'web_search_result_location', url: citation.url, title: citation.title ?? null, encrypted_index: '', cited_text: citation.citedText ?? '' }
}

/**
 * The citations' copies one text part's blocks carry at most: nested spans
 * (each beginning one character after the last) put most of 256 citations on
 * each of 500 blocks, 330 MB of JSON from 2.6 MB of citations.
 */
const CITATION_COPIES = 4 * MAX_CITATIONS

/**
 * A cited text part as Anthropic answers one: text blocks cut where a
 * citation's span begins or ends, each with the citations covering it
 * (a citation without a span covers the whole part). Past
 * CITATION_COPIES, a block carries only the citations that begin on it:
 * each citation is still there once, where its span starts.
 */
function citedBlocks(text: string, citations: UrlCitation[]): AnthropicBlock[] {
  const spans = citations.map((citation) => citationSpan(citation, 0, text.length))
  const cuts = [...new Set([0, text.length, ...spans.flat()])].sort((a, b) => a - b)
  const blocks: AnthropicBlock[] = []
  let copies = 0
  for (let i = 0; i + 1 < cuts.length; i++) {
    const [from, to] = [cuts[i], cuts[i + 1]]
    let covering = citations.filter((_, c) => spans[c][0] <= from && spans[c][1] >= to)
    if (copies + covering.length > CITATION_COPIES) covering = citations.filter((_, c) => spans[c][0] === from && spans[c][1] >= to)
    copies += covering.length
    blocks.push(covering.length > 0 ? { type: 'text', text: text.slice(from, to), citations: covering.map(anthropicCitation) } : { type: 'text', text: text.slice(from, to) })
  }
  return blocks
}

export function encodeAnthropicResponse(response: CanonicalResponse, model: string): AnthropicResponse {
  const content: AnthropicBlock[] = []
  for (const part of response.content) {
    if (part.type === 'text') {
      if (part.citations) content.push(...citedBlocks(part.text, part.citations))
      else content.push({ type: 'text', text: part.text })
    } else if (part.type === 'reasoning') {
      if (part.redacted) content.push({ type: 'redacted_thinking', data: part.redacted })
      else content.push({ type: 'thinking', thinking: part.text, signature: part.signature ?? '' })
    } else if (part.type === 'image') {
      // Messages has no image output: the image is left out, and the answer says so where it was.
      content.push({ type: 'text', text: imageOmittedNote(part) })
    } else content.push({ type: 'tool_use', id: part.id, name: part.name, input: toolInput(part.arguments, part.custom) })
  }
  return {
    id: messageId(response.id),
    type: 'message',
    role: 'assistant',
    model,
    content,
    stop_reason: anthropicStop(response.stopReason),
    stop_sequence: response.stopSequence ?? null,
    usage: encodeAnthropicUsage(response.usage ?? { inputTokens: 0, outputTokens: 0, cacheReadTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0 }),
  }
}

export function messageId(id: string): string {
  return id.startsWith('msg_') ? id : `msg_${id.replace(/^chatcmpl-/, '') || Date.now().toString(36)}`
}
