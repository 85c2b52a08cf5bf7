import type { ReasoningConfig } from '#gateway/dialects/canonical'
import type { ProviderKind } from '#gateway/types'

/**
 * Thinking chosen by the model's name, as new-api does, for clients that
 * cannot set reasoning parameters (Cursor's custom models, simple chat UIs):
 *
 * - `-thinking`: thinking on at the vendor's default (Anthropic 8,192 tokens,
 *   Gemini dynamic; OpenAI's reasoning models reason by default)
 * - `-thinking-<budget>`: thinking on with that many tokens (0: off)
 * - `-nothinking`: thinking off (Gemini's budget 0)
 * - `-high`, `-medium`, `-low`: that reasoning effort
 *
 * Parsed only when a name has no route of its own (channel_router.ts), once
 * per name: the router memoises the result. Like new-api, whose Claude and
 * Gemini adaptors read the thinking suffixes and its OpenAI adaptor the
 * efforts, a suffix applies only on channels of the kinds it was made for
 * (suffixAppliesTo): an OpenRouter or self-hosted model may really be called
 * `moonshotai/kimi-k2-thinking` or `openai/o3-mini-high`.
 */
export interface ModelSuffix {
  /** The name without its suffix: the model routed, billed and metered */
  base: string
  /** The canonical reasoning the suffix asks for; `budgetTokens: 0` is thinking off (undefined: none, a variant's) */
  reasoning?: ReasoningConfig
  /** `-thinking...` / `-nothinking` (and OpenRouter's `:thinking`), an effort (`-high`...), or OpenRouter's routing variants */
  kind: 'thinking' | 'effort' | 'variant'
  /** OpenRouter's `:nitro` (throughput) and `:floor` (price): provider_preferences.ts */
  sort?: 'throughput' | 'price'
  /** OpenRouter's `:online`: the upstream's own web search tool (dialects/web_search.ts) */
  webSearch?: boolean
}

/**
 * OpenRouter's model variants (`model:nitro`...) that the gateway serves on
 * the base model's channels: `:nitro` its fastest first, `:floor` its
 * cheapest first (every channel bills the model's price: the route's order),
 * `:exacto` (OpenRouter's pick of providers good at tool calls: here, the
 * operator's channels as they are), `:thinking` (thinking on, as
 * `-thinking`) and `:online` (web search by the upstream's own tool:
 * dialects/web_search.ts). `:free` is not taken off: a free model is one the
 * operator prices so and lists by that name.
 */
const VARIANTS: Record<string, Omit<ModelSuffix, 'base'>> = {
  ':nitro': { kind: 'variant', sort: 'throughput' },
  ':floor': { kind: 'variant', sort: 'price' },
  ':exacto': { kind: 'variant' },
  ':thinking': { kind: 'thinking', reasoning: {} },
  ':online': { kind: 'variant', webSearch: true },
}

/** Thinking suffixes: Anthropic (also on Bedrock) and Gemini (native, on Vertex, or Google's OpenAI-compatible endpoint) */
const THINKING_KINDS: readonly ProviderKind[] = ['anthropic', 'bedrock', 'google', 'vertex', 'gemini']

/** Effort suffixes: any kind but OpenRouter, whose catalogue has real `-high` models (`openai/o3-mini-high`) */
export function suffixAppliesTo(suffix: ModelSuffix, provider: ProviderKind): boolean {
  // A variant on an OpenRouter channel is OpenRouter's own: the name goes there as it is (plain).
  return suffix.kind === 'thinking' ? THINKING_KINDS.includes(provider) : provider !== 'openrouter'
}

/** A budget as large as any vendor takes (Gemini 32,768, Anthropic's largest outputs 128K), and then some */
const MAX_BUDGET_DIGITS = 7

const EFFORTS = ['high', 'medium', 'low'] as const

export function parseModelSuffix(model: string): ModelSuffix | null {
  const lower = model.toLowerCase()
  const colon = lower.lastIndexOf(':')
  if (colon > 0) {
    const variant = VARIANTS[lower.slice(colon)]
    if (variant !== undefined) return colon === 0 ? null : { ...variant, base: model.slice(0, colon), reasoning: variant.reasoning && { ...variant.reasoning } }
  }
  if (lower.endsWith('-nothinking')) return suffixed(model, '-nothinking'.length, { budgetTokens: 0 }, 'thinking')
  if (lower.endsWith('-thinking')) return suffixed(model, '-thinking'.length, {}, 'thinking')
  const dash = lower.lastIndexOf('-')
  if (dash <= 0) return null
  const tail = lower.slice(dash + 1)
  if (isBudget(tail) && lower.endsWith('-thinking', dash)) {
    return suffixed(model, model.length - dash + '-thinking'.length, { budgetTokens: Number(tail) }, 'thinking')
  }
  for (const effort of EFFORTS) if (tail === effort) return suffixed(model, effort.length + 1, { effort }, 'effort')
  return null
}

function suffixed(model: string, length: number, reasoning: ReasoningConfig, kind: ModelSuffix['kind']): ModelSuffix | null {
  const base = model.slice(0, model.length - length)
  return base === '' ? null : { base, reasoning, kind }
}

/** Digits only, no leading zero (but `0` itself), at most MAX_BUDGET_DIGITS */
function isBudget(text: string): boolean {
  if (text === '' || text.length > MAX_BUDGET_DIGITS || (text.length > 1 && text[0] === '0')) return false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c < 48 || c > 57) return false
  }
  return true
}
