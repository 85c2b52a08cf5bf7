import Channel from '#models/channel'
import { AdminInputError } from '#actions/admin_input_error'
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
}

/**
 * Adds an upstream channel; its key is stored encrypted with APP_KEY, its
 * base URL in the kind's canonical form (https://api.anthropic.com becomes
 * https://api.anthropic.com/v1).
 */
export async function createChannel(input: CreateChannelInput) {
  const baseUrl = channelBaseUrl(input.provider, input.baseUrl)
  if (await Channel.findBy('name', input.name)) {
    throw new AdminInputError(`A channel named "${input.name}" already exists`)
  }
  const channel = new Channel()
  channel.fill({
    name: input.name,
    provider: input.provider,
    baseUrl,
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
  await channel.save()
  return channel
}

/** The canonical base URL for a channel of this kind, or the operator's error. Also for channel updates. */
export function channelBaseUrl(provider: ProviderKind, baseUrl: string): string {
  try {
    return normaliseBaseUrl(provider, baseUrl)
  } catch (error) {
    if (error instanceof BaseUrlError) throw new AdminInputError(`Base URL: ${error.message}`)
    throw error
  }
}
