import app from '@adonisjs/core/services/app'
import { GatewayError } from '#exceptions/gateway_error'
import { AdminInputError } from '#actions/admin_input_error'
import { dispatch, type AttemptRecord } from '#gateway/upstream/dispatcher'
import { adapterFor, upstreamDialect } from '#gateway/providers/registry'
import { dialectOf } from '#gateway/dialects/registry'
import { responseText } from '#gateway/dialects/canonical'
import type { ChannelInfo } from '#gateway/types'

export interface ChannelTestResult {
  ok: boolean
  model: string
  latencyMs: number
  /** Upstream HTTP status, null when it never answered */
  status: number | null
  /** The answer's first words */
  text: string | null
  /** The upstream's error as it said it (or the network failure) */
  error: string | null
}

const PROMPT = 'Reply with the words: gateway channel test ok'

/**
 * A model a channel serves, to test it with: the first public name of its
 * mapping, else its first glob without wildcards.
 */
export function testModelFor(channel: { models: string[]; modelMapping: Record<string, string> }): string | null {
  const mapped = Object.keys(channel.modelMapping ?? {})[0]
  if (mapped) return mapped
  return channel.models.find((glob) => !/[*?[\]]/.test(glob)) ?? null
}

/**
 * Sends one minimal, non-streamed chat request through this channel alone,
 * on the gateway's own dispatch path (adapter, dialect translation, pool,
 * timeouts, circuit breaker: a success closes an open circuit, a 401/403
 * disables the channel as it would for any request). Not metered.
 */
export async function testChannel(channelId: number, model?: string | null): Promise<ChannelTestResult> {
  const gateway = await app.container.make('gateway')
  let channel: ChannelInfo | undefined = gateway.catalog.channels.find((c) => c.id === channelId)
  if (!channel) {
    await gateway.catalog.loadChannels()
    channel = gateway.catalog.channels.find((c) => c.id === channelId)
  }
  if (!channel) throw new AdminInputError(`No channel with id ${channelId}`)
  const publicModel = model || testModelFor(channel)
  if (!publicModel) throw new AdminInputError('Name a model this channel serves to test it with', 'model')
  const upstreamModel = channel.modelMapping[publicModel] ?? publicModel

  const openAiBody = { model: publicModel, messages: [{ role: 'user', content: PROMPT }], max_tokens: 16, stream: false }
  const dialect = upstreamDialect(channel, 'openai_chat')
  const adapter = adapterFor(channel.provider)
  const body =
    dialect === 'openai_chat'
      ? JSON.stringify({ ...openAiBody, model: upstreamModel })
      : JSON.stringify(
          dialectOf(dialect).encodeRequest(
            dialectOf('openai_chat').decodeRequest(openAiBody),
            upstreamModel,
            adapter.encodeHints?.(channel)
          )
        )

  let last: AttemptRecord | null = null
  const started = performance.now()
  const elapsed = () => Math.round(performance.now() - started)
  try {
    const result = await dispatch(
      [{ channel, upstreamModel }],
      (c) =>
        adapter.request(c.channel, {
          operation: 'generate',
          dialect,
          model: upstreamModel,
          stream: false,
          body,
          clientHeaders: {},
        }),
      new AbortController().signal,
      { onAttemptResult: (record) => (last = record) }
    )
    const chunks: Buffer[] = []
    for await (const chunk of result.body) chunks.push(chunk)
    const text = Buffer.concat(chunks).toString('utf8')
    let answer: string
    try {
      answer = responseText(dialectOf(dialect).decodeResponse(JSON.parse(text)))
    } catch {
      answer = text
    }
    return {
      ok: true,
      model: publicModel,
      latencyMs: elapsed(),
      status: result.response.statusCode,
      text: firstWords(answer),
      error: null,
    }
  } catch (error) {
    const record = last as AttemptRecord | null
    const message =
      record?.error ?? (error instanceof GatewayError || error instanceof Error ? error.message : String(error))
    return {
      ok: false,
      model: publicModel,
      latencyMs: record?.latencyMs ?? elapsed(),
      status: record?.status ?? (error instanceof GatewayError ? error.status : null),
      text: null,
      error: message,
    }
  }
}

function firstWords(text: string, words = 30) {
  const parts = text.trim().split(/\s+/)
  return parts.length > words ? `${parts.slice(0, words).join(' ')}…` : text.trim()
}
