import { GatewayError } from '#exceptions/gateway_error'
import { anyGlobMatches, isGlob } from '#gateway/glob'
import { routeByPrefix } from '#gateway/routing/prefix_rules'
import type { ChannelInfo } from '#gateway/types'
import { rememberBounded } from '#gateway/bounded_memo'

/** One channel to try, with the model name to send it. */
export interface RouteCandidate {
  channel: ChannelInfo
  upstreamModel: string
  /** A fallback model's candidate: the model the client is answered and billed as (see gateway_service.ts) */
  publicModel?: string
}

/** Candidates grouped by priority (highest first); the order inside a group is drawn per request. */
interface RoutePlan {
  groups: RouteCandidate[][]
}

/**
 * Why a model has no route. Remembered as this word, and made into its
 * GatewayError when answered: an Error kept per name held its stack and
 * message (~1 KB for a long name), and the names are the client's to choose.
 */
type Refusal = 'model_not_found' | 'no_available_channel'

/** Models with a route remembered (a glob or the prefix table serves names without end), oldest forgotten first */
const PLAN_LIMIT = 10_000
/** Names refused remembered, apart: a flood of unknown names pushes out only other refused names */
const REFUSAL_LIMIT = 1_000

/**
 * Model -> channels. Channels that list the model (by glob or mapping) win;
 * otherwise the prefix table picks a provider kind and any enabled channel of
 * that kind serves it. Plans are memoised per model and rebuilt when the
 * channel set changes.
 */
export class ChannelRouter {
  #plans = new Map<string, RoutePlan>()
  #refusals = new Map<string, Refusal>()

  constructor(private channels: ChannelInfo[]) {}

  /** Candidates in the order to try them: priority groups, weighted random inside each. */
  route(model: string): RouteCandidate[] {
    const plan = this.#plan(model)
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
    const built = this.#build(model)
    if (typeof built === 'string') rememberBounded(this.#refusals, model, built, REFUSAL_LIMIT)
    else rememberBounded(this.#plans, model, built, PLAN_LIMIT)
    return built
  }

  #build(model: string): RoutePlan | Refusal {
    const listing = this.channels.filter(
      (c) => model in c.modelMapping || anyGlobMatches(c.models, model)
    )
    let candidates: RouteCandidate[]
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
