import Channel from '#models/channel'
import { AdminInputError } from '#actions/admin_input_error'
import { channelBaseUrl } from '#actions/create_channel'
import { currentChannelInput, updateChannel } from '#actions/update_channel'
import { cliActor, type Actor } from '#actions/audit'
import { createChannelValidator } from '#validators/admin'
import { anyGlobMatches } from '#gateway/glob'
import { DEFAULT_TIMEOUTS } from '#gateway/upstream/timeouts'
import type { ChannelTimeouts, ProviderKind } from '#gateway/types'
import { UNREADABLE_KEY_REASON } from '#services/app_key_check'
import { listUpstreamModels, UpstreamModelsError, type ModelListTarget } from '#services/upstream_model_list'

/**
 * The upstream's model list for a channel (new-api's "fetch model list"):
 * shared by the Channels page, `channel:models` and the management API.
 * Each id says whether the channel already serves it (a glob of its models
 * matches it, or its mapping sends a public name to it); the chosen ones
 * are added to the channel's models (or replace them) through
 * updateChannel, audited like any edit.
 */

export interface UpstreamModel {
  id: string
  /** The channel serves it already: a glob matches it or the mapping sends a public name to it */
  served: boolean
  /** Public names the mapping sends to it */
  mappedFrom: string[]
}

export interface ChannelModelsReport {
  channelId: number | null
  models: UpstreamModel[]
  truncated: boolean
  latencyMs: number
}

/** Whether each upstream id is served by these globs and mapping. */
export function servedState(ids: string[], globs: string[], mapping: Record<string, string>): UpstreamModel[] {
  const mappedFrom = new Map<string, string[]>()
  for (const [publicName, upstream] of Object.entries(mapping)) {
    mappedFrom.set(upstream, [...(mappedFrom.get(upstream) ?? []), publicName])
  }
  return ids.map((id) => {
    const from = mappedFrom.get(id) ?? []
    return { id, served: from.length > 0 || anyGlobMatches(globs, id), mappedFrom: from }
  })
}

export function timeoutsOf(channel: {
  connectTimeoutMs?: number | null
  firstByteTimeoutMs?: number | null
  idleTimeoutMs?: number | null
  totalTimeoutMs?: number | null
}): ChannelTimeouts {
  return {
    connect: channel.connectTimeoutMs ?? DEFAULT_TIMEOUTS.connect,
    firstByte: channel.firstByteTimeoutMs ?? DEFAULT_TIMEOUTS.firstByte,
    idle: channel.idleTimeoutMs ?? DEFAULT_TIMEOUTS.idle,
    total: channel.totalTimeoutMs ?? DEFAULT_TIMEOUTS.total,
  }
}

/** A channel by id (or, from the command line, by name). */
export async function findChannel(ref: string | number): Promise<Channel> {
  const byId = typeof ref === 'number' || /^\d{1,15}$/.test(String(ref))
  const channel = byId ? await Channel.find(Number(ref)) : await Channel.findBy('name', String(ref))
  if (!channel) throw AdminInputError.notFound(`No channel matches "${ref}"`)
  return channel
}

/** Where a saved channel's model list is asked: its kind, base URL, key, headers and timeouts. */
export function modelListTargetOf(channel: Channel): ModelListTarget {
  return {
    provider: channel.provider as ProviderKind,
    baseUrl: channel.baseUrl,
    apiKey: channel.getApiKey(),
    extraHeaders: channel.extraHeaders ?? {},
    timeouts: timeoutsOf(channel),
  }
}

/** Asks a saved channel's upstream for its models, with the channel's key, adapter and timeouts. */
export async function fetchChannelModels(ref: string | number, signal?: AbortSignal): Promise<ChannelModelsReport> {
  const channel = await findChannel(ref)
  // Sent without its key, the upstream's 401 would say nothing of the cause.
  if (channel.keyUnreadable) throw new AdminInputError(`Not sent: ${UNREADABLE_KEY_REASON}`)
  const list = await listUpstreamModels(modelListTargetOf(channel), { signal })
  return {
    channelId: channel.id,
    models: servedState(list.ids, channel.models ?? [], channel.modelMapping ?? {}),
    truncated: list.truncated,
    latencyMs: list.latencyMs,
  }
}

export interface ModelsPreviewInput {
  provider: ProviderKind
  baseUrl: string
  apiKey?: string | null
  extraHeaders?: Record<string, string>
  /** The models and mapping typed so far, to say which ids they serve */
  models?: string[]
  modelMapping?: Record<string, string>
  connectTimeoutMs?: number
  firstByteTimeoutMs?: number
  idleTimeoutMs?: number
  totalTimeoutMs?: number
}

/** The same for a channel not saved yet (the new-channel form): the base URL, kind and key typed. */
export async function previewUpstreamModels(input: ModelsPreviewInput): Promise<ChannelModelsReport> {
  const baseUrl = channelBaseUrl(input.provider, input.baseUrl)
  const list = await listUpstreamModels({
    provider: input.provider,
    baseUrl,
    apiKey: input.apiKey || null,
    extraHeaders: input.extraHeaders ?? {},
    timeouts: timeoutsOf(input),
  })
  return {
    channelId: null,
    models: servedState(list.ids, input.models ?? [], input.modelMapping ?? {}),
    truncated: list.truncated,
    latencyMs: list.latencyMs,
  }
}

export type ModelsChange = 'add' | 'replace'

/**
 * Adds the chosen ids to the channel's models (those not listed yet, after
 * the current ones), or replaces the list with them; saved through
 * updateChannel (one transaction, one audit row), validated as any edit
 * (at most 500 entries).
 */
export async function setChannelModels(ref: string | number, chosen: string[], mode: ModelsChange, actor: Actor = cliActor()) {
  const channel = await findChannel(ref)
  const picked = [...new Set(chosen.map((id) => String(id).trim()).filter(Boolean))]
  if (!picked.length) throw new AdminInputError('Choose at least one model', 'models')
  const current = channel.models ?? []
  const models = mode === 'replace' ? picked : [...current, ...picked.filter((id) => !current.includes(id))]
  const input = await createChannelValidator.validate({ ...currentChannelInput(channel), models })
  const { enabled: _enabled, apiKey: _apiKey, ...configuration } = input
  const saved = await updateChannel(channel.id, configuration, actor)
  return { channel: saved, added: models.filter((id) => !current.includes(id)), removed: current.filter((id) => !models.includes(id)) }
}

export { UpstreamModelsError }
