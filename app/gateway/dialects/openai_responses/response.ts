import {
  boundedCitation,
  citationSpan,
  imageOmittedNote,
  MAX_CITATIONS,
  withSearchQuery,
  num,
  usageOfCounts,
  countsReported,
  withWebSearches,
  type CanonicalResponse,
  type CanonicalUsage,
  type ReasoningPart,
  type StopReason,
  type TextPart,
  type ToolCallPart,
  type UrlCitation,
} from '#gateway/dialects/canonical'
import type { ResponsesItem, ResponsesResponse, ResponsesUsage } from '#gateway/dialects/openai_responses/types'
import { MAX_WEB_SEARCHES } from '#gateway/metering/token_counts'

/**
 * Responses usage -> canonical (input_tokens includes cached tokens; output includes reasoning);
 * with the response's `output`, its `web_search_call` items too (the web_search tool, billed per search).
 */
export function decodeResponsesUsage(usage: ResponsesUsage | null | undefined, output?: unknown): CanonicalUsage | null {
  if (!usage || typeof usage !== 'object' || !countsReported(usage.input_tokens, usage.output_tokens)) return null
  const counts = usageOfCounts(
    num(usage.input_tokens),
    num(usage.output_tokens),
    num(usage.input_tokens_details?.cached_tokens),
    0,
    num(usage.output_tokens_details?.reasoning_tokens)
  )
  if (counts !== null && Array.isArray(output)) {
    let searches = 0
    for (const item of output) if (item?.type === 'web_search_call') searches++
    // No more than a request is billed: the stream hold prices what this says.
    if (searches > 0) counts.webSearches = Math.min(searches, MAX_WEB_SEARCHES)
  }
  return counts
}

/**
 * A stream's `response.output_item.done` event: a finished `web_search_call`
 * item not counted before is one more search (`known` itself for any other
 * item, or one seen again). The terminal event's
 * usage states the count (finalResponsesUsage); a stream cut before it (the
 * client gone, the balance spent, the upstream dropped) is billed the searches
 * it showed, which OpenAI ran and bills, as Anthropic's are
 * (usageAfterBlockStart).
 */
export function usageAfterItemDone(event: any, known: CanonicalUsage | null): CanonicalUsage | null {
  const item = event?.item
  if (item?.type !== 'web_search_call') return known
  // An item sent again (a broken or replaying upstream) is the same search: told apart by its id, else its place.
  const key = typeof item.id === 'string' && item.id !== '' ? item.id : `#${event.output_index}`
  const items = known?.webSearchItems ?? new Set<string>()
  // At the bill's bound (MAX_WEB_SEARCHES) no more are kept: the set stays small whatever the upstream sends.
  if (items.has(key) || items.size >= MAX_WEB_SEARCHES) return known
  items.add(key)
  const usage = withWebSearches(known, (known?.webSearches ?? 0) + 1)
  usage.webSearchItems = items
  return usage
}

/**
 * The usage of a terminal event's response (`known` when it has none that can
 * be believed): its `output`'s web_search_call items are the searches, never
 * fewer than the stream already showed (the same searches: not added twice).
 */
export function finalResponsesUsage(response: any, known: CanonicalUsage | null): CanonicalUsage | null {
  const usage = decodeResponsesUsage(response?.usage, response?.output)
  if (usage === null) return known
  const shown = known?.webSearches ?? 0
  if (shown > (usage.webSearches ?? 0)) usage.webSearches = shown
  if (known?.webSearchItems) usage.webSearchItems = known.webSearchItems
  return usage
}

export function encodeResponsesUsage(usage: CanonicalUsage): ResponsesUsage {
  return {
    input_tokens: usage.inputTokens,
    input_tokens_details: { cached_tokens: usage.cacheReadTokens },
    output_tokens: usage.outputTokens,
    output_tokens_details: { reasoning_tokens: usage.reasoningTokens },
    total_tokens: usage.inputTokens + usage.outputTokens,
  }
}

export function stopOfResponse(body: { status?: string; incomplete_details?: { reason?: string } | null }, sawTool: boolean): StopReason {
  if (body?.status === 'incomplete') {
    return body.incomplete_details?.reason === 'content_filter' ? 'content_filter' : 'max_tokens'
  }
  return sawTool ? 'tool_use' : 'end_turn'
}

export function decodeResponsesResponse(body: ResponsesResponse): CanonicalResponse {
  const content: CanonicalResponse['content'] = []
  let searchQueries: string[] | undefined
  for (const item of body?.output ?? []) {
    if (item?.type === 'web_search_call') searchQueries = withSearchQueries(searchQueries, item)
    else if (item?.type === 'reasoning') {
      const text = (item.summary ?? []).map((s) => s.text).join('\n\n')
      content.push({ type: 'reasoning', text, signature: item.encrypted_content ?? undefined, id: item.id })
    } else if (item?.type === 'message') {
      for (const part of Array.isArray(item.content) ? item.content : []) {
        const text = part.type === 'refusal' ? part.refusal : part.text
        if (typeof text !== 'string' || !text) continue
        const found: TextPart = { type: 'text', text }
        // The pages an output_text cites (OpenAI's web search), each over its span of that text
        if (Array.isArray(part.annotations)) for (const annotation of part.annotations) addResponsesCitation(found, annotation, 0)
        content.push(found)
      }
    } else if (item?.type === 'function_call') {
      content.push({ type: 'tool_call', id: String(item.call_id), name: String(item.name), arguments: item.arguments ?? '' })
    } else if (item?.type === 'custom_tool_call') {
      content.push({ type: 'tool_call', id: String(item.call_id), name: String(item.name), arguments: item.input ?? '', custom: true })
    }
  }
  return {
    id: String(body?.id ?? ''),
    model: String(body?.model ?? ''),
    content,
    stopReason: stopOfResponse(body, content.some((p) => p.type === 'tool_call')),
    usage: decodeResponsesUsage(body?.usage, body?.output),
    ...(searchQueries && { searchQueries }),
  }
}

/**
 * A Responses `url_citation` annotation (`url`, `title`, `start_index`,
 * `end_index` into its output_text) as a citation of `part`, where that
 * output_text begins `offset` characters into the part (null: not known, the
 * page cites the whole part); another kind (a file citation) is left out.
 */
export function addResponsesCitation(part: TextPart, annotation: any, offset: number | null) {
  if (annotation?.type !== 'url_citation' || (part.citations?.length ?? 0) >= MAX_CITATIONS) return
  const citation = boundedCitation(annotation.url, annotation.title || undefined, undefined)
  if (citation === null) return
  const { start_index: start, end_index: end } = annotation
  if (offset !== null && Number.isInteger(start) && Number.isInteger(end) && start >= 0 && end >= start) {
    citation.start = offset + start
    citation.end = offset + end
  }
  ;(part.citations ??= []).push(citation)
}

/** A web_search_call item's queries (`action.query`, and `action.queries` where given) added to `queries` */
export function withSearchQueries(queries: string[] | undefined, item: any): string[] | undefined {
  const action = item?.action
  if (action?.type !== undefined && action.type !== 'search') return queries
  queries = withSearchQuery(queries, action?.query)
  if (Array.isArray(action?.queries)) for (const query of action.queries) if (query !== action.query) queries = withSearchQuery(queries, query)
  return queries
}

export function reasoningItem(id: string, part: Pick<ReasoningPart, 'text' | 'signature'>): ResponsesItem {
  const item: ResponsesItem = { type: 'reasoning', id, summary: part.text ? [{ type: 'summary_text', text: part.text }] : [] }
  if (part.signature) item.encrypted_content = part.signature
  return item
}

export function messageItem(id: string, text: string, status = 'completed', annotations: ResponsesUrlAnnotation[] = []): ResponsesItem {
  return { type: 'message', id, status, role: 'assistant', content: [{ type: 'output_text', text, annotations }] }
}

/** OpenAI's annotation of a page an output_text cites: its span of the text, in UTF-16 code units */
export interface ResponsesUrlAnnotation {
  type: 'url_citation'
  url: string
  title: string
  start_index: number
  end_index: number
}

/** The annotation of a citation whose text part runs from `from` to `to` in the output_text (its own span within, if it has one) */
export function responsesAnnotation(citation: UrlCitation, from: number, to: number): ResponsesUrlAnnotation {
  const [start, end] = citationSpan(citation, from, to)
  return { type: 'url_citation', url: citation.url, title: citation.title ?? '', start_index: start, end_index: end }
}

/** A refusal, as OpenAI's Responses API gives one: a message whose content is a `refusal` part. */
export function refusalItem(id: string, refusal: string, status = 'completed'): ResponsesItem {
  return { type: 'message', id, status, role: 'assistant', content: [{ type: 'refusal', refusal }] }
}

export function toolItem(id: string, part: Pick<ToolCallPart, 'id' | 'name' | 'arguments' | 'custom'>, status = 'completed'): ResponsesItem {
  return part.custom
    ? { type: 'custom_tool_call', id, call_id: part.id, name: part.name, input: part.arguments, status }
    : { type: 'function_call', id, call_id: part.id, name: part.name, arguments: part.arguments, status }
}

export function responseId(id: string): string {
  return id.startsWith('resp_') ? id : `resp_${id.replace(/^(chatcmpl-|msg_)/, '') || Date.now().toString(36)}`
}

/**
 * Why a Responses answer is `incomplete`, or null when it is `completed`. A refusal the output
 * holds as a `refusal` part (OpenAI chat's) is a completed answer, as OpenAI gives it; a refusal
 * stop with none (Anthropic's stop_reason "refusal": its classifier cut the answer, maybe
 * mid-sentence) is incomplete for content_filter, as chat's finish_reason and Gemini's SAFETY say.
 */
export function incompleteReason(stop: StopReason | null, refusalInOutput: boolean): 'max_output_tokens' | 'content_filter' | null {
  if (stop === 'max_tokens') return 'max_output_tokens'
  if (stop === 'content_filter' || (stop === 'refusal' && !refusalInOutput)) return 'content_filter'
  return null
}

/** The response object shared by non-stream answers and stream lifecycle events. */
export function responseObject(
  id: string,
  model: string,
  status: ResponsesResponse['status'],
  output: ResponsesItem[],
  usage: CanonicalUsage | null,
  incomplete: 'max_output_tokens' | 'content_filter' | null
): ResponsesResponse {
  return {
    id,
    object: 'response',
    created_at: Math.floor(Date.now() / 1000),
    status,
    model,
    output,
    usage: usage ? encodeResponsesUsage(usage) : null,
    incomplete_details: status === 'incomplete' ? { reason: incomplete ?? 'max_output_tokens' } : null,
    error: null,
    parallel_tool_calls: true,
    tool_choice: 'auto',
    tools: [],
    store: false,
  }
}

/** A response the gateway stores (responses_store/): `store: true`, the conversation it continues, its instructions. */
export function storedResponseObject<T extends Record<string, any>>(
  response: T,
  stored: { previousResponseId: string | null; instructions: string | null; background?: boolean }
): T {
  const kept = { ...response, store: true, previous_response_id: stored.previousResponseId, instructions: stored.instructions }
  return stored.background === true ? { ...kept, background: true } : kept
}

export function encodeResponsesResponse(response: CanonicalResponse, model: string): ResponsesResponse {
  const output: ResponsesItem[] = []
  let n = 0
  let text = ''
  let annotations: ResponsesUrlAnnotation[] | null = null
  const flushText = () => {
    if (text) output.push(messageItem(`msg_${response.id}_${n++}`, text, 'completed', annotations ?? []))
    text = ''
    annotations = null
  }
  for (const part of response.content) {
    if (part.type === 'text' && !part.refusal) {
      // The pages a text part cites, over that part's span of the message's output_text
      if (part.citations) for (const citation of part.citations) (annotations ??= []).push(responsesAnnotation(citation, text.length, text.length + part.text.length))
      text += part.text
      continue
    }
    flushText()
    if (part.type === 'text') output.push(refusalItem(`msg_${response.id}_${n++}`, part.text))
    else if (part.type === 'reasoning') output.push(reasoningItem(part.id ?? `rs_${response.id}_${n++}`, part))
    // Responses has no image output of a model's own (image_generation_call is the tool's): said in a message of its own.
    else if (part.type === 'image') output.push(messageItem(`msg_${response.id}_${n++}`, imageOmittedNote(part)))
    else output.push(toolItem(`fc_${response.id}_${n++}`, part))
  }
  flushText()
  const refused = response.content.some((p) => p.type === 'text' && p.refusal)
  const incomplete = incompleteReason(response.stopReason, refused)
  return responseObject(responseId(response.id), model, incomplete ? 'incomplete' : 'completed', output, response.usage, incomplete)
}
