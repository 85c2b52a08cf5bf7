import { GatewayError } from '#exceptions/gateway_error'
import { anyGlobMatches, globMatches, isGlob } from '#gateway/glob'
import { routeByPrefix } from '#gateway/routing/prefix_rules'
import type { ChannelInfo } from '#gateway/types'
import { rememberBounded } from '#gateway/bounded_memo'
import type { ReasoningConfig } from '#gateway/dialects/canonical'
import { parseModelSuffix, suffixAppliesTo, type ModelSuffix } from '#gateway/routing/model_suffix'

/** One channel to try, with the model name to send it. */
export interface RouteCandidate {
  channel: ChannelInfo
  upstreamModel: string
  /** A fallback model's candidate: the model the client is answered and billed as (see gateway_service.ts) */
  publicModel?: string
  /** A model-name suffix's candidate (`-thinking`, `-high`...): the reasoning its body must carry (model_suffix.ts) */
  reasoning?: ReasoningConfig
}

/** Candidates grouped by priority (highest first); the order inside a group is drawn per request. */
export interface RoutePlan {
  groups: RouteCandidate[][]
  /**
   * The name is its base model's with a thinking suffix: `groups` are the
   * base's candidates carrying the suffix's reasoning (generation only), and
   * `plain` what the name routes to as it is, for every other operation.
   */
  suffix?: ModelSuffix
  plain?: RoutePlan | Refusal
}

/**
 * Why a model has no route. Remembered as this word, and made into its
 * GatewayError when answered: an Error kept per name held its stack and
 * message (~1 KB for a long name), and the names are the client's to choose.
 */
export type Refusal = 'model_not_found' | 'no_available_channel'

/** Models with a route remembered (a glob or the prefix table serves names without end), oldest forgotten first */
const PLAN_LIMIT = 10_000
/** Names refused remembered, apart: a flood of unknown names pushes out only other refused names */
const REFUSAL_LIMIT = 1_000

/**
 * Model -> channels. Channels that list the model (by glob or mapping) win;
 * otherwise the prefix table picks a provider kind and any enabled channel of
 * that kind serves it. Plans are memoised per model and rebuilt when the
 * channel set changes.
 *
 * One router serves the callers of one set of open channels (channel groups:
 * plan_routers.ts). `closed` are the channels not open to them: never a
 * candidate, and a name only they list or map is model_not_found here, as a
 * name no channel serves (not the prefix table's route to an open channel of
 * the kind, nor a 503 that tells of channels the caller cannot use).
 */
export class ChannelRouter {
  #plans = new Map<string, RoutePlan>()
  #refusals = new Map<string, Refusal>()

  constructor(
    private channels: readonly ChannelInfo[],
    private closed: readonly ChannelInfo[] = []
  ) {}

  /**
   * Candidates in the order to try them: priority groups, weighted random
   * inside each. The name as it is: a thinking suffix is generation's
   * (resolve, then candidatesOf), not embeddings' or images'.
   */
  route(model: string): RouteCandidate[] {
    const plan = this.#plan(model)
    return this.candidatesOf(typeof plan === 'object' && plan.suffix !== undefined ? plan.plain! : plan, model)
  }

  /**
   * The memoised plan of a generation request's model: its own, or its base
   * model's when only a thinking suffix makes it servable (plan.suffix). One
   * map lookup once the name was seen.
   */
  resolve(model: string): RoutePlan | Refusal {
    return this.#plan(model)
  }

  /** A resolved plan's candidates in the order to try them (a refusal thrown as its error). */
  candidatesOf(plan: RoutePlan | Refusal, model: string): RouteCandidate[] {
    if (typeof plan === 'string') throw refusalError(plan, model)
    const ordered: RouteCandidate[] = []
    for (const group of plan.groups) {
      if (group.length === 1) ordered.push(group[0])
      else ordered.push(...weightedShuffle(group))
    }
    return ordered
  }

  /** How many routes and refusals are remembered (tests, diagnostics). */
  get memoised(): { plans: number; refusals: number } {
    return { plans: this.#plans.size, refusals: this.#refusals.size }
  }

  /** Concrete model names the channels advertise (globs cannot be listed). */
  listedModels(): Array<{ id: string; provider: string }> {
    const seen = new Map<string, string>()
    for (const channel of this.channels) {
      if (!channel.enabled) continue
      for (const model of [...channel.models, ...Object.keys(channel.modelMapping)]) {
        if (!isGlob(model) && !seen.has(model)) seen.set(model, channel.provider)
      }
    }
    return [...seen].map(([id, provider]) => ({ id, provider }))
  }

  /**
   * The listed models, and the given names (the price table's exact model
   * names) that a channel serves through a glob or the prefix table: a
   * channel serving `claude-*` lists nothing itself, and `models.list()`
   * would come back empty.
   */
  servedModels(names: Iterable<string>): Array<{ id: string; provider: string }> {
    const models = this.listedModels()
    const seen = new Set(models.map((m) => m.id))
    for (const name of names) {
      if (seen.has(name) || isGlob(name)) continue
      const plan = this.#plan(name)
      const first = typeof plan === 'string' ? undefined : plan.groups[0]?.[0]
      if (!first) continue
      seen.add(name)
      models.push({ id: name, provider: first.channel.provider })
    }
    return models
  }

  #plan(model: string): RoutePlan | Refusal {
    const plan = this.#plans.get(model)
    if (plan !== undefined) return plan
    const refusal = this.#refusals.get(model)
    if (refusal !== undefined) return refusal
    const built = this.#buildNamed(model)
    if (typeof built === 'string') rememberBounded(this.#refusals, model, built, REFUSAL_LIMIT)
    else rememberBounded(this.#plans, model, built, PLAN_LIMIT)
    return built
  }

  /**
   * A name's plan, a thinking suffix considered: when no channel serves the
   * name itself (lists it, maps it, or has a glob that takes it and not its
   * base: a channel may have a real `...-high`) and its base has a route, the
   * base's candidates of the kinds the suffix is made for (suffixAppliesTo),
   * with the suffix's reasoning. A glob or the prefix table that takes both
   * names says nothing of which is real: the suffix wins.
   */
  #buildNamed(model: string): RoutePlan | Refusal {
    const plain = this.#build(model)
    const suffix = parseModelSuffix(model)
    if (suffix === null || this.#servesItself(model, suffix.base)) return plain
    const base = this.#plan(suffix.base)
    if (typeof base === 'string') return plain
    // Suffixes stacked (`x:online:nitro`, `x-thinking:online`): the base's own suffix is composed with this one, so
    // the row, the price and the limits are the innermost model's. Before, the row was `x:online` (no price: billed
    // nothing, for the model x's tokens) and the inner suffix's search or thinking was lost.
    const inner = base.suffix
    const composed: ModelSuffix =
      inner === undefined
        ? suffix
        : {
            kind: suffix.kind,
            base: inner.base,
            reasoning: suffix.reasoning ?? inner.reasoning,
            sort: suffix.sort ?? inner.sort,
            webSearch: suffix.webSearch === true || inner.webSearch === true ? true : undefined,
          }
    const groups: RouteCandidate[][] = []
    for (const group of base.groups) {
      const taking = group.filter((c) => suffixAppliesTo(suffix, c.channel.provider))
      if (taking.length > 0) groups.push(taking.map((c) => ({ channel: c.channel, upstreamModel: c.upstreamModel, reasoning: suffix.reasoning ?? c.reasoning })))
    }
    // No channel of the base is of a kind the suffix is made for: the name is taken as it is.
    if (groups.length === 0) return plain
    return { groups, suffix: composed, plain }
  }

  /** Does a channel serve this name as itself, not as a glob that also takes its base? */
  #servesItself(model: string, base: string): boolean {
    for (const channel of this.channels) {
      if (model in channel.modelMapping) return true
      for (const pattern of channel.models) {
        if (globMatches(pattern, model) && (!isGlob(pattern) || !globMatches(pattern, base))) return true
      }
    }
    return false
  }

  #build(model: string): RoutePlan | Refusal {
    const listing = this.channels.filter(
      (c) => model in c.modelMapping || anyGlobMatches(c.models, model)
    )
    let candidates: RouteCandidate[]
    if (listing.length === 0 && this.closed.some((c) => model in c.modelMapping || anyGlobMatches(c.models, model))) {
      return 'model_not_found'
    }
    if (listing.length > 0) {
      candidates = listing
        .filter((c) => c.enabled)
        .map((channel) => ({ channel, upstreamModel: channel.modelMapping[model] ?? model }))
      if (candidates.length === 0) return 'no_available_channel'
    } else {
      const prefix = routeByPrefix(model)
      const ofKind = this.channels.filter((c) => c.provider === prefix.provider)
      if (ofKind.length === 0) return 'model_not_found'
      candidates = ofKind
        .filter((c) => c.enabled)
        .map((channel) => ({ channel, upstreamModel: prefix.upstreamModel }))
      if (candidates.length === 0) return 'no_available_channel'
    }
    const byPriority = new Map<number, RouteCandidate[]>()
    for (const candidate of candidates) {
      const group = byPriority.get(candidate.channel.priority) ?? []
      group.push(candidate)
      byPriority.set(candidate.channel.priority, group)
    }
    return {
      groups: [...byPriority.entries()].sort((a, b) => b[0] - a[0]).map(([, group]) => group),
    }
  }
}

/** The client's error for a refused model: a new one each time (callers may add headers to it). */
function refusalError(refusal: Refusal, model: string): GatewayError {
  return refusal === 'model_not_found' ? GatewayError.modelNotFound(model) : GatewayError.noAvailableChannel(model)
}

/** Weighted random order without replacement (weight 0 goes last). */
function weightedShuffle(group: RouteCandidate[]): RouteCandidate[] {
  const pool = group.slice()
  const out: RouteCandidate[] = []
  while (pool.length > 0) {
    let total = 0
    for (const c of pool) total += c.channel.weight
    let index = 0
    if (total > 0) {
      let r = Math.random() * total
      for (index = 0; index < pool.length - 1; index++) {
        r -= pool[index].channel.weight
        if (r < 0) break
      }
    }
    out.push(pool[index])
    pool.splice(index, 1)
  }
  return out
}
