import { GatewayError } from '#exceptions/gateway_error'
import { modelAllowed } from '#gateway/access_policy'
import type { Gateway } from '#gateway/gateway'
import type { ApiCall } from '#gateway/http/generation_request'
import type { RouteCandidate } from '#gateway/routing/channel_router'
import { openToPlan } from '#gateway/routing/plan_routers'
import type { ProviderKind } from '#gateway/types'

/** The header naming the model a file is for (its channel then one that serves it); optional */
export const MODEL_HINT_HEADER = 'x-gateway-model'

/**
 * The channels a new file (or cache) may go to, in the order tried: an
 * upload names no model (Anthropic's and Google's Files APIs), so without a
 * hint it is every enabled channel of the kind open to the caller's plan,
 * highest priority first, then oldest (the first one that answers keeps the
 * file); with `x-gateway-model: <model>` (or a cache's own `model`), the
 * channels of that kind that route the model for this key, in their routing
 * order, so the file lands where that model's generations go.
 */
export function fileChannels(gw: Gateway, call: ApiCall, kind: ProviderKind, model?: string): RouteCandidate[] {
  const hint = model ?? headerValue(call.req.headers[MODEL_HINT_HEADER])
  const label = kind === 'anthropic' ? "Anthropic's Files API (an 'anthropic' channel)" : "Gemini's Files and caching API (a 'google' channel)"
  if (hint !== undefined && hint !== '') {
    const bare = hint.replace(/^models\//, '')
    if (!modelAllowed(call.principal, bare)) throw GatewayError.modelNotAllowed(bare)
    let routed: RouteCandidate[] = []
    try {
      routed = gw.service.router(call.principal.plan).route(bare)
    } catch {}
    const kept = routed.filter((c) => c.channel.provider === kind)
    if (kept.length === 0) throw GatewayError.invalidRequest(`No channel serving '${bare.slice(0, 100)}' here offers ${label}`, 'unsupported_endpoint')
    return kept
  }
  const channels = gw.catalog.channels
    .filter((c) => c.enabled && !c.keyUnreadable && c.provider === kind && openToPlan(c, call.principal.plan))
    .sort((a, b) => b.priority - a.priority || a.id - b.id)
  if (channels.length === 0) throw GatewayError.invalidRequest(`No channel open to this key offers ${label}`, 'unsupported_endpoint')
  return channels.map((channel) => ({ channel, upstreamModel: '' }))
}

export function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value
}
