import type { Gateway } from '#gateway/gateway'
import { modelAllowed } from '#gateway/access_policy'
import { priceForPlan } from '#gateway/metering/pricing'
import { formatDecimal } from '#gateway/metering/money'
import type { Principal, PriceInfo } from '#gateway/types'
import { contextWindowOf, kindOf } from '#services/model_catalogue'

/**
 * LiteLLM's model info (`GET /model/info`): one entry per model the key may
 * use, in LiteLLM's shape, with what the gateway knows of it and nothing it
 * does not. Read by Cline's LiteLLM provider (`input_cost_per_token` and the
 * cache prices for its cost display, `supports_prompt_caching` to add
 * `cache_control` marks) and by Roo Code's and Kilo Code's LiteLLM model
 * pickers (`model_name`, `litellm_params.model`, `max_input_tokens`, the
 * prices per token, `supports_prompt_caching`).
 *
 * Built from the in-memory catalogue, as `GET /v1/models` lists (the names
 * channels list or map, and priced names a channel's glob serves; the key's
 * and plan's globs applied) at the prices the key's plan pays (priceForPlan,
 * as the portal's Models page shows them): no database read.
 */
export interface LiteLLMModelEntry {
  model_name: string
  /** LiteLLM's deployment parameters: the model a request names (the gateway routes it from there) */
  litellm_params: { model: string }
  model_info: Record<string, string | number | boolean | null>
}

export function liteLLMModelInfo(gateway: Gateway, principal: Principal): LiteLLMModelEntry[] {
  const served = gateway.service.router(principal.plan).servedModels(gateway.catalog.prices.map((p) => p.pattern))
  const entries: LiteLLMModelEntry[] = []
  for (const { id, provider } of served) {
    if (!modelAllowed(principal, id)) continue
    entries.push(entryOf(id, provider, priceForPlan(gateway.catalog.priceFor(id), principal.plan)))
  }
  return entries.sort((a, b) => a.model_name.localeCompare(b.model_name))
}

function entryOf(id: string, provider: string, price: PriceInfo | null): LiteLLMModelEntry {
  const mode = modeOf(id)
  const info: LiteLLMModelEntry['model_info'] = {
    // One entry per model: the model's name is its id (what `?litellm_model_id=` selects) and its key.
    id,
    key: id,
    mode,
    litellm_provider: LITELLM_PROVIDERS[provider] ?? provider,
    // The gateway knows a context window for well-known families only, and no output limit.
    max_tokens: null,
    max_input_tokens: mode === 'audio_speech' || mode === 'audio_transcription' ? null : contextWindowOf(id),
    max_output_tokens: null,
    // What a request is billed: an unpriced model costs nothing.
    input_cost_per_token: perUnit(price?.inputPico),
    output_cost_per_token: perUnit(price?.outputPico),
  }
  if (mode === 'chat') {
    // A prompt token read from the provider's cache is billed at its own price, else at the input
    // price (costOf): so that is its cost. A cache write has a price only when one is set; without
    // one it is billed as input, which clients already count in the prompt tokens.
    info.cache_read_input_token_cost = perUnit(price?.cacheReadPico ?? price?.inputPico)
    if (price?.cacheWritePico !== undefined) info.cache_creation_input_token_cost = perUnit(price.cacheWritePico)
    // LiteLLM's field for a write to Anthropic's one-hour cache, when it has its own price
    if (price?.cacheWrite1hPico !== undefined) info.cache_creation_input_token_cost_above_1hr = perUnit(price.cacheWrite1hPico)
    info.supports_prompt_caching = supportsPromptCaching(provider, price)
  }
  // LiteLLM's own fields for the other units the gateway bills.
  if (price?.perImagePico) info.output_cost_per_image = perUnit(price.perImagePico)
  if (price?.perSecondPico) info.input_cost_per_second = perUnit(price.perSecondPico)
  if (price?.perCharacterPico) info.input_cost_per_character = perUnit(price.perCharacterPico)
  if (price?.perVideoSecondPico) info.output_cost_per_video_per_second = perUnit(price.perVideoSecondPico)
  if (price?.audioInputPico !== undefined) info.input_cost_per_audio_token = perUnit(price.audioInputPico)
  if (price?.audioOutputPico !== undefined) info.output_cost_per_audio_token = perUnit(price.audioOutputPico)
  if (price?.imageOutputPico !== undefined) info.output_cost_per_image_token = perUnit(price.imageOutputPico)
  return { model_name: id, litellm_params: { model: id }, model_info: info }
}

/** LiteLLM's mode names for the gateway's kinds of model (model_catalogue.ts kindOf: by name). */
function modeOf(id: string): string {
  const kind = kindOf(id)
  if (kind === 'audio') return /tts|speech/i.test(id) ? 'audio_speech' : 'audio_transcription'
  return KIND_MODES[kind]
}

const KIND_MODES: Record<Exclude<ReturnType<typeof kindOf>, 'audio'>, string> = {
  chat: 'chat',
  embedding: 'embedding',
  image: 'image_generation',
  rerank: 'rerank',
  moderation: 'moderation',
  video: 'video_generation',
}

/**
 * LiteLLM's provider names where the gateway's kinds differ: Google's
 * Gemini API (native or its OpenAI-compatible endpoint) is LiteLLM's
 * `gemini`, and any OpenAI-compatible server is LiteLLM's `openai` (its
 * `openai/<model>` with an api_base). Others share the name.
 */
const LITELLM_PROVIDERS: Record<string, string> = { google: 'gemini', custom: 'openai' }

/**
 * Prompt caching the client can count on: the operator priced the model's
 * cache reads or writes (the provider caches and the gateway bills it), or an
 * `anthropic` channel serves it, where caching is the `cache_control` marks
 * Cline adds when this is true (the gateway carries them to Anthropic from a
 * chat request as from a Messages one).
 */
function supportsPromptCaching(provider: string, price: PriceInfo | null): boolean {
  return provider === 'anthropic' || price?.cacheReadPico !== undefined || price?.cacheWritePico !== undefined || price?.cacheWrite1hPico !== undefined
}

/** pico-USD -> USD as a JSON number (LiteLLM's costs are numbers): exact to the pico; 0 when unpriced. */
function perUnit(pico: bigint | undefined): number {
  return pico ? Number(formatDecimal(pico, 12)) : 0
}
