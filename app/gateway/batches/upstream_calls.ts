import type { IncomingHttpHeaders } from 'node:http'
import { GatewayError } from '#exceptions/gateway_error'
import { DEFAULT_ANTHROPIC_VERSION } from '#gateway/providers/anthropic/anthropic_adapter'
import { addressingOf } from '#gateway/providers/azure/azure_adapter'
import { baseOf, withChannelHeaders, type UpstreamRequest } from '#gateway/providers/provider_adapter'
import { VENDORS } from '#gateway/providers/vendors'
import type { RouteCandidate } from '#gateway/routing/channel_router'
import type { ChannelInfo, PlanInfo, ProviderKind } from '#gateway/types'
import { openToPlan } from '#gateway/routing/plan_routers'
import { ClientGoneError, dispatch, readBody, type DispatchResult, type UpstreamBody } from '#gateway/upstream/dispatcher'

/**
 * The channel kinds whose upstream has OpenAI's Files and Batch API at
 * `{base}/files` and `{base}/batches`: OpenAI itself, OpenAI-compatible
 * servers (vLLM, a LiteLLM proxy...) and Azure OpenAI (global-batch
 * deployments: `{resource}/openai/files?api-version=` classic or
 * `{resource}/openai/v1/files`, its `api-key`: channelRequest addresses it;
 * its input files' lines name the deployment and Azure's urls, batchEndpointFor).
 */
export const BATCH_CHANNEL_KINDS: ReadonlySet<ProviderKind> = new Set(['openai', 'custom', 'azure'])

/**
 * A batch line's url (and a batch's `endpoint`) as the channel takes it:
 * Azure's are OpenAI's without `/v1` (`/chat/completions`), as its batch
 * docs write them; every other kind's as the client sent it.
 */
export function batchEndpointFor(channel: ChannelInfo, endpoint: string): string {
  return channel.provider === 'azure' && endpoint.startsWith('/v1/') ? endpoint.slice(3) : endpoint
}

/** The channel kinds whose upstream has Anthropic's Message Batches at `{base}/messages/batches` */
export const MESSAGE_BATCH_CHANNEL_KINDS: ReadonlySet<ProviderKind> = new Set(['anthropic'])

/** The channel kinds whose upstream has Gemini's Batch API (`{base}/models/{m}:batchGenerateContent`, `{base}/batches`) */
export const GEMINI_BATCH_CHANNEL_KINDS: ReadonlySet<ProviderKind> = new Set(['google'])

/** A message batch's path under its channel's base (`/messages/batches/{id}`, then `/cancel` or `/results`) */
export function messageBatchPath(upstreamId: string, then = ''): string {
  return `/messages/batches/${encodeURIComponent(upstreamId)}${then}`
}

/** One call to a channel's Files / Batch API. */
export interface ChannelCall {
  method: 'GET' | 'POST' | 'DELETE'
  /** Under the channel's base (`/files`, `/batches/{id}`...) */
  path: string
  /** Before the channel's base path: Google's `/download` (a results file's bytes are at `/download/v1beta/files/...`) */
  prefix?: string
  body?: Buffer | string
  /** The body's type when it is not JSON (a file upload's multipart/form-data with its boundary) */
  contentType?: string
  /** The client's headers, for those its channel's kind forwards (Anthropic's `anthropic-version` and `anthropic-beta`) */
  clientHeaders?: IncomingHttpHeaders
  /** Azure: under its v1 API whatever the base's shape (the Videos API is served there only; AzureAddressing.v1BasePath) */
  azureV1?: boolean
}

/**
 * The request for a call: the channel's base, its key (a Bearer token,
 * Anthropic's `x-api-key` with an `anthropic-version`, Google's
 * `x-goog-api-key`, or Azure's `api-key` with its api-version, as the
 * adapters send them), its extra headers.
 */
export function channelRequest(channel: ChannelInfo, call: ChannelCall): UpstreamRequest {
  const { origin, basePath } = baseOf(channel)
  const headers: Record<string, string> = { accept: 'application/json' }
  if (call.body !== undefined) headers['content-type'] = call.contentType ?? 'application/json'
  if (channel.provider === 'anthropic') {
    if (channel.apiKey) headers['x-api-key'] = channel.apiKey
    withChannelHeaders(headers, channel, call.clientHeaders ?? {}, VENDORS.anthropic.forwardHeaders)
    headers['anthropic-version'] ??= DEFAULT_ANTHROPIC_VERSION
  } else if (channel.provider === 'azure') {
    // As the Azure adapter sends it: its `api-key`, under `/openai` (classic, `?api-version=` on every path) or `/openai/v1`.
    const addressing = addressingOf(channel)
    if (channel.apiKey) headers['api-key'] = channel.apiKey
    withChannelHeaders(headers, channel, {}, [])
    const [basePath, ownQuery] = call.azureV1 ? [addressing.v1BasePath, addressing.v1Query] : [addressing.basePath, addressing.query]
    const query = ownQuery === '' ? '' : `${call.path.includes('?') ? '&' : '?'}${ownQuery.slice(1)}`
    return { method: call.method, origin: addressing.origin, path: `${basePath}${call.path}${query}`, headers, body: call.body ?? '' }
  } else if (channel.provider === 'google') {
    // As the Gemini adapter and the Files API relay (google_calls.ts) send it
    if (channel.apiKey) headers['x-goog-api-key'] = channel.apiKey
    withChannelHeaders(headers, channel, {}, [])
  } else {
    if (channel.apiKey) headers['authorization'] = `Bearer ${channel.apiKey}`
    withChannelHeaders(headers, channel, {}, [])
  }
  return { method: call.method, origin, path: `${call.prefix ?? ''}${basePath}${call.path}`, headers, body: call.body ?? '' }
}

/**
 * Sends a call to the channel through the dispatcher (its timeouts, circuit
 * and error mapping: an upstream 4xx comes back with its status and words, a
 * 5xx as 502), to this channel only: the object lives there. The answer's
 * body is left unread.
 */
export function sendToChannel(candidate: RouteCandidate, call: ChannelCall, signal: AbortSignal): Promise<DispatchResult> {
  return dispatch([candidate], (c) => channelRequest(c.channel, call), signal)
}

/** An upstream's JSON object answer, read whole (bounded like every answer) inside its attempt. */
export async function jsonAnswer(body: UpstreamBody): Promise<Record<string, any>> {
  const bytes = await readBody(body)
  let parsed: unknown
  try {
    parsed = JSON.parse(bytes.toString('utf8'))
  } catch {
    throw GatewayError.providerError('The upstream answered the Files / Batch API call with something that is not JSON')
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw GatewayError.providerError('The upstream answered the Files / Batch API call with JSON that is not an object')
  }
  return parsed as Record<string, any>
}

/** sendToChannel for a JSON answer: the answer read and checked inside the attempt. */
export async function callChannel(candidate: RouteCandidate, call: ChannelCall, signal: AbortSignal): Promise<Record<string, any>> {
  const result = await dispatch([candidate], (c) => channelRequest(c.channel, call), signal, undefined, jsonAnswer)
  return result.answer
}

/** The channel that holds an object, as a route candidate; refused when it is gone, disabled or of another kind now. */
export function holdingChannel(
  channels: readonly ChannelInfo[],
  channelId: number | null,
  servedModel: string | null,
  kinds: ReadonlySet<ProviderKind> = BATCH_CHANNEL_KINDS,
  /** Given for new work on the object (a batch from an uploaded file): the channel must be open to this plan */
  plan?: PlanInfo | null
): RouteCandidate {
  const channel = channelId === null ? undefined : channels.find((c) => c.id === channelId)
  if (!channel || !channel.enabled || !kinds.has(channel.provider) || (plan !== undefined && !openToPlan(channel, plan))) {
    throw new GatewayError(
      503,
      'no_available_channel',
      'The channel that holds this object is no longer available: it was deleted, disabled or changed kind',
      'service_unavailable'
    )
  }
  return { channel, upstreamModel: servedModel ?? '' }
}

/** A signal that never aborts: the sweep's calls, which no client waits for. */
export const NEVER = new AbortController().signal

/**
 * A client's call that ends with the client gone (its upstream call aborted
 * with it) is nothing to answer nor an error to log: undefined.
 */
export async function unlessClientGone<T>(work: Promise<T>): Promise<T | undefined> {
  try {
    return await work
  } catch (error) {
    if (error instanceof ClientGoneError) return undefined
    throw error
  }
}
