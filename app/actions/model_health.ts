import app from '@adonisjs/core/services/app'
import Channel from '#models/channel'
import { AdminInputError } from '#actions/admin_input_error'
import { channelsToTest, testAllChannels, TEST_ALL_DEFAULTS, type ChannelTestRow } from '#actions/test_all_channels'
import { TestSlots } from '#actions/test_slots'
import type { Actor } from '#actions/audit'
import { GatewayError } from '#exceptions/gateway_error'
import { ChannelRouter } from '#gateway/routing/channel_router'

/**
 * LiteLLM's model health check (`GET /health`, optionally `?model=`): a
 * minimal generation through every channel in rotation (or every channel that
 * serves the model), the panel's "Test all" run. It costs each upstream a
 * few tokens, so monitors that poll it share one run: a call made while a
 * run for the same model is under way gets that run's answer.
 */

export interface ModelHealth {
  healthy: ChannelTestRow[]
  unhealthy: ChannelTestRow[]
  /** Base URL per channel id, for LiteLLM's `api_base` */
  baseUrls: Map<number, string>
}

const running = new Map<string, Promise<ModelHealth>>()

/**
 * The upstream calls of every run under way, together: runs for different
 * models do not share an answer, and each making Test all's 4 at once let
 * monitors polling many models fan out without bound (16 models, 64 calls).
 */
const slots = new TestSlots(TEST_ALL_DEFAULTS.concurrency)

export function modelHealth(model: string | null, actor: Actor): Promise<ModelHealth> {
  const key = model ?? ''
  let run = running.get(key)
  if (!run) {
    run = check(model, actor).finally(() => running.delete(key))
    running.set(key, run)
  }
  return run
}

async function check(model: string | null, actor: Actor): Promise<ModelHealth> {
  const gateway = await app.container.make('gateway')
  // In flight as a request is: refused (503) once a shutdown started, and ended when one starts. Else the
  // run (hanging channels, 20 s each) held the HTTP server's close, the shutdown, past its grace.
  const ended = new AbortController()
  const release = gateway.service.admitSession({ abort: ended, onDrain: () => ended.abort() })
  let rows: ChannelTestRow[]
  let channels: Channel[]
  try {
    const serving = model === null ? null : await channelsServing(model)
    channels = serving?.channels ?? (await channelsToTest())
    rows = await testAllChannels({ kind: 'generate', actor, channels, model: serving?.model, slots, signal: ended.signal })
  } finally {
    release()
  }
  // Cut short, its rows would report healthy channels as failing.
  if (ended.signal.aborted) throw new GatewayError(503, 'shutting_down', 'The gateway is shutting down', 'service_unavailable')
  return {
    healthy: rows.filter((row) => row.ok),
    unhealthy: rows.filter((row) => !row.ok),
    baseUrls: new Map(channels.map((channel) => [channel.id, channel.baseUrl])),
  }
}

/**
 * The channels a generation request for `model` could reach, as the router
 * picks them (globs, mappings, the prefix table, a thinking suffix) on any plan, not its
 * fallbacks' channels: those serve other models, checked under their own
 * names; and the model to test them with: a suffixed name (`o3-mini-high`,
 * `claude-x-thinking`) is its base model's, the name the upstream knows (sent
 * as asked, the upstream's 404 made a servable model unhealthy).
 */
async function channelsServing(model: string): Promise<{ channels: Channel[]; model: string }> {
  const gateway = await app.container.make('gateway')
  // Every channel, whatever plans it is open to: the operator checks them all.
  const router = new ChannelRouter(gateway.catalog.channels)
  const plan = router.resolve(model)
  let ids: number[]
  try {
    ids = router
      .candidatesOf(plan, model)
      .filter((candidate) => candidate.publicModel === undefined)
      .map((candidate) => candidate.channel.id)
  } catch (error) {
    if (error instanceof GatewayError) throw AdminInputError.notFound(`No channel in rotation serves the model "${model}"`)
    throw error
  }
  if (ids.length === 0) throw AdminInputError.notFound(`No channel in rotation serves the model "${model}"`)
  const channels = await Channel.query().whereIn('id', [...new Set(ids)]).orderBy('priority', 'desc').orderBy('id')
  return { channels, model: typeof plan === 'object' && plan.suffix !== undefined ? plan.suffix.base : model }
}
