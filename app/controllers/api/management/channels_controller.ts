import type { HttpContext } from '@adonisjs/core/http'
import Channel from '#models/channel'
import { AdminInputError } from '#actions/admin_input_error'
import { createChannel } from '#actions/create_channel'
import { currentChannelInput, setChannelEnabled, updateChannel } from '#actions/update_channel'
import { testChannel } from '#actions/test_channel'
import { testAllChannels } from '#actions/test_all_channels'
import { fetchChannelModels, setChannelModels } from '#actions/channel_models'
import { UpstreamModelsError } from '#services/upstream_model_list'
import { GatewayError } from '#exceptions/gateway_error'
import { channelModelsValidator, createChannelValidator, withRegionAsBaseUrl } from '#validators/admin'
import { apiActor, channelJson, managed } from '#services/management_api'
import { recordId } from '#services/record_id'

/** The API's snake_case fields -> the shared channel validator's camelCase ones (absent stays absent). */
const FIELDS: Record<string, string> = {
  name: 'name',
  provider: 'provider',
  base_url: 'baseUrl',
  api_key: 'apiKey',
  models: 'models',
  model_mapping: 'modelMapping',
  extra_headers: 'extraHeaders',
  priority: 'priority',
  weight: 'weight',
  enabled: 'enabled',
  connect_timeout_ms: 'connectTimeoutMs',
  first_byte_timeout_ms: 'firstByteTimeoutMs',
  idle_timeout_ms: 'idleTimeoutMs',
  total_timeout_ms: 'totalTimeoutMs',
  plan_ids: 'planIds',
}

function camelCase(body: Record<string, unknown>): Record<string, unknown> {
  assertPlanIds(body.plan_ids)
  const out: Record<string, unknown> = {}
  for (const [from, to] of Object.entries(FIELDS)) if (body[from] !== undefined && body[from] !== null) out[to] = body[from]
  return out
}

/**
 * plan_ids hold plan ids: whole numbers, or their digits. The shared
 * validator reads a value as Number() does (it also takes the panel's text),
 * so `true`, `[1]` or "0x1" would become plan 1 and close the channel to
 * every other plan: refused here, in the API's JSON, before it.
 */
function assertPlanIds(value: unknown) {
  if (!Array.isArray(value)) return
  const wrong = value.find((id) => !(typeof id === 'number' && Number.isInteger(id)) && !(typeof id === 'string' && /^\s*\d+\s*$/.test(id)))
  if (wrong !== undefined) {
    throw new AdminInputError(`Plans: a plan id is a whole number (or its digits), not ${JSON.stringify(wrong) ?? String(wrong)}`, 'planIds')
  }
}

async function channelOr404(id: unknown) {
  // Digits only: Number() read "0x10" and "1e3" as the channels 16 and 1000.
  const ref = recordId(id)
  const channel = ref === null ? null : await Channel.find(ref)
  if (!channel) throw AdminInputError.notFound(`No channel ${id}`)
  return channel
}

/**
 * Channels over the management API (LiteLLM's /model/new, /model/info,
 * /model/update): the same actions as the panel's Channels page and
 * `channel:create`, audited with source `api`. The upstream key is
 * write-only: answers say `has_key`, never the key.
 */
export default class ManagementChannelsController {
  /** GET /api/admin/channels: every channel with its routing state. */
  async index() {
    const channels = await Channel.query().orderBy('id')
    return { object: 'list', data: channels.map(channelJson) }
  }

  /** GET /api/admin/channels/:id */
  async show({ params }: HttpContext) {
    return managed(async () => channelJson(await channelOr404(params.id)))
  }

  /** POST /api/admin/channels: {name, provider, base_url, api_key?, models, model_mapping?, extra_headers?, priority?, weight?, enabled?, *_timeout_ms?, plan_ids?} */
  async store(ctx: HttpContext) {
    return managed(async () => {
      const input = await createChannelValidator.validate(withRegionAsBaseUrl(camelCase(ctx.request.body())))
      const channel = await createChannel(input, apiActor(ctx))
      ctx.response.status(201)
      return channelJson(channel)
    })
  }

  /**
   * PATCH /api/admin/channels/:id: the fields given change, the rest stay;
   * `api_key` replaces the upstream key (`null` removes it); `plan_ids`
   * the plans it is open to (`null` or `[]`: every plan); `enabled`
   * turns the channel on (closing its circuit) or off (`disabled_reason`).
   */
  async update(ctx: HttpContext) {
    return managed(async () => {
      const channel = await channelOr404(ctx.params.id)
      const body = ctx.request.body()
      const current = currentChannelInput(channel)
      const given = camelCase(body)
      // Channel groups: `plan_ids: null` (or []) opens the channel to every plan again.
      if (body.plan_ids === null) given.planIds = []
      // A timeout given as null goes back to the gateway's default.
      for (const field of ['connect_timeout_ms', 'first_byte_timeout_ms', 'idle_timeout_ms', 'total_timeout_ms']) {
        if (body[field] === null) delete (current as Record<string, unknown>)[FIELDS[field]]
      }
      const input = await createChannelValidator.validate(withRegionAsBaseUrl({ ...current, ...given }))
      const actor = apiActor(ctx)
      const { enabled, ...configuration } = input
      await updateChannel(channel.id, { ...configuration, apiKey: input.apiKey, clearApiKey: body.api_key === null }, actor)
      if (enabled !== undefined) {
        const reason = typeof body.disabled_reason === 'string' ? body.disabled_reason.slice(0, 200) : null
        await setChannelEnabled(channel.id, enabled, reason, actor)
      }
      return channelJson(await channelOr404(channel.id))
    })
  }

  /** POST /api/admin/channels/:id/test: one small request to the upstream, as the panel's Test button sends. */
  async test(ctx: HttpContext) {
    return managed(async () => {
      const channel = await channelOr404(ctx.params.id)
      const result = await testChannel(channel.id, undefined, undefined, apiActor(ctx))
      return {
        object: 'channel_test',
        channel_id: channel.id,
        ok: result.ok,
        model: result.model,
        latency_ms: result.latencyMs,
        status: result.status,
        text: result.text,
        error: result.error,
        re_enabled: result.reEnabled,
      }
    })
  }

  /** POST /api/admin/channels/test-all: the Test above for every channel in rotation or disabled by the gateway, 4 at a time. */
  async testAll(ctx: HttpContext) {
    const rows = await testAllChannels({ kind: 'generate', actor: apiActor(ctx) })
    return {
      object: 'list',
      data: rows.map((row) => ({
        object: 'channel_test',
        channel_id: row.channelId,
        name: row.name,
        ok: row.ok,
        model: row.model,
        latency_ms: row.latencyMs,
        status: row.status,
        message: row.message,
        re_enabled: row.reEnabled,
        skipped: row.skipped,
      })),
    }
  }

  /**
   * GET /api/admin/channels/:id/models: the upstream's model list, asked
   * with the channel's key (new-api's "fetch model list"): each id with
   * `served` (a glob or the mapping serves it) and `mapped_from`. The
   * upstream's failure is a 502 `provider_error` saying what it answered.
   */
  async models({ params }: HttpContext) {
    return managed(async () => {
      const channel = await channelOr404(params.id)
      try {
        const report = await fetchChannelModels(channel.id)
        return {
          object: 'list',
          channel_id: channel.id,
          data: report.models.map((m) => ({ id: m.id, served: m.served, mapped_from: m.mappedFrom })),
          truncated: report.truncated,
          latency_ms: report.latencyMs,
        }
      } catch (error) {
        if (error instanceof UpstreamModelsError) throw new GatewayError(502, 'provider_error', error.message, 'upstream_error')
        throw error
      }
    })
  }

  /** POST /api/admin/channels/:id/models: `{models: [...], mode?: "add" | "replace"}`; the channel as saved. */
  async setModels(ctx: HttpContext) {
    return managed(async () => {
      const channel = await channelOr404(ctx.params.id)
      const { models, mode } = await channelModelsValidator.validate(ctx.request.body())
      await setChannelModels(channel.id, models, mode ?? 'add', apiActor(ctx))
      return channelJson(await channelOr404(channel.id))
    })
  }
}
