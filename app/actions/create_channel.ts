import db from '@adonisjs/lucid/services/db'
import Channel from '#models/channel'
import { AdminInputError } from '#actions/admin_input_error'
import { cliActor, writeAudit, type Actor } from '#actions/audit'
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
  }
}

/** Adds an upstream channel; its key is stored encrypted with APP_KEY. */
export async function createChannel(input: CreateChannelInput, actor: Actor = cliActor()) {
  return db.transaction(async (trx) => {
    if (await Channel.query({ client: trx }).where('name', input.name).first()) {
      throw new AdminInputError(`A channel named "${input.name}" already exists`, 'name')
    }
    const channel = new Channel()
    channel.fill({
      name: input.name,
      provider: input.provider,
      baseUrl: input.baseUrl.replace(/\/+$/, ''),
      models: input.models,
      modelMapping: input.modelMapping ?? {},
      extraHeaders: input.extraHeaders ?? {},
      priority: input.priority ?? 0,
      weight: input.weight ?? 1,
      enabled: input.enabled ?? true,
      connectTimeoutMs: input.connectTimeoutMs ?? null,
      firstByteTimeoutMs: input.firstByteTimeoutMs ?? null,
      idleTimeoutMs: input.idleTimeoutMs ?? null,
      totalTimeoutMs: input.totalTimeoutMs ?? null,
    })
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
