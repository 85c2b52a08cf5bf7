import type { PriceInfo, TokenUsage } from '#gateway/types'

/** Exact cost in pico-USD: prompt and completion tokens times the model's per-token prices; unpriced = 0. */
export function costOf(price: PriceInfo | null, usage: TokenUsage): bigint {
  if (!price) return 0n
  return BigInt(usage.promptTokens) * price.inputPico + BigInt(usage.completionTokens) * price.outputPico
}

/** A priced model is one with a non-zero price. */
export function isPriced(price: PriceInfo | null): boolean {
  return !!price && (price.inputPico > 0n || price.outputPico > 0n)
}
