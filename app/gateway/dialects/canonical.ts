import { holdsCount, MAX_TOKEN_COUNT, reportedTokens } from '#gateway/metering/token_counts'
import { GatewayError } from '#exceptions/gateway_error'

/**
 * The one hub representation every wire format translates through. A
 * dialect has one decoder into these types and one encoder out of them
 * (request, response, stream); no converter exists per pair of dialects.
 *
 * Only what a translation can carry lives here. Same-dialect traffic never
 * touches these types: it is relayed as bytes (see app/gateway/relay).
 */
import { randomBytes } from 'node:crypto'

export type DialectName = 'openai_chat' | 'openai_responses' | 'anthropic_messages' | 'gemini'

/** Opaque per-block cache hint (Anthropic `cache_control`), carried as given. */
export type CacheControl = Record<string, unknown>

export interface TextPart {
  type: 'text'
  text: string
  /**
   * The model's refusal (OpenAI chat's `refusal`). Encoders with a shape for it
   * use it (Responses: a `refusal` content part); the others carry it as text.
   */
  refusal?: boolean
  cacheControl?: CacheControl
  /** Web pages the text cites (Anthropic's web_search_result_location citations; chat's url_citation annotations) */
  citations?: UrlCitation[]
}

/** A web page an answer's text cites: the whole text part it is attached to is what cites it. */
export interface UrlCitation {
  url: string
  title?: string
  /** The page's words the text rests on (Anthropic's `cited_text`) */
  citedText?: string
  /**
   * The span of the part's text that cites the page, in UTF-16 code units,
   * end exclusive (chat's `start_index`/`end_index`, Gemini's grounding
   * segments); absent: the whole part.
   */
  start?: number
  end?: number
}

/** A citation's span in an encoded text where its part runs from `from` to `to` (citationSpan's indices, clamped to the part) */
export function citationSpan(citation: UrlCitation, from: number, to: number): [number, number] {
  const start = citation.start === undefined ? from : Math.min(from + citation.start, to)
  const end = citation.end === undefined ? to : Math.max(start, Math.min(from + citation.end, to))
  return [start, end]
}

export interface ImagePart {
  type: 'image'
  /** base64 data (with mediaType) or a URL; data: URLs are split into these */
  data?: string
  mediaType?: string
  url?: string
  detail?: string
  cacheControl?: CacheControl
}

/**
 * An attachment that is not an image: a document (PDF, plain text), audio,
 * video. Carried as base64 `data` with its `mediaType` (a plain-text
 * document too: its text, base64), a `url` the provider fetches, or a
 * `fileId` stored with one provider. Each encoder writes it in its own form
 * or, when its wire has none for it, refuses it (`unsupportedAttachment`).
 */
export interface FilePart {
  type: 'file'
  data?: string
  mediaType: string
  url?: string
  filename?: string
  /** A file uploaded to one provider (OpenAI `file_id`, Anthropic Files API): only that provider can read it */
  fileId?: { provider: 'openai' | 'anthropic'; id: string }
  cacheControl?: CacheControl
}

/** Model reasoning. `signature` is the upstream's opaque proof (Anthropic signature, Responses encrypted_content). */
export interface ReasoningPart {
  type: 'reasoning'
  text: string
  signature?: string
  /** Anthropic redacted_thinking data */
  redacted?: string
  /** Responses reasoning item id */
  id?: string
}

export interface ToolCallPart {
  type: 'tool_call'
  id: string
  name: string
  /** JSON text of the arguments (or the raw input of a custom tool) */
  arguments: string
  /** A custom (free-form, grammar) tool rather than a JSON function */
  custom?: boolean
  /** Gemini thoughtSignature attached to the call */
  signature?: string
  cacheControl?: CacheControl
}

export interface ToolResultPart {
  type: 'tool_result'
  toolCallId: string
  /** Known when the decoder has it (Gemini needs it; encoders look it up by id otherwise) */
  name?: string
  content: string | Array<TextPart | ImagePart | FilePart>
  isError?: boolean
  custom?: boolean
  cacheControl?: CacheControl
}

export type ContentPart = TextPart | ImagePart | FilePart | ReasoningPart | ToolCallPart | ToolResultPart

export interface CanonicalMessage {
  /** 'system' covers system/developer messages inside the conversation */
  role: 'system' | 'user' | 'assistant'
  content: ContentPart[]
}

export interface CanonicalTool {
  name: string
  description?: string
  /** JSON schema of the arguments */
  parameters?: Record<string, unknown>
  /** Custom tool: free-form input, optionally constrained by a grammar format */
  custom?: { format?: Record<string, unknown> }
  cacheControl?: CacheControl
}

export type ToolChoice = { type: 'auto' | 'none' | 'required' } | { type: 'tool'; name: string }

export interface ReasoningConfig {
  effort?: string
  /** Tokens to think with; 0 is thinking off (only a `-nothinking` model name asks it: routing/model_suffix.ts) */
  budgetTokens?: number
  summary?: string
}

export type ResponseFormat =
  | { type: 'json_object' }
  | { type: 'json_schema'; name?: string; schema: Record<string, unknown>; strict?: boolean }

export interface CanonicalRequest {
  model: string
  stream: boolean
  system: TextPart[]
  messages: CanonicalMessage[]
  tools: CanonicalTool[]
  toolChoice?: ToolChoice
  parallelToolCalls?: boolean
  maxTokens?: number
  temperature?: number
  topP?: number
  topK?: number
  stop?: string[]
  /** Present when the client asked for reasoning/thinking */
  reasoning?: ReasoningConfig
  responseFormat?: ResponseFormat
  user?: string
  /**
   * The answer's kinds the client asked for, lower case (chat's `modalities`,
   * Gemini's `responseModalities`): absent when it named none. Only an ask
   * for images is carried across formats (Gemini's image models).
   */
  outputModalities?: string[]
  /** The generated image's shape (OpenRouter's `image_config`, Gemini's `imageConfig`) */
  imageConfig?: ImageConfig
  /**
   * Responses' `item_reference` ids, in input order (absent: none, the usual
   * case). Set by the Responses decoder, which drops the references; the
   * gateway puts the stored items in their place and decodes again
   * (responses_store/item_references.ts).
   */
  itemReferences?: string[]
}

export interface ImageConfig {
  /** `1:1`, `16:9`... */
  aspectRatio?: string
  /** `1K`, `2K`, `4K` */
  imageSize?: string
}

/** Does the request ask for images in the answer? */
export function asksImageOutput(request: CanonicalRequest): boolean {
  return request.outputModalities?.includes('image') === true
}

export type StopReason =
  | 'end_turn'
  | 'max_tokens'
  | 'tool_use'
  | 'stop_sequence'
  | 'content_filter'
  | 'refusal'
  | 'pause_turn'

/**
 * Token usage with OpenAI semantics: inputTokens INCLUDES cache reads and
 * writes (Anthropic reports them apart; its encoder subtracts them again).
 */
export interface CanonicalUsage {
  inputTokens: number
  outputTokens: number
  cacheReadTokens: number
  cacheWriteTokens: number
  reasoningTokens: number
  /** Of the cache writes, those to Anthropic's one-hour cache (`ephemeral_1h_input_tokens`), priced apart; absent: none */
  cacheWrite1hTokens?: number
  /** Server-side web searches the provider ran (billed per search: pricing.ts); absent: none */
  webSearches?: number
  /**
   * A stream's searches counted one item at a time (Responses' web_search_call
   * items done): the items counted, so one sent again is not a second search.
   * One set per stream, carried from usage to usage; never written out.
   */
  webSearchItems?: Set<string>
  /**
   * Audio tokens among the input, the cache reads and the output, when the
   * upstream reports any (OpenAI chat's `audio_tokens` details, Gemini's AUDIO
   * modality): billed at the model's audio prices (pricing.ts). Absent: none.
   */
  audioInputTokens?: number
  cachedAudioTokens?: number
  audioOutputTokens?: number
  /**
   * Image tokens among the output (Gemini's IMAGE modality of the answer,
   * OpenRouter's `image_tokens`): billed at the model's image output price
   * (pricing.ts). Absent: none.
   */
  imageOutputTokens?: number
}

/**
 * A part of an answer: text, reasoning, a tool call, or an image the model
 * made (Gemini's image models: `inlineData`; chat's `message.images`).
 */
export type AnswerPart = TextPart | ReasoningPart | ToolCallPart | ImagePart

export interface CanonicalResponse {
  id: string
  model: string
  content: AnswerPart[]
  stopReason: StopReason
  stopSequence?: string
  usage: CanonicalUsage | null
  /** What the upstream's own web search looked for (Anthropic's server_tool_use, Responses' web_search_call), when it says */
  searchQueries?: string[]
}

export type BlockInfo =
  | { type: 'text'; refusal?: boolean }
  | { type: 'reasoning'; id?: string }
  | { type: 'tool_call'; id: string; name: string; custom?: boolean }

/**
 * A stream, as decoders produce it: `start`, then blocks (start, deltas,
 * stop; one open at a time), `usage` snapshots (each complete, the last one
 * wins), `stop`, and possibly `error`. Encoders turn them into client bytes.
 */
export type CanonicalEvent =
  | { type: 'start'; id: string; model: string }
  | { type: 'block_start'; index: number; block: BlockInfo }
  | { type: 'delta'; index: number; kind: 'text' | 'reasoning' | 'arguments'; value: string }
  | { type: 'signature'; index: number; value: string }
  | { type: 'redacted'; index: number; value: string }
  | { type: 'block_stop'; index: number }
  /**
   * An image the model made, whole (Gemini sends one in one chunk): no block
   * of its own, never a delta (its base64 is no text to count or hold), after
   * the decoder closed the open block (so the text around it keeps its order).
   * An encoder whose format has no image output drops it (and says so).
   */
  | { type: 'image'; image: ImagePart }
  /** The open text block cites a web page (Anthropic's `citations_delta`, which comes before the block's text) */
  | { type: 'citation'; index: number; citation: UrlCitation }
  /** The upstream searched the web for this (searchQueries, streamed) */
  | { type: 'search'; query: string }
  /** `partial`: only what the stream showed so far (its web searches), never the final count, even next to the stop */
  | { type: 'usage'; usage: CanonicalUsage; partial?: true }
  | { type: 'stop'; reason: StopReason; sequence?: string }
  | { type: 'error'; message: string }

/** Turns upstream SSE events into canonical events, keeping its own per-stream state. */
export interface StreamDecoder {
  push(event: { event?: string; data: string }): CanonicalEvent[]
  /** The upstream ended: close what is open */
  end(): CanonicalEvent[]
}

/**
 * Why a stream ends with an error event: the upstream failed (`upstream`),
 * or the balance or the key's spend cap ran out while it streamed (`quota`),
 * told as each format tells an exhausted quota (OpenAI's insufficient_quota,
 * Anthropic's billing_error, Google's 402 as the gateway answers it).
 */
export type StreamFailureKind = 'upstream' | 'quota'

/** Turns canonical events into the client's wire bytes, keeping its own per-stream state. */
export interface StreamEncoder {
  readonly contentType: string
  push(event: CanonicalEvent): string
  /**
   * Final bytes; `error` when the stream ends in failure: the upstream's
   * (`upstream`, the default), or the request's money ran out mid-stream
   * (`quota`: the balance or the key's spend cap, metering/stream_hold.ts)
   */
  end(error?: string, kind?: StreamFailureKind): string
}

export const ZERO_CANONICAL_USAGE: Readonly<CanonicalUsage> = Object.freeze({
  inputTokens: 0,
  outputTokens: 0,
  cacheReadTokens: 0,
  cacheWriteTokens: 0,
  reasoningTokens: 0,
})

/** A token count an upstream reported: NaN when it cannot be believed (metering/token_counts.ts). */
export const num = reportedTokens

/** Does a usage report hold its main counts at all? `usage: {}` or all-null counts are no report (estimated instead of free). */
export const countsReported = (input: unknown, output: unknown): boolean => holdsCount(input) || holdsCount(output)

/**
 * Canonical usage from counts read with `num`, or null when one of them
 * cannot be believed (negative, beyond MAX_TOKEN_COUNT, the prompt with its
 * cache parts added included): the answer is then billed on the gateway's
 * own count. Parts are kept within their whole (cached within the prompt,
 * reasoning within the output), so no encoder's subtraction goes negative.
 */
export function usageOfCounts(input: number, output: number, cacheRead: number, cacheWrite: number, reasoning: number): CanonicalUsage | null {
  if (!(input <= MAX_TOKEN_COUNT && output <= MAX_TOKEN_COUNT && cacheRead >= 0 && cacheWrite >= 0 && reasoning >= 0)) return null
  const cacheReadTokens = Math.min(cacheRead, input)
  return {
    inputTokens: input,
    outputTokens: output,
    cacheReadTokens,
    cacheWriteTokens: Math.min(cacheWrite, input - cacheReadTokens),
    reasoningTokens: Math.min(reasoning, output),
  }
}

/**
 * `known` with its web searches made `searches`, as a new object (the relays
 * compare usages by identity). With no counts known yet (a Responses stream
 * before its terminal event, a Gemini stream before its last chunk), counts of
 * 0: a partial usage, whose tokens the tokenizer counts if the stream ends
 * without the upstream's final one, and whose searches are billed.
 */
export function withWebSearches(known: CanonicalUsage | null, searches: number): CanonicalUsage {
  const base = known ?? { inputTokens: 0, outputTokens: 0, cacheReadTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0 }
  return { ...base, webSearches: searches }
}

/**
 * Adds the audio tokens an upstream reported among a usage's counts, each
 * read with `num` and kept within its whole (a count that cannot be believed
 * is no audio: the tokens are still billed, at the token prices). Usage
 * without audio is returned as it is, with nothing added.
 */
export function withAudioTokens(usage: CanonicalUsage | null, input: number, cachedInput: number, output: number): CanonicalUsage | null {
  if (usage === null || !(input > 0 || output > 0)) return usage
  const audioInput = input > 0 ? Math.min(input, usage.inputTokens) : 0
  if (audioInput > 0) usage.audioInputTokens = audioInput
  if (audioInput > 0 && cachedInput > 0) usage.cachedAudioTokens = Math.min(cachedInput, audioInput, usage.cacheReadTokens)
  if (output > 0) usage.audioOutputTokens = Math.min(output, usage.outputTokens)
  return usage
}

/**
 * Adds the image tokens an upstream reported among the output (kept within
 * it; a count that cannot be believed is none: the tokens are still billed,
 * at the output price). Usage without them is returned as it is.
 */
export function withImageTokens(usage: CanonicalUsage | null, output: number): CanonicalUsage | null {
  if (usage === null || !(output > 0)) return usage
  usage.imageOutputTokens = Math.min(output, usage.outputTokens)
  return usage
}

/**
 * The note an encoder whose format has no image output (Anthropic Messages,
 * Responses) writes in an image's place: said, not silently dropped.
 */
export function imageOmittedNote(part: ImagePart): string {
  const what = part.url ? 'an image (by URL)' : `an image (${part.mediaType ?? 'image/png'}, ${Math.round(((part.data?.length ?? 0) * 3) / 4 / 1024)} KB)`
  return `[The model answered with ${what}, which this API format cannot carry; call it through /v1/chat/completions (message.images) or Gemini's generateContent to receive it.]`
}

/** `data:image/png;base64,AAAA` -> { mediaType, data }; anything else is a URL. */
export function imageFromUrl(url: string, detail?: string): ImagePart {
  const match = /^data:([^;,]+)?(;base64)?,(.*)$/s.exec(url)
  if (match && match[2]) return { type: 'image', mediaType: match[1] || 'image/png', data: match[3], detail }
  return { type: 'image', url, detail }
}

export function imageToUrl(part: ImagePart): string {
  if (part.url) return part.url
  return `data:${part.mediaType ?? 'image/png'};base64,${part.data ?? ''}`
}

const AUDIO_FORMATS: Record<string, string> = { wav: 'audio/wav', mp3: 'audio/mp3' }
const EXTENSIONS: Record<string, string> = {
  'application/pdf': 'pdf',
  'text/plain': 'txt',
  'text/markdown': 'md',
  'text/csv': 'csv',
  'text/html': 'html',
  'audio/wav': 'wav',
  'audio/mp3': 'mp3',
  'audio/mpeg': 'mp3',
}

/**
 * An attachment given as a data: URL, raw base64 or a URL (OpenAI's
 * `file_data`, which OpenRouter also takes as a URL): an image part for
 * images, else a file part. Raw base64 takes its type from the file name.
 */
export function attachmentFromData(value: string, filename?: string, cacheControl?: CacheControl): ImagePart | FilePart {
  const match = /^data:([^;,]+)?(;base64)?,(.*)$/s.exec(value)
  let part: FilePart
  if (match) {
    const mediaType = (match[1] || mediaTypeOfName(filename)).toLowerCase()
    const data = match[2] ? match[3] : Buffer.from(decodeURIComponent(match[3]), 'utf8').toString('base64')
    part = { type: 'file', mediaType, data }
  } else if (/^https?:\/\//i.test(value)) {
    part = { type: 'file', mediaType: mediaTypeOfName(filename ?? value.split(/[?#]/)[0]), url: value }
  } else {
    part = { type: 'file', mediaType: mediaTypeOfName(filename), data: value }
  }
  if (part.mediaType.startsWith('image/')) {
    return part.url ? { type: 'image', url: part.url, cacheControl } : { type: 'image', mediaType: part.mediaType, data: part.data, cacheControl }
  }
  if (filename) part.filename = filename
  if (cacheControl) part.cacheControl = cacheControl
  return part
}

/** The media type a file name says (`report.pdf`); a PDF when it says nothing known. */
export function mediaTypeOfName(name: string | undefined, fallback = 'application/pdf'): string {
  const ext = /\.([a-z0-9]+)$/i.exec(name ?? '')?.[1]?.toLowerCase() ?? ''
  return TYPE_OF_EXTENSION[ext] ?? fallback
}

/** File extension -> media type (images, and the attachments EXTENSIONS names). */
const TYPE_OF_EXTENSION: Record<string, string> = {
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  png: 'image/png',
  gif: 'image/gif',
  webp: 'image/webp',
  heic: 'image/heic',
  heif: 'image/heif',
  ...Object.fromEntries(Object.entries(EXTENSIONS).map(([type, ext]) => [ext, type]).reverse()),
}

/** OpenAI's `input_audio.format` (wav, mp3) as a media type. */
export function audioMediaType(format: unknown): string {
  const name = String(format ?? 'wav').toLowerCase()
  return AUDIO_FORMATS[name] ?? `audio/${name}`
}

/** The `input_audio.format` OpenAI takes for a media type (wav, mp3), or null. */
export function audioFormat(mediaType: string): 'wav' | 'mp3' | null {
  const type = mediaType.toLowerCase()
  if (type === 'audio/wav' || type === 'audio/x-wav' || type === 'audio/wave' || type === 'audio/vnd.wave') return 'wav'
  if (type === 'audio/mp3' || type === 'audio/mpeg' || type === 'audio/mpeg3' || type === 'audio/x-mp3') return 'mp3'
  return null
}

/** A file part as a base64 data: URL. */
export function fileToDataUrl(part: FilePart): string {
  return `data:${part.mediaType};base64,${part.data ?? ''}`
}

/** A file name for a file part (OpenAI wants one with `file_data`). */
export function fileName(part: FilePart): string {
  return part.filename || `file.${EXTENSIONS[part.mediaType] ?? part.mediaType.split('/')[1]?.replace(/[^a-z0-9]/gi, '') ?? 'bin'}`
}

/** The text of a plain-text document (text/*, given as data), else null. */
export function fileText(part: FilePart): string | null {
  if (!part.mediaType.startsWith('text/') || part.data === undefined) return null
  return Buffer.from(part.data, 'base64').toString('utf8')
}

/** What an attachment is, for a message that names it (`an audio/wav attachment`, `an OpenAI file_id`). */
export function describeFile(part: FilePart): string {
  if (part.fileId) return `a file uploaded to ${part.fileId.provider === 'openai' ? 'OpenAI' : 'Anthropic'} (file id ${part.fileId.id})`
  return `an attachment of type ${part.mediaType}${part.filename ? ` ('${part.filename}')` : ''}${part.url ? ' given by URL' : ''}`
}

/**
 * The client's 400 for an attachment the upstream's wire format cannot
 * carry: said, never dropped (an answer to a prompt without its attachment
 * looks right and is wrong).
 */
export function unsupportedAttachment(part: FilePart, upstream: string, why: string): GatewayError {
  return GatewayError.invalidRequest(
    `This request has ${describeFile(part)}, which cannot be sent to this model's upstream (${upstream}): ${why}`,
    'unsupported_attachment'
  )
}

/** Text of a tool result's content. */
export function resultText(content: ToolResultPart['content']): string {
  if (typeof content === 'string') return content
  return content.map((p) => (p.type === 'text' ? p.text : '')).join('')
}

/** Every completion text of a response, for counting when an upstream reported no usage. */
export function responseText(response: CanonicalResponse): string {
  let text = ''
  for (const part of response.content) {
    if (part.type === 'text' || part.type === 'reasoning') text += part.text
    else if (part.type === 'tool_call') text += part.name + part.arguments
  }
  return text
}

/**
 * An id for a tool call its upstream gave none (Gemini): unique per call, not
 * per response, since the client keeps it in its history and a conversation
 * holds many calls (Anthropic answers 400 "`tool_use` ids must be unique" to
 * a repeat). 24 base64url characters: Anthropic's id pattern
 * (`^[a-zA-Z0-9_-]+$`) and OpenAI's 40-character limit, whatever the tool's
 * name. Encoders find a result's tool name through its call (toolNamesById).
 */
export function newToolCallId(): string {
  return `call_${randomBytes(18).toString('base64url')}`
}

/** Tool-call id -> tool name, over a conversation (Gemini needs names for results). */
export function toolNamesById(messages: CanonicalMessage[]): Map<string, string> {
  const names = new Map<string, string>()
  for (const message of messages) {
    for (const part of message.content) if (part.type === 'tool_call') names.set(part.id, part.name)
  }
  return names
}

/** A non-stream response replayed as stream events (an upstream that ignored `stream`). */
export function eventsOfResponse(response: CanonicalResponse): CanonicalEvent[] {
  const events: CanonicalEvent[] = [{ type: 'start', id: response.id, model: response.model }]
  response.content.forEach((part, index) => {
    if (part.type === 'image') {
      events.push({ type: 'image', image: part })
      return
    } else if (part.type === 'text') {
      events.push({ type: 'block_start', index, block: part.refusal ? { type: 'text', refusal: true } : { type: 'text' } })
      for (const citation of part.citations ?? []) events.push({ type: 'citation', index, citation })
      events.push({ type: 'delta', index, kind: 'text', value: part.text })
    } else if (part.type === 'reasoning') {
      events.push({ type: 'block_start', index, block: { type: 'reasoning', id: part.id } })
      if (part.text) events.push({ type: 'delta', index, kind: 'reasoning', value: part.text })
      if (part.redacted) events.push({ type: 'redacted', index, value: part.redacted })
      if (part.signature) events.push({ type: 'signature', index, value: part.signature })
    } else {
      events.push({
        type: 'block_start',
        index,
        block: { type: 'tool_call', id: part.id, name: part.name, custom: part.custom },
      })
      events.push({ type: 'delta', index, kind: 'arguments', value: part.arguments })
    }
    events.push({ type: 'block_stop', index })
  })
  for (const query of response.searchQueries ?? []) events.push({ type: 'search', query })
  if (response.usage) events.push({ type: 'usage', usage: response.usage })
  events.push({ type: 'stop', reason: response.stopReason, sequence: response.stopSequence })
  return events
}

/** Collects a canonical stream into a response (the non-stream answer of a streamed upstream). */
export class ResponseCollector {
  id = ''
  model = ''
  content: CanonicalResponse['content'] = []
  stopReason: StopReason = 'end_turn'
  stopSequence?: string
  usage: CanonicalUsage | null = null
  searchQueries?: string[]
  #blocks = new Map<number, CanonicalResponse['content'][number]>()

  push(event: CanonicalEvent) {
    switch (event.type) {
      case 'start':
        this.id = event.id
        this.model = event.model
        break
      case 'block_start': {
        const b = event.block
        const part: CanonicalResponse['content'][number] =
          b.type === 'text'
            ? b.refusal
              ? { type: 'text', text: '', refusal: true }
              : { type: 'text', text: '' }
            : b.type === 'reasoning'
              ? { type: 'reasoning', text: '', id: b.id }
              : { type: 'tool_call', id: b.id, name: b.name, arguments: '', custom: b.custom }
        this.#blocks.set(event.index, part)
        this.content.push(part)
        break
      }
      case 'delta': {
        const part = this.#blocks.get(event.index)
        if (!part || part.type === 'image') break
        if (part.type === 'tool_call') part.arguments += event.value
        else part.text += event.value
        break
      }
      case 'signature':
      case 'redacted': {
        const part = this.#blocks.get(event.index)
        if (part?.type === 'reasoning') part[event.type === 'signature' ? 'signature' : 'redacted'] = event.value
        else if (part?.type === 'tool_call' && event.type === 'signature') part.signature = event.value
        break
      }
      case 'image':
        this.content.push(event.image)
        break
      case 'citation': {
        const part = this.#blocks.get(event.index)
        if (part?.type === 'text' && (part.citations?.length ?? 0) < MAX_CITATIONS) (part.citations ??= []).push(event.citation)
        break
      }
      case 'search':
        this.searchQueries = withSearchQuery(this.searchQueries, event.query)
        break
      case 'usage':
        this.usage = event.usage
        break
      case 'stop':
        this.stopReason = event.reason
        this.stopSequence = event.sequence
        break
    }
  }

  response(): CanonicalResponse {
    return {
      id: this.id,
      model: this.model,
      content: this.content,
      stopReason: this.stopReason,
      stopSequence: this.stopSequence,
      usage: this.usage,
      ...(this.searchQueries && { searchQueries: this.searchQueries }),
    }
  }
}

/**
 * A text part's citations kept, and their fields' length: a cited block's
 * citations are held until it closes (a stream's span is known then), so an
 * upstream streaming thousands of them, or megabytes of `cited_text` (Anthropic's
 * is at most 150 characters), must not make that memory unbounded.
 */
export const MAX_CITATIONS = 256
const CITED_TEXT_CHARS = 1000
const CITED_TITLE_CHARS = 1000
const CITED_URL_CHARS = 8192

/**
 * An Anthropic citation as a URL citation: a web search result's location
 * (`web_search_result_location`, the web_search tool's); null for the other
 * kinds (a document's char or page location), which cite no URL.
 */
export function urlCitationOf(citation: any): UrlCitation | null {
  if (citation?.type !== 'web_search_result_location') return null
  return boundedCitation(citation.url, citation.title, citation.cited_text)
}

/** The search queries an answer keeps, and their length: a hostile upstream's thousands of searches stay a short list */
export const MAX_SEARCH_QUERIES = 64
const SEARCH_QUERY_CHARS = 1000

/** `queries` with one more (made when there was none), if a string within the bounds above; unchanged otherwise */
export function withSearchQuery(queries: string[] | undefined, query: unknown): string[] | undefined {
  if (typeof query !== 'string' || query === '' || (queries?.length ?? 0) >= MAX_SEARCH_QUERIES) return queries
  ;(queries ??= []).push(query.slice(0, SEARCH_QUERY_CHARS))
  return queries
}

/** A cited page from any wire's fields, within the bounds above; null for no URL (or one past them) */
export function boundedCitation(url: unknown, title: unknown, citedText: unknown): UrlCitation | null {
  if (typeof url !== 'string' || url === '' || url.length > CITED_URL_CHARS) return null
  const found: UrlCitation = { url }
  if (typeof title === 'string') found.title = title.slice(0, CITED_TITLE_CHARS)
  if (typeof citedText === 'string') found.citedText = citedText.slice(0, CITED_TEXT_CHARS)
  return found
}
