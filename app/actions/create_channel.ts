import db from '@adonisjs/lucid/services/db'
import type { TransactionClientContract } from '@adonisjs/lucid/types/database'
import Channel from '#models/channel'
import { AdminInputError } from '#actions/admin_input_error'
import { cliActor, writeAudit, type Actor } from '#actions/audit'
import { BaseUrlError, normaliseBaseUrl } from '#gateway/providers/base_url'
import type { ProviderKind } from '#gateway/types'

export interface CreateChannelInput {
  name: string
  provider: ProviderKind
  baseUrl: string
  apiKey?: string
  models: string[]
  modelMapping?: Record<string, string>
  extraHeaders?: Record<string, string>
  priority?: number
  weight?: number
  enabled?: boolean
  connectTimeoutMs?: number
  firstByteTimeoutMs?: number
  idleTimeoutMs?: number
  totalTimeoutMs?: number
  /** The plans the channel is open to (channel groups); absent or empty = every plan */
  planIds?: number[]
}

/**
 * A channel's configuration as the audit log records it: the upstream key
 * only as "set"/"none", extra header values hidden (they often carry
 * credentials too).
 */
export function channelSnapshot(channel: Channel) {
  return {
    name: channel.name,
    provider: channel.provider,
    baseUrl: channel.baseUrl,
    upstreamKey: channel.apiKeyEncrypted ? 'set' : 'none',
    models: channel.models,
    modelMapping: channel.modelMapping,
    extraHeaders: Object.keys(channel.extraHeaders ?? {}),
    priority: channel.priority,
    weight: channel.weight,
    enabled: channel.enabled,
    connectTimeoutMs: channel.connectTimeoutMs,
    firstByteTimeoutMs: channel.firstByteTimeoutMs,
    idleTimeoutMs: channel.idleTimeoutMs,
    totalTimeoutMs: channel.totalTimeoutMs,
    planIds: channel.planIds ?? 'all',
  }
}

/** The configurable columns of a channel, with their defaults (create and update share them). */
export function channelAttributes(input: Omit<CreateChannelInput, 'enabled'>, canonicalBaseUrl: string) {
  return {
    name: input.name,
    provider: input.provider,
    baseUrl: canonicalBaseUrl,
    models: input.models,
    modelMapping: input.modelMapping ?? {},
    extraHeaders: input.extraHeaders ?? {},
    priority: input.priority ?? 0,
    weight: input.weight ?? 1,
    connectTimeoutMs: input.connectTimeoutMs ?? null,
    firstByteTimeoutMs: input.firstByteTimeoutMs ?? null,
    idleTimeoutMs: input.idleTimeoutMs ?? null,
    totalTimeoutMs: input.totalTimeoutMs ?? null,
    // Stored sorted and once each; none is NULL (every plan), never an empty set.
    planIds: input.planIds?.length ? [...new Set(input.planIds)].sort((a, b) => a - b) : null,
  }
}

/**
 * The plans a channel is to be open to must exist: an unknown id is the
 * operator's error, naming it. Read FOR SHARE, so a plan's delete (which
 * refuses while a channel names it, under the plan's row lock) waits for
 * this edit and then sees it.
 */
export async function assertPlansExist(trx: TransactionClientContract, planIds: number[] | undefined) {
  if (!planIds?.length) return
  const rows = await trx.from('plans').whereIn('id', planIds).forShare().select('id')
  const found = new Set(rows.map((r) => Number(r.id)))
  const unknown = planIds.filter((id) => !found.has(id))
  if (unknown.length > 0) {
    throw new AdminInputError(`Plans: no plan with id ${[...new Set(unknown)].join(', ')}`, 'planIds')
  }
}

/**
 * Adds an upstream channel; its key is stored encrypted with APP_KEY, its
 * base URL in the kind's canonical form (https://api.anthropic.com becomes
 * https://api.anthropic.com/v1).
 */
export async function createChannel(input: CreateChannelInput, actor: Actor = cliActor()) {
  const baseUrl = channelBaseUrl(input.provider, input.baseUrl)
  return db.transaction(async (trx) => {
    if (await Channel.query({ client: trx }).where('name', input.name).first()) {
      throw new AdminInputError(`A channel named "${input.name}" already exists`, 'name')
    }
    await assertPlansExist(trx, input.planIds)
    const channel = new Channel()
    channel.fill({ ...channelAttributes(input, baseUrl), enabled: input.enabled ?? true })
    channel.setApiKey(input.apiKey ?? null)
    channel.useTransaction(trx)
    await channel.save()
    await writeAudit(trx, actor, {
      action: 'channel.create',
      subjectType: 'channel',
      subjectId: channel.id,
      summary: `channel ${channel.name} (${channel.provider}, ${channel.baseUrl}) created`,
      after: channelSnapshot(channel),
    })
    return channel
  })
}

/** The canonical base URL for a channel of this kind, or the operator's error. Also for channel updates. */
export function channelBaseUrl(provider: ProviderKind, baseUrl: string): string {
  try {
    return normaliseBaseUrl(provider, baseUrl)
  } catch (error) {
    if (error instanceof BaseUrlError) throw new AdminInputError(`Base URL: ${error.message}`, 'baseUrl')
    throw error
  }
}
