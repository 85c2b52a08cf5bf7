import type { PriceInfo } from '#gateway/types'
import { isChatSearchModel } from '#gateway/dialects/openai_chat/search_models'

/**
 * What a request may cost, held on the balance while it runs. Cheap on
 * purpose (no tokenizer on the hot path): prompt tokens are bounded by the
 * body size (~1 token per 3 bytes of JSON is an over-estimate for text), the
 * completion by the request's own max_tokens, else a default allowance;
 * plus the model's per-request price, if it has one.
 */
export const DEFAULT_COMPLETION_ALLOWANCE = Number(process.env.RESERVE_COMPLETION_TOKENS) || 1024

export function estimateCostPico(price: PriceInfo | null, bodyBytes: number, body: Record<string, any>): bigint {
  return holdAtPrice(price, promptTokenHold(bodyBytes), completionTokenHold(body))
}

/**
 * The hold for a request's estimated tokens (and the images it asks for) at
 * a price (a fallback model's price is another).
 */
export function holdAtPrice(price: PriceInfo | null, promptTokens: number, completionTokens: number, images = 0, searches = 0): bigint {
  if (!price) return 0n
  let hold = BigInt(promptTokens) * price.inputPico + BigInt(completionTokens) * price.outputPico
  if (images > 0 && price.perImagePico) hold += BigInt(images) * price.perImagePico
  if (searches > 0 && price.perWebSearchPico) hold += BigInt(searches) * price.perWebSearchPico
  // A per-request price is held once (a Cohere rerank's extra search units are settled at close).
  return price.perRequestPico ? hold + price.perRequestPico : hold
}

/**
 * The request asks for a spoken answer (chat's `modalities: ["text",
 * "audio"]`, Gemini's `responseModalities: ["AUDIO"]`): its answer's tokens
 * are audio tokens, which a model with audio prices bills at its audio output
 * price (8x the text price for gpt-audio), so they are held at it.
 */
export function asksForAudio(body: Record<string, any>): boolean {
  return listHolds(body.modalities, 'audio') || listHolds(geminiModalities(body), 'audio')
}

/**
 * Gemini's `generationConfig`: Google's REST API takes it (and each of its
 * fields) in camelCase or snake_case, and a pass-through body reaches Google
 * as the client wrote it, so the holds read either spelling.
 */
function geminiConfig(body: Record<string, any>): Record<string, any> | undefined {
  const config = body.generationConfig ?? body.generation_config
  return config !== null && typeof config === 'object' ? config : undefined
}

function geminiModalities(body: Record<string, any>): unknown {
  const config = geminiConfig(body)
  return config === undefined ? undefined : (config.responseModalities ?? config.response_modalities)
}

function listHolds(list: unknown, wanted: string): boolean {
  if (!Array.isArray(list)) return false
  for (const item of list) if (typeof item === 'string' && item.toLowerCase() === wanted) return true
  return false
}

/**
 * The answer may hold images: the request asks for them (chat's `modalities:
 * ["image", "text"]`, Gemini's `responseModalities: ["IMAGE"]`) or names no
 * modalities at all (Google's image models answer with images by default).
 * Only a model with an image output price is held differently for it
 * (holdPrice), so for every other model this changes nothing.
 */
export function mayAnswerImages(body: Record<string, any>): boolean {
  const chat = body.modalities
  const gemini = geminiModalities(body)
  if (!Array.isArray(chat) && !Array.isArray(gemini)) return true
  return listHolds(chat, 'image') || listHolds(gemini, 'image')
}

/**
 * The price a request's hold is taken at: the model's, with the audio output
 * price for the answer's tokens when the request asks for a spoken answer
 * (as a Realtime response is held), or the image output price when the
 * answer may be an image (an image model's $30 per 1M against $2.50 for its
 * text), when that price is the higher.
 */
export function holdPrice(price: PriceInfo | null, answer: { audioAnswer: boolean; imageAnswer: boolean }): PriceInfo | null {
  if (price === null) return price
  let output = price.outputPico
  if (answer.audioAnswer && price.audioOutputPico !== undefined && price.audioOutputPico > output) output = price.audioOutputPico
  if (answer.imageAnswer && price.imageOutputPico !== undefined && price.imageOutputPico > output) output = price.imageOutputPico
  return output === price.outputPico ? price : { ...price, outputPico: output }
}

/** Searches held for a web search tool without `max_uses` (Claude Code's WebSearch sets 8) */
export const DEFAULT_WEB_SEARCH_HOLD = 10
/** A larger max_uses holds no more (it only refuses the client's own requests sooner) */
export const MAX_WEB_SEARCH_HOLD = 1000

/**
 * The server-side web searches a request may make, for the holds: each web
 * search tool's `max_uses` (Anthropic's `web_search_*`; OpenAI Responses'
 * `web_search*` has none), else DEFAULT_WEB_SEARCH_HOLD; as many for each of
 * Gemini's Google Search tools (`googleSearch`, 1.5's `googleSearchRetrieval`,
 * either spelling: grounding, billed per prompt or, Gemini 3, per query); one
 * for chat's `web_search_options` or a chat search model named (its call,
 * billed once: openai_chat/search_models.ts). The
 * searches are billed per search (pricing.ts). The provider bills them apart
 * from the tokens, so a hold of the tokens alone let concurrent searching
 * calls take far more than the balance.
 */
export function webSearchHold(body: Record<string, any>): number {
  let searches = 0
  const tools = body.tools
  if (Array.isArray(tools)) {
    for (const tool of tools) {
      if (tool === null || typeof tool !== 'object') continue
      if (typeof tool.type === 'string' ? tool.type.startsWith('web_search') : groundsWithSearch(tool)) {
        searches += Math.min(positiveInt(tool.max_uses) ?? DEFAULT_WEB_SEARCH_HOLD, MAX_WEB_SEARCH_HOLD)
      }
    }
  }
  if ((body.web_search_options !== null && typeof body.web_search_options === 'object') || isChatSearchModel(body.model)) searches += 1
  return searches
}

/** A Gemini tool that grounds the answer with Google Search (the REST API takes both spellings) */
export function groundsWithSearch(tool: Record<string, any>): boolean {
  return (
    tool.googleSearch !== undefined ||
    tool.google_search !== undefined ||
    tool.googleSearchRetrieval !== undefined ||
    tool.google_search_retrieval !== undefined
  )
}

/** The images an images request asks for, for the holds: its `n` (OpenAI's default 1). */
export function imageHold(body: Record<string, any>): number {
  return positiveInt(body.n) ?? 1
}

/** The prompt tokens a request may use, for the holds: at most one per 3 bytes of its body. */
export function promptTokenHold(bodyBytes: number): number {
  return Math.ceil(bodyBytes / 3)
}

/**
 * The completion tokens a request may use, for the holds: its own max_tokens
 * (any dialect's), else the default allowance, for each choice it asks for
 * (chat's and completions' `n`, Gemini's `candidateCount`: max_tokens bounds
 * one choice, and every choice is billed).
 */
export function completionTokenHold(body: Record<string, any>): number {
  const gemini = geminiConfig(body)
  return (maxTokensAsked(body, gemini) ?? DEFAULT_COMPLETION_ALLOWANCE) * choicesAsked(body, gemini)
}

/**
 * The output tokens of one image from Google's image models (a 1024x1024
 * image of gemini-2.5-flash-image; gemini-3-pro-image's are 1,120 up to 2K).
 */
export const IMAGE_ANSWER_TOKENS = 1290

/**
 * The least completion tokens an answer that may be an image holds when the
 * request sets no max tokens: one image per choice. The default allowance
 * (1,024) is less than one image, so a balance between the two let such a
 * request in and its image took the balance below zero. Used only for a
 * model whose image output price is the higher (access_policy.ts), as
 * holdPrice does; 0 when the request bounds its own tokens.
 */
export function imageAnswerTokenHold(body: Record<string, any>): number {
  if (!mayAnswerImages(body)) return 0
  const gemini = geminiConfig(body)
  return maxTokensAsked(body, gemini) === null ? IMAGE_ANSWER_TOKENS * choicesAsked(body, gemini) : 0
}

/** The request's own bound of one choice's tokens, in any dialect's spelling (null: none) */
function maxTokensAsked(body: Record<string, any>, gemini: Record<string, any> | undefined): number | null {
  return (
    positiveInt(body.max_completion_tokens) ??
    positiveInt(body.max_tokens) ??
    positiveInt(body.max_output_tokens) ??
    positiveInt(gemini?.maxOutputTokens ?? gemini?.max_output_tokens)
  )
}

/** OpenAI answers at most 128 choices: a larger `n` is refused upstream, and must not hold more. */
const MAX_CHOICES = 128

function choicesAsked(body: Record<string, any>, gemini: Record<string, any> | undefined): number {
  const n = positiveInt(body.n) ?? positiveInt(gemini?.candidateCount ?? gemini?.candidate_count) ?? 1
  return n > MAX_CHOICES ? MAX_CHOICES : n
}

function positiveInt(value: unknown): number | null {
  return typeof value === 'number' && Number.isInteger(value) && value > 0 ? value : null
}
