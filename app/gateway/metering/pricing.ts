import type { PriceInfo, TokenUsage } from '#gateway/types'

/** Exact cost in pico-USD: tokens times the model's per-token prices, plus images times its per-image price; unpriced = 0. */
export function costOf(price: PriceInfo | null, usage: TokenUsage): bigint {
  if (!price) return 0n
  const tokens = BigInt(usage.promptTokens) * price.inputPico + BigInt(usage.completionTokens) * price.outputPico
  return usage.images ? tokens + BigInt(usage.images) * (price.perImagePico ?? 0n) : tokens
}

/** A priced model is one with a non-zero price. */
export function isPriced(price: PriceInfo | null): boolean {
  return !!price && (price.inputPico > 0n || price.outputPico > 0n || (price.perImagePico ?? 0n) > 0n)
}
