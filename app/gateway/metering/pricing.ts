import type { PlanInfo, PriceInfo, TokenUsage } from '#gateway/types'
import { parseDecimal } from '#gateway/metering/money'

/**
 * Exact cost in pico-USD: tokens times the model's per-token prices, plus
 * images times its per-image price, seconds of audio times its per-second
 * price, characters times its per-character price, seconds of generated video
 * times its per-video-second price; unpriced = 0. Prompt tokens read from or
 * written to the provider's cache (both included in promptTokens) use their
 * own prices when the model has them, else the input price; audio tokens
 * (realtime) the audio prices when the model has them, image output tokens
 * the image output price.
 */
export function costOf(price: PriceInfo | null, usage: TokenUsage): bigint {
  if (!price) return 0n
  let prompt = BigInt(usage.promptTokens) * price.inputPico
  if (price.cacheReadPico !== undefined || price.cacheWritePico !== undefined || price.cacheWrite1hPico !== undefined) {
    const read = BigInt(usage.cachedTokens || 0)
    const written = BigInt(usage.cacheWriteTokens || 0)
    const plain = BigInt(usage.promptTokens) - read - written
    const writePico = price.cacheWritePico ?? price.inputPico
    prompt = (plain > 0n ? plain : 0n) * price.inputPico + read * (price.cacheReadPico ?? price.inputPico) + written * writePico
    // Writes to Anthropic's one-hour cache, at their own price when the model has one (within the writes).
    if (usage.cacheWrite1hTokens && price.cacheWrite1hPico !== undefined) {
      prompt += BigInt(Math.min(usage.cacheWrite1hTokens, usage.cacheWriteTokens || 0)) * (price.cacheWrite1hPico - writePico)
    }
  }
  let cost = prompt + BigInt(usage.completionTokens) * price.outputPico
  // Realtime audio tokens, when the model has audio prices: one branch for everything else.
  if ((usage.audioPromptTokens || usage.audioCompletionTokens) && (price.audioInputPico !== undefined || price.audioOutputPico !== undefined)) {
    cost += audioPriceDifference(price, usage)
  }
  // The images an image model made (within the output): at the image output price, when the model has one.
  if (usage.imageCompletionTokens && price.imageOutputPico !== undefined) {
    cost += BigInt(Math.min(usage.imageCompletionTokens, usage.completionTokens)) * (price.imageOutputPico - price.outputPico)
  }
  if (usage.images) cost += BigInt(usage.images) * (price.perImagePico ?? 0n)
  // Seconds are metered in ms; a per-second price has at most 9 decimals, so this is exact (half up only for a plan's scaled price).
  if (usage.audioMillis) cost += (BigInt(usage.audioMillis) * (price.perSecondPico ?? 0n) + 500n) / 1000n
  if (usage.characters) cost += BigInt(usage.characters) * (price.perCharacterPico ?? 0n)
  if (usage.webSearches) cost += BigInt(usage.webSearches) * (price.perWebSearchPico ?? 0n)
  if (usage.videoSeconds) cost += BigInt(usage.videoSeconds) * (price.perVideoSecondPico ?? 0n)
  return cost
}

/**
 * What a usage's audio tokens cost beyond their count at the token prices
 * (already in the cost): uncached audio input tokens at the audio input
 * price, cached ones too when the model has no cache-read price (with one,
 * every cached token takes it), audio output tokens at the audio output
 * price. Counts beyond their totals are not believed past them.
 */
function audioPriceDifference(price: PriceInfo, usage: TokenUsage): bigint {
  let difference = 0n
  if (price.audioInputPico !== undefined && usage.audioPromptTokens) {
    const audio = Math.min(usage.audioPromptTokens, usage.promptTokens)
    const cachedAudio = price.cacheReadPico !== undefined ? Math.min(usage.cachedAudioTokens || 0, usage.cachedTokens || 0, audio) : 0
    difference += BigInt(audio - cachedAudio) * (price.audioInputPico - price.inputPico)
  }
  if (price.audioOutputPico !== undefined && usage.audioCompletionTokens) {
    difference += BigInt(Math.min(usage.audioCompletionTokens, usage.completionTokens)) * (price.audioOutputPico - price.outputPico)
  }
  return difference
}

/**
 * The fixed per-request price (new-api's per-call price) of a request that
 * succeeded: per_request times its units (Cohere's search units for a
 * rerank, else 1). Callers check `price.perRequestPico` first, so a model
 * without one costs a single bigint test (RequestAccount.close).
 */
export function perRequestCostOf(price: PriceInfo, usage: TokenUsage): bigint {
  const units = usage.requestUnits
  return (price.perRequestPico ?? 0n) * BigInt(units === undefined || !(units > 0) ? 1 : Math.ceil(units))
}

/**
 * The most one request is billed: $1,000,000,000. The price columns take up to
 * $999,999,999,999 per unit, so a request at such a price (two images, or a
 * million tokens) would cost more than the usage row's and the ledger's
 * numeric(24,12) hold, and Postgres would refuse the row: the request's usage
 * and charge lost. Capped here, far below the columns' $10^12, every row is
 * written, and a thousand such charges still add up in the balance.
 */
export const MAX_REQUEST_COST_PICO = 10n ** 21n

/** A request's cost within what its row and charge can hold (MAX_REQUEST_COST_PICO). */
export function billable(costPico: bigint): bigint {
  return costPico > MAX_REQUEST_COST_PICO ? MAX_REQUEST_COST_PICO : costPico
}

/** A priced model is one with a non-zero price. */
export function isPriced(price: PriceInfo | null): boolean {
  return (
    !!price &&
    (price.inputPico > 0n ||
      price.outputPico > 0n ||
      (price.perImagePico ?? 0n) > 0n ||
      (price.perRequestPico ?? 0n) > 0n ||
      (price.perSecondPico ?? 0n) > 0n ||
      (price.perCharacterPico ?? 0n) > 0n ||
      (price.perWebSearchPico ?? 0n) > 0n ||
      (price.perVideoSecondPico ?? 0n) > 0n ||
      (price.audioInputPico ?? 0n) > 0n ||
      (price.audioOutputPico ?? 0n) > 0n ||
      (price.imageOutputPico ?? 0n) > 0n)
  )
}

/** A plan's price multiplier as an integer ratio over 10^4 ("0.8" -> 8000n); null for 1 (list prices). */
export function priceRatioOf(multiplier: string | number | null | undefined): bigint | null {
  if (multiplier === null || multiplier === undefined) return null
  const ratio = parseDecimal(String(multiplier), 4)
  return ratio === RATIO_ONE || ratio <= 0n ? null : ratio
}

const RATIO_ONE = 10_000n

/** 8000n -> "0.8", 12500n -> "1.25" */
export function formatMultiplier(ratio: bigint | null): string {
  if (ratio === null) return '1'
  const whole = ratio / RATIO_ONE
  const fraction = (ratio % RATIO_ONE).toString().padStart(4, '0').replace(/0+$/, '')
  return fraction ? `${whole}.${fraction}` : String(whole)
}

/** pico-USD per token (or per image, per request) times the ratio, to the nearest pico (half up). */
function scalePico(pico: bigint, ratio: bigint): bigint {
  return (pico * ratio + RATIO_ONE / 2n) / RATIO_ONE
}

/**
 * The prices a plan's users pay: the list price times the plan's multiplier,
 * each per-token price to the nearest pico-USD (a price per 1M tokens to six
 * decimals, the precision prices are set with), so a bill is still exactly
 * tokens times the prices the portal shows. Made once per (price, plan) and
 * kept on the plan: nothing is allocated per request. Plans and prices are
 * replaced on reload, which drops these with them.
 */
export function priceForPlan(price: PriceInfo | null, plan: PlanInfo | null): PriceInfo | null {
  if (!price || !plan || plan.priceRatio === null) return price
  let scaled = plan.scaledPrices.get(price)
  if (!scaled) {
    const ratio = plan.priceRatio
    scaled = {
      pattern: price.pattern,
      inputPico: scalePico(price.inputPico, ratio),
      outputPico: scalePico(price.outputPico, ratio),
      perImagePico: price.perImagePico === undefined ? undefined : scalePico(price.perImagePico, ratio),
      perSecondPico: price.perSecondPico === undefined ? undefined : scalePico(price.perSecondPico, ratio),
      perCharacterPico: price.perCharacterPico === undefined ? undefined : scalePico(price.perCharacterPico, ratio),
      perRequestPico: price.perRequestPico === undefined ? undefined : scalePico(price.perRequestPico, ratio),
      perWebSearchPico: price.perWebSearchPico === undefined ? undefined : scalePico(price.perWebSearchPico, ratio),
      perVideoSecondPico: price.perVideoSecondPico === undefined ? undefined : scalePico(price.perVideoSecondPico, ratio),
      cacheReadPico: price.cacheReadPico === undefined ? undefined : scalePico(price.cacheReadPico, ratio),
      cacheWritePico: price.cacheWritePico === undefined ? undefined : scalePico(price.cacheWritePico, ratio),
      cacheWrite1hPico: price.cacheWrite1hPico === undefined ? undefined : scalePico(price.cacheWrite1hPico, ratio),
      audioInputPico: price.audioInputPico === undefined ? undefined : scalePico(price.audioInputPico, ratio),
      audioOutputPico: price.audioOutputPico === undefined ? undefined : scalePico(price.audioOutputPico, ratio),
      imageOutputPico: price.imageOutputPico === undefined ? undefined : scalePico(price.imageOutputPico, ratio),
      specificity: price.specificity,
    }
    plan.scaledPrices.set(price, scaled)
  }
  return scaled
}
