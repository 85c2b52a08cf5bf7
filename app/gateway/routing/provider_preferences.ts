import { GatewayError } from '#exceptions/gateway_error'
import type { RouteCandidate } from '#gateway/routing/channel_router'
import { channelSpeed } from '#gateway/routing/channel_speed'
import type { ChannelInfo, PriceInfo } from '#gateway/types'

/**
 * OpenRouter's provider routing preferences (the request's `provider`
 * object, and the `:nitro` / `:floor` model variants) applied to the
 * gateway's own channels. A "provider slug" names a channel by its name or
 * its provider kind, in OpenRouter's slugs too (`google-vertex` is a vertex
 * channel, `amazon-bedrock` bedrock, `google-ai-studio` google, `z-ai`
 * zai), case aside.
 *
 * - `only` keeps the candidates a slug names, `ignore` drops them; an
 *   `openrouter` channel is kept by `only` (it gets the object as sent and
 *   applies it to its own providers) and dropped by `ignore` only when a
 *   slug names the channel itself
 * - `order` tries the channels its slugs name first, in its order; the others
 *   after them unless `allow_fallbacks` is false (an `openrouter` channel
 *   stays: it applies both to its own providers)
 * - `sort`: "latency" (shortest wait for the first byte first) and
 *   "throughput" (most output tokens a second first) by the gateway's own
 *   measures (channel_speed.ts; channels not measured yet after those that
 *   are); "price" keeps the route's order: a model's price is the model's
 *   whichever channel serves it (channels have no price of their own)
 * - `max_price` ({prompt, completion} USD per million tokens, `request`,
 *   `image` USD each) against each model's price for the caller's plan (the
 *   asked one's, each fallback's): a model dearer than that has no channel left
 *
 * Each model of the route (the one asked for, then its fallbacks) is
 * ordered on its own. Nothing left: OpenRouter's 404 "No allowed providers
 * are available for the selected model."
 */
export interface ProviderPreferences {
  order: string[] | null
  only: string[] | null
  ignore: string[] | null
  allowFallbacks: boolean
  sort: 'price' | 'throughput' | 'latency' | null
  maxPrice: { prompt?: number; completion?: number; request?: number; image?: number } | null
}

const SORTS = new Set(['price', 'throughput', 'latency'])

/** OpenRouter's slugs for the kinds whose slug is not the kind's own name */
const SLUG_KINDS: Record<string, string> = {
  'google-vertex': 'vertex',
  'amazon-bedrock': 'bedrock',
  'google-ai-studio': 'google',
  'z-ai': 'zai',
  'azure': 'azure',
}

/** A price's text: digits, a fraction, an exponent (what a JSON number's text is, without its sign) */
const DECIMAL = /^(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/

/** At most this many slugs a list may hold (OpenRouter's lists name a few providers) */
const MAX_SLUGS = 50

/** The request's `provider` object, and a variant's sort (`:nitro`, `:floor`); a 400 for a malformed one. */
export function readProviderPreferences(provider: unknown, variantSort: ProviderPreferences['sort'] | undefined): ProviderPreferences {
  const prefs: ProviderPreferences = { order: null, only: null, ignore: null, allowFallbacks: true, sort: variantSort ?? null, maxPrice: null }
  if (provider === undefined || provider === null) return prefs
  if (typeof provider !== 'object' || Array.isArray(provider)) throw invalid("'provider' must be an object")
  const p = provider as Record<string, unknown>
  prefs.order = slugs(p.order, 'order')
  prefs.only = slugs(p.only, 'only')
  prefs.ignore = slugs(p.ignore, 'ignore')
  if (p.allow_fallbacks !== undefined && p.allow_fallbacks !== null) {
    if (typeof p.allow_fallbacks !== 'boolean') throw invalid("'provider.allow_fallbacks' must be a boolean")
    prefs.allowFallbacks = p.allow_fallbacks
  }
  // A string, or OpenRouter's object form {by, partition}; the request's own wins over a variant's.
  const sort = typeof p.sort === 'object' && p.sort !== null ? (p.sort as Record<string, unknown>).by : p.sort
  if (sort !== undefined && sort !== null) {
    if (typeof sort !== 'string' || !SORTS.has(sort)) throw invalid("'provider.sort' must be one of price, throughput, latency")
    prefs.sort = sort as ProviderPreferences['sort']
  }
  if (p.max_price !== undefined && p.max_price !== null) {
    if (typeof p.max_price !== 'object' || Array.isArray(p.max_price)) throw invalid("'provider.max_price' must be an object")
    const max: ProviderPreferences['maxPrice'] = {}
    for (const field of ['prompt', 'completion', 'request', 'image'] as const) {
      const value = (p.max_price as Record<string, unknown>)[field]
      if (value === undefined || value === null) continue
      // OpenRouter takes a number's text too; Number('') and Number(' ') are 0, Number('0x10') 16: decimals only.
      const number = typeof value === 'string' ? (DECIMAL.test(value) ? Number(value) : NaN) : value
      if (typeof number !== 'number' || !Number.isFinite(number) || number < 0) throw invalid(`'provider.max_price.${field}' must be a number of USD`)
      max[field] = number
    }
    prefs.maxPrice = max
  }
  return prefs
}

/**
 * The candidates the preferences leave, in the order they ask for; a 404 when none is left.
 * `price`: the asked model's for the caller's plan; `priceOf`: a fallback model's (max_price holds for
 * each model of the route: a fallback dearer than it is not served, one within it serves a dearer ask).
 */
export function applyProviderPreferences(
  candidates: RouteCandidate[],
  prefs: ProviderPreferences,
  price: PriceInfo | null,
  priceOf: ((model: string) => PriceInfo | null) | null
): RouteCandidate[] {
  const out: RouteCandidate[] = []
  // Runs of one model (the asked one, then each fallback's): ordered each on its own.
  let start = 0
  for (let i = 1; i <= candidates.length; i++) {
    if (i < candidates.length && candidates[i].publicModel === candidates[start].publicModel) continue
    const model = candidates[start].publicModel
    const runPrice = model === undefined || priceOf === null ? price : priceOf(model)
    if (prefs.maxPrice === null || !overMaxPrice(runPrice, prefs.maxPrice)) out.push(...ordered(candidates.slice(start, i), prefs))
    start = i
  }
  if (out.length === 0) throw noAllowedProviders()
  return out
}

function ordered(run: RouteCandidate[], prefs: ProviderPreferences): RouteCandidate[] {
  let list = run
  if (prefs.only !== null) list = list.filter((c) => c.channel.provider === 'openrouter' || names(c.channel, prefs.only!))
  if (prefs.ignore !== null) list = list.filter((c) => !names(c.channel, prefs.ignore!))
  if (prefs.order !== null) {
    const first: RouteCandidate[] = []
    for (const slug of prefs.order) for (const c of list) if (!first.includes(c) && names(c.channel, [slug])) first.push(c)
    // An openrouter channel applies `order` and `allow_fallbacks` to its own providers: it stays, after them.
    if (!prefs.allowFallbacks) return [...first, ...list.filter((c) => !first.includes(c) && c.channel.provider === 'openrouter')]
    return [...first, ...sorted(list.filter((c) => !first.includes(c)), prefs.sort)]
  }
  return sorted(list, prefs.sort)
}

/** Stable: equal (or unmeasured) channels keep the route's order (priority, then the weighted draw). */
function sorted(list: RouteCandidate[], sort: ProviderPreferences['sort']): RouteCandidate[] {
  if (sort === null || sort === 'price' || list.length < 2) return list
  const key = (c: RouteCandidate) => {
    const speed = channelSpeed(c.channel.id)
    if (sort === 'latency') return speed === undefined ? Infinity : speed.latencyMs
    return speed === undefined || speed.tokensPerSecond === 0 ? Infinity : -speed.tokensPerSecond
  }
  return list
    .map((c, i) => ({ c, i, k: key(c) }))
    .sort((a, b) => (a.k === b.k ? a.i - b.i : a.k < b.k ? -1 : 1))
    .map((e) => e.c)
}

/** Does a slug of the list name this channel (its name, its kind, or OpenRouter's slug of the kind)? */
function names(channel: ChannelInfo, list: string[]): boolean {
  const name = channel.name.toLowerCase()
  for (const slug of list) {
    if (slug === name || slug === channel.provider || SLUG_KINDS[slug] === channel.provider) return true
  }
  return false
}

function overMaxPrice(price: PriceInfo | null, max: NonNullable<ProviderPreferences['maxPrice']>): boolean {
  if (price === null) return false
  // pico-USD per token is micro-USD per million tokens: / 1e6 is USD per million.
  if (max.prompt !== undefined && Number(price.inputPico) / 1e6 > max.prompt) return true
  if (max.completion !== undefined && Number(price.outputPico) / 1e6 > max.completion) return true
  if (max.request !== undefined && Number(price.perRequestPico ?? 0n) / 1e12 > max.request) return true
  if (max.image !== undefined && Number(price.perImagePico ?? 0n) / 1e12 > max.image) return true
  return false
}

function slugs(value: unknown, field: string): string[] | null {
  if (value === undefined || value === null) return null
  if (!Array.isArray(value) || value.length > MAX_SLUGS || !value.every((s) => typeof s === 'string')) {
    throw invalid(`'provider.${field}' must be a list of provider names`)
  }
  return value.map((s: string) => s.toLowerCase())
}

function invalid(message: string) {
  return GatewayError.invalidRequest(message, 'invalid_provider_preferences', 'provider')
}

/** OpenRouter's answer when the preferences leave no provider (404, its wording) */
export function noAllowedProviders() {
  return new GatewayError(404, 'no_allowed_providers', 'No allowed providers are available for the selected model.', 'not_found_error')
}
