import { GatewayError } from '#exceptions/gateway_error'
import { eachAtMost } from '#gateway/each_at_most'
import type { Gateway } from '#gateway/gateway'
import type { ApiCall } from '#gateway/http/generation_request'
import { bodyLimitFor } from '#gateway/http/body_limits'
import { parseJsonObject, readRawBody } from '#gateway/http/raw_body'
import { wholeNumber } from '#gateway/http/whole_number'
import { assertStorableModel } from '#gateway/http/model_name'
import { callChannel, holdingChannel, sendToChannel } from '#gateway/batches/upstream_calls'
import { closeSignal, relayBytes } from '#gateway/batches/files_api'
import { listParams } from '#gateway/responses_store/responses_api'
import { ClientGoneError, dispatch } from '#gateway/upstream/dispatcher'
import { ClientStream } from '#gateway/relay/client_stream'
import { jsonAnswer } from '#gateway/batches/upstream_calls'
import { isVeoModel, readVideoRequest, VEO_DEFAULT_SECONDS, type VideoRequest } from '#gateway/videos/video_request'
import { NATIVE_VEO_KINDS, OPENAI_VIDEO_KINDS, VIDEO_CHANNEL_KINDS } from '#gateway/videos/video_service'
import { operationState, pollRequest, samplesOf } from '#gateway/videos/veo'
import { findOwned, listOwned, markDeleted, type VideoRow } from '#gateway/videos/video_store'
import type { RouteCandidate } from '#gateway/routing/channel_router'
import { isIP } from 'node:net'
import { Agent, fetch as undiciFetch, type Response } from 'undici'
import { isBlockedAddress, publicOnlyLookup } from '#services/blocked_addresses'

/** OpenAI's size when a Veo video names none (Veo's 16:9 720p) */
const VEO_DEFAULT_SIZE = '1280x720'
/** Unbilled videos of a list page asked about upstream at once */
const LIST_LOOKS_AT_ONCE = 4

/**
 * OpenAI's Videos API (`/v1/videos`, and without `/v1`): on OpenAI,
 * OpenAI-compatible and Azure OpenAI channels relayed (Azure's at its v1
 * API, `{resource}/openai/v1/videos`, whatever the base's shape), on Google
 * and Vertex channels made by Veo; a video is its owner's alone (another
 * user gets OpenAI's 404). What each look learns is settled by VideoService
 * (a finished video billed once).
 */

/** `POST /v1/videos` {prompt, model?, seconds?, size?, input_reference?}, JSON or multipart/form-data. */
export async function createVideo(gw: Gateway, call: ApiCall): Promise<Record<string, any>> {
  const request = await readVideoRequest(gw.service, call)
  const row = await gw.videos.create(call, videoCandidates(gw, call, request.model), request)
  return videoView(row)
}

/** The model's channels that make videos (model_not_found as any request's; only other kinds (Anthropic, Bedrock, Gemini's OpenAI endpoint): 400 unsupported_endpoint) */
function videoCandidates(gw: Gateway, call: ApiCall, model: string, kinds = VIDEO_CHANNEL_KINDS): RouteCandidate[] {
  const candidates = gw.service
    .router(call.principal.plan)
    .route(model)
    .filter((c) => kinds.has(c.channel.provider))
  if (candidates.length === 0) {
    throw GatewayError.invalidRequest(
      kinds === VIDEO_CHANNEL_KINDS
        ? `No channel serving '${model}' generates videos (OpenAI, OpenAI-compatible 'custom', Azure OpenAI, Google and Vertex channels do)`
        : `No channel serving '${model}' takes Gemini's predictLongRunning (Google Gemini API channels do)`,
      'unsupported_endpoint'
    )
  }
  return candidates
}

/** `GET /v1/videos/{id}`: asked of the upstream while unbilled (a finished video billed before the answer). */
export async function retrieveVideo(gw: Gateway, call: ApiCall, id: string) {
  const row = await owned(call, id)
  return videoView(await gw.videos.look(row, closeSignal(call)))
}

/**
 * `GET /v1/videos` (`after`, `limit` 1-100 default 20, `order` desc or
 * asc): the caller's videos, the unbilled ones on the page asked about
 * upstream (a few at once; one that cannot be asked is shown as last seen).
 */
export async function listVideos(gw: Gateway, call: ApiCall, query: Record<string, unknown>) {
  const params = listParams(query)
  const rows = await listOwned(call.principal.user.id, params)
  const page = rows.slice(0, params.limit)
  const signal = closeSignal(call)
  await eachAtMost(page, LIST_LOOKS_AT_ONCE, async (row) => {
    if (row.billed_at === null) await gw.videos.look(row, signal).catch(() => {})
  })
  const data = page.map(videoView)
  return { object: 'list', data, first_id: data[0]?.id ?? null, last_id: data[data.length - 1]?.id ?? null, has_more: rows.length > params.limit }
}

/**
 * `DELETE /v1/videos/{id}`: asked about first (a video that finished
 * meanwhile is billed, as it was made), deleted upstream (OpenAI's refusal
 * to delete one still running is the client's answer), then here: one
 * deleted before it finished (an upstream that cancels it) bills nothing
 * and its hold is released. Veo has no cancel: one still being made is
 * refused as OpenAI refuses it (deleted here, billed nothing, it went on
 * upstream at the operator's cost: a client could make Veo videos free).
 */
export async function deleteVideo(gw: Gateway, call: ApiCall, id: string) {
  const row = await owned(call, id)
  const signal = closeSignal(call)
  if (row.billed_at === null) await gw.videos.look(row, signal, true).catch(() => {})
  if (row.wire !== 'openai' && row.billed_at === null) {
    throw new GatewayError(
      400,
      'video_in_progress',
      `Video '${row.public_id}' is still being made and Veo cannot cancel it: delete it once it is completed or failed.`,
      'invalid_request_error'
    )
  }
  if (row.wire === 'openai') {
    try {
      await callChannel(gw.videos.holdingChannelOf(row), { method: 'DELETE', path: `/videos/${encodeURIComponent(row.upstream_id)}`, azureV1: true }, signal)
    } catch (error) {
      // Gone upstream already, or its channel is: the gateway's record goes all the same.
      if (!(error instanceof GatewayError && (error.status === 404 || error.code === 'no_available_channel'))) throw error
    }
  }
  if (row.billed_at === null) await gw.videos.bill(row, 'deleted', 0)
  await markDeleted(row.id)
  return { id: row.public_id, object: 'video.deleted', deleted: true }
}

/**
 * `POST /v1/videos/{id}/remix` {prompt}: a new video made from the
 * caller's video, on its channel (OpenAI's Videos API only), held and billed
 * as any new video of its model and length.
 */
export async function remixVideo(gw: Gateway, call: ApiCall, id: string) {
  const source = await owned(call, id)
  const raw = await gw.service.receiveBody(readRawBody(call.req, call.res, bodyLimitFor('videos')))
  const body = parseJsonObject(raw)
  if (typeof body.prompt !== 'string' || body.prompt === '') {
    throw GatewayError.invalidRequest("Missing required parameter: 'prompt'.", 'missing_required_parameter', 'prompt')
  }
  if (source.wire !== 'openai') throw GatewayError.invalidRequest('Only videos made through OpenAI\'s Videos API can be remixed; Veo has no remix', 'unsupported_endpoint')
  // New work on the source's channel: only while it is open to the caller's plan.
  const candidate = holdingChannel(gw.catalog.channels, source.channel_id, source.served_model, OPENAI_VIDEO_KINDS, call.principal.plan)
  const request: VideoRequest = {
    prompt: body.prompt,
    model: source.model,
    seconds: source.seconds,
    size: source.size,
    image: null,
    imageUrl: null,
    rawBody: raw,
    contentType: 'application/json',
    json: body,
    form: null,
  }
  return videoView(await gw.videos.create(call, [candidate], request, source))
}

/**
 * `GET /v1/videos/{id}/content` (`variant` video, thumbnail or spritesheet):
 * the upstream's bytes relayed as they come, with its content type, never
 * held whole. Veo's video: the Gemini API's file read with the channel's key
 * (on the channel's own host only), Vertex's inline bytes decoded; Cloud
 * Storage (gs://) is not read.
 */
export async function videoContent(gw: Gateway, call: ApiCall, id: string, query: Record<string, unknown>) {
  const variant = query.variant === undefined ? 'video' : query.variant
  if (variant !== 'video' && variant !== 'thumbnail' && variant !== 'spritesheet') {
    throw GatewayError.invalidRequest("Invalid 'variant': expected 'video', 'thumbnail' or 'spritesheet'.", 'invalid_value', 'variant')
  }
  const row = await owned(call, id)
  const signal = closeSignal(call)
  if (row.billed_at === null) await gw.videos.look(row, signal)
  if (row.status !== 'completed') {
    throw new GatewayError(400, 'video_not_ready', `Video '${row.public_id}' is ${row.status === 'failed' || row.status === 'expired' ? 'failed' : 'not ready yet'}: it has no content.`, 'invalid_request_error')
  }
  const candidate = gw.videos.holdingChannelOf(row)
  if (row.wire === 'openai') {
    const { response, body } = await sendToChannel(
      candidate,
      { method: 'GET', path: `/videos/${encodeURIComponent(row.upstream_id)}/content${variant === 'video' ? '' : `?variant=${variant}`}`, azureV1: true },
      signal
    )
    return relayBytes(call, response, body, variant === 'video' ? 'video/mp4' : 'image/webp')
  }
  if (variant !== 'video') throw GatewayError.invalidRequest(`Veo makes no ${variant}; ask for the video`, 'invalid_value', 'variant')
  const index = query.sample === undefined ? 0 : wholeNumber(query.sample)
  let samples = samplesOf(row.object?.operation ?? {})
  if (!Number.isInteger(index) || index < 0 || index >= samples.length) {
    throw GatewayError.invalidRequest(`Invalid 'sample': the operation made ${samples.length} video(s)`, 'invalid_value', 'sample')
  }
  if (samples[index].uri === null && samples[index].base64 === null) {
    // Vertex's inline bytes were not kept: the operation is read again for them.
    const fresh = await dispatch([candidate], (c) => pollRequest(c.channel, c.upstreamModel, row.upstream_id), signal, undefined, jsonAnswer)
    samples = samplesOf(fresh.answer)
    if (operationState(fresh.answer).status !== 'completed' || index >= samples.length) throw GatewayError.providerError('The upstream no longer names the video')
  }
  const sample = samples[index]
  if (sample.base64 !== null) return sendWhole(call, Buffer.from(sample.base64, 'base64'), sample.mimeType)
  if (sample.uri!.startsWith('gs://')) {
    throw GatewayError.providerError('The video was written to Cloud Storage (gs://), which the gateway does not read; ask the channel for inline videos')
  }
  return relayGeminiFile(call, candidate, sample.uri!, signal)
}

/** Redirects a Gemini file's download follows (Google's: one, to its storage) */
const MAX_FILE_REDIRECTS = 3
/** How long one hop of a Gemini file's download may take to answer its headers (the bytes then come as they come) */
const FILE_HEADERS_MS = 30_000

/**
 * A Gemini API file (`{base}/files/{id}:download?alt=media`) read with the
 * channel's key: only on the channel's own origin (the key never goes to a
 * host the upstream names), relayed as it comes. Google may answer with a
 * redirect to the file's storage: followed by hand, at most
 * MAX_FILE_REDIRECTS, without the key off the channel's origin, and off it
 * to https only, never to a private or local address, an IP written or a
 * name's DNS answer (offOrigin's lookup) (fetch's own
 * following took a hostile upstream's second redirect anywhere: to
 * http://169.254.169.254 or a LAN host, whose answer reached the client).
 */
async function relayGeminiFile(call: ApiCall, candidate: RouteCandidate, uri: string, signal: AbortSignal) {
  const channel = candidate.channel
  let url: URL
  try {
    url = new URL(uri)
  } catch {
    throw GatewayError.providerError('The upstream named the video at an address that is not a URL')
  }
  const origin = new URL(channel.baseUrl).origin
  if (url.origin !== origin) throw GatewayError.providerError('The upstream named the video on another host than its own')
  let response: Response | null = null
  for (let hop = 0; ; hop++) {
    const headers: Record<string, string> = {}
    if (channel.apiKey && url.origin === origin) headers['x-goog-api-key'] = channel.apiKey
    response = await fetchHeaders(url, headers, signal, url.origin !== origin)
    const location = response !== null && response.status >= 300 && response.status < 400 ? response.headers.get('location') : null
    if (location === null) break
    await response!.body?.cancel().catch(() => {})
    let next: URL | null
    try {
      next = new URL(location, url)
    } catch {
      next = null
    }
    if (next === null || hop >= MAX_FILE_REDIRECTS || !redirectable(next, origin)) {
      throw GatewayError.providerError('The upstream redirected the video to an address the gateway does not follow')
    }
    url = next
  }
  if (response === null || !response.ok || response.body === null) {
    throw GatewayError.providerError(`The upstream did not give the video${response ? ` (HTTP ${response.status})` : ''}`)
  }
  const out: Record<string, string> = { 'content-type': response.headers.get('content-type') ?? 'video/mp4' }
  const length = response.headers.get('content-length')
  if (length !== null) out['content-length'] = length
  const stream = new ClientStream(call.res, out, () => {})
  try {
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      if (stream.gone) break
      // At the client's pace: a client reading slowly (or not at all) had the whole video read into memory.
      const wait = stream.send(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength))
      if (wait) await wait
    }
  } catch {
    if (!call.res.destroyed) call.res.destroy()
    return
  }
  stream.end()
}

/**
 * Off the channel's origin, hosts are connected to through this: a name is
 * resolved and refused when any of its addresses is private or local (a
 * redirect to https://localhost. or to a name whose DNS says 127.0.0.1 or
 * 169.254.169.254 passed the check of IP literals before), the checked
 * address the one connected to.
 */
const offOrigin = new Agent({ connect: { lookup: publicOnlyLookup as any }, keepAliveTimeout: 1000 })

/** One hop's answer, its headers within FILE_HEADERS_MS (null: no answer); the body then bounded by the client's signal alone */
async function fetchHeaders(url: URL, headers: Record<string, string>, signal: AbortSignal, foreign: boolean): Promise<Response | null> {
  const deadline = new AbortController()
  const timer = setTimeout(() => deadline.abort(), FILE_HEADERS_MS)
  try {
    return await undiciFetch(url, {
      headers,
      redirect: 'manual',
      signal: AbortSignal.any([signal, deadline.signal]),
      ...(foreign ? { dispatcher: offOrigin } : {}),
    })
  } catch {
    if (signal.aborted) throw new ClientGoneError()
    return null
  } finally {
    clearTimeout(timer)
  }
}

/** Where a Gemini file's redirect may go: the channel's origin, or https to a host that is no private or local IP address */
function redirectable(url: URL, channelOrigin: string): boolean {
  if (url.origin === channelOrigin) return true
  if (url.protocol !== 'https:') return false
  // A name is resolved and its addresses checked as it is connected to (offOrigin); `localhost.` is localhost
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1').replace(/\.$/, '')
  return isIP(host) === 0 ? host !== 'localhost' && !host.endsWith('.localhost') : !isBlockedAddress(host)
}

function sendWhole(call: ApiCall, bytes: Buffer, contentType: string) {
  if (call.res.destroyed) return
  call.res.writeHead(200, { 'content-type': contentType, 'content-length': String(bytes.length) })
  call.res.end(bytes)
}

/** The caller's video (a Gemini client's operation too: its content is read here, at its rewritten uri) */
function owned(call: ApiCall, id: string): Promise<VideoRow> {
  return findOwned(call.principal.user.id, id)
}

/** A video as OpenAI's Videos API answers it, with the gateway's id */
export function videoView(row: VideoRow): Record<string, any> {
  const status = row.status === 'expired' || row.status === 'deleted' ? 'failed' : row.status
  if (row.wire === 'openai') {
    return { ...(row.object ?? {}), id: row.public_id, object: 'video', model: row.model, status, remixed_from_video_id: row.remixed_from }
  }
  const object = row.object ?? {}
  const operation = object.operation ?? {}
  const error = status === 'failed' ? (object.expired ?? operationState(operation).error ?? { code: 'video_generation_failed', message: 'The video could not be generated' }) : null
  const progress = Number(operation.metadata?.progressPercent ?? operation.metadata?.progress)
  return {
    id: row.public_id,
    object: 'video',
    created_at: seconds(row.created_at),
    completed_at: status === 'completed' && row.billed_at !== null ? seconds(row.billed_at) : null,
    error,
    expires_at: null,
    model: row.model,
    progress: status === 'completed' ? 100 : Number.isFinite(progress) && progress >= 0 && progress <= 100 ? Math.floor(progress) : 0,
    prompt: typeof object.prompt === 'string' ? object.prompt : null,
    remixed_from_video_id: null,
    seconds: String(row.seconds),
    size: row.size ?? VEO_DEFAULT_SIZE,
    status,
  }
}

function seconds(at: Date | string): number {
  return Math.floor(new Date(at).getTime() / 1000)
}

/**
 * `POST /v1beta/models/{veo}:predictLongRunning` (@google/genai's
 * generateVideos): the client's body relayed to a Gemini API channel, held
 * for its parameters' durationSeconds (8 when absent) x sampleCount (1), the
 * operation answered under the gateway's name.
 */
export async function predictLongRunning(gw: Gateway, call: ApiCall, model: string, base: string) {
  const raw = await gw.service.receiveBody(readRawBody(call.req, call.res, bodyLimitFor('videos')))
  const body = parseJsonObject(raw)
  const instance = Array.isArray(body.instances) ? body.instances[0] : undefined
  if (instance === null || typeof instance !== 'object' || typeof instance.prompt !== 'string' || instance.prompt === '') {
    throw GatewayError.invalidRequest('instances[0].prompt is required: the video to generate', 'missing_required_parameter', 'instances')
  }
  if (body.instances.length !== 1) throw GatewayError.invalidRequest('Veo takes one instance per request', 'invalid_value', 'instances')
  const parameters = body.parameters ?? {}
  if (parameters === null || typeof parameters !== 'object' || Array.isArray(parameters)) {
    throw GatewayError.invalidRequest('parameters must be an object', 'invalid_type', 'parameters')
  }
  const duration = parameters.durationSeconds ?? parameters.duration_seconds ?? VEO_DEFAULT_SECONDS
  if (!Number.isInteger(duration) || duration < 1 || duration > 60) {
    throw GatewayError.invalidRequest('parameters.durationSeconds must be a whole number of seconds (Veo: 4 to 8)', 'invalid_value', 'durationSeconds')
  }
  const samples = parameters.sampleCount ?? parameters.sample_count ?? 1
  if (!Number.isInteger(samples) || samples < 1 || samples > 4) {
    throw GatewayError.invalidRequest('parameters.sampleCount must be a whole number from 1 to 4', 'invalid_value', 'sampleCount')
  }
  assertStorableModel(model)
  if (!isVeoModel(model)) {
    throw GatewayError.invalidRequest(`predictLongRunning makes videos with Veo models; '${model.slice(0, 100)}' is not one`, 'unsupported_endpoint')
  }
  const row = await gw.videos.createNative(call, videoCandidates(gw, call, model, NATIVE_VEO_KINDS), model, raw, duration, samples)
  return operationView(row, base)
}

/** `GET /v1beta/models/{model}/operations/{id}` and `/v1beta/operations/{id}`: the caller's operation now (billed when done). */
export async function getOperation(gw: Gateway, call: ApiCall, id: string, base: string) {
  const row = await findOwned(call.principal.user.id, id, operationNotFound)
  if (row.wire !== 'veo_native') throw operationNotFound(id)
  return operationView(await gw.videos.look(row, closeSignal(call)), base)
}

function operationNotFound(id: string): GatewayError {
  return new GatewayError(404, 'not_found', `Operation ${id.slice(0, 100)} not found`, 'not_found_error')
}

/**
 * The upstream's operation under the gateway's name, its videos' uris the
 * gateway's content address (the upstream's need the channel's key), Vertex
 * bytes left out as kept.
 */
export function operationView(row: VideoRow, base: string): Record<string, any> {
  const operation = { ...(row.object?.operation ?? {}) }
  operation.name = `models/${row.model}/operations/${row.public_id}`
  if (row.status === 'expired' || row.status === 'deleted') {
    return { name: operation.name, done: true, error: { code: 4, message: 'The video did not finish in time; nothing was billed' } }
  }
  const samples = operation.response?.generateVideoResponse?.generatedSamples
  if (Array.isArray(samples)) {
    operation.response = {
      ...operation.response,
      generateVideoResponse: {
        ...operation.response.generateVideoResponse,
        generatedSamples: samples.map((sample: any, i: number) => ({
          ...sample,
          video: { ...(sample?.video ?? {}), uri: `${base}/v1/videos/${row.public_id}/content${i === 0 ? '' : `?sample=${i}`}` },
        })),
      },
    }
  }
  return operation
}
