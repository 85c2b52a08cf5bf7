import { ChannelRouter } from '#gateway/routing/channel_router'
import type { ChannelInfo, PlanInfo } from '#gateway/types'

/** The key of callers without a plan (plan ids start at 1) */
const NO_PLAN = 0

/**
 * Channel groups: which router a caller's plan gets. A channel with plan ids
 * is open only to users on those plans (a user without a plan: only to
 * channels open to every plan); the others to everyone. Each distinct set of
 * open channels gets one ChannelRouter over exactly those channels, the
 * closed ones beside it (refused as unknown names), so the request path does
 * what it did before: one map lookup for the plan's router, then the
 * router's memoised route for the model. No filtering per request.
 *
 * Built again whole when the channels change (GatewayService.router: the
 * catalog's channelsVersion). Plans need no notice of their own: a plan id a
 * channel names is only a number here, and a plan deleted or added changes
 * nothing until a channel names it (deleting one a channel names is refused).
 */
export class PlanRouters {
  /** When no channel is limited to plans: the one router every caller gets */
  #everyone: ChannelRouter | null = null
  #byPlan = new Map<number, ChannelRouter>()
  /** Routers by their open channels' ids, so plans that reach the same channels share memoised routes */
  #bySet = new Map<string, ChannelRouter>()

  constructor(private channels: readonly ChannelInfo[]) {
    if (!channels.some(limited)) this.#everyone = new ChannelRouter(channels)
  }

  /** The router of a caller on this plan (null: no plan). */
  for(plan: PlanInfo | null): ChannelRouter {
    if (this.#everyone !== null) return this.#everyone
    const planId = plan === null ? NO_PLAN : plan.id
    return this.#byPlan.get(planId) ?? this.#build(planId)
  }

  #build(planId: number): ChannelRouter {
    const open: ChannelInfo[] = []
    const closed: ChannelInfo[] = []
    for (const channel of this.channels) (isOpenTo(channel, planId) ? open : closed).push(channel)
    const set = open.map((c) => c.id).join(',')
    let router = this.#bySet.get(set)
    if (router === undefined) {
      router = new ChannelRouter(open, closed)
      this.#bySet.set(set, router)
    }
    // Bounded by the plans table: the ids come from the catalog's plans, never from a client.
    this.#byPlan.set(planId, router)
    return router
  }
}

function limited(channel: ChannelInfo): boolean {
  return channel.planIds != null && channel.planIds.length > 0
}

/** Is the channel open to users on this plan (NO_PLAN: users without one)? */
function isOpenTo(channel: ChannelInfo, planId: number): boolean {
  return !limited(channel) || (planId !== NO_PLAN && channel.planIds!.includes(planId))
}

/** Is the channel open to a caller on this plan (null: a user without one)? For what calls a stored object's channel again. */
export function openToPlan(channel: ChannelInfo, plan: PlanInfo | null): boolean {
  return isOpenTo(channel, plan === null ? NO_PLAN : plan.id)
}
