import { imageFromUrl, imageToUrl, newToolCallId, num, usageOfCounts, withAudioTokens, withImageTokens, withWebSearches, countsReported, type CanonicalResponse, type CanonicalUsage, type ImagePart, type DialectName, type UrlCitation, type StopReason } from '#gateway/dialects/canonical'
import { detailsOfResponse, reasoningFormatOf } from '#gateway/dialects/openai_chat/reasoning_details'
import type { ChatCompletion, ChatImage, ChatUsage } from '#gateway/dialects/openai_chat/types'
import { isChatSearchModel } from '#gateway/dialects/openai_chat/search_models'

const STOP_REASONS: Record<string, StopReason> = {
  stop: 'end_turn',
  length: 'max_tokens',
  tool_calls: 'tool_use',
  function_call: 'tool_use',
  content_filter: 'content_filter',
}

const FINISH_REASONS: Record<StopReason, string> = {
  end_turn: 'stop',
  stop_sequence: 'stop',
  pause_turn: 'stop',
  max_tokens: 'length',
  tool_use: 'tool_calls',
  content_filter: 'content_filter',
  refusal: 'content_filter',
}

/** A refusal comes with finish_reason "stop" (OpenAI's own): the canonical stop says it was one. */
export const stopOfFinish = (finish: string | null | undefined, refused = false): StopReason => {
  const stop = STOP_REASONS[finish ?? ''] ?? 'end_turn'
  return refused && stop === 'end_turn' ? 'refusal' : stop
}
export const finishOfStop = (stop: StopReason): string => FINISH_REASONS[stop] ?? 'stop'

/**
 * OpenAI usage -> canonical (prompt_tokens already includes cached tokens).
 * Reasoning tokens are part of completion_tokens at OpenAI, DeepSeek and
 * most servers; xAI (Grok) reports them beside it instead, its total_tokens
 * being prompt + completion + reasoning. When the total says so, they are
 * added to the output: billed once either way, never left out.
 */
export function decodeChatUsage(usage: ChatUsage | null | undefined): CanonicalUsage | null {
  if (!usage || typeof usage !== 'object' || !countsReported(usage.prompt_tokens, usage.completion_tokens)) return null
  const prompt = num(usage.prompt_tokens)
  const reasoning = num(usage.completion_tokens_details?.reasoning_tokens)
  let completion = num(usage.completion_tokens)
  if (reasoning > 0 && num(usage.total_tokens) === prompt + completion + reasoning) completion += reasoning
  const counts = usageOfCounts(
    prompt,
    completion,
    num(usage.prompt_tokens_details?.cached_tokens ?? usage.prompt_cache_hit_tokens),
    num(usage.prompt_tokens_details?.cache_write_tokens),
    reasoning
  )
  // gpt-4o-audio-preview and gpt-audio: audio heard (input_audio parts) and spoken (modalities ["text", "audio"])
  const audioIn = usage.prompt_tokens_details?.audio_tokens
  const audioOut = usage.completion_tokens_details?.audio_tokens
  if (audioIn || audioOut) withAudioTokens(counts, num(audioIn), 0, num(audioOut))
  // OpenRouter's image models (google/gemini-2.5-flash-image): the answer's image tokens, priced apart.
  const images = usage.completion_tokens_details?.image_tokens
  return images ? withImageTokens(counts, num(images)) : counts
}

/**
 * Did the model search the web? Chat has no search count: OpenAI's search
 * models (gpt-4o-search-preview, `web_search_options`) bill a web search per
 * call, which the answer's `model` says (searchedOnce); other servers'
 * answers say a search ran with `url_citation` annotations (a whole
 * answer's `message.annotations`, a stream's `delta.annotations`).
 */
export function citesWeb(choices: unknown): boolean {
  if (!Array.isArray(choices)) return false
  for (const choice of choices) {
    const annotations = (choice?.message ?? choice?.delta)?.annotations
    if (!Array.isArray(annotations)) continue
    for (const annotation of annotations) if (annotation?.type === 'url_citation') return true
  }
  return false
}

/**
 * The answer (a whole one, or a chunk) is from a call that ran one web
 * search: a search model's (isChatSearchModel: billed per call, whether or
 * not it cites anything), or one citing the web (citesWeb).
 */
export function searchedOnce(answer: any): boolean {
  return isChatSearchModel(answer?.model) || citesWeb(answer?.choices)
}

/** A whole chat answer's usage: its counts, and one web search when it ran one (searchedOnce). */
export function chatUsageOfBody(body: any): CanonicalUsage | null {
  const usage = decodeChatUsage(body?.usage)
  if (usage !== null && searchedOnce(body)) usage.webSearches = 1
  return usage
}

/**
 * A stream chunk's usage: the usage chunk's counts (with the search a chunk
 * before it showed), or, on a chunk citing the web before it, `known` with
 * its one search (a partial usage: a stream cut before the usage chunk is
 * billed it).
 */
export function chatChunkUsage(chunk: any, known: CanonicalUsage | null): CanonicalUsage | null {
  const usage = decodeChatUsage(chunk?.usage)
  const cited = known?.webSearches === 1 || searchedOnce(chunk)
  if (usage !== null) {
    if (cited) usage.webSearches = 1
    return usage
  }
  return cited && known?.webSearches !== 1 ? withWebSearches(known, 1) : known
}

/** Canonical usage -> OpenAI's; with its `cost` when the client asked for usage accounting (EncoderOptions.usageCost). */
export function encodeChatUsage(usage: CanonicalUsage, cost?: ((usage: CanonicalUsage) => number) | null): ChatUsage {
  const encoded: ChatUsage = {
    prompt_tokens: usage.inputTokens,
    completion_tokens: usage.outputTokens,
    total_tokens: usage.inputTokens + usage.outputTokens,
  }
  if (cost) encoded.cost = cost(usage)
  if (usage.cacheReadTokens || usage.cacheWriteTokens) {
    encoded.prompt_tokens_details = { cached_tokens: usage.cacheReadTokens }
    if (usage.cacheWriteTokens) encoded.prompt_tokens_details.cache_write_tokens = usage.cacheWriteTokens
  }
  if (usage.reasoningTokens) encoded.completion_tokens_details = { reasoning_tokens: usage.reasoningTokens }
  if (usage.imageOutputTokens) (encoded.completion_tokens_details ??= {}).image_tokens = usage.imageOutputTokens
  return encoded
}

export function decodeChatResponse(body: ChatCompletion): CanonicalResponse {
  const choice = body?.choices?.[0]
  const message = choice?.message
  const content: CanonicalResponse['content'] = []
  const reasoning = message?.reasoning_content ?? message?.reasoning
  if (typeof reasoning === 'string' && reasoning) content.push({ type: 'reasoning', text: reasoning })
  if (typeof message?.content === 'string' && message.content) content.push({ type: 'text', text: message.content })
  const refusal = message?.refusal
  if (typeof refusal === 'string' && refusal) content.push({ type: 'text', text: refusal, refusal: true })
  for (const call of message?.tool_calls ?? []) {
    if (call.type === 'custom' && call.custom) {
      content.push({ type: 'tool_call', id: call.id || newToolCallId(), name: call.custom.name, arguments: call.custom.input, custom: true })
    } else if (call.function) {
      content.push({ type: 'tool_call', id: call.id || newToolCallId(), name: call.function.name, arguments: call.function.arguments ?? '' })
    }
  }
  // Images made (OpenRouter's and LiteLLM's `images`): after the text, as the field says nothing of their place in it.
  if (Array.isArray(message?.images)) {
    for (const image of message.images) if (typeof image?.image_url?.url === 'string') content.push(imageFromUrl(image.image_url.url))
  }
  return {
    id: String(body?.id ?? ''),
    model: String(body?.model ?? ''),
    content,
    stopReason: stopOfFinish(choice?.finish_reason, typeof refusal === 'string' && refusal !== ''),
    usage: chatUsageOfBody(body),
  }
}

/** OpenAI's (and OpenRouter's) annotation of a cited page: its span of the message content, in UTF-16 code units */
export interface ChatUrlAnnotation {
  type: 'url_citation'
  url_citation: { url: string; title: string; start_index: number; end_index: number; content?: string }
}

export function urlAnnotation(citation: UrlCitation, start: number, end: number): ChatUrlAnnotation {
  const cited: ChatUrlAnnotation['url_citation'] = { url: citation.url, title: citation.title ?? '', start_index: start, end_index: end }
  if (citation.citedText !== undefined) cited.content = citation.citedText
  return { type: 'url_citation', url_citation: cited }
}

/** `upstream`: the dialect the answer was translated from, whose reasoning details it carries (reasoning_details.ts) */
export function encodeChatResponse(response: CanonicalResponse, model: string, upstream?: DialectName): ChatCompletion {
  let text = ''
  let reasoning = ''
  const calls: NonNullable<ChatCompletion['choices'][0]['message']['tool_calls']> = []
  let images: ChatImage[] | null = null
  let annotations: ChatUrlAnnotation[] | null = null
  for (const part of response.content) {
    if (part.type === 'text') {
      // The pages a text part cites, as url_citation annotations over that part's span of the content
      if (part.citations) for (const citation of part.citations) (annotations ??= []).push(urlAnnotation(citation, text.length, text.length + part.text.length))
      text += part.text
    } else if (part.type === 'reasoning') reasoning += part.text
    else if (part.type === 'image') (images ??= []).push(chatImage(part, images.length))
    else if (part.custom) calls.push({ id: part.id, type: 'custom', custom: { name: part.name, input: part.arguments } })
    else calls.push({ id: part.id, type: 'function', function: { name: part.name, arguments: part.arguments } })
  }
  const message: ChatCompletion['choices'][0]['message'] = {
    role: 'assistant',
    content: text || (calls.length > 0 ? null : ''),
    refusal: null,
  }
  // Under both names, as a stream carries it (stream_encoder.ts: reasoningDelta).
  if (reasoning) {
    message.reasoning_content = reasoning
    message.reasoning = reasoning
  }
  // OpenRouter's structured form, for Claude's signatures and redacted thinking and Gemini's call signatures.
  const format = reasoningFormatOf(upstream)
  if (format !== null) {
    const details = detailsOfResponse(response.content, format)
    if (details.length > 0) message.reasoning_details = details
  }
  if (calls.length > 0) message.tool_calls = calls
  if (images !== null) message.images = images
  if (annotations !== null) message.annotations = annotations
  const completion: ChatCompletion = {
    id: chatId(response.id),
    object: 'chat.completion',
    created: Math.floor(Date.now() / 1000),
    model,
    choices: [{ index: 0, message, logprobs: null, finish_reason: finishOfStop(response.stopReason) }],
  }
  if (response.usage) completion.usage = encodeChatUsage(response.usage)
  return completion
}

/** An image of the answer as OpenRouter and LiteLLM write it in `images`: a data: URL (or the image's URL). */
export function chatImage(part: ImagePart, index: number): ChatImage {
  return { type: 'image_url', image_url: { url: imageToUrl(part) }, index }
}

export function chatId(id: string): string {
  return id.startsWith('chatcmpl-') ? id : `chatcmpl-${id || Date.now().toString(36)}`
}
