import { citationSpan, MAX_CITATIONS, newToolCallId, num, usageOfCounts, withAudioTokens, withImageTokens, withWebSearches, countsReported, type CanonicalResponse, type CanonicalUsage, type ImagePart, type StopReason, type TextPart, type UrlCitation } from '#gateway/dialects/canonical'
import { GroundingWriter, groundingCitations } from '#gateway/dialects/gemini/grounding'
import type { GeminiModalityCount, GeminiPart, GeminiResponse, GeminiUsage } from '#gateway/dialects/gemini/types'
import { MAX_WEB_SEARCHES } from '#gateway/metering/token_counts'

const STOP_REASONS: Record<string, StopReason> = {
  STOP: 'end_turn',
  MAX_TOKENS: 'max_tokens',
  SAFETY: 'content_filter',
  RECITATION: 'content_filter',
  BLOCKLIST: 'content_filter',
  PROHIBITED_CONTENT: 'content_filter',
  SPII: 'content_filter',
  IMAGE_SAFETY: 'content_filter',
  IMAGE_PROHIBITED_CONTENT: 'content_filter',
  IMAGE_RECITATION: 'content_filter',
}

export function stopOfGemini(reason: string | undefined, sawTool: boolean): StopReason {
  const stop = STOP_REASONS[reason ?? ''] ?? 'end_turn'
  return stop === 'end_turn' && sawTool ? 'tool_use' : stop
}

/**
 * The stop a response, or a stream chunk, tells: its candidate's finishReason,
 * or content_filter for a prompt Google blocked (promptFeedback.blockReason
 * and no candidate; streamed, that is the only chunk). Null when it tells
 * none (a stream chunk before the last).
 */
export function stopOfChunk(body: GeminiResponse, sawTool: boolean): StopReason | null {
  const candidate = body?.candidates?.[0]
  if (candidate?.finishReason) return stopOfGemini(candidate.finishReason, sawTool)
  if (!candidate && body?.promptFeedback?.blockReason) return 'content_filter'
  return null
}

/**
 * Canonical stop -> finishReason. A refusal (another vendor's: OpenAI chat's
 * `refusal`, Anthropic's stop_reason "refusal") is SAFETY, with its text in
 * the parts: Gemini has no refusal part, and SAFETY is how Google's own
 * models say they declined. Its clients handle it as such: @google/genai
 * still returns the text (`response.text` reads the parts whatever the
 * finishReason), Gemini CLI shows the text and then its "stopped due to
 * safety reasons" notice, where STOP would pass the refusal off as an answer.
 */
export function geminiFinish(stop: StopReason): string {
  if (stop === 'max_tokens') return 'MAX_TOKENS'
  if (stop === 'content_filter' || stop === 'refusal') return 'SAFETY'
  return 'STOP'
}

/** Gemini usage -> canonical: thoughts are output tokens (and reasoning); cached content is part of the prompt. */
export function decodeGeminiUsage(usage: GeminiUsage | null | undefined): CanonicalUsage | null {
  if (!usage || typeof usage !== 'object' || !countsReported(usage.promptTokenCount, usage.candidatesTokenCount ?? usage.thoughtsTokenCount)) return null
  const thoughts = num(usage.thoughtsTokenCount)
  const output = num(usage.candidatesTokenCount) + thoughts
  const counts = usageOfCounts(num(usage.promptTokenCount) + num(usage.toolUsePromptTokenCount), output, num(usage.cachedContentTokenCount), 0, thoughts)
  // Audio heard or spoken (inlineData audio, the TTS and native-audio models): billed at the model's audio prices.
  if (usage.promptTokensDetails === undefined && usage.candidatesTokensDetails === undefined) return counts
  const answer = usage.candidatesTokensDetails
  withAudioTokens(counts, modalityCount(usage.promptTokensDetails, 'AUDIO'), modalityCount(usage.cacheTokensDetails, 'AUDIO'), modalityCount(answer, 'AUDIO'))
  // Images made (gemini-2.5-flash-image: $30 per 1M against $2.50 for its text): billed at the model's image output price.
  return withImageTokens(counts, modalityCount(answer, 'IMAGE'))
}

/** Gemini 3 and later bill grounding per search query; the models before, per grounded prompt */
const MODEL_GENERATION = /^(?:models\/)?gemini-(\d+)/

/**
 * The searches Google bills for an answer grounded with Google Search (the
 * `googleSearch` tool, or 1.5's `googleSearchRetrieval`): a candidate with
 * `groundingMetadata` that searched (its `webSearchQueries`) or cites what it
 * found (`groundingChunks`). Counted as Google bills them, by the answer's
 * `modelVersion`: each query of `webSearchQueries` for Gemini 3 and later
 * ($14 per 1,000 queries), else one per grounded answer ($35 per 1,000
 * grounded prompts), priced at the model's price per web search. 0: not
 * grounded.
 */
export function groundingSearches(body: any): number {
  const candidates = body?.candidates
  if (!Array.isArray(candidates)) return 0
  let grounded = false
  let queries = 0
  for (const candidate of candidates) {
    const grounding = candidate?.groundingMetadata
    if (!grounding || typeof grounding !== 'object') continue
    const asked = Array.isArray(grounding.webSearchQueries) ? grounding.webSearchQueries.length : 0
    if (asked === 0 && !(Array.isArray(grounding.groundingChunks) && grounding.groundingChunks.length > 0)) continue
    grounded = true
    queries += asked
  }
  if (!grounded) return 0
  const generation = typeof body.modelVersion === 'string' ? MODEL_GENERATION.exec(body.modelVersion) : null
  // No more than a request is billed (a list of thousands from a broken upstream: the stream hold prices what this says).
  return generation !== null && Number(generation[1]) >= 3 && queries > 0 ? Math.min(queries, MAX_WEB_SEARCHES) : 1
}

/** A whole answer's usage: its counts, and the searches of its grounding (groundingSearches). */
export function geminiUsageOfBody(body: any): CanonicalUsage | null {
  const usage = decodeGeminiUsage(body?.usageMetadata)
  if (usage === null) return null
  const searches = groundingSearches(body)
  if (searches > 0) usage.webSearches = searches
  return usage
}

/**
 * A stream chunk's usage (usageMetadata is a cumulative snapshot, and so is
 * groundingMetadata where a chunk repeats it: the most searches any chunk
 * showed, not their sum). A chunk grounding without counts: `known` with its
 * searches (a partial usage: a stream cut before its last chunk is billed
 * them); else `known` itself.
 */
export function geminiChunkUsage(chunk: any, known: CanonicalUsage | null): CanonicalUsage | null {
  const usage = decodeGeminiUsage(chunk?.usageMetadata)
  const shown = known?.webSearches ?? 0
  const grounded = groundingSearches(chunk)
  const searches = grounded > shown ? grounded : shown
  if (usage !== null) {
    if (searches > 0) usage.webSearches = searches
    return usage
  }
  return searches > shown ? withWebSearches(known, searches) : known
}

/** A modality's count in a breakdown (0 when none). */
function modalityCount(details: GeminiModalityCount[] | undefined, modality: string): number {
  if (!Array.isArray(details)) return 0
  for (const entry of details) if (entry?.modality === modality) return num(entry.tokenCount)
  return 0
}

/**
 * An image the model made: an `inlineData` (or `fileData`) part of an image
 * type, not a thought, else null (Gemini's TTS models answer audio as inlineData: not an
 * image, left out as before).
 */
export function imageOfPart(part: GeminiPart): ImagePart | null {
  // gemini-3-pro-image's interim images while it thinks (`thought: true`): its reasoning, not its answer.
  if (part.thought) return null
  const inline = part.inlineData
  if (inline && typeof inline.data === 'string' && String(inline.mimeType ?? '').startsWith('image/')) {
    return { type: 'image', mediaType: inline.mimeType, data: inline.data }
  }
  const file = part.fileData
  if (file && typeof file.fileUri === 'string' && String(file.mimeType ?? 'image/').startsWith('image/')) {
    return { type: 'image', url: file.fileUri, mediaType: file.mimeType }
  }
  return null
}

/** An image as Gemini's part: inline base64, or fileData for a URL. */
export function partOfImage(image: ImagePart): GeminiPart {
  if (image.url) return { fileData: { mimeType: image.mediaType ?? mediaTypeOfUrl(image.url), fileUri: image.url } }
  return { inlineData: { mimeType: image.mediaType ?? 'image/png', data: image.data ?? '' } }
}

function mediaTypeOfUrl(url: string): string {
  const ext = /\.(png|jpe?g|webp|gif)(?:[?#]|$)/i.exec(url)?.[1]?.toLowerCase()
  return ext === 'jpg' || ext === 'jpeg' ? 'image/jpeg' : ext ? `image/${ext}` : 'image/png'
}

export function encodeGeminiUsage(usage: CanonicalUsage): GeminiUsage {
  const encoded: GeminiUsage = {
    promptTokenCount: usage.inputTokens,
    candidatesTokenCount: usage.outputTokens - usage.reasoningTokens,
    totalTokenCount: usage.inputTokens + usage.outputTokens,
  }
  if (usage.cacheReadTokens) encoded.cachedContentTokenCount = usage.cacheReadTokens
  if (usage.reasoningTokens) encoded.thoughtsTokenCount = usage.reasoningTokens
  // As Google reports an image answer: its image tokens apart from its text's.
  if (usage.imageOutputTokens) {
    const image = Math.min(usage.imageOutputTokens, encoded.candidatesTokenCount!)
    encoded.candidatesTokensDetails = [{ modality: 'IMAGE', tokenCount: image }]
    if (encoded.candidatesTokenCount! > image) encoded.candidatesTokensDetails.unshift({ modality: 'TEXT', tokenCount: encoded.candidatesTokenCount! - image })
  }
  return encoded
}

export function decodeGeminiResponse(body: GeminiResponse): CanonicalResponse {
  const candidate = body?.candidates?.[0]
  const content: CanonicalResponse['content'] = []
  const parts = candidate?.content?.parts ?? []
  /** The text part each of the candidate's parts became, by its index (grounding's segments name the candidate's parts) */
  let texts: Map<number, TextPart> | null = null
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]
    if (part.functionCall) {
      content.push({
        type: 'tool_call',
        id: part.functionCall.id || newToolCallId(),
        name: part.functionCall.name,
        arguments: JSON.stringify(part.functionCall.args ?? {}),
        signature: part.thoughtSignature,
      })
    } else if (typeof part.text === 'string') {
      if (part.thought) content.push({ type: 'reasoning', text: part.text, signature: part.thoughtSignature })
      else if (part.text) {
        const text: TextPart = { type: 'text', text: part.text }
        if (candidate?.groundingMetadata) (texts ??= new Map()).set(i, text)
        content.push(text)
      }
    } else {
      const image = imageOfPart(part)
      if (image) content.push(image)
    }
  }
  // Google Search grounding: the pages each segment cites, on the text part it is in (a part that is no text: the last text)
  if (texts !== null) {
    for (const { part, citation } of groundingCitations(candidate!.groundingMetadata!, (at) => texts!.get(at)?.text ?? null)) {
      const text = texts.get(part) ?? [...texts.values()].pop()!
      ;(text.citations ??= []).push(citation)
    }
  }
  const sawTool = content.some((p) => p.type === 'tool_call')
  return {
    id: String(body?.responseId ?? ''),
    model: String(body?.modelVersion ?? ''),
    content,
    stopReason: stopOfChunk(body, sawTool) ?? stopOfGemini(undefined, sawTool),
    usage: geminiUsageOfBody(body),
  }
}

/**
 * The text parts from `from` on, up to the next part of another kind, as
 * one text with their citations, each span moved to where its part begins
 * in it (a citation without a span: its whole part). MAX_CITATIONS at most.
 */
function citedRun(content: CanonicalResponse['content'], from: number): { text: string; citations: UrlCitation[]; next: number } {
  let text = ''
  const citations: UrlCitation[] = []
  let next = from
  for (; next < content.length; next++) {
    const part = content[next]
    if (part.type !== 'text') break
    for (const citation of part.citations ?? []) {
      if (citations.length >= MAX_CITATIONS) break
      const [start, end] = citationSpan(citation, 0, part.text.length)
      citations.push({ ...citation, start: text.length + start, end: text.length + end })
    }
    text += part.text
  }
  return { text, citations, next }
}

export function toolCallPart(id: string, name: string, args: string, signature?: string): GeminiPart {
  let parsed: unknown = {}
  try {
    parsed = JSON.parse(args || '{}')
  } catch {
    parsed = { _raw: args }
  }
  const part: GeminiPart = { functionCall: { id, name, args: parsed as Record<string, unknown> } }
  if (signature) part.thoughtSignature = signature
  return part
}

export function encodeGeminiResponse(response: CanonicalResponse, model: string): GeminiResponse {
  const parts: GeminiPart[] = []
  /** Another wire's citations as groundingMetadata: made for a cited answer only */
  let grounding: GroundingWriter | null = null
  const cited = response.content.some((part) => part.type === 'text' && part.citations !== undefined)
  for (let i = 0; i < response.content.length; i++) {
    const part = response.content[i]
    if (part.type === 'text') {
      if (!cited) {
        parts.push({ text: part.text })
        continue
      }
      // A cited answer's run of text parts (Anthropic's blocks, cut at each cited span) as one part, as Gemini
      // answers: a segment's offsets into its part are then offsets into the answer's text too, which is
      // where Google's own examples apply them (`response.text`).
      const run = citedRun(response.content, i)
      i = run.next - 1
      grounding ??= new GroundingWriter()
      if (run.citations.length > 0) grounding.add(run.citations, run.text, parts.length)
      parts.push({ text: run.text })
    } else if (part.type === 'reasoning') {
      const thought: GeminiPart = { text: part.text, thought: true }
      if (part.signature) thought.thoughtSignature = part.signature
      parts.push(thought)
    } else if (part.type === 'image') {
      parts.push(partOfImage(part))
    } else {
      parts.push(toolCallPart(part.id, part.name, part.custom ? JSON.stringify({ input: part.arguments }) : part.arguments, part.signature))
    }
  }
  const candidate: NonNullable<GeminiResponse['candidates']>[number] = { content: { role: 'model', parts }, finishReason: geminiFinish(response.stopReason), index: 0 }
  if (response.searchQueries?.length) grounding ??= new GroundingWriter()
  const metadata = grounding?.grounding(response.searchQueries)
  if (metadata) candidate.groundingMetadata = metadata
  const encoded: GeminiResponse = { candidates: [candidate], modelVersion: model, responseId: response.id }
  if (response.usage) encoded.usageMetadata = encodeGeminiUsage(response.usage)
  return encoded
}
