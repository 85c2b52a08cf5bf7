import db from '@adonisjs/lucid/services/db'
import Channel from '#models/channel'
import { AdminInputError } from '#actions/admin_input_error'
import { assertPlansExist, channelAttributes, channelBaseUrl, channelSnapshot, type CreateChannelInput } from '#actions/create_channel'
import { changedFields, cliActor, describeChanges, writeAudit, type Actor } from '#actions/audit'

export interface UpdateChannelInput extends Omit<CreateChannelInput, 'enabled'> {
  /** A new upstream key; empty/undefined keeps the stored one (the field is write-only) */
  apiKey?: string
  /** Remove the stored key (keyless upstreams) */
  clearApiKey?: boolean
}

/** Replaces a channel's configuration; the upstream key changes only when a new one is given. */
/**
 * A saved channel's configuration as an edit's input (its key and enabled
 * state left out): what a partial edit (the management API's PATCH, a model
 * list change) starts from before it is validated like any edit.
 */
export function currentChannelInput(channel: Channel) {
  return {
    name: channel.name,
    provider: channel.provider,
    baseUrl: channel.baseUrl,
    models: channel.models ?? [],
    modelMapping: channel.modelMapping ?? {},
    extraHeaders: channel.extraHeaders ?? {},
    priority: channel.priority,
    weight: channel.weight,
    connectTimeoutMs: channel.connectTimeoutMs ?? undefined,
    firstByteTimeoutMs: channel.firstByteTimeoutMs ?? undefined,
    idleTimeoutMs: channel.idleTimeoutMs ?? undefined,
    totalTimeoutMs: channel.totalTimeoutMs ?? undefined,
    planIds: channel.planIds ?? [],
  }
}

export async function updateChannel(id: number, input: UpdateChannelInput, actor: Actor = cliActor()) {
  const baseUrl = channelBaseUrl(input.provider, input.baseUrl)
  return db.transaction(async (trx) => {
    const channel = await Channel.query({ client: trx }).where('id', id).forUpdate().first()
    if (!channel) throw new AdminInputError(`No channel with id ${id}`)
    const clash = await Channel.query({ client: trx }).where('name', input.name).whereNot('id', id).first()
    if (clash) throw new AdminInputError(`A channel named "${input.name}" already exists`, 'name')
    await assertPlansExist(trx, input.planIds)
    const before = channelSnapshot(channel)
    const oldHeaders = JSON.stringify(channel.extraHeaders ?? {})
    channel.merge(channelAttributes(input, baseUrl))
    let keyNote = ''
    if (input.apiKey) {
      channel.setApiKey(input.apiKey)
      keyNote = 'upstream key replaced'
    } else if (input.clearApiKey && channel.apiKeyEncrypted) {
      channel.setApiKey(null)
      keyNote = 'upstream key removed'
    }
    channel.useTransaction(trx)
    await channel.save()
    const after = channelSnapshot(channel)
    const headerValuesOnly =
      oldHeaders !== JSON.stringify(channel.extraHeaders ?? {}) && before.extraHeaders.join() === after.extraHeaders.join()
    const changes = [describeChanges(before, after), keyNote, headerValuesOnly ? 'extra header values changed' : '']
      .filter(Boolean)
      .join(', ')
    if (changes) {
      await writeAudit(trx, actor, {
        action: 'channel.update',
        subjectType: 'channel',
        subjectId: channel.id,
        summary: `channel ${channel.name}: ${changes}`,
        ...changedFields(before, after),
      })
    }
    return channel
  })
}

/**
 * Enables or disables a channel by hand. Disabling records the reason the
 * channels page shows; enabling clears it and closes the circuit mirror.
 */
export async function setChannelEnabled(
  id: number,
  enabled: boolean,
  reason: string | null = null,
  actor: Actor = cliActor()
) {
  return db.transaction(async (trx) => {
    const channel = await Channel.query({ client: trx }).where('id', id).forUpdate().first()
    if (!channel) throw new AdminInputError(`No channel with id ${id}`)
    if (channel.enabled === enabled) return channel
    const before = { enabled: channel.enabled, disabledReason: channel.disabledReason }
    channel.enabled = enabled
    channel.disabledReason = enabled ? null : reason || `disabled by ${actor.label}`
    if (enabled) {
      channel.health = 'closed'
      channel.cooldownUntil = null
    }
    channel.useTransaction(trx)
    await channel.save()
    await writeAudit(trx, actor, {
      action: enabled ? 'channel.enable' : 'channel.disable',
      subjectType: 'channel',
      subjectId: channel.id,
      summary: `channel ${channel.name} ${enabled ? 'enabled' : `disabled: ${channel.disabledReason}`}`,
      before,
      after: { enabled: channel.enabled, disabledReason: channel.disabledReason },
    })
    return channel
  })
}
