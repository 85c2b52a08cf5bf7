import { randomBytes } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import logger from '@adonisjs/core/services/logger'
import db from '@adonisjs/lucid/services/db'
import { GatewayError } from '#exceptions/gateway_error'
import { admitCall, authenticate } from '#gateway/auth/authenticate'
import { hashApiKey } from '#gateway/auth/api_key_token'
import { extractApiKey } from '#gateway/auth/key_resolver'
import { channelRequest, NEVER, sendToChannel } from '#gateway/batches/upstream_calls'
import type { Gateway } from '#gateway/gateway'
import { bodyLimitFor } from '#gateway/http/body_limits'
import { assertStorableModel } from '#gateway/http/model_name'
import { boundaryOf, fieldValue, MultipartError, readMultipart } from '#gateway/http/multipart'
import { readRawBody } from '#gateway/http/raw_body'
import { limitFor } from '#gateway/limits/model_limits'
import type { ClosesOnce } from '#gateway/limits/parallel_requests'
import { admitModel } from '#gateway/limits/rate_limits'
import { tagsFromHeaders } from '#gateway/metering/request_tags'
import { adapterFor } from '#gateway/providers/registry'
import type { RouteCandidate } from '#gateway/routing/channel_router'
import type { Principal, ProviderKind } from '#gateway/types'
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
 * ends; one that closes under a call (dropped, the provider gone) hangs it
 * up too: a call is never left running unmetered. The call holds its key's
 * place among its calls in flight (max_parallel) and counts one request of
 * the key's window for the model, as a WebSocket session.
 * `POST /v1/realtime/calls/{id}/hangup` is relayed to the channel.
 *
 * A call is metered in this process (its sideband is here), but any
 * instance can hang it up or join it: each call given out has a row in
 * `realtime_calls` (migration 1051: ids, channel, model; deleted when it
 * ends), which an instance reads for a call it does not hold itself, then
 * relays the hangup or opens the sideband through the call's channel as the
 * owner would. The owner hears of a hangup from the provider: its sideband
 * closes, and the session ends as for any hangup. The calls of an instance
 * that died (their sideband gone with it) are hung up by another's sweep
 * (hangUpOrphanCalls).
 */
export const CALL_PREFIX = 'rtc_gw_'
/** The channel kinds that take calls */
const CALL_KINDS: ReadonlySet<ProviderKind> = new Set(['openai', 'custom'])
/** A call row older than the longest session and this is an instance's that died: ignored, and swept by later calls */
const STALE_MARGIN_MS = 5 * 60_000
/** Stale rows removed per call given out (a bounded sweep: no timer, no instance elected) */
const SWEEP_ROWS = 100

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

/**
 * A call's place among its key's calls in flight (max_parallel): taken with
 * the offer, given back when the offer's response closes without a call
 * given out, else when the call ends (the offer's answer is not its end:
 * calls would otherwise run beyond the key's cap).
 */
class CallPlace implements ClosesOnce {
  #listeners: Array<() => void> = []
  /** The call was given out: its end frees the place */
  kept = false

  once(_event: 'close', listener: () => void) {
    this.#listeners.push(listener)
    return this
  }

  free() {
    for (const listener of this.#listeners.splice(0)) listener()
  }
}

/** `POST /v1/realtime/calls`: the SDP answer and the gateway's call id, or a GatewayError (answered in OpenAI's format). */
export async function createCall(gw: Gateway, req: IncomingMessage, res: ServerResponse): Promise<CallAnswer | undefined> {
  const rawKey = extractApiKey(req.headers, req.url)
  let principal: Principal
  let keyHash: string
  let grant: SecretGrant | null = null
  const place = new CallPlace()
  res.once('close', () => {
    if (!place.kept) place.free()
  })
  if (isClientSecret(rawKey)) {
    grant = await resolveClientSecret(gw, rawKey)
    principal = grant.principal
    keyHash = grant.keyHash
    const admitted = admitCall(principal, res, place)
    if (admitted) await admitted
  } else {
    principal = await authenticate(gw, req, res, rawKey, place)
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
    // The key's own limit for this model (model_limits.ts): a call made is one request of its window, as a session opened.
    const modelLimit = principal.key.modelLimits === null ? undefined : limitFor(principal.key.modelLimits, model)
    if (modelLimit !== undefined) {
      const rated = admitModel(modelLimit, res)
      if (rated) await rated
    }
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
    // From here the call's end frees its key's place (not the offer's response closing).
    place.kept = true
    // Any instance may now hang it up or join it (its row); not written, the call still works through this one.
    const listed = await listCall(gw, id, call)
    const release = session.release
    session.release = () => {
      const done = () => {
        calls.delete(id)
        // The row goes before the call's places are given back (a shutdown's pools close after that).
        void (listed ? unlistCall(id) : Promise.resolve()).finally(() => {
          release()
          place.free()
        })
      }
      // Ended by the gateway or its sideband gone (onEnd ran first): in flight until the provider heard the hangup.
      if (call.hangingUp !== null) void call.hangingUp.finally(done)
      else done()
    }
    session.onEnd = () => hangUpstream(call)
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

/** The row that lets another instance find the call; false when it could not be written (logged). */
async function listCall(gw: Gateway, id: string, call: LiveCall): Promise<boolean> {
  try {
    const stale = new Date(Date.now() - realtimeLimits.maxSessionMs - STALE_MARGIN_MS)
    await db.rawQuery('DELETE FROM realtime_calls WHERE id IN (SELECT id FROM realtime_calls WHERE created_at < ? ORDER BY created_at LIMIT ?)', [stale, SWEEP_ROWS])
    await db.table('realtime_calls').insert({
      id,
      user_id: call.userId,
      model: call.model,
      channel_id: call.candidate.channel.id,
      upstream_model: call.candidate.upstreamModel,
      upstream_id: call.upstreamId,
      instance_id: gw.instanceId,
    })
    return true
  } catch (error) {
    logger.warn({ err: error }, 'realtime call: not listed, only this instance can hang it up or join it')
    return false
  }
}

function unlistCall(id: string): Promise<void> {
  return db
    .from('realtime_calls')
    .where('id', id)
    .delete()
    .then(
      () => {},
      (error) => logger.warn({ err: error }, 'realtime call: its row not deleted (swept later)')
    )
}

/** A call as a hangup or a joining sideband needs it: its model, its channel, the provider's id. */
export interface CallRef {
  model: string
  candidate: RouteCandidate
  upstreamId: string
  /** The call, when this instance runs it */
  live: LiveCall | null
}

function callNotFound(id: string): GatewayError {
  return new GatewayError(404, 'call_not_found', `No call '${id.slice(0, 100)}' is running on this gateway`, 'invalid_request_error')
}

/**
 * A call of this user's: running here (memory), or on another instance
 * (its row, read only then); else 404 call_not_found (another user's is as
 * unknown). A call whose channel was deleted since is 503.
 */
export async function findCall(gw: Gateway, principal: Principal, id: string): Promise<CallRef> {
  const live = calls.get(id)
  if (live !== undefined) {
    if (live.userId !== principal.user.id) throw callNotFound(id)
    return { model: live.model, candidate: live.candidate, upstreamId: live.upstreamId, live }
  }
  if (!id.startsWith(CALL_PREFIX) || id.length > 64) throw callNotFound(id)
  const row = await db
    .from('realtime_calls')
    .where('id', id)
    .where('user_id', principal.user.id)
    .where('created_at', '>', new Date(Date.now() - realtimeLimits.maxSessionMs - STALE_MARGIN_MS))
    .select('model', 'channel_id', 'upstream_model', 'upstream_id')
    .first()
  if (!row) throw callNotFound(id)
  return { model: row.model, candidate: callChannel(gw, Number(row.channel_id), row.upstream_model), upstreamId: row.upstream_id, live: null }
}

/**
 * The channel a call of another instance runs on, from the catalog: disabled
 * since or not (the owner goes on with it too), but gone or of another kind
 * is 503.
 */
function callChannel(gw: Gateway, channelId: number, upstreamModel: string): RouteCandidate {
  const channel = gw.catalog.channels.find((c) => c.id === channelId)
  if (channel === undefined || !CALL_KINDS.has(channel.provider)) {
    throw new GatewayError(503, 'no_available_channel', "The channel that holds this call is no longer available: it was deleted or changed kind", 'service_unavailable')
  }
  return { channel, upstreamModel }
}

/**
 * Calls of instances that died (their heartbeat stale or gone: see
 * background_sweeper.ts, whose sweep runs this): their sideband died with
 * them, so they would run on at the provider unmetered until the browser
 * left. Each row is claimed by its delete (two instances sweeping at once
 * take different rows), then its call hung up through its channel, all at
 * once (a shutdown waits for the sweep: one channel timeout, not 100); at
 * most SWEEP_ROWS a sweep. Nothing is billed: what the dead instance read
 * was in its memory. How many were hung up.
 */
export async function hangUpOrphanCalls(gw: Gateway, staleMs: number): Promise<number> {
  const claimed = await db.rawQuery(
    `DELETE FROM realtime_calls WHERE id IN (
       SELECT c.id FROM realtime_calls c
        WHERE c.instance_id <> ?
          AND NOT EXISTS (SELECT 1 FROM gateway_instances i WHERE i.id = c.instance_id AND i.seen_at > now() - make_interval(secs => ?))
        ORDER BY c.created_at LIMIT ? FOR UPDATE SKIP LOCKED)
     RETURNING channel_id, upstream_model, upstream_id`,
    [gw.instanceId, staleMs / 1000, SWEEP_ROWS]
  )
  const hungUp = await Promise.all(
    claimed.rows.map(async (row: any) => {
      try {
        const result = await sendToChannel(callChannel(gw, Number(row.channel_id), row.upstream_model), hangupRequest(row.upstream_id), NEVER)
        await readBody(result.body)
        return 1
      } catch (error) {
        // A 404: the call had ended meanwhile.
        if (!(error instanceof GatewayError && error.status === 404)) logger.warn({ err: error }, 'realtime call of a stopped instance: hangup failed')
        return 0
      }
    })
  )
  return hungUp.reduce((sum: number, n: number) => sum + n, 0)
}

/**
 * `POST /v1/realtime/calls/{id}/hangup`: relayed to the call's channel, from
 * whichever instance it reached (the owner's sideband then closes, and its
 * session ends as for any hangup).
 */
export async function hangupCall(gw: Gateway, principal: Principal, id: string, signal: AbortSignal): Promise<void> {
  const call = await findCall(gw, principal, id)
  if (call.live !== null) call.live.hungUp = true
  const result = await sendToChannel(call.candidate, hangupRequest(call.upstreamId), signal)
  await readBody(result.body).catch(() => {})
}

function hangupRequest(upstreamId: string) {
  return { method: 'POST' as const, path: `/realtime/calls/${encodeURIComponent(upstreamId)}/hangup` }
}

/**
 * The gateway ends a call (not metered, the balance out, the length limit, a
 * shutdown, its sideband closed): once, errors logged. A 404 is a call that
 * had ended already (the usual reason its sideband closed): nothing to say.
 */
function hangUpstream(call: LiveCall) {
  if (call.hungUp) return
  call.hungUp = true
  call.hangingUp = sendToChannel(call.candidate, hangupRequest(call.upstreamId), NEVER)
    .then((result) => readBody(result.body))
    .then(
      () => {},
      (error) => {
        if (error instanceof GatewayError && error.status === 404) return
        logger.warn({ err: error }, 'realtime call: hangup failed')
      }
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
  if (!sdp.trimStart().startsWith('v=0') || upstreamId === '' || upstreamId.length > 255) {
    throw GatewayError.providerError('The upstream answered the call without an SDP answer and a Location naming the call')
  }
  return { sdp, upstreamId }
}
