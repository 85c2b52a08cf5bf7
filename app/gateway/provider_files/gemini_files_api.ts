import { GatewayError } from '#exceptions/gateway_error'
import type { Gateway } from '#gateway/gateway'
import type { ApiCall } from '#gateway/http/generation_request'
import { bodyLimitFor, providerFileLimits } from '#gateway/http/body_limits'
import { tooLarge } from '#gateway/http/raw_body'
import { StreamedUpload } from '#gateway/http/streamed_upload'
import { wholeNumber } from '#gateway/http/whole_number'
import { closeSignal } from '#gateway/batches/files_api'
import { NEVER } from '#gateway/batches/upstream_calls'
import { fileChannels, headerValue } from '#gateway/provider_files/file_channels'
import { ownedOr404 } from '#gateway/provider_files/file_pins'
import {
  googleExchange,
  googleHolder,
  googleJson,
  mintUploadToken,
  readJsonObject,
  timeOf,
  deleteHeld,
  listOwned,
} from '#gateway/provider_files/google_calls'
import { providerFiles } from '#gateway/provider_files/provider_file_store'

/** What the client's upload answer is: status, Google's upload headers, and a JSON body or none. */
export interface UploadAnswer {
  status: number
  headers: Record<string, string>
  body: Record<string, any> | null
}

/** The upstream request's body until the client's stream is attached (StreamedUpload.attach) */
const EMPTY = Buffer.alloc(0)

/** The upload headers of Google's protocol the upstream gets as the client sent them */
const UPLOAD_HEADERS = [
  'x-goog-upload-protocol',
  'x-goog-upload-command',
  'x-goog-upload-offset',
  'x-goog-upload-header-content-length',
  'x-goog-upload-header-content-type',
  'x-goog-upload-file-name',
]

/**
 * Resumable uploads one user may have in progress (started, not finished):
 * each start is a row until its last chunk or the sweep a week on
 * (prune_provider_files.ts); unbounded, a client could fill the table.
 */
export const MAX_UPLOADS_IN_PROGRESS = 100

function uploadHeaders(call: ApiCall): Record<string, string> {
  const headers: Record<string, string> = {}
  for (const name of UPLOAD_HEADERS) {
    const value = headerValue(call.req.headers[name])
    if (value !== undefined) headers[name] = value
  }
  return headers
}

/**
 * `POST /upload/v1beta/files` (@google/genai `files.upload`), Google's two
 * protocols. Resumable: the start (its metadata JSON) goes to the first
 * google channel open to the caller (file_channels.ts), whose session URL is
 * kept on a row in status `uploading` (any instance takes the next chunk);
 * the client gets an `X-Goog-Upload-URL` at the gateway naming the row's
 * token (`?upload_id=`), and each chunk (`upload`, `upload, finalize`, at
 * its offset) is relayed to the session, the last one's file recorded as
 * the caller's. Multipart: one request. A chunk's and a multipart upload's
 * bytes are streamed to the upstream as they arrive (streamed_upload.ts),
 * never held whole, each bounded by GEMINI_FILE_MAX_MB (2 GB, as Google
 * takes), as is the whole size a start declares; a chunk also by what is
 * left of that size past its offset.
 */
export async function geminiUpload(gw: Gateway, call: ApiCall, query: Record<string, unknown>, baseUrl: string): Promise<UploadAnswer> {
  const token = typeof query.upload_id === 'string' ? query.upload_id : undefined
  if (token !== undefined) return uploadChunk(gw, call, token)
  const protocol = headerValue(call.req.headers['x-goog-upload-protocol'])
  const command = headerValue(call.req.headers['x-goog-upload-command'])
  if (protocol === 'resumable' && command === 'start') return startUpload(gw, call, baseUrl)
  if (protocol === 'multipart') return multipartUpload(gw, call)
  throw GatewayError.invalidRequest("An upload takes X-Goog-Upload-Protocol 'resumable' (X-Goog-Upload-Command 'start' first) or 'multipart'", 'invalid_upload')
}

async function startUpload(gw: Gateway, call: ApiCall, baseUrl: string): Promise<UploadAnswer> {
  const declared = byteCount(call, 'x-goog-upload-header-content-length')
  const limit = providerFileLimits.google
  if (declared !== null && declared > limit) {
    throw new GatewayError(413, 'request_too_large', `The file is larger than this gateway takes (${Math.floor(limit / 1048576)} MB)`)
  }
  const candidates = fileChannels(gw, call, 'google')
  const { raw, body } = await readJsonObject(gw.service, call, bodyLimitFor('batches'))
  // Refused before a session is started upstream; checked again with the insert, under the owner's lock.
  if ((await providerFiles.uploadsInProgress(call.principal.user.id)) >= MAX_UPLOADS_IN_PROGRESS) throw tooManyUploads()
  const { result } = await googleExchange(candidates, { method: 'POST', path: '/files', upload: true, body: raw, headers: uploadHeaders(call) }, NEVER)
  const sessionUrl = headerValue(result.response.headers['x-goog-upload-url'])
  if (sessionUrl === undefined || !/^https?:\/\//.test(sessionUrl)) throw GatewayError.providerError('The upstream started the upload without an upload URL')
  const meta = body.file ?? {}
  const uploadToken = mintUploadToken()
  const row = await providerFiles.insertUpload(
    {
      kind: 'gemini_file',
      upstream_id: null,
      user_id: call.principal.user.id,
      api_key_id: call.principal.key.id,
      channel_id: result.candidate.channel.id,
      filename: typeof (meta.displayName ?? meta.display_name) === 'string' ? String(meta.displayName ?? meta.display_name).slice(0, 1000) : null,
      mime_type: headerValue(call.req.headers['x-goog-upload-header-content-type'])?.slice(0, 255) ?? null,
      bytes: declared,
      model: null,
      status: 'uploading',
      object: null,
      upload_token: uploadToken,
      upload_url: sessionUrl,
    },
    MAX_UPLOADS_IN_PROGRESS
  )
  // Starts at once passed the first check together: the session started upstream is left to expire there.
  if (row === null) throw tooManyUploads()
  return {
    status: 200,
    headers: { 'x-goog-upload-url': `${baseUrl}/upload/v1beta/files?upload_id=${uploadToken}&upload_protocol=resumable`, 'x-goog-upload-status': 'active' },
    body: null,
  }
}

/** Google's 429 RESOURCE_EXHAUSTED: the caller's uploads in progress are at MAX_UPLOADS_IN_PROGRESS. */
function tooManyUploads(): GatewayError {
  return new GatewayError(
    429,
    'too_many_uploads',
    `${MAX_UPLOADS_IN_PROGRESS} resumable uploads are in progress for this account: finish them, or wait a week for the unfinished ones to expire`,
    'rate_limit_error'
  )
}

/**
 * A byte count Google's upload protocol sends in a header (the declared
 * length, a chunk's offset): ASCII digits, or absent (null). Anything else
 * (`1.5`, `-4`, `1e3`) is the client's 400: read by Number() it became a
 * negative length no chunk fits, a fraction the bigint column refused, or an
 * offset (NaN) that skipped the length check.
 */
function byteCount(call: ApiCall, header: string): number | null {
  const value = headerValue(call.req.headers[header])
  if (value === undefined) return null
  const count = wholeNumber(value.trim())
  if (!Number.isSafeInteger(count)) throw GatewayError.invalidRequest(`${header}: a whole number of bytes is required`, 'invalid_upload')
  return count
}

async function uploadChunk(gw: Gateway, call: ApiCall, token: string): Promise<UploadAnswer> {
  const row = await providerFiles.uploading(token.slice(0, 64), call.principal.user.id)
  if (row === null || row.upload_url === null) throw new GatewayError(404, 'upload_not_found', 'No upload in progress has this upload_id', 'not_found_error')
  const candidate = googleHolder(gw.catalog.channels, row.channel_id)
  const offset = byteCount(call, 'x-goog-upload-offset') ?? 0
  // What is left of the size the upload started with: a chunk past it is refused as its bytes pass.
  const room = row.bytes === null ? Infinity : Number(row.bytes) - offset
  const overLength = () => GatewayError.invalidRequest('The upload is longer than the X-Goog-Upload-Header-Content-Length it started with', 'invalid_upload')
  if (room < 0) throw overLength()
  const limit = Math.min(providerFileLimits.google, room)
  const upload = new StreamedUpload(call.req, call.res, { limit, tooLarge: () => (limit === room ? overLength() : tooLarge(limit)) })
  // A cancel ends the session: its row goes at once (answered or not upstream: the client is done with it), no
  // longer one of the caller's MAX_UPLOADS_IN_PROGRESS until the sweep a week on.
  const cancel = isCancel(headerValue(call.req.headers['x-goog-upload-command']))
  let exchanged
  try {
    exchanged = await googleExchange(
      [candidate],
      { method: 'POST', path: '', url: row.upload_url, body: EMPTY, contentType: 'application/octet-stream', headers: uploadHeaders(call) },
      upload
    )
  } finally {
    if (cancel) await providerFiles.endUpload(row)
  }
  const { result, bytes: answer } = exchanged
  const status = headerValue(result.response.headers['x-goog-upload-status']) ?? (cancel ? 'cancelled' : 'final')
  if (status !== 'final') {
    const headers: Record<string, string> = { 'x-goog-upload-status': status }
    // What the session holds (a `query`'s answer, a chunk's): a client resumes from it.
    const received = headerValue(result.response.headers['x-goog-upload-size-received'])
    if (received !== undefined) headers['x-goog-upload-size-received'] = received
    return { status: 200, headers, body: null }
  }
  const file = fileOf(answer)
  await providerFiles.finishUpload(row, file.name, file, sizeOf(file) ?? (row.bytes === null ? null : Number(row.bytes)), timeOf(file.expirationTime))
  return { status: 200, headers: { 'x-goog-upload-status': 'final' }, body: { file } }
}

/** `cancel`, alone or in a list (`X-Goog-Upload-Command` may name several, `upload, finalize`) */
function isCancel(command: string | undefined): boolean {
  return command !== undefined && command.split(',').some((c) => c.trim().toLowerCase() === 'cancel')
}

async function multipartUpload(gw: Gateway, call: ApiCall): Promise<UploadAnswer> {
  const candidates = fileChannels(gw, call, 'google')
  const contentType = headerValue(call.req.headers['content-type']) ?? ''
  if (!contentType.startsWith('multipart/')) throw GatewayError.invalidRequest('A multipart upload takes a multipart/related body', 'invalid_content_type')
  const limit = providerFileLimits.google
  const upload = new StreamedUpload(call.req, call.res, { limit, tooLarge: () => tooLarge(limit) })
  const { result, bytes: answer } = await googleExchange(
    candidates,
    { method: 'POST', path: '/files', upload: true, body: EMPTY, contentType, headers: uploadHeaders(call) },
    upload
  )
  const file = fileOf(answer)
  await recordFile(call, result.candidate.channel.id, file)
  return { status: 200, headers: {}, body: { file } }
}

function fileOf(answer: Buffer): Record<string, any> {
  let parsed: any
  try {
    parsed = JSON.parse(answer.toString('utf8'))
  } catch {}
  const file = parsed?.file
  if (file === null || typeof file !== 'object' || typeof file.name !== 'string' || !file.name.startsWith('files/') || file.name.length > 255) {
    throw GatewayError.providerError('The upstream finished the upload without a file')
  }
  return file
}

function sizeOf(file: Record<string, any>): number | null {
  const size = Number(file.sizeBytes)
  return Number.isFinite(size) ? size : null
}

function recordFile(call: ApiCall, channelId: number, file: Record<string, any>) {
  return providerFiles.insert({
    kind: 'gemini_file',
    upstream_id: file.name,
    user_id: call.principal.user.id,
    api_key_id: call.principal.key.id,
    channel_id: channelId,
    filename: typeof file.displayName === 'string' ? file.displayName.slice(0, 1000) : null,
    mime_type: typeof file.mimeType === 'string' ? file.mimeType.slice(0, 255) : null,
    bytes: sizeOf(file),
    model: null,
    status: 'active',
    object: file,
    expires_at: timeOf(file.expirationTime),
  })
}

/** `GET /v1beta/files` (`pageSize` up to 100, default 10; `pageToken`): the caller's files, newest first, as last seen. */
export async function listGeminiFiles(call: ApiCall, query: Record<string, unknown>) {
  return listOwned('gemini_file', 'files', call, query, { fallback: 10, max: 100 })
}

/** `GET /v1beta/files/{id}`: asked of the holding channel (a video's state goes PROCESSING to ACTIVE there), kept on the row. */
export async function showGeminiFile(gw: Gateway, call: ApiCall, name: string) {
  const row = await ownedOr404('gemini_file', call.principal.user.id, name)
  const { answer } = await googleJson([googleHolder(gw.catalog.channels, row.channel_id)], { method: 'GET', path: `/${name}` }, closeSignal(call))
  await providerFiles.update(row, answer, timeOf(answer.expirationTime) ?? row.expires_at)
  return answer
}

/** `DELETE /v1beta/files/{id}`: deleted upstream (one gone there already is gone), then marked here. */
export async function deleteGeminiFile(gw: Gateway, call: ApiCall, name: string) {
  return deleteHeld(gw.catalog.channels, call, await ownedOr404('gemini_file', call.principal.user.id, name), name)
}
