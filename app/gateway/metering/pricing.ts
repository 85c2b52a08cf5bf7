import type { PriceInfo, TokenUsage } from '#gateway/types'

/**
 * Exact cost in pico-USD: tokens times the model's per-token prices, plus
 * images times its per-image price; unpriced = 0. Prompt tokens read from or
 * written to the provider's cache (both included in promptTokens) use their
 * own prices when the model has them, else the input price.
 */
export function costOf(price: PriceInfo | null, usage: TokenUsage): bigint {
  if (!price) return 0n
  let prompt = BigInt(usage.promptTokens) * price.inputPico
  if (price.cacheReadPico !== undefined || price.cacheWritePico !== undefined) {
    const read = BigInt(usage.cachedTokens || 0)
    const written = BigInt(usage.cacheWriteTokens || 0)
    const plain = BigInt(usage.promptTokens) - read - written
    prompt =
      (plain > 0n ? plain : 0n) * price.inputPico +
      read * (price.cacheReadPico ?? price.inputPico) +
      written * (price.cacheWritePico ?? price.inputPico)
  }
  const tokens = prompt + BigInt(usage.completionTokens) * price.outputPico
  return usage.images ? tokens + BigInt(usage.images) * (price.perImagePico ?? 0n) : tokens
}

/** A priced model is one with a non-zero price. */
export function isPriced(price: PriceInfo | null): boolean {
  return !!price && (price.inputPico > 0n || price.outputPico > 0n || (price.perImagePico ?? 0n) > 0n)
}
