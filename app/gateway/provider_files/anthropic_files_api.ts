import type { IncomingHttpHeaders } from 'node:http'
import { GatewayError } from '#exceptions/gateway_error'
import type { Gateway } from '#gateway/gateway'
import type { ApiCall } from '#gateway/http/generation_request'
import { providerFileLimits } from '#gateway/http/body_limits'
import { boundaryOf, MultipartError } from '#gateway/http/multipart'
import { MultipartScan, type ScannedPart } from '#gateway/http/multipart_scan'
import { tooLarge } from '#gateway/http/raw_body'
import { StreamedUpload } from '#gateway/http/streamed_upload'
import { wholeNumber } from '#gateway/http/whole_number'
import { DEFAULT_ANTHROPIC_VERSION } from '#gateway/providers/anthropic/anthropic_adapter'
import { dispatch } from '#gateway/upstream/dispatcher'
import { closeSignal, relayBytes } from '#gateway/batches/files_api'
import { callChannel, channelRequest, holdingChannel, jsonAnswer, sendToChannel } from '#gateway/batches/upstream_calls'
import { fileChannels, headerValue } from '#gateway/provider_files/file_channels'
import { ownedOr404 } from '#gateway/provider_files/file_pins'
export { isAnthropicFilesCall } from '#gateway/provider_files/files_wire'
import { providerFiles, type ProviderFileRow } from '#gateway/provider_files/provider_file_store'

/** The beta Anthropic's Files API is behind; added to the client's betas when it sent another list */
export const FILES_BETA = 'files-api-2025-04-14'

const ANTHROPIC_KINDS = new Set(['anthropic'] as const)

/** The client's Anthropic headers for the upstream, the Files beta among its betas. */
function upstreamHeaders(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  const betas = headerValue(headers['anthropic-beta'])
  const beta = betas === undefined || betas === '' ? FILES_BETA : betas.includes('files-api-') ? betas : `${betas},${FILES_BETA}`
  return { 'anthropic-version': headerValue(headers['anthropic-version']) ?? DEFAULT_ANTHROPIC_VERSION, 'anthropic-beta': beta }
}

/**
 * `POST /v1/files` (Anthropic): the multipart upload streamed as it arrives
 * (streamed_upload.ts: ANTHROPIC_FILE_MAX_MB, 500 MB as Anthropic takes;
 * never held whole) to the first Anthropic channel that takes it
 * (file_channels.ts: the caller's plan's, or those of the model
 * `x-gateway-model` names), failing over while no byte has gone up. The
 * form is read as it passes (multipart_scan.ts): one `file` part with a
 * name, no NUL in it, a whole form; anything else cuts the upload off
 * before its end (the upstream stores nothing) with Anthropic's 400. The
 * file is then the caller's, on that channel, under the upstream's own id:
 * a message naming it goes to that channel (file_pins.ts).
 */
export async function uploadAnthropicFile(gw: Gateway, call: ApiCall): Promise<Record<string, any>> {
  const candidates = fileChannels(gw, call, 'anthropic')
  const contentType = headerValue(call.req.headers['content-type']) ?? ''
  const boundary = boundaryOf(contentType)
  if (boundary === null) {
    const error = GatewayError.invalidRequest('This endpoint takes a multipart/form-data body (field file)', 'invalid_content_type')
    // Refused unread: the connection closes after the answer so the upload stops.
    error.headers = { connection: 'close' }
    throw error
  }
  let file: ScannedPart | null = null
  const form = new MultipartScan(boundary, (part) => {
    if (part.name !== 'file') return
    if (file !== null) throw GatewayError.invalidRequest("The form has more than one 'file' part", 'duplicate_field')
    if (part.filename === null) throw GatewayError.invalidRequest("'file' is required: a file part", 'missing_required_parameter', 'file')
    // The name is stored, and a NUL cannot be (the file would be left upstream, unlisted).
    if (part.filename.includes('\0')) throw GatewayError.invalidRequest("The file's name contains a NUL character", 'invalid_value', 'file')
    file = part
  })
  const limit = providerFileLimits.anthropic
  const upload = new StreamedUpload(call.req, call.res, {
    limit,
    tooLarge: () => tooLarge(limit),
    inspect: (chunk) => malformed(() => form.push(chunk)),
    atEnd: () => {
      malformed(() => form.end())
      if (file === null) throw GatewayError.invalidRequest("'file' is required: a file part", 'missing_required_parameter', 'file')
    },
  })
  const clientHeaders = upstreamHeaders(call.req.headers)
  const result = await upload.run(
    dispatch(
      candidates,
      (c) => upload.attach(channelRequest(c.channel, { method: 'POST', path: '/files', body: '', contentType, clientHeaders })),
      // Aborted only while the body streams (the client gone, over the limit): once it has passed whole, a file stored
      // upstream is recorded even if the client left, or it would be nobody's.
      upload.signal,
      undefined,
      jsonAnswer
    )
  )
  const upstream = result.answer
  if (typeof upstream.id !== 'string' || upstream.id === '' || upstream.id.length > 255) {
    throw GatewayError.providerError('The upstream answered the upload without a file id')
  }
  const part = file as ScannedPart | null
  await providerFiles.insert({
    kind: 'anthropic_file',
    upstream_id: upstream.id,
    user_id: call.principal.user.id,
    api_key_id: call.principal.key.id,
    channel_id: result.candidate.channel.id,
    filename: (part?.filename ?? '').slice(0, 255),
    mime_type: typeof upstream.mime_type === 'string' ? upstream.mime_type.slice(0, 255) : null,
    bytes: typeof upstream.size_bytes === 'number' ? upstream.size_bytes : (part?.bytes ?? null),
    model: null,
    status: 'active',
    object: upstream,
  })
  return upstream
}

/** A malformed form is the client's 400, in the endpoint's words. */
function malformed(read: () => void) {
  try {
    read()
  } catch (error) {
    if (error instanceof MultipartError) throw GatewayError.invalidRequest(`Malformed multipart body: ${error.message}`, 'invalid_multipart')
    throw error
  }
}

/**
 * `GET /v1/files` (Anthropic): the caller's files, newest first (`limit`
 * 1-1000, default 20; `after_id`, `before_id`, or the SDKs' `page`), in both
 * of Anthropic's list shapes (`first_id`/`last_id`/`has_more` and `next_page`).
 */
export async function listAnthropicFiles(call: ApiCall, query: Record<string, unknown>) {
  let limit = 20
  if (query.limit !== undefined) {
    limit = wholeNumber(query.limit)
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw GatewayError.invalidRequest('limit must be an integer from 1 to 1000', 'invalid_value', 'limit')
  }
  // The SDKs' `page` cursor (this answer's `next_page`) is the last id of the page before: `after_id`.
  const cursor = { afterId: textParam(query.after_id) ?? textParam(query.page), beforeId: textParam(query.before_id) }
  const rows = await providerFiles.list('anthropic_file', call.principal.user.id, limit, cursor)
  const data = rows.slice(0, limit).map(fileView)
  const lastId = data[data.length - 1]?.id ?? null
  const more = rows.length > limit
  return { data, first_id: data[0]?.id ?? null, last_id: lastId, has_more: more, next_page: more ? lastId : null }
}

function textParam(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value.slice(0, 255) : undefined
}

/** A file as Anthropic describes it (the upstream's words at upload). */
function fileView(row: ProviderFileRow): Record<string, any> {
  return row.object ?? { id: row.upstream_id, type: 'file', filename: row.filename, mime_type: row.mime_type, size_bytes: Number(row.bytes) }
}

function holderOf(gw: Gateway, row: ProviderFileRow) {
  return holdingChannel(gw.catalog.channels, row.channel_id === null ? null : Number(row.channel_id), null, ANTHROPIC_KINDS)
}

/** `GET /v1/files/{id}` (Anthropic): the caller's file's metadata, from the gateway's row. */
export async function showAnthropicFile(call: ApiCall, id: string) {
  return fileView(await ownedOr404('anthropic_file', call.principal.user.id, id))
}

/** `GET /v1/files/{id}/content` (Anthropic): the holding channel's bytes, relayed as they come. */
export async function anthropicFileContent(gw: Gateway, call: ApiCall, id: string) {
  const row = await ownedOr404('anthropic_file', call.principal.user.id, id)
  const { response, body } = await sendToChannel(
    holderOf(gw, row),
    { method: 'GET', path: `/files/${encodeURIComponent(id)}/content`, clientHeaders: upstreamHeaders(call.req.headers) },
    closeSignal(call)
  )
  await relayBytes(call, response, body, 'application/octet-stream')
}

/** `DELETE /v1/files/{id}` (Anthropic): deleted upstream (one gone there already is gone), then marked here. */
export async function deleteAnthropicFile(gw: Gateway, call: ApiCall, id: string) {
  const row = await ownedOr404('anthropic_file', call.principal.user.id, id)
  try {
    await callChannel(holderOf(gw, row), { method: 'DELETE', path: `/files/${encodeURIComponent(id)}`, clientHeaders: upstreamHeaders(call.req.headers) }, closeSignal(call))
  } catch (error) {
    if (!(error instanceof GatewayError && error.status === 404)) throw error
  }
  await providerFiles.markDeleted(row)
  return { id, type: 'file_deleted' }
}
