import { GatewayError } from '#exceptions/gateway_error'
import { anyGlobMatches, isGlob } from '#gateway/glob'
import { routeByPrefix } from '#gateway/routing/prefix_rules'
import type { ChannelInfo } from '#gateway/types'

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
 * Model -> channels. Channels that list the model (by glob or mapping) win;
 * otherwise the prefix table picks a provider kind and any enabled channel of
 * that kind serves it. Plans are memoised per model and rebuilt when the
 * channel set changes.
 */
export class ChannelRouter {
  #plans = new Map<string, RoutePlan | GatewayError>()

  constructor(private channels: ChannelInfo[]) {}

  /** Candidates in the order to try them: priority groups, weighted random inside each. */
  route(model: string): RouteCandidate[] {
    const plan = this.#plan(model)
    if (plan instanceof GatewayError) throw plan
    const ordered: RouteCandidate[] = []
    for (const group of plan.groups) {
      if (group.length === 1) ordered.push(group[0])
      else ordered.push(...weightedShuffle(group))
    }
    return ordered
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
      const first = plan instanceof GatewayError ? undefined : plan.groups[0]?.[0]
      if (!first) continue
      seen.add(name)
      models.push({ id: name, provider: first.channel.provider })
    }
    return models
  }

  #plan(model: string): RoutePlan | GatewayError {
    let plan = this.#plans.get(model)
    if (!plan) {
      plan = this.#build(model)
      if (this.#plans.size > 10_000) this.#plans.clear()
      this.#plans.set(model, plan)
    }
    return plan
  }

  #build(model: string): RoutePlan | GatewayError {
    const listing = this.channels.filter(
      (c) => model in c.modelMapping || anyGlobMatches(c.models, model)
    )
    let candidates: RouteCandidate[]
    if (listing.length > 0) {
      candidates = listing
        .filter((c) => c.enabled)
        .map((channel) => ({ channel, upstreamModel: channel.modelMapping[model] ?? model }))
      if (candidates.length === 0) return GatewayError.noAvailableChannel(model)
    } else {
      const prefix = routeByPrefix(model)
      const ofKind = this.channels.filter((c) => c.provider === prefix.provider)
      if (ofKind.length === 0) return GatewayError.modelNotFound(model)
      candidates = ofKind
        .filter((c) => c.enabled)
        .map((channel) => ({ channel, upstreamModel: prefix.upstreamModel }))
      if (candidates.length === 0) return GatewayError.noAvailableChannel(model)
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
