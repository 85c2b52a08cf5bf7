import { GatewayError } from '#exceptions/gateway_error'
import { modelAllowed } from '#gateway/access_policy'
import type { Gateway } from '#gateway/gateway'
import type { ApiCall } from '#gateway/http/generation_request'
import { fieldValue, partNamed } from '#gateway/http/multipart'
import { readUploadForm, type ReadFields } from '#gateway/http/upload_form'
import { ClientStream } from '#gateway/relay/client_stream'
import { relayedUpstreamHeader } from '#gateway/upstream/relayed_headers'
import { dispatch, forEachChunk, type DispatchResult } from '#gateway/upstream/dispatcher'
import { readBatchInput, withModel } from '#gateway/batches/batch_input'
import { deleteObject, findOwned, insertObject, listOwned, recordSeen, type BatchObjectRow } from '#gateway/batches/batch_store'
import type { RouteCandidate } from '#gateway/routing/channel_router'
import type { UpstreamRequest } from '#gateway/providers/provider_adapter'
import {
  BATCH_CHANNEL_KINDS,
  batchEndpointFor,
  callChannel,
  channelRequest,
  holdingChannel,
  jsonAnswer,
  NEVER,
  sendToChannel,
} from '#gateway/batches/upstream_calls'
import { listPage, type ListParams } from '#gateway/batches/list_params'

/** The parts of an upload the gateway reads (each once, `purpose` as text) */
const READ_FIELDS: ReadFields = { all: ['file', 'purpose'], text: new Set(['purpose']) }

/**
 * `POST /v1/files` (purpose `batch`): the multipart upload read through the
 * upload reader (FILE_UPLOAD_MAX_MB, the instance's body budget and upload
 * timeout), its JSONL read for its one model and endpoint (batch_input.ts),
 * the model checked against the key's and plan's globs and routed like any
 * request to a channel of a kind with the Batch API; the client's bytes go
 * to that channel's `/files` (only the file part rewritten when the channel
 * maps the model to another name), failing over to the model's next channel
 * as any call. The file is then the key's, on that channel, under a gateway id.
 * Nothing is billed for a file; the batch made of it is.
 */
export async function uploadFile(gw: Gateway, call: ApiCall): Promise<Record<string, any>> {
  const named = { model: '' }
  const { rawBody, form, contentType } = await readUploadForm(gw.service, call, 'files', named, 'file and purpose', READ_FIELDS)
  const purpose = fieldValue(rawBody, form, 'purpose')
  if (purpose === undefined || purpose === '') throw GatewayError.invalidRequest("'purpose' is required", 'missing_required_parameter', 'purpose')
  if (purpose !== 'batch') {
    throw GatewayError.invalidRequest(
      `The gateway takes files for the Batch API only (purpose 'batch'), not '${purpose.slice(0, 40)}'`,
      'unsupported_purpose',
      'purpose'
    )
  }
  const file = partNamed(form, 'file')
  if (!file || file.filename === null) throw GatewayError.invalidRequest("'file' is required: a JSONL file part", 'missing_required_parameter', 'file')
  // Refused before the upload: the name is stored, and a NUL cannot be (the file would be left upstream, unlisted).
  if (file.filename.includes('\0')) throw GatewayError.invalidRequest("The file's name contains a NUL character", 'invalid_value', 'file')
  const bytes = rawBody.subarray(file.bodyStart, file.bodyEnd)
  const input = await readBatchInput(bytes)
  if (!modelAllowed(call.principal, input.model)) throw GatewayError.modelNotAllowed(input.model)
  const candidates = gw.service
    .router(call.principal.plan)
    .route(input.model)
    .filter((c) => BATCH_CHANNEL_KINDS.has(c.channel.provider))
  if (candidates.length === 0) {
    throw GatewayError.invalidRequest(
      `No channel serving '${input.model}' offers the Batch API (OpenAI, OpenAI-compatible 'custom' and Azure OpenAI channels do)`,
      'unsupported_endpoint'
    )
  }
  /**
   * The upload for a mapped name or an Azure channel (its deployment's name and its urls on every line): the file
   * part's lines rewritten, every other byte as sent; one per name and url, written when an attempt needs it, in
   * slices (withModel) before it is sent
   */
  const mapped = new Map<string, Promise<Buffer>>()
  const uploadTo = (c: RouteCandidate): UpstreamRequest => {
    // Each line's url as the channel takes it: an Azure-form file (`/chat/completions`) goes to OpenAI in OpenAI's form
    const url = batchEndpointFor(c.channel, input.endpoint)
    if (c.upstreamModel === input.model && url === input.writtenUrl) {
      return channelRequest(c.channel, { method: 'POST', path: '/files', body: rawBody, contentType })
    }
    const request = channelRequest(c.channel, { method: 'POST', path: '/files', body: Buffer.alloc(0), contentType })
    request.prepare = async () => {
      const key = `${url} ${c.upstreamModel}`
      let body = mapped.get(key)
      if (!body) {
        body = withModel(bytes, c.upstreamModel, url === input.writtenUrl ? undefined : url).then((lines) => spliced(rawBody, file, lines))
        mapped.set(key, body)
      }
      request.body = await body
    }
    return request
  }
  const result = await dispatch(
    candidates,
    uploadTo,
    // Not aborted when the client leaves (its whole body is here): a file the upstream stored and the gateway never
    // recorded would stay there, unlisted and undeletable. It is recorded; GET /v1/files lists it.
    NEVER,
    undefined,
    jsonAnswer
  )
  const upstream = result.answer
  if (typeof upstream.id !== 'string' || upstream.id === '') throw GatewayError.providerError('The upstream answered the upload without a file id')
  const row = await insertObject({
    kind: 'file',
    upstream_id: upstream.id,
    user_id: call.principal.user.id,
    api_key_id: call.principal.key.id,
    channel_id: result.candidate.channel.id,
    model: input.model,
    served_model: result.candidate.upstreamModel,
    purpose,
    endpoint: input.endpoint,
    filename: file.filename.slice(0, 255),
    bytes: bytes.length,
    lines: input.lines,
    completion_hold: input.completionHold,
    search_hold: input.searchHold,
    audio_hold: input.audioHold,
    image_hold: input.imageHold,
    image_answer_hold: input.imageAnswerHold,
    input_file_id: null,
    // Copied to each batch made of the file: its bill counts these ids' lines, each once.
    customIds: { digests: input.customIds },
    status: typeof upstream.status === 'string' ? upstream.status : 'processed',
    object: upstream,
  })
  return fileView(row)
}

/** The file's bytes with the file part's content replaced by these lines. */
function spliced(rawBody: Buffer, part: { bodyStart: number; bodyEnd: number }, lines: Buffer[]): Buffer {
  return Buffer.concat([rawBody.subarray(0, part.bodyStart), ...lines, rawBody.subarray(part.bodyEnd)])
}

/** A file as OpenAI describes one, with the gateway's id and the size the client sent. */
export function fileView(row: BatchObjectRow): Record<string, any> {
  const upstream = row.object ?? {}
  return {
    ...upstream,
    id: row.public_id,
    object: 'file',
    bytes: row.bytes ?? upstream.bytes ?? null,
    created_at: typeof upstream.created_at === 'number' ? upstream.created_at : Math.floor(new Date(row.created_at).getTime() / 1000),
    filename: row.filename ?? upstream.filename ?? null,
    purpose: row.purpose ?? upstream.purpose,
    status: upstream.status ?? 'processed',
  }
}

/** `GET /v1/files`: this key's files, newest first (`purpose`, `limit`, `after`). */
export async function listFiles(call: ApiCall, params: ListParams) {
  const rows = await listOwned(call.principal, 'file', params)
  return listPage(rows, params.limit, fileView)
}

/**
 * `GET /v1/files/{id}`: the key's file. A batch's output or error file is
 * described by its upstream the first time (its size and name are not known
 * before), then from the row.
 */
export async function showFile(gw: Gateway, call: ApiCall, id: string) {
  const row = await findOwned(call.principal, 'file', id)
  if (row.bytes === null && row.object?.bytes === undefined) {
    const candidate = holdingChannel(gw.catalog.channels, row.channel_id, row.served_model)
    const upstream = await callChannel(candidate, { method: 'GET', path: `/files/${encodeURIComponent(row.upstream_id)}` }, closeSignal(call))
    row.object = { ...upstream, purpose: row.purpose }
    await recordSeen(row.id, typeof upstream.status === 'string' ? upstream.status : row.status, row.object)
  }
  return fileView(row)
}

/**
 * `GET /v1/files/{id}/content`: the upstream's bytes relayed as they come
 * (a batch's output can be hundreds of MB: never held whole), with its
 * content type and length.
 */
export async function fileContent(gw: Gateway, call: ApiCall, id: string) {
  const row = await findOwned(call.principal, 'file', id)
  const candidate = holdingChannel(gw.catalog.channels, row.channel_id, row.served_model)
  const { response, body } = await sendToChannel(
    candidate,
    { method: 'GET', path: `/files/${encodeURIComponent(row.upstream_id)}/content` },
    closeSignal(call)
  )
  await relayBytes(call, response, body, 'application/octet-stream')
}

/**
 * An upstream's answer relayed to the client as it comes, never held whole
 * (a batch's output or results can be hundreds of MB), with its content type
 * (`fallbackType` when it names none) and length.
 */
export async function relayBytes(call: ApiCall, response: DispatchResult['response'], body: DispatchResult['body'], fallbackType: string) {
  const headers: Record<string, string> = { 'content-type': relayedUpstreamHeader(response.headers, 'content-type') ?? fallbackType }
  const length = relayedUpstreamHeader(response.headers, 'content-length')
  if (length !== undefined) headers['content-length'] = length
  const stream = new ClientStream(call.res, headers, () => {})
  try {
    await forEachChunk(body, (chunk) => (stream.gone ? false : stream.send(chunk)))
  } catch {
    // The client went away (nothing to answer), or the upstream failed once the answer had begun:
    // no error can follow it, the client's copy is cut.
    if (!call.res.destroyed) call.res.destroy()
    return
  }
  stream.end()
}

/** `DELETE /v1/files/{id}`: deleted upstream (one already gone there is gone), then here. */
export async function deleteFile(gw: Gateway, call: ApiCall, id: string) {
  const row = await findOwned(call.principal, 'file', id)
  const candidate = holdingChannel(gw.catalog.channels, row.channel_id, row.served_model)
  try {
    await callChannel(candidate, { method: 'DELETE', path: `/files/${encodeURIComponent(row.upstream_id)}` }, closeSignal(call))
  } catch (error) {
    if (!(error instanceof GatewayError && error.status === 404)) throw error
  }
  await deleteObject(row.id)
  return { id: row.public_id, object: 'file', deleted: true }
}

/** Aborted when the client goes away before its answer: the upstream call ends with it. */
export function closeSignal(call: ApiCall): AbortSignal {
  const abort = new AbortController()
  call.res.once('close', () => {
    if (!call.res.writableFinished) abort.abort()
  })
  return abort.signal
}
