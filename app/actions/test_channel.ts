import { request } from 'undici'
import Channel from '#models/channel'
import { AdminInputError } from '#actions/admin_input_error'
import { adapterFor } from '#gateway/providers/registry'
import { DEFAULT_TIMEOUTS } from '#gateway/upstream/timeouts'
import type { ChannelInfo, ProviderKind } from '#gateway/types'

export interface ChannelTestResult {
  channelId: number
  ok: boolean
  /** Upstream HTTP status, or null when it could not be reached */
  status: number | null
  message: string
  latencyMs: number
  /** The gateway had disabled the channel itself (bad key) and this test put it back in rotation */
  reEnabled: boolean
}

/**
 * Tests a channel's key by listing the upstream's models (cheap, billed by no
 * provider). A channel the gateway disabled itself (a 401, or 403s for
 * several models) goes back into rotation when the test succeeds; a channel
 * an admin disabled stays disabled. Callable from `channel:test` and the
 * admin panel.
 */
export async function testChannel(ref: string | number, timeoutMs = 10_000): Promise<ChannelTestResult> {
  const channel =
    typeof ref === 'number' || /^\d+$/.test(String(ref))
      ? await Channel.find(Number(ref))
      : await Channel.findBy('name', ref)
  if (!channel) throw new AdminInputError(`No channel matches "${ref}"`)

  const upstream = adapterFor(channel.provider as ProviderKind).modelsPath(channelInfo(channel))
  const started = performance.now()
  let status: number | null = null
  let message: string
  try {
    const response = await request(`${upstream.origin}${upstream.path}`, {
      method: 'GET',
      headers: upstream.headers,
      signal: AbortSignal.timeout(timeoutMs),
    })
    status = response.statusCode
    const text = await response.body.text()
    message = status < 400 ? 'upstream answered' : `upstream answered HTTP ${status}: ${text.slice(0, 300)}`
  } catch (error: any) {
    message = `upstream unreachable: ${error?.code ?? error?.name ?? 'error'}`
  }
  const latencyMs = Math.round(performance.now() - started)
  const ok = status !== null && status < 400

  let reEnabled = false
  if (ok && !channel.enabled && channel.autoDisabledAt) {
    channel.merge({ enabled: true, disabledReason: null, autoDisabledAt: null, health: 'closed', cooldownUntil: null })
    channel.modelCooldowns = {}
    await channel.save()
    reEnabled = true
  }
  return { channelId: channel.id, ok, status, message, latencyMs, reEnabled }
}

/** The routing snapshot of one channel row (what the provider adapter reads). */
function channelInfo(channel: Channel): ChannelInfo {
  return {
    id: channel.id,
    name: channel.name,
    provider: channel.provider as ProviderKind,
    baseUrl: channel.baseUrl.replace(/\/+$/, ''),
    apiKey: channel.getApiKey(),
    models: channel.models ?? [],
    modelMapping: channel.modelMapping ?? {},
    extraHeaders: channel.extraHeaders ?? {},
    priority: channel.priority,
    weight: channel.weight,
    enabled: channel.enabled,
    disabledReason: channel.disabledReason,
    timeouts: DEFAULT_TIMEOUTS,
  }
}
