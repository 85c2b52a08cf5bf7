import type { PriceInfo } from '#gateway/types'

/**
 * What a request may cost, held on the balance while it runs. Cheap on
 * purpose (no tokenizer on the hot path): prompt tokens are bounded by the
 * body size (~1 token per 3 bytes of JSON is an over-estimate for text), the
 * completion by the request's own max_tokens, else a default allowance.
 */
export const DEFAULT_COMPLETION_ALLOWANCE = Number(process.env.RESERVE_COMPLETION_TOKENS) || 1024

export function estimateCostPico(price: PriceInfo | null, bodyBytes: number, body: Record<string, any>): bigint {
  if (!price) return 0n
  const promptTokens = BigInt(Math.ceil(bodyBytes / 3))
  const maxTokens =
    positiveInt(body.max_completion_tokens) ??
    positiveInt(body.max_tokens) ??
    positiveInt(body.max_output_tokens) ??
    positiveInt(body.generationConfig?.maxOutputTokens) ??
    DEFAULT_COMPLETION_ALLOWANCE
  return promptTokens * price.inputPico + BigInt(maxTokens) * price.outputPico
}

function positiveInt(value: unknown): number | null {
  return typeof value === 'number' && Number.isInteger(value) && value > 0 ? value : null
}
