import app from '@adonisjs/core/services/app'
import db from '@adonisjs/lucid/services/db'
import { cliActor, writeAudit, type Actor } from '#actions/audit'
import Channel from '#models/channel'
import { GatewayError } from '#exceptions/gateway_error'
import { AdminInputError } from '#actions/admin_input_error'
import { dispatch, readBody, type AttemptRecord, type UpstreamBody } from '#gateway/upstream/dispatcher'
import { decodeAnswer, parseAnswer } from '#gateway/upstream/upstream_answer'
import type { DialectName } from '#gateway/dialects/canonical'
import { adapterFor, upstreamDialect } from '#gateway/providers/registry'
import { dialectOf } from '#gateway/dialects/registry'
import { responseText } from '#gateway/dialects/canonical'
import type { ChannelInfo } from '#gateway/types'
import { UNREADABLE_KEY_REASON } from '#services/app_key_check'
import { listUpstreamModels, UpstreamModelsError } from '#services/upstream_model_list'
import { findChannel, modelListTargetOf } from '#actions/channel_models'
import { disabledForAccount } from '#gateway/upstream/account_problems'

/**
 * Testing a channel, two ways: the panel's Test action sends a minimal
 * generation through the gateway's own dispatch path; `channel:test` (which
 * runs without the gateway's long-lived objects) lists the upstream's models.
 * Both put a channel the gateway disabled itself back in rotation on success.
 */

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
  /** The gateway had disabled the channel itself and this passing test put it back in rotation */
  reEnabled: boolean
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
 * The panel's Test action: sends one minimal, non-streamed chat request through this channel alone,
 * on the gateway's own dispatch path (adapter, dialect translation, pool,
 * timeouts, circuit breaker: a success closes an open circuit, a 401/403
 * disables the channel as it would for any request). Not metered.
 */
export async function testChannel(
  channelId: number,
  model?: string | null,
  /** Ends the test early (Test all's per-channel limit); the channel's own timeouts apply too */
  signal: AbortSignal = new AbortController().signal,
  /** Who ran the test: named in the audit row when it puts the channel back in rotation */
  actor: Actor = cliActor()
): Promise<ChannelTestResult> {
  const gateway = await app.container.make('gateway')
  let channel: ChannelInfo | undefined = gateway.catalog.channels.find((c) => c.id === channelId)
  if (!channel) {
    await gateway.catalog.loadChannels()
    channel = gateway.catalog.channels.find((c) => c.id === channelId)
  }
  if (!channel) throw new AdminInputError(`No channel with id ${channelId}`)
  const publicModel = model || testModelFor(channel)
  if (!publicModel) throw new AdminInputError('Name a model this channel serves to test it with', 'model')
  // Sent without its key, the upstream's 401 would say nothing of the cause.
  if (channel.keyUnreadable) {
    const reason = `Not sent: ${UNREADABLE_KEY_REASON}`
    return { ok: false, model: publicModel, latencyMs: 0, status: null, text: null, error: reason, reEnabled: false }
  }
  const upstreamModel = channel.modelMapping[publicModel] ?? publicModel

  const openAiBody = { model: publicModel, messages: [{ role: 'user', content: PROMPT }], max_tokens: 16, stream: false }
  const dialect = upstreamDialect(channel, 'openai_chat', upstreamModel)
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
      signal,
      { onAttemptResult: (record) => (last = record) },
      // An answer that is no answer (an error body with 200, not JSON, no content) fails the test, as it fails a request.
      (body) => readTestAnswer(body, dialect)
    )
    const answer = result.answer
    const latencyMs = elapsed()
    const row = await Channel.find(channelId)
    const reEnabled = row ? await reEnableIfAutoDisabled(row, actor, `a test request answered in ${latencyMs} ms`) : false
    return {
      ok: true,
      model: publicModel,
      latencyMs,
      status: result.response.statusCode,
      text: firstWords(answer),
      error: null,
      reEnabled,
    }
  } catch (error) {
    const record = last as AttemptRecord | null
    const message =
      record?.error ?? (error instanceof GatewayError || error instanceof Error ? error.message : String(error))
    return {
      ok: false,
      model: publicModel,
      latencyMs: record?.latencyMs ?? elapsed(),
      // The upstream's status: none when it never answered (a refused connection is no "HTTP 502" of the upstream's).
      status: record ? record.status : error instanceof GatewayError ? error.status : null,
      text: null,
      error: message,
      reEnabled: false,
    }
  }
}

/**
 * The test's AnswerCheck: the whole answer read and judged as a client's
 * request's is (gateway_service.ts readAnswer), its text returned. A
 * failure is the attempt's `invalid_answer`: the test reports it, with the
 * reason, and the channel's health counts it.
 */
async function readTestAnswer(body: UpstreamBody, dialect: DialectName): Promise<string> {
  const upstream = dialectOf(dialect)
  const parsed = parseAnswer(await readBody(body))
  if (!upstream.isAnswer(parsed)) throw GatewayError.providerError('Upstream returned an answer without its content')
  return responseText(decodeAnswer(() => upstream.decodeResponse(parsed)))
}

function firstWords(text: string, words = 30) {
  const parts = text.trim().split(/\s+/)
  return parts.length > words ? `${parts.slice(0, words).join(' ')}…` : text.trim()
}

export interface ChannelKeyCheck {
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
 * `channel:test`: checks a channel's key by listing the upstream's models
 * (cheap, billed by no provider), through the same client as Fetch models
 * (services/upstream_model_list.ts) limited to its first page: the same
 * request, bounds, masked key and judgement of the answer (a web page at a
 * wrong base URL, an error body with 200 or a redirect is no pass). A
 * channel the gateway disabled itself (a 401, or 403s for several models)
 * goes back into rotation when the test succeeds; a channel an admin
 * disabled stays disabled, and so does one disabled for its upstream account
 * (out of credit, billing, deactivated): a model list is served to a key
 * whose account cannot pay for a generation, so only the panel's Test (a
 * generation) puts that one back. Callable from `channel:test` and Test all.
 */
export async function checkChannelKey(
  ref: string | number | Channel,
  timeoutMs = 10_000,
  actor: Actor = cliActor()
): Promise<ChannelKeyCheck> {
  const channel = ref instanceof Channel ? ref : await findChannel(ref)
  if (channel.keyUnreadable) {
    return { channelId: channel.id, ok: false, status: null, message: `not sent: ${UNREADABLE_KEY_REASON}`, latencyMs: 0, reEnabled: false }
  }

  const started = performance.now()
  let status: number | null
  let message: string
  let ok = false
  try {
    const list = await listUpstreamModels(modelListTargetOf(channel), { maxPages: 1, totalMs: timeoutMs })
    ok = true
    status = list.status
    message = `upstream listed ${list.ids.length}${list.truncated ? '+' : ''} models`
  } catch (error) {
    if (!(error instanceof UpstreamModelsError)) throw error
    status = error.status
    message = error.reason
  }
  const latencyMs = Math.round(performance.now() - started)

  if (ok && !channel.enabled && channel.autoDisabledAt && disabledForAccount(channel.disabledReason)) {
    message += "; left disabled: it was disabled for its upstream account (credit, billing), which a model list does not show; the panel's Test (a generation) puts it back"
    return { channelId: channel.id, ok, status, message, latencyMs, reEnabled: false }
  }
  const reEnabled = ok ? await reEnableIfAutoDisabled(channel, actor, message) : false
  return { channelId: channel.id, ok, status, message, latencyMs, reEnabled }
}

/**
 * A channel the gateway disabled itself (a 401, or 403s for several models)
 * goes back into rotation once a test passes; one an admin disabled stays off.
 * The audit log says who ran the test and what the gateway had disabled it
 * for: a channel coming back is a change like an admin's Enable.
 */
async function reEnableIfAutoDisabled(channel: Channel, actor: Actor, passed: string): Promise<boolean> {
  if (channel.enabled || !channel.autoDisabledAt) return false
  const wasReason = channel.disabledReason
  await db.transaction(async (trx) => {
    channel.useTransaction(trx)
    channel.merge({ enabled: true, disabledReason: null, autoDisabledAt: null, health: 'closed', cooldownUntil: null })
    channel.modelCooldowns = {}
    await channel.save()
    await writeAudit(trx, actor, {
      action: 'channel.enable',
      subjectType: 'channel',
      subjectId: channel.id,
      summary: `Channel ${channel.name} back in rotation after a passing test (${passed.slice(0, 200)}); the gateway had disabled it: ${(wasReason ?? 'no reason recorded').slice(0, 300)}`,
      before: { enabled: false, disabled_reason: wasReason },
      after: { enabled: true },
    })
  })
  return true
}
