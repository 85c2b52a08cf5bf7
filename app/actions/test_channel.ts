import app from '@adonisjs/core/services/app'
import { request } from 'undici'
import Channel from '#models/channel'
import { GatewayError } from '#exceptions/gateway_error'
import { AdminInputError } from '#actions/admin_input_error'
import { dispatch, readBody, type AttemptRecord, type UpstreamBody } from '#gateway/upstream/dispatcher'
import { decodeAnswer, parseAnswer } from '#gateway/upstream/upstream_answer'
import type { DialectName } from '#gateway/dialects/canonical'
import { adapterFor, upstreamDialect } from '#gateway/providers/registry'
import { dialectOf } from '#gateway/dialects/registry'
import { responseText } from '#gateway/dialects/canonical'
import { DEFAULT_TIMEOUTS } from '#gateway/upstream/timeouts'
import type { ChannelInfo, ProviderKind } from '#gateway/types'
import { UNREADABLE_KEY_REASON } from '#services/app_key_check'

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
  signal: AbortSignal = new AbortController().signal
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
      signal,
      { onAttemptResult: (record) => (last = record) },
      // An answer that is no answer (an error body with 200, not JSON, no content) fails the test, as it fails a request.
      (body) => readTestAnswer(body, dialect)
    )
    const answer = result.answer
    const latencyMs = elapsed()
    const row = await Channel.find(channelId)
    const reEnabled = row ? await reEnableIfAutoDisabled(row) : false
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
 * `channel:test`: checks a channel's key by listing the upstream's models (cheap, billed by no
 * provider). A channel the gateway disabled itself (a 401, or 403s for
 * several models) goes back into rotation when the test succeeds; a channel
 * an admin disabled stays disabled. Callable from `channel:test` and the
 * admin panel.
 */
export async function checkChannelKey(ref: string | number | Channel, timeoutMs = 10_000): Promise<ChannelKeyCheck> {
  const channel =
    ref instanceof Channel
      ? ref
      : typeof ref === 'number' || /^\d+$/.test(String(ref))
      ? await Channel.find(Number(ref))
      : await Channel.findBy('name', ref)
  if (!channel) throw new AdminInputError(`No channel matches "${ref}"`)
  if (channel.keyUnreadable) {
    return { channelId: channel.id, ok: false, status: null, message: `not sent: ${UNREADABLE_KEY_REASON}`, latencyMs: 0, reEnabled: false }
  }

  const upstream = adapterFor(channel.provider as ProviderKind).modelsPath(channelInfo(channel))
  const started = performance.now()
  let status: number | null = null
  /** Why a 2xx or 3xx is no list of models (a wrong base URL's web page, an error body with 200, a redirect) */
  let problem: string | null = null
  let message: string
  try {
    const response = await request(`${upstream.origin}${upstream.path}`, {
      method: 'GET',
      headers: upstream.headers,
      signal: AbortSignal.timeout(timeoutMs),
    })
    status = response.statusCode
    const text = await response.body.text()
    problem = status < 300 ? modelListProblem(text) : status < 400 ? redirectProblem(response.headers.location) : null
    message =
      status >= 400
        ? `upstream answered HTTP ${status}: ${text.slice(0, 300)}`
        : problem
          ? `upstream answered HTTP ${status}, but ${problem}`
          : 'upstream answered'
  } catch (error: any) {
    message = `upstream unreachable: ${error?.code ?? error?.name ?? 'error'}`
  }
  const latencyMs = Math.round(performance.now() - started)
  const ok = status !== null && status < 400 && problem === null

  const reEnabled = ok ? await reEnableIfAutoDisabled(channel) : false
  return { channelId: channel.id, ok, status, message, latencyMs, reEnabled }
}

/**
 * Why a 2xx answer to the models listing is not one, or null: every
 * provider answers a JSON object with a list (`data`: OpenAI and the
 * OpenAI-compatible servers, Anthropic, Azure; `models`: Gemini). A web page
 * (a base URL that points at a site), an error body sent with 200 or an
 * empty body means the key was not checked.
 */
export function modelListProblem(text: string): string | null {
  let parsed: any
  try {
    parsed = JSON.parse(text)
  } catch {
    const start = text.trimStart().slice(0, 15).toLowerCase()
    const looksHtml = start.startsWith('<!doctype html') || start.startsWith('<html')
    return text.trim() === '' ? 'with an empty body, not a list of models' : `with ${looksHtml ? 'an HTML page' : 'a body that is not JSON'}, not a list of models: check the base URL`
  }
  const error = parsed?.error
  if (error !== null && typeof error === 'object' && !Array.isArray(parsed)) {
    const said = typeof error.message === 'string' && error.message ? `: ${error.message.slice(0, 300)}` : ''
    return `with an error${said}`
  }
  if (!Array.isArray(parsed?.data) && !Array.isArray(parsed?.models)) return 'with JSON that is not a list of models'
  return null
}

/** A redirect is not followed (the key would go wherever it points): the base URL is wrong. */
function redirectProblem(location: string | string[] | undefined): string {
  const target = Array.isArray(location) ? location[0] : location
  return `with a redirect${target ? ` to ${target.slice(0, 300)}` : ''}, not followed: check the base URL`
}

/**
 * A channel the gateway disabled itself (a 401, or 403s for several models)
 * goes back into rotation once a test passes; one an admin disabled stays off.
 */
async function reEnableIfAutoDisabled(channel: Channel): Promise<boolean> {
  if (channel.enabled || !channel.autoDisabledAt) return false
  channel.merge({ enabled: true, disabledReason: null, autoDisabledAt: null, health: 'closed', cooldownUntil: null })
  channel.modelCooldowns = {}
  await channel.save()
  return true
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
