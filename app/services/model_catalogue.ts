import type { Gateway } from '#gateway/gateway'
import type { PlanInfo } from '#gateway/types'
import { priceForPlan } from '#gateway/metering/pricing'
import { anyGlobMatches } from '#gateway/glob'
import { formatDecimal } from '#gateway/metering/money'

export interface CatalogueModel {
  id: string
  provider: string
  /** USD per 1M tokens, decimal strings; null when the model is not priced (free) */
  inputPerMillion: string | null
  outputPerMillion: string | null
  /** USD per generated image, or null */
  perImage: string | null
  /** USD per second of audio (transcriptions) / per input character (speech), or null */
  perSecond: string | null
  perCharacter: string | null
  /** USD per request that succeeded (on top of the token prices), or null */
  perRequest: string | null
  /** USD per second of generated video (Sora, Veo), or null */
  perVideoSecond: string | null
  /** USD per 1M audio input / output tokens (realtime models), or null when the token prices apply */
  audioInputPerMillion: string | null
  audioOutputPerMillion: string | null
  /** USD per 1M image output tokens (Gemini's image models), or null when the output price applies */
  imageOutputPerMillion: string | null
  kind: 'chat' | 'embedding' | 'image' | 'rerank' | 'moderation' | 'audio' | 'video'
  /** Context window in tokens when known for the family, else null */
  contextTokens: number | null
}

/**
 * Context windows of well-known model families (published by their
 * providers), shown as notes on the Models page. Unknown models show none.
 */
const CONTEXT_WINDOWS: Array<[RegExp, number]> = [
  [/^(openai\/)?gpt-4\.1/i, 1_047_576],
  [/^(openai\/)?gpt-5/i, 400_000],
  [/^(openai\/)?(gpt-4o|o[134])/i, 128_000],
  [/^(anthropic\/)?claude-/i, 200_000],
  [/^(google\/)?gemini-(1\.5|2)/i, 1_048_576],
  [/^(deepseek\/)?deepseek-/i, 128_000],
]

export function kindOf(id: string): CatalogueModel['kind'] {
  if (/embed/i.test(id)) return 'embedding'
  if (/image|dall-e/i.test(id)) return 'image'
  if (/whisper|transcribe|tts/i.test(id)) return 'audio'
  if (/rerank/i.test(id)) return 'rerank'
  if (/moderation/i.test(id)) return 'moderation'
  // OpenAI's Sora and Google's Veo (the Videos API, predictLongRunning)
  if (/(^|\/)(sora|veo)-/i.test(id)) return 'video'
  return 'chat'
}

/**
 * The models a channel serves (names the channels list, and priced model
 * names a channel's glob or the prefix table serves: the list GET /v1/models
 * gives) on the channels open to `reachedBy` (channel groups: a user on
 * that plan, null a user without one), optionally narrowed to a plan's
 * globs, with their prices (the prices `pricedFor`'s users pay: list prices
 * times its multiplier).
 * Built from the gateway's in-memory catalogue: no database read.
 */
export function modelCatalogue(
  gateway: Gateway,
  reachedBy: PlanInfo | null,
  allowedGlobs: string[] | null = null,
  pricedFor: PlanInfo | null = null
): CatalogueModel[] {
  const served = gateway.service.router(reachedBy).servedModels(gateway.catalog.prices.map((p) => p.pattern))
  const list: CatalogueModel[] = []
  for (const { id, provider } of served) {
    if (allowedGlobs && !anyGlobMatches(allowedGlobs, id)) continue
    const price = priceForPlan(gateway.catalog.priceFor(id), pricedFor)
    const kind = kindOf(id)
    list.push({
      id,
      provider,
      inputPerMillion: price ? trimZeros(formatDecimal(price.inputPico, 6)) : null,
      outputPerMillion: price ? trimZeros(formatDecimal(price.outputPico, 6)) : null,
      perImage: price?.perImagePico ? trimZeros(formatDecimal(price.perImagePico, 12)) : null,
      perSecond: price?.perSecondPico ? trimZeros(formatDecimal(price.perSecondPico, 12)) : null,
      perCharacter: price?.perCharacterPico ? trimZeros(formatDecimal(price.perCharacterPico, 12)) : null,
      kind,
      // A transcription model's name shares its chat family's (gpt-4o-transcribe), not its context window.
      contextTokens: kind === 'audio' || kind === 'video' ? null : contextWindowOf(id),
      perRequest: price?.perRequestPico ? trimZeros(formatDecimal(price.perRequestPico, 12)) : null,
      perVideoSecond: price?.perVideoSecondPico ? trimZeros(formatDecimal(price.perVideoSecondPico, 12)) : null,
      audioInputPerMillion: price?.audioInputPico !== undefined ? trimZeros(formatDecimal(price.audioInputPico, 6)) : null,
      audioOutputPerMillion: price?.audioOutputPico !== undefined ? trimZeros(formatDecimal(price.audioOutputPico, 6)) : null,
      imageOutputPerMillion: price?.imageOutputPico !== undefined ? trimZeros(formatDecimal(price.imageOutputPico, 6)) : null,
    })
  }
  return list.sort((a, b) => a.id.localeCompare(b.id))
}

/** The context window of a well-known model family, else null. */
export function contextWindowOf(id: string): number | null {
  return CONTEXT_WINDOWS.find(([re]) => re.test(id))?.[1] ?? null
}

/**
 * A model's prices for a plan in OpenRouter's `/models` shape: USD per token
 * (and per image, per request) as decimal strings, "0" when unpriced; what the plan's users
 * pay (list price times its multiplier).
 */
export function openRouterPricing(gateway: Gateway, id: string, plan: PlanInfo | null) {
  const price = priceForPlan(gateway.catalog.priceFor(id), plan)
  const perToken = (pico: bigint | undefined) => (pico ? trimZeros(formatDecimal(pico, 12)) : '0')
  const pricing: Record<string, string> = { prompt: perToken(price?.inputPico), completion: perToken(price?.outputPico) }
  if (price?.perImagePico) pricing.image = perToken(price.perImagePico)
  // OpenRouter's own field for a fixed price per request.
  if (price?.perRequestPico) pricing.request = perToken(price.perRequestPico)
  if (price?.cacheReadPico !== undefined) pricing.input_cache_read = perToken(price.cacheReadPico)
  if (price?.cacheWritePico !== undefined) pricing.input_cache_write = perToken(price.cacheWritePico)
  // OpenRouter's field for an image model's output image tokens (google/gemini-2.5-flash-image: 0.00003).
  if (price?.imageOutputPico !== undefined) pricing.image_output = perToken(price.imageOutputPico)
  return pricing
}

function trimZeros(decimal: string) {
  return decimal.replace(/(\.\d*?[1-9])0+$|\.0+$/, '$1')
}
