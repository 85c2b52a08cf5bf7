import type {
  CanonicalEvent,
  CanonicalRequest,
  CanonicalResponse,
  CanonicalUsage,
  DialectName,
  StreamDecoder,
  StreamEncoder,
  StreamFailureKind,
} from '#gateway/dialects/canonical'
import type { SseEvent } from '#gateway/sse/sse_parser'
import type { TokenUsage } from '#gateway/types'

/** What an upstream needs said differently within its dialect (vendor configuration). */
export interface EncodeHints {
  /** OpenAI's own API wants max_completion_tokens (reasoning models reject max_tokens) */
  maxTokensField?: 'max_tokens' | 'max_completion_tokens'
  /**
   * The vendor reads Anthropic's `cache_control` marks on chat content parts
   * (OpenRouter relays them to Anthropic and Gemini models). Elsewhere they
   * are dropped: strict OpenAI-compatible servers (Google's, Mistral's,
   * NVIDIA NIM) refuse the unknown field with a 400.
   */
  cacheControl?: boolean
  /**
   * The vendor's reasoning models, by upstream model name. When set, a
   * translated request sends reasoning effort only to those (OpenAI answers
   * 400 "Unsupported parameter: 'reasoning_effort'" on GPT-4o and GPT-4.1, so
   * Claude Code's thinking must not reach them) and sends them no sampling
   * parameters they refuse (`top_p`, a `temperature` other than 1).
   */
  reasoningModels?: RegExp
  /**
   * The vendor reads the model's reasoning back as `reasoning_content` on
   * assistant messages. DeepSeek (thinking mode, on by default), Moonshot's
   * Kimi and Z.ai's GLM answer 400 when a turn that called tools comes back
   * without it ("The reasoning_content in the thinking mode must be passed
   * back to the API"); OpenAI's and Google's endpoints refuse the unknown
   * field. `always`: the field goes on every assistant message that called
   * tools, empty when the client kept no reasoning (DeepSeek checks that it is
   * there); `when_known`: only where the client sent reasoning back.
   */
  reasoningContent?: 'always' | 'when_known'
  /**
   * The vendor's chat API refuses Anthropic-style `thinking` (OpenAI, Azure:
   * "Unrecognized request argument supplied: thinking"), which clients set up
   * for LiteLLM send on chat completions (Cline). Passed through, it is taken
   * out, and its budget goes to the vendor's reasoning models as
   * `reasoning_effort` (unless the client set one), as LiteLLM maps it.
   */
  refusesThinking?: boolean
  /**
   * The vendor is OpenRouter, which reads its own chat fields (`reasoning`,
   * `provider`, `transforms`, `plugins`, `usage`): they go to it as the
   * client sent them. Every other vendor gets them taken out (OpenAI answers
   * 400 "Unrecognized request argument"), `reasoning` turned into
   * `reasoning_effort` where the model takes one.
   */
  openRouterFields?: boolean
  /**
   * The `reasoning_effort` that turns thinking off on the vendor's chat API
   * (Google's OpenAI-compatible endpoint: `none`), for a `-nothinking` model
   * name (routing/model_suffix.ts); without it no effort is sent.
   */
  thinkingOffEffort?: string
}

/** What a translated request may carry to this upstream model (see EncodeHints.reasoningModels). */
export function reasoningRules(model: string, hints: EncodeHints | undefined): { effort: boolean; sampling: boolean } {
  if (!hints?.reasoningModels) return { effort: true, sampling: true }
  const reasoning = hints.reasoningModels.test(model)
  return { effort: reasoning, sampling: !reasoning }
}

/** What the client asked for, as far as a stream encoder needs to know. */
export interface EncoderOptions {
  /** The model name the client used */
  model: string
  /** OpenAI chat: the client asked for the usage chunk */
  includeUsage?: boolean
  /** Gemini: stream as one JSON array instead of SSE */
  jsonArray?: boolean
  /** OpenAI chat: OpenRouter's `reasoning.exclude`: the reasoning text is left out of the answer (still billed) */
  reasoningExcluded?: boolean
  /**
   * OpenAI chat: OpenRouter's usage accounting (`usage: {include: true}`):
   * the answer's usage gets `cost`, USD, what the gateway bills for these
   * counts. Null or absent when the client did not ask (nothing added).
   */
  usageCost?: ((usage: CanonicalUsage) => number) | null
  /**
   * The dialect a translated answer comes from: OpenAI chat writes Claude's
   * thinking signatures and redacted thinking, and Gemini's call
   * signatures, as OpenRouter's `reasoning_details` by it.
   */
  upstream?: DialectName
  /**
   * Responses, translated, `store` not false (responses_store/): the answer
   * is stored under this gateway id, says `store: true` and its
   * previous_response_id and instructions; a stream's encoder leaves the
   * finished response object in `final` (for the store, once it is sent).
   */
  stored?: StoredAnswer
}

/** A Responses answer the gateway stores (EncoderOptions.stored) */
export interface StoredAnswer {
  id: string
  previousResponseId: string | null
  instructions: string | null
  /** Run in the background (responses_store/background_runs.ts): the response says so */
  background?: boolean
  final?: Record<string, any>
}

/**
 * How a same-dialect stream is relayed: which events must be parsed (usage,
 * mapped model), how usage accumulates, and how a mid-stream failure is told.
 * Everything else passes through as received.
 */
export interface PassThroughRules {
  /** Must this event be parsed to read usage? (cheap string checks only) */
  carriesUsage(event: SseEvent): boolean
  /** Folds a parsed event's usage into what is known so far */
  readUsage(parsed: any, known: CanonicalUsage | null): CanonicalUsage | null
  /** Is the usage of this event the final count? (default: yes) */
  isFinal?(parsed: any): boolean
  /** Rewrites the upstream's model name to the client's; true when something changed */
  rewriteModel(parsed: any, model: string): boolean
  /** An event the client did not ask for (OpenAI's usage-only chunk) */
  isUnrequested?(parsed: any, options: EncoderOptions): boolean
  /**
   * Might this event need amend() (cheap string checks only)? Asked only
   * when the client wants something amended (EncoderOptions.reasoningExcluded,
   * usageCost), so an ordinary stream pays nothing for it.
   */
  mayAmend?(event: SseEvent, options: EncoderOptions): boolean
  /**
   * Changes a parsed event, or a whole answer, as the client asked:
   * reasoning left out, usage with its cost (`usage`: the counts known so
   * far, as the meter bills them). True when something changed.
   */
  amend?(parsed: any, options: EncoderOptions, usage: CanonicalUsage | null): boolean
  /**
   * Takes out of a parsed event, or a whole answer, what the upstream says of
   * its own bill to the operator (upstream/upstream_cost.ts), whatever the
   * client asked; true when something was taken. Called on events parsed
   * anyway (usage, a mapped model): an ordinary chunk pays nothing for it.
   */
  dropUpstreamCost?(parsed: any): boolean
  /** The event that tells the client the stream failed mid-way: the upstream did (the default), or the money ran out (`quota`) */
  errorEvent(message: string, kind?: StreamFailureKind): SseEvent
  /**
   * The upstream's own mid-stream error (OpenAI's `{"error":...}` chunk,
   * Anthropic's `event: error`): its message, else null. Relayed as it came;
   * the usage row says the stream was interrupted. Cheap string checks first.
   */
  upstreamError?(event: SseEvent): string | null
  /**
   * The body to send a same-dialect upstream when the client's bytes cannot
   * go as they are (another model name, usage to ask for); null when they can.
   * Given the client's bytes (`raw`), it may return the bytes to send, edited
   * in place of a re-serialised copy.
   */
  upstreamBody(
    body: Record<string, any>,
    upstreamModel: string,
    clientModel: string,
    stream: boolean,
    raw?: Buffer,
    /** The channel's vendor hints, given when the body may need one of their renames (a `max_tokens`) */
    hints?: EncodeHints
  ): Record<string, any> | Buffer | null
  /** A final sentinel the relay writes through verbatim (`[DONE]`) */
  sentinel?: string
  /**
   * The event that ends the stream (`[DONE]`, `message_stop`): the relay
   * writes it together with the end of the response, one write instead of two.
   */
  isLast?(event: SseEvent): boolean
  /**
   * How a stream of this format the gateway stops early ends cleanly (the
   * sensitive-word answer check: content_filter_stream.ts). One per stream,
   * made only when answers are checked.
   */
  streamCut(): StreamCut
}

/**
 * The clean end of a same-format stream the gateway stops before the
 * upstream did: it sees each event relayed (with what the format's decoder
 * made of it) and then writes the events that end the stream in the
 * format, with a stop its SDKs read as a content filter (chat's
 * finish_reason "content_filter", Anthropic's stop_reason "refusal",
 * Gemini's finishReason "SAFETY", Responses' response.incomplete), as the
 * translated stream's encoder writes a canonical content_filter stop.
 */
export interface StreamCut {
  /** An event that went to the client, and its canonical events */
  seen(event: SseEvent, decoded: readonly CanonicalEvent[]): void
  /** The events that end the stream: the usage known so far (null: none), the model the client knows (null: the upstream's) */
  end(usage: CanonicalUsage | null, model: string | null): SseEvent[]
}

/**
 * One wire format: a decoder into the canonical form and an encoder out of
 * it, for requests, responses and streams, plus its pass-through rules.
 */
export interface Dialect {
  readonly name: DialectName
  decodeRequest(body: Record<string, any>): CanonicalRequest
  encodeRequest(request: CanonicalRequest, model: string, hints?: EncodeHints): Record<string, unknown>
  decodeResponse(body: any): CanonicalResponse
  /** `upstream`: the dialect the answer was translated from (OpenAI chat writes its reasoning's signatures by it) */
  encodeResponse(response: CanonicalResponse, model: string, upstream?: DialectName): Record<string, unknown>
  streamDecoder(): StreamDecoder
  streamEncoder(options: EncoderOptions): StreamEncoder
  /** Usage of a non-stream response body, without decoding all of it */
  usageOfBody(body: any): CanonicalUsage | null
  /**
   * Does a 2xx body hold the dialect's answer member (chat's `choices`, Anthropic's `content`,
   * Gemini's `candidates` or a blocked prompt's `promptFeedback`, Responses' `output`)? One that
   * does not is not translated into an empty answer: it is the upstream's failure.
   */
  isAnswer(body: any): boolean
  passThrough: PassThroughRules
  /** The dialect's answer to a token-counting call, when it has one */
  encodeTokenCount?(tokens: number): Record<string, unknown>
  /**
   * Does a 2xx token-counting body hold its count (Anthropic's `input_tokens`, Gemini's
   * `totalTokens`)? One that does not is the upstream's failure (count_tokens.ts fails it over).
   */
  isTokenCount?(body: any): boolean
}

export function toTokenUsage(usage: CanonicalUsage): TokenUsage {
  const tokens: TokenUsage = {
    promptTokens: usage.inputTokens,
    completionTokens: usage.outputTokens,
    totalTokens: usage.inputTokens + usage.outputTokens,
    cachedTokens: usage.cacheReadTokens,
    cacheWriteTokens: usage.cacheWriteTokens,
    reasoningTokens: usage.reasoningTokens,
    estimated: false,
  }
  return withPricedExtras(tokens, usage)
}

/**
 * What else the usage reports that is billed apart from plain tokens (one-hour
 * cache writes, web searches, audio and image tokens), onto `tokens`: the bill
 * (toTokenUsage) and a stream's hold (stream_hold.ts) price them alike.
 */
export function withPricedExtras(tokens: TokenUsage, usage: CanonicalUsage): TokenUsage {
  if (usage.cacheWrite1hTokens) tokens.cacheWrite1hTokens = usage.cacheWrite1hTokens
  if (usage.webSearches) tokens.webSearches = usage.webSearches
  // Audio in a chat or Gemini answer (rare): its tokens at the model's audio prices, as the Realtime API's.
  if (usage.audioInputTokens || usage.audioOutputTokens) {
    if (usage.audioInputTokens) tokens.audioPromptTokens = usage.audioInputTokens
    if (usage.cachedAudioTokens) tokens.cachedAudioTokens = usage.cachedAudioTokens
    if (usage.audioOutputTokens) tokens.audioCompletionTokens = usage.audioOutputTokens
  }
  // Images an image model made: their tokens at the model's image output price.
  if (usage.imageOutputTokens) tokens.imageCompletionTokens = usage.imageOutputTokens
  return tokens
}

/** Serialises one SSE event (named or not). */
export function sse(data: unknown, event?: string): string {
  const payload = typeof data === 'string' ? data : JSON.stringify(data)
  return event ? `event: ${event}\ndata: ${payload}\n\n` : `data: ${payload}\n\n`
}

/** The message of an event whose JSON carries an `error` object (or is one, Anthropic's), else null. */
export function errorMessageOf(data: string): string | null {
  const parsed = parseJson(data)
  const error = parsed?.error
  if (!error || typeof error !== 'object') return null
  return typeof error.message === 'string' && error.message ? error.message : 'upstream error'
}

/** Parses JSON text, or null. */
export function parseJson(text: string): any {
  try {
    return JSON.parse(text)
  } catch {
    return null
  }
}

/** A token count an answer can be relayed with: a non-negative integer (not a string, not a fraction). */
export function isCount(value: unknown): boolean {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0
}
