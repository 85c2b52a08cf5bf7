import { billable, costOf } from '#gateway/metering/pricing'
import { holdAtPrice, holdPrice, promptTokenHold } from '#gateway/metering/reservation'
import type { PriceInfo, TokenUsage } from '#gateway/types'
import { MAX_COMPLETION_HOLD } from '#gateway/batches/batch_input'

/**
 * What a batch pays of the model's price, in percent: BATCH_PRICE_PERCENT,
 * 50 by default (OpenAI bills the Batch API at half its prices). 100 bills
 * batches at the list price. Read at each use: an operator may change it
 * between two starts, tests within one.
 */
export function batchPricePercent(): bigint {
  const raw = process.env.BATCH_PRICE_PERCENT
  if (raw === undefined || raw.trim() === '') return 50n
  const value = Number(raw)
  return Number.isInteger(value) && value >= 0 && value <= 100 ? BigInt(value) : 50n
}

/** pico-USD at the batch's percentage, to the nearest pico-USD (half up). */
function discounted(pico: bigint): bigint {
  return (pico * batchPricePercent() + 50n) / 100n
}

/**
 * What a batch is billed for the usage summed from its output file: the
 * tokens at the model's price (its plan's), plus its per-request price once
 * per request answered, all at the batch percentage.
 */
export function batchCost(price: PriceInfo | null, usage: TokenUsage, requests: number): bigint {
  if (!price) return 0n
  let cost = costOf(price, usage)
  if (price.perRequestPico) cost += price.perRequestPico * BigInt(requests)
  return billable(discounted(cost))
}

/**
 * What a batch holds on the balance until it is billed, as a request does
 * (reservation.ts): its prompt tokens bounded by the file's bytes, its
 * completion tokens by each line's max_tokens or the default allowance
 * (`audioTokens` of them, the lines asking for a spoken answer, at the audio
 * output price when it is the higher: holdPrice; `imageTokens`, the lines whose
 * answer may be an image, at the image output price likewise, and then as
 * `imageAnswerTokens`: at least one image per choice of a line without max
 * tokens, as access_policy.ts requestHold raises a request's), its web searches (each
 * line's or request's webSearchHold) at the price per search, and the
 * per-request price once per line, at the batch percentage.
 */
export function batchHold(
  price: PriceInfo | null,
  bytes: number,
  completionTokens: number,
  lines: number,
  searches = 0,
  audioTokens = 0,
  imageTokens = 0,
  imageAnswerTokens = imageTokens
): bigint {
  if (!price) return 0n
  // The default allowance is less than one image: dearer image tokens hold whole images (the raise counted as completion).
  if (imageAnswerTokens > imageTokens && price.imageOutputPico !== undefined && price.imageOutputPico > price.outputPico) {
    completionTokens = Math.min(completionTokens + (imageAnswerTokens - imageTokens), MAX_COMPLETION_HOLD)
    imageTokens = imageAnswerTokens
  }
  const audio = audioTokens > completionTokens ? completionTokens : audioTokens
  // Of the rest, the tokens that may be images (a line asking for both is held once, as audio)
  const image = imageTokens > completionTokens - audio ? completionTokens - audio : imageTokens
  let hold = holdAtPrice(price, promptTokenHold(bytes), completionTokens - audio - image, 0, searches)
  if (audio > 0) hold += BigInt(audio) * holdPrice(price, { audioAnswer: true, imageAnswer: false })!.outputPico
  if (image > 0) hold += BigInt(image) * holdPrice(price, { audioAnswer: false, imageAnswer: true })!.outputPico
  if (price.perRequestPico && lines > 1) hold += price.perRequestPico * BigInt(lines - 1)
  return billable(discounted(hold))
}

/**
 * What an embedding batch holds until it is billed: its requests' input
 * tokens as the gateway counted them (gemini_embed_batch_input.ts) at the
 * input price (an embedding has no output), plus the per-request price once
 * per request, at the batch percentage.
 */
export function embedBatchHold(price: PriceInfo | null, inputTokens: number, requests: number): bigint {
  if (!price) return 0n
  let hold = holdAtPrice(price, inputTokens, 0)
  if (price.perRequestPico && requests > 1) hold += price.perRequestPico * BigInt(requests - 1)
  return billable(discounted(hold))
}
