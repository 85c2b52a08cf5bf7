import type { CanonicalUsage } from '#gateway/dialects/canonical'
import type { EncoderOptions } from '#gateway/dialects/dialect'
import type { SseEvent } from '#gateway/sse/sse_parser'

/** The names chat servers give reasoning text: OpenRouter's (and its structured details), DeepSeek's */
const REASONING_FIELDS = ['reasoning', 'reasoning_content', 'reasoning_details'] as const

/**
 * Might a chunk need amendChat (a string check, asked only when the client
 * wants reasoning left out or usage's cost)? A reasoning chunk, a usage chunk.
 */
export function chatMayAmend(event: SseEvent, options: EncoderOptions): boolean {
  return (options.reasoningExcluded === true && event.data.includes('"reasoning')) || (!!options.usageCost && event.data.includes('"usage"'))
}

/**
 * A chat chunk or whole answer as the client asked for it with OpenRouter's
 * fields: without reasoning text (`reasoning.exclude`), and with the
 * usage's `cost` (usage accounting), what the gateway bills for `usage`.
 * An OpenRouter upstream's own cost fields are already gone, asked or not
 * (upstream/upstream_cost.ts, applied first).
 */
export function amendChat(parsed: any, options: EncoderOptions, usage: CanonicalUsage | null): boolean {
  let changed = false
  if (options.reasoningExcluded === true && Array.isArray(parsed?.choices)) {
    for (const choice of parsed.choices) {
      const part = choice?.delta ?? choice?.message
      if (part === null || typeof part !== 'object') continue
      for (const field of REASONING_FIELDS) {
        // OpenRouter writes "reasoning": null in every delta: nothing to leave out, no re-framing for it.
        if (part[field] === undefined || part[field] === null) continue
        delete part[field]
        changed = true
      }
    }
  }
  const counts = parsed?.usage
  if (options.usageCost && usage !== null && counts !== null && typeof counts === 'object' && !Array.isArray(counts)) {
    counts.cost = options.usageCost(usage)
    changed = true
  }
  return changed
}
