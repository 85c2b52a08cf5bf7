import { randomBytes } from 'node:crypto'
import { GatewayError } from '#exceptions/gateway_error'
import type { ApiCall } from '#gateway/http/generation_request'
import { readRawBody } from '#gateway/http/raw_body'
import type { StreamedUpload } from '#gateway/http/streamed_upload'
import { baseOf, withChannelHeaders, type UpstreamRequest } from '#gateway/providers/provider_adapter'
import type { RouteCandidate } from '#gateway/routing/channel_router'
import type { ChannelInfo } from '#gateway/types'
import type { GatewayService } from '#gateway/gateway_service'
import { dispatch, readBody, type DispatchResult, type UpstreamBody } from '#gateway/upstream/dispatcher'
import { jsonAnswer } from '#gateway/batches/upstream_calls'
import { holdingChannel } from '#gateway/batches/upstream_calls'
import { closeSignal } from '#gateway/batches/files_api'
import { providerFiles, type ProviderFileRow } from '#gateway/provider_files/provider_file_store'

export const GOOGLE_KINDS = new Set(['google'] as const)

/** One call to a google channel's Files or caching API. */
export interface GoogleCall {
  method: 'GET' | 'POST' | 'DELETE' | 'PATCH'
  /** Under the channel's base (`/files/x`, `/cachedContents`), or, `upload`, under `/upload` before it (Google's upload host path) */
  path: string
  upload?: boolean
  /** An absolute upstream URL instead (a resumable upload's session URL): the channel's key goes only to the channel's own origin */
  url?: string
  body?: Buffer
  contentType?: string
  headers?: Record<string, string>
}

/** The request: the channel's origin, its key in `x-goog-api-key` (as the Gemini adapter sends it), its extra headers. */
export function googleRequest(channel: ChannelInfo, call: GoogleCall): UpstreamRequest {
  const { origin, basePath } = baseOf(channel)
  const headers: Record<string, string> = { accept: 'application/json', ...call.headers }
  if (call.body !== undefined) headers['content-type'] = call.contentType ?? 'application/json'
  let target = { origin, path: call.upload ? `/upload${basePath}${call.path}` : `${basePath}${call.path}` }
  if (call.url !== undefined) {
    const url = new URL(call.url)
    target = { origin: url.origin, path: `${url.pathname}${url.search}` }
  }
  if (channel.apiKey && target.origin === origin) headers['x-goog-api-key'] = channel.apiKey
  withChannelHeaders(headers, channel, {}, [])
  return { method: call.method, origin: target.origin, path: target.path, headers, body: call.body ?? '' }
}

/** A JSON answer from these channels, in order (failover as any call). */
export async function googleJson(candidates: RouteCandidate[], call: GoogleCall | ((c: RouteCandidate) => GoogleCall), signal: AbortSignal) {
  const build = typeof call === 'function' ? call : () => call
  return dispatch(candidates, (c) => googleRequest(c.channel, build(c)), signal, undefined, jsonAnswer)
}

/**
 * An answer whose head matters (a resumable upload's status and URL), its
 * body read whole (small). Given a StreamedUpload instead of a signal, the
 * request's body is the client's, streamed as it arrives, and the call is
 * aborted only while it streams.
 */
export async function googleExchange(
  candidates: RouteCandidate[],
  call: GoogleCall,
  signal: AbortSignal | StreamedUpload
): Promise<{ result: DispatchResult<Buffer>; bytes: Buffer }> {
  const read = (body: UpstreamBody) => readBody(body)
  const result =
    signal instanceof AbortSignal
      ? await dispatch(candidates, (c) => googleRequest(c.channel, call), signal, undefined, read)
      : await signal.run(dispatch(candidates, (c) => signal.attach(googleRequest(c.channel, call)), signal.signal, undefined, read))
  return { result, bytes: result.answer }
}

/** The channel that holds a row's object. */
export function googleHolder(channels: readonly ChannelInfo[], channelId: number | string | null): RouteCandidate {
  return holdingChannel(channels, channelId === null ? null : Number(channelId), null, GOOGLE_KINDS)
}

/** A request's JSON object body, bounded by the endpoint's limit (Google's 400 when it is not one). */
export async function readJsonObject(service: Pick<GatewayService, 'receiveBody'>, call: ApiCall, limit: number): Promise<{ raw: Buffer; body: Record<string, any> }> {
  const raw = await service.receiveBody(readRawBody(call.req, call.res, limit))
  let body: unknown = {}
  if (raw.length > 0) {
    try {
      body = JSON.parse(raw.toString('utf8'))
    } catch {
      throw GatewayError.invalidJson()
    }
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw GatewayError.invalidRequest('The request body must be a JSON object', 'invalid_request')
  return { raw, body: body as Record<string, any> }
}

export function mintUploadToken(): string {
  return randomBytes(18).toString('base64url')
}

/** A Google timestamp (RFC 3339) as a Date, or null. */
export function timeOf(value: unknown): Date | null {
  if (typeof value !== 'string') return null
  const time = Date.parse(value)
  return Number.isFinite(time) ? new Date(time) : null
}

/** Google's list query: pageSize 1..max (default `fallback`), pageToken (the last name of the page before). */
export function pageQuery(query: Record<string, unknown>, fallback: number, max: number) {
  let size = fallback
  if (query.pageSize !== undefined) {
    size = Number(query.pageSize)
    if (!Number.isInteger(size) || size < 1) throw GatewayError.invalidRequest('pageSize must be a positive integer', 'invalid_value', 'pageSize')
    size = Math.min(size, max)
  }
  const token = typeof query.pageToken === 'string' && query.pageToken !== '' ? query.pageToken.slice(0, 255) : undefined
  return { size, token }
}

/**
 * A Gemini file's or cache's `DELETE`: deleted on the channel holding it (one
 * already gone there is gone), then marked deleted here (and forgotten by
 * every instance). Google answers `{}`.
 */
export async function deleteHeld(channels: readonly ChannelInfo[], call: ApiCall, row: ProviderFileRow, name: string) {
  try {
    await googleJson([googleHolder(channels, row.channel_id)], { method: 'DELETE', path: `/${name}` }, closeSignal(call))
  } catch (error) {
    if (!(error instanceof GatewayError && error.status === 404)) throw error
  }
  await providerFiles.markDeleted(row)
  return {}
}

/**
 * A page of the caller's Gemini files or caches, newest first, as last seen
 * (`pageSize` within `max`, `pageToken`): Google's list shape under `key`.
 */
export async function listOwned(kind: 'gemini_file' | 'gemini_cache', key: string, call: ApiCall, query: Record<string, unknown>, size: { fallback: number; max: number }) {
  const { size: pageSize, token } = pageQuery(query, size.fallback, size.max)
  const rows = await providerFiles.list(kind, call.principal.user.id, pageSize, { afterId: token })
  const items = rows.slice(0, pageSize).map((row) => row.object ?? { name: row.upstream_id })
  const answer: Record<string, any> = { [key]: items }
  if (rows.length > pageSize) answer.nextPageToken = items[items.length - 1].name
  return answer
}
