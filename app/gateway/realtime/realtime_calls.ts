import { randomBytes } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import logger from '@adonisjs/core/services/logger'
import { GatewayError } from '#exceptions/gateway_error'
import { admitCall, authenticate } from '#gateway/auth/authenticate'
import { hashApiKey } from '#gateway/auth/api_key_token'
import { extractApiKey } from '#gateway/auth/key_resolver'
import { NEVER, sendToChannel } from '#gateway/batches/upstream_calls'
import { channelRequest } from '#gateway/batches/upstream_calls'
import type { Gateway } from '#gateway/gateway'
import { bodyLimitFor } from '#gateway/http/body_limits'
import { assertStorableModel } from '#gateway/http/model_name'
import { boundaryOf, fieldValue, MultipartError, readMultipart } from '#gateway/http/multipart'
import { readRawBody } from '#gateway/http/raw_body'
import { tagsFromHeaders } from '#gateway/metering/request_tags'
import { adapterFor } from '#gateway/providers/registry'
import type { RouteCandidate } from '#gateway/routing/channel_router'
import type { Principal } from '#gateway/types'
import { ClientGoneError, dispatch, readBody, type AttemptRecord } from '#gateway/upstream/dispatcher'
import type { UpstreamBody } from '#gateway/upstream/upstream_body'
import { checkSessionModels, isClientSecret, resolveClientSecret, type SecretGrant } from '#gateway/realtime/client_secrets'
import { realtimeLimits } from '#gateway/realtime/realtime_limits'
import { RealtimeSession } from '#gateway/realtime/realtime_session'
import { recordRefusal } from '#gateway/realtime/realtime_refusal'
import { connectUpstream } from '#gateway/realtime/upstream_socket'

/**
 * WebRTC calls of the Realtime API: `POST /v1/realtime/calls` with the
 * browser's SDP offer (application/sdp, or OpenAI's multipart form with
 * `sdp` and `session`), authenticated by a client secret (client_secrets.ts)
 * or a key. The offer goes to an openai or custom channel with its key (a
 * multipart form naming the channel's model), with failover as an HTTP
 * call's; the SDP answer comes back (201, `Location: /v1/realtime/calls/{id}`
 * under the gateway's own call id).
 *
 * The media then flows between the browser and the provider: the gateway
 * sees none of it. What it bills comes from OpenAI's sideband WebSocket
 * (`{base}/realtime?call_id=`, the channel's key), opened before the
 * answer is given (so no response.done can pass unseen) and metered by a
 * RealtimeSession without a client: one usage row per response.done, the
 * balance checked again after each, the call hung up when the session may
 * not go on (or at REALTIME_MAX_SESSION_MINUTES, or a shutdown). A call
 * whose sideband cannot be opened is hung up and answered 502: a call that
 * cannot be metered is not given out. The sideband closes when the call
 * ends. `POST /v1/realtime/calls/{id}/hangup` is relayed to the channel.
 *
 * Calls live in this process (the sideband is here): the hangup must reach
 * the instance that made the call, as a WebSocket session lives in one.
 */
export const CALL_PREFIX = 'rtc_gw_'

interface LiveCall {
  userId: number
  model: string
  candidate: RouteCandidate
  upstreamId: string
  hungUp: boolean
  /** The gateway's own hangup, until it settled (a shutdown waits for it: the session's place is held till then) */
  hangingUp: Promise<void> | null
}

const calls = new Map<string, LiveCall>()

/** Calls being metered in this process now (tests, shutdown) */
export function liveCalls(): number {
  return calls.size
}

export interface CallAnswer {
  id: string
  sdp: string
}

/** `POST /v1/realtime/calls`: the SDP answer and the gateway's call id, or a GatewayError (answered in OpenAI's format). */
export async function createCall(gw: Gateway, req: IncomingMessage, res: ServerResponse): Promise<CallAnswer | undefined> {
  const rawKey = extractApiKey(req.headers, req.url)
  let principal: Principal
  let keyHash: string
  let grant: SecretGrant | null = null
  if (isClientSecret(rawKey)) {
    grant = await resolveClientSecret(gw, rawKey)
    principal = grant.principal
    keyHash = grant.keyHash
    const admitted = admitCall(principal, res, res)
    if (admitted) await admitted
  } else {
    principal = await authenticate(gw, req, res, rawKey)
    keyHash = hashApiKey(rawKey!)
  }
  let model = grant?.model ?? ''
  let tried: RouteCandidate | null = null
  const attempts: AttemptRecord[] = []
  let session: RealtimeSession | null = null
  try {
    const offer = await readOffer(gw, req, res)
    const config: Record<string, any> = { ...(grant?.session ?? {}), ...(offer.session ?? {}) }
    if (config.type === 'transcription') {
      throw GatewayError.invalidRequest('Transcription sessions are served over the WebSocket (wss://.../v1/realtime?intent=transcription)', 'unsupported_session_type', 'session.type')
    }
    const asked = typeof offer.session?.model === 'string' ? offer.session.model : new URL(req.url ?? '/', 'http://gateway').searchParams.get('model')
    if (grant !== null && asked && asked !== grant.model) {
      throw GatewayError.invalidRequest(`This client secret is for '${grant.model}', not '${asked.slice(0, 200)}'`, 'model_mismatch', 'session.model')
    }
    model = grant?.model ?? asked ?? ''
    if (model === '') throw GatewayError.invalidRequest("The session's model is required (the session part's model, or ?model=)", 'missing_model', 'session.model')
    assertStorableModel(model)
    // The balance, cap, monthly tokens and globs (the transcription's too) before any call is made.
    checkSessionModels(gw, principal, model, config)
    const candidates = gw.service
      .router(principal.plan)
      .route(model)
      .filter((c) => c.channel.provider !== 'azure' && adapterFor(c.channel.provider).realtime?.(c.channel, c.upstreamModel) != null)
    if (candidates.length === 0) {
      throw GatewayError.invalidRequest(`No channel serving '${model}' takes WebRTC calls (openai and custom channels do)`, 'unsupported_endpoint')
    }
    session = new RealtimeSession(gw, principal, keyHash, model, tagsFromHeaders(req.headers), realtimeLimits)
    session.release = gw.service.admitSession(session)
    const abort = new AbortController()
    const gone = () => {
      if (!res.writableFinished) abort.abort()
    }
    res.once('close', gone)
    const boundary = `gateway-${randomBytes(12).toString('hex')}`
    const result = await dispatch(
      candidates,
      (c) =>
        channelRequest(c.channel, {
          method: 'POST',
          path: '/realtime/calls',
          body: offerForm(boundary, offer.sdp, { ...config, type: config.type ?? 'realtime', model: c.upstreamModel }),
          contentType: `multipart/form-data; boundary=${boundary}`,
        }),
      abort.signal,
      { onAttempt: (c) => (tried = c), onAttemptResult: (r) => attempts.push(r) },
      readSdpAnswer
    )
    const candidate = result.candidate
    const { sdp: answer, upstreamId } = result.answer
    const id = CALL_PREFIX + randomBytes(16).toString('hex')
    const call: LiveCall = { userId: principal.user.id, model, candidate, upstreamId, hungUp: false, hangingUp: null }
    let connection
    try {
      connection = await connectUpstream([candidate], {
        beta: false,
        maxPayload: realtimeLimits.maxMessageBytes,
        signal: abort.signal,
        health: gw.health,
        hooks: {},
        callId: upstreamId,
      })
    } catch (error) {
      // Not metered, not given out: the provider's call ends now.
      hangUpstream(call)
      if (error instanceof ClientGoneError) throw error
      logger.warn({ err: error }, 'realtime call: sideband not opened, call hung up')
      throw GatewayError.providerError('The call was made but its sideband (where its usage is read) could not be opened: it was hung up')
    } finally {
      res.off('close', gone)
    }
    const release = session.release
    session.release = () => {
      const done = () => {
        release()
        calls.delete(id)
      }
      // Ended by the gateway (onGatewayEnd ran first): in flight until the provider heard the hangup.
      if (call.hangingUp !== null) void call.hangingUp.finally(done)
      else done()
    }
    session.onGatewayEnd = () => hangUpstream(call)
    calls.set(id, call)
    session.start(null, connection)
    // The client left before its answer: the call would never be joined.
    if (res.destroyed && !res.writableFinished) {
      hangUpstream(call)
      return undefined
    }
    return { id, sdp: answer }
  } catch (error) {
    if (session !== null && !session.started) session.release()
    recordRefusal(gw, principal, model, tried, attempts, error, res)
    throw error
  }
}

/** A call of this user's running here, or 404 call_not_found (another user's is as unknown). */
export function callOf(principal: Principal, id: string): Readonly<Pick<LiveCall, 'model' | 'candidate' | 'upstreamId'>> {
  const call = calls.get(id)
  if (call === undefined || call.userId !== principal.user.id) {
    throw new GatewayError(404, 'call_not_found', `No call '${id.slice(0, 100)}' is running on this gateway instance`, 'invalid_request_error')
  }
  return call
}

/** `POST /v1/realtime/calls/{id}/hangup`: relayed to the call's channel. */
export async function hangupCall(principal: Principal, id: string, signal: AbortSignal): Promise<void> {
  const call = callOf(principal, id) as LiveCall
  call.hungUp = true
  const result = await sendToChannel(call.candidate, hangupRequest(call), signal)
  await readBody(result.body).catch(() => {})
}

function hangupRequest(call: LiveCall) {
  return { method: 'POST' as const, path: `/realtime/calls/${encodeURIComponent(call.upstreamId)}/hangup` }
}

/** The gateway ends a call (not metered, the balance out, the length limit, a shutdown): once, errors logged. */
function hangUpstream(call: LiveCall) {
  if (call.hungUp) return
  call.hungUp = true
  call.hangingUp = sendToChannel(call.candidate, hangupRequest(call), NEVER)
    .then((result) => readBody(result.body))
    .then(
      () => {},
      (error) => logger.warn({ err: error }, 'realtime call: hangup failed')
    )
}

interface Offer {
  sdp: string
  /** The multipart form's `session` (JSON), when sent */
  session: Record<string, any> | null
}

/** The SDP offer: the body (application/sdp), or the `sdp` and `session` parts of OpenAI's multipart form. */
async function readOffer(gw: Gateway, req: IncomingMessage, res: ServerResponse): Promise<Offer> {
  const raw = await gw.service.receiveBody(readRawBody(req, res, bodyLimitFor('realtime')))
  const contentType = req.headers['content-type'] ?? ''
  const boundary = boundaryOf(contentType)
  let sdp: string | undefined
  let session: Record<string, any> | null = null
  if (boundary !== null) {
    try {
      const form = readMultipart(raw, boundary)
      sdp = fieldValue(raw, form, 'sdp')
      const sessionText = fieldValue(raw, form, 'session')
      if (sessionText !== undefined) {
        let parsed: unknown
        try {
          parsed = JSON.parse(sessionText)
        } catch {
          throw GatewayError.invalidRequest("The 'session' part is not JSON", 'invalid_json', 'session')
        }
        if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw GatewayError.invalidRequest("The 'session' part must be a JSON object", 'invalid_request', 'session')
        session = parsed as Record<string, any>
      }
    } catch (error) {
      if (error instanceof MultipartError) throw GatewayError.invalidRequest(`Malformed multipart body: ${error.message}`, 'invalid_multipart')
      throw error
    }
  } else if (/^application\/sdp\b/i.test(contentType)) {
    sdp = raw.toString('utf8')
  } else {
    throw GatewayError.invalidRequest("Send the SDP offer as 'application/sdp', or a multipart/form-data with 'sdp' and 'session' parts", 'invalid_content_type')
  }
  if (sdp === undefined || !sdp.trimStart().startsWith('v=0')) throw GatewayError.invalidRequest('The SDP offer is missing or is no SDP (it starts with v=0)', 'invalid_sdp', 'sdp')
  if (session !== null && session.model !== undefined && (typeof session.model !== 'string' || session.model === '')) {
    throw GatewayError.invalidRequest("session.model: must be a string, the model's name", 'invalid_model', 'session.model')
  }
  return { sdp, session }
}

function offerForm(boundary: string, sdp: string, session: Record<string, any>): Buffer {
  return Buffer.from(
    `--${boundary}\r\nContent-Disposition: form-data; name="sdp"\r\nContent-Type: application/sdp\r\n\r\n${sdp}\r\n` +
      `--${boundary}\r\nContent-Disposition: form-data; name="session"\r\nContent-Type: application/json\r\n\r\n${JSON.stringify(session)}\r\n` +
      `--${boundary}--\r\n`
  )
}

/**
 * The provider's answer, read inside its attempt: an SDP answer and the
 * call's id (the last segment of its Location). Anything else is no answer
 * (the next channel is tried, as for a 5xx).
 */
async function readSdpAnswer(body: UpstreamBody): Promise<{ sdp: string; upstreamId: string }> {
  const sdp = (await readBody(body)).toString('utf8')
  const location = body.headers['location']
  const upstreamId = typeof location === 'string' ? (location.split('?')[0].split('/').filter(Boolean).pop() ?? '') : ''
  if (!sdp.trimStart().startsWith('v=0') || upstreamId === '') {
    throw GatewayError.providerError('The upstream answered the call without an SDP answer and a Location naming the call')
  }
  return { sdp, upstreamId }
}
