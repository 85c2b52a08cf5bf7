import { ServerResponse, type IncomingMessage, type Server } from 'node:http'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { WebSocketServer } from 'ws'
import logger from '@adonisjs/core/services/logger'
import { GatewayError } from '#exceptions/gateway_error'
import { authorizeModel } from '#gateway/access_policy'
import { admitCall, authenticate } from '#gateway/auth/authenticate'
import { limitFor } from '#gateway/limits/model_limits'
import { admitModel } from '#gateway/limits/rate_limits'
import { extractApiKey } from '#gateway/auth/key_resolver'
import type { Gateway } from '#gateway/gateway'
import { reportApiError, sendApiError } from '#gateway/http/api_errors'
import { gatewayInstance } from '#gateway/http/generation_request'
import { assertStorableModel } from '#gateway/http/model_name'
import { tagsFromHeaders } from '#gateway/metering/request_tags'
import { adapterFor } from '#gateway/providers/registry'
import type { RouteCandidate } from '#gateway/routing/channel_router'
import type { Principal } from '#gateway/types'
import { ClientGoneError, type AttemptRecord } from '#gateway/upstream/dispatcher'
import { chooseProtocol, isRealtimeUpgrade, readHandshake, type RealtimeHandshake } from '#gateway/realtime/realtime_handshake'
import { realtimeLimits } from '#gateway/realtime/realtime_limits'
import { RealtimeSession } from '#gateway/realtime/realtime_session'
import { connectUpstream, type UpstreamConnection } from '#gateway/realtime/upstream_socket'
import { checkTranscriptionModels, isClientSecret, resolveClientSecret, sessionUpdateOf, type SecretGrant } from '#gateway/realtime/client_secrets'
import { hashApiKey } from '#gateway/auth/api_key_token'
import { findCall } from '#gateway/realtime/realtime_calls'
import { recordRefusal } from '#gateway/realtime/realtime_refusal'
import { isTranscriptionConfig, transcriptionCandidates, transcriptionUpdateOf } from '#gateway/realtime/transcription_sessions'
import { ModelWait, type OpenedSession } from '#gateway/realtime/transcription_opening'

/**
 * OpenAI's Realtime API on the gateway's HTTP server: `GET /v1/realtime?model=`
 * upgraded to a WebSocket (also `/realtime`, Azure's `/openai/realtime?deployment=`
 * and `/openai/v1/realtime`).
 *
 * A separate 'upgrade' event: the HTTP lane and the router never see these
 * requests, and an HTTP request pays nothing for them. The server's
 * shouldUpgradeCallback takes only WebSocket upgrades of those paths; any
 * other upgrade request (Codex's WebSocket attempt at /v1/responses) stays an
 * ordinary request, answered as before.
 *
 * Before the client's handshake is answered: the key (`Authorization: Bearer`,
 * `api-key`, any header HTTP calls take, or a browser's
 * `openai-insecure-api-key.<key>` subprotocol) with the same checks as HTTP
 * (IP allowlist, its cap on calls in flight, held until the socket closes,
 * rate windows), then the model (plan and key globs, the key's cap, monthly
 * tokens, balance), the route (openai, custom and azure channels) and the
 * upstream's own handshake, failing over between channels. A refusal is a
 * plain HTTP answer in OpenAI's error JSON (401, 403, 402, 429, 404, 400,
 * 502, 503); one after the key was accepted has its usage row, as an HTTP
 * call's. Only then is the client's handshake completed, with the subprotocol
 * OpenAI answers (`realtime`, or the beta one).
 */
export function withRealtime(server: Server): Server {
  // Node 24's option, an instance property read per upgrade request (not in Server's typings).
  ;(server as Server & { shouldUpgradeCallback: (req: IncomingMessage) => boolean }).shouldUpgradeCallback = isRealtimeUpgrade
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => void acceptRealtime(req, socket as Socket, head))
  return server
}

/** The client side's WebSocket server: handshakes only (no listening, no client list). */
let sockets: WebSocketServer | undefined
let socketsMaxPayload = 0

function socketServer(): WebSocketServer {
  // Made again only when the message limit changed (tests): ws fixes it when the server is made.
  if (sockets !== undefined && socketsMaxPayload === realtimeLimits.maxMessageBytes) return sockets
  socketsMaxPayload = realtimeLimits.maxMessageBytes
  sockets = new WebSocketServer({
    noServer: true,
    clientTracking: false,
    maxPayload: realtimeLimits.maxMessageBytes,
    perMessageDeflate: false,
    handleProtocols: (offered) => chooseProtocol(offered),
  })
  return sockets
}

let gateway: Gateway | undefined

/** A Sec-WebSocket-Key is 16 bytes in base64 (RFC 6455): what ws would refuse after the upstream was opened. */
const SOCKET_KEY = /^[+/0-9A-Za-z]{22}==$/

async function acceptRealtime(req: IncomingMessage, socket: Socket, head: Buffer) {
  // A reset during the handshake is the client's; nothing to report.
  socket.on('error', () => {})
  // The refusals are ordinary HTTP answers: written through a response on the upgrade's socket.
  const res = new ServerResponse(req)
  res.assignSocket(socket)
  res.shouldKeepAlive = false
  const handshake = readHandshake(req)
  const key = req.headers['sec-websocket-key']
  const version = req.headers['sec-websocket-version']
  if (req.method !== 'GET' || typeof key !== 'string' || !SOCKET_KEY.test(key) || (version !== '13' && version !== '8')) {
    return refuse(GatewayError.invalidRequest('Not a valid WebSocket handshake (GET with Sec-WebSocket-Key and Sec-WebSocket-Version 13)', 'invalid_websocket_handshake'), handshake, res, socket)
  }
  let gw: Gateway
  let principal: Principal
  let keyHash: string
  let grant: SecretGrant | null = null
  try {
    gw = gateway ??= await gatewayInstance()
    const rawKey = extractApiKey(req.headers, req.url) ?? handshake.protocolKey
    if (isClientSecret(rawKey)) {
      // A browser's client secret (client_secrets.ts): its key's principal, model and session; the key's
      // IP allowlist was the minting call's (the secret is made to be handed to a browser elsewhere).
      // A call's events are for the app's server (its tools, its instructions), not the browser's secret.
      if (handshake.callId !== '') throw GatewayError.invalidApiKey("A call's sideband is joined with an API key, not a client secret")
      grant = await resolveClientSecret(gw, rawKey)
      principal = grant.principal
      keyHash = grant.keyHash
    } else {
      principal = await authenticate(gw, req, res, rawKey)
      keyHash = hashApiKey(rawKey!)
    }
    // A session does work: the key's place among its calls in flight is held until the socket closes.
    const admitted = admitCall(principal, res, socket)
    if (admitted) await admitted
  } catch (error) {
    // No key, a bad one, another address, a rate window: not admitted, no usage row (as HTTP).
    return refuse(error, handshake, res, socket)
  }
  const attempts: AttemptRecord[] = []
  const tried: { candidate: RouteCandidate | null } = { candidate: null }
  // A transcription session (transcription_sessions.ts): a secret minted for one, or ?intent=transcription.
  const transcription = grant !== null ? isTranscriptionConfig(grant.session) : handshake.transcription && handshake.callId === ''
  const endpoint = transcription ? 'realtime.transcription' : 'realtime'
  let model = handshake.model
  let opened: OpenedSession
  try {
    if (grant !== null && handshake.model !== '' && handshake.model !== grant.model) {
      throw GatewayError.invalidRequest(`This client secret is for '${grant.model}', not '${handshake.model.slice(0, 200)}'`, 'model_mismatch', 'model')
    }
    // A server joining a WebRTC call it made through the gateway (server-side controls): the call's channel and model,
    // the call running on this instance or another (its row).
    const call = handshake.callId === '' ? null : await findCall(gw, principal, handshake.callId)
    model = call?.model ?? grant?.model ?? handshake.model
    const opening: Opening = { gw, principal, keyHash, req, res, socket, handshake, grant, call, transcription, tried, attempts }
    if (model === '' && transcription) return awaitModel(opening, head)
    if (model === '') throw GatewayError.invalidRequest("The 'model' query parameter is required (?model=...)", 'missing_model', 'model')
    opened = await openSession(opening, model)
  } catch (error) {
    // Not admitted in flight (draining, the bound): no row, as an HTTP call's 503.
    if (!(error instanceof Unadmitted)) recordRefusal(gw, principal, model, tried.candidate, attempts, error, res, endpoint)
    const cause = error instanceof Unadmitted ? error.cause : error
    if (cause instanceof ClientGoneError) return socket.destroy()
    return refuse(cause, handshake, res, socket)
  }
  res.detachSocket(socket)
  const { session, upstream: connection } = opened
  let started = false
  socketServer().handleUpgrade(req, socket, head, (client) => {
    started = true
    session.start(client, connection)
  })
  // ws refused the handshake after all (it answered the client): the upstream is not needed.
  if (!started) {
    connection.socket.terminate()
    session.release()
  }
}

/** What opening a session needs to know of its handshake and key */
interface Opening {
  gw: Gateway
  principal: Principal
  keyHash: string
  req: IncomingMessage
  res: ServerResponse
  socket: Socket
  handshake: RealtimeHandshake
  grant: SecretGrant | null
  call: LiveCallRef | null
  transcription: boolean
  /** The channel tried last and every attempt: the refusal's row */
  tried: { candidate: RouteCandidate | null }
  attempts: AttemptRecord[]
}

type LiveCallRef = NonNullable<Awaited<ReturnType<typeof findCall>>>

/** admitSession's refusal (draining, the in-flight bound): answered without a usage row */
class Unadmitted extends Error {
  constructor(readonly cause: unknown) {
    super('not admitted')
  }
}

/**
 * The session of `model`, its upstream open: what an HTTP call of the model
 * is asked (403 model_not_allowed, 429 token_limit_exceeded, 402 spend cap /
 * balance), the key's window for the model, the route (channels speaking
 * the Realtime API), a place in flight, the upstream's handshake with
 * failover. Throws the refusal; nothing is left open then.
 */
async function openSession(o: Opening, model: string): Promise<OpenedSession> {
  const { gw, principal, call, handshake, res, socket } = o
  assertStorableModel(model)
  const tags = tagsFromHeaders(o.req.headers)
  let candidates: RouteCandidate[]
  if (o.transcription) {
    candidates = transcriptionCandidates(gw, principal, model)
  } else {
    authorizeModel(gw.catalog, principal, model)
    // A secret's configuration goes up as minted: its transcription model checked again (the globs may have changed since).
    if (o.grant !== null) checkTranscriptionModels(principal, o.grant.session)
  }
  // The key's own limit for this model (model_limits.ts): a session opened is one request of its window.
  const modelLimits = principal.key.modelLimits
  const modelLimit = modelLimits === null ? undefined : limitFor(modelLimits, model)
  if (modelLimit !== undefined) {
    const rated = admitModel(modelLimit, res)
    if (rated) await rated
  }
  if (!o.transcription) {
    candidates =
      call !== null
        ? [call.candidate]
        : gw.service
            .router(principal.plan)
            .route(model)
            .filter((c) => adapterFor(c.channel.provider).realtime?.(c.channel, c.upstreamModel) != null)
    if (candidates.length === 0) {
      throw GatewayError.invalidRequest(`No channel serving '${model}' offers the Realtime API (openai, azure and custom channels do)`, 'unsupported_endpoint')
    }
  }
  const session = new RealtimeSession(gw, principal, o.keyHash, model, tags, realtimeLimits)
  session.transcription = o.transcription
  // The call's responses are metered by the gateway's own sideband (realtime_calls.ts), once.
  if (call !== null) session.metered = false
  try {
    // In flight like a request: refused while draining or at the bound (no row, as an HTTP call's 503); a shutdown waits for it.
    session.release = gw.service.admitSession(session)
  } catch (error) {
    throw new Unadmitted(error)
  }
  let upstream: UpstreamConnection | null = null
  try {
    const connecting = new AbortController()
    const gone = () => connecting.abort()
    socket.once('close', gone)
    session.abort.signal.addEventListener('abort', gone)
    try {
      upstream = await connectUpstream(candidates!, {
        beta: handshake.beta,
        maxPayload: realtimeLimits.maxMessageBytes,
        signal: connecting.signal,
        health: gw.health,
        hooks: { onAttempt: (c) => (o.tried.candidate = c), onAttemptResult: (r) => o.attempts.push(r) },
        callId: call?.upstreamId,
        transcription: o.transcription,
      })
    } finally {
      socket.off('close', gone)
      session.abort.signal.removeEventListener('abort', gone)
    }
    if (socket.destroyed || !socket.writable) throw new ClientGoneError()
    // The secret's session configuration, applied before the client's first event (the upstream answers session.updated).
    const grant = o.grant
    const update =
      grant === null
        ? null
        : o.transcription
          ? transcriptionUpdateOf(grant.session, handshake.beta, upstream.candidate.upstreamModel)
          : sessionUpdateOf(grant.session, handshake.beta)
    if (update !== null) upstream.socket.send(update)
    return { session, upstream }
  } catch (error) {
    upstream?.socket.terminate()
    session.release()
    throw error
  }
}

/**
 * A transcription session whose model is not known yet (`?intent=transcription`
 * with a key): the handshake completes now, the session opens on the
 * client's first update naming its model (transcription_opening.ts). A
 * refusal then is an `error` event, its row recorded as a refused session's.
 */
function awaitModel(o: Opening, head: Buffer) {
  const { gw, req, res, socket } = o
  let wait: ModelWait
  try {
    wait = new ModelWait(gw.service, async (model) => {
      try {
        return await openSession(o, model)
      } catch (error) {
        if (error instanceof Unadmitted) throw error.cause
        recordRefusal(gw, o.principal, model, o.tried.candidate, o.attempts, error, res, 'realtime.transcription')
        throw error
      }
    })
  } catch (error) {
    // Draining, or the in-flight bound: refused before the upgrade, no row.
    return refuse(error, o.handshake, res, socket)
  }
  res.detachSocket(socket)
  let started = false
  socketServer().handleUpgrade(req, socket, head, (client) => {
    started = true
    wait.begin(client)
  })
  if (!started) wait.cancel()
}

/** An HTTP answer in OpenAI's error format instead of the upgrade; the connection closes after it. */
function refuse(error: unknown, handshake: RealtimeHandshake, res: ServerResponse, socket: Socket) {
  reportApiError(error, logger)
  if (socket.destroyed) return
  res.once('finish', () => socket.end())
  sendApiError(error, handshake.path, res)
}
