import type { IncomingMessage } from 'node:http'
import { WebSocket, type RawData } from 'ws'
import { GatewayError } from '#exceptions/gateway_error'
import { adapterFor } from '#gateway/providers/registry'
import type { UpstreamSocketRequest } from '#gateway/providers/provider_adapter'
import type { ChannelHealth } from '#gateway/routing/channel_health'
import type { RouteCandidate } from '#gateway/routing/channel_router'
import { concealChannel } from '#gateway/upstream/channel_secrets'
import { DEFAULT_TIMEOUTS } from '#gateway/upstream/timeouts'
import {
  ClientGoneError,
  describe,
  parseRetryAfter,
  rateLimitedFor,
  upstreamFailure,
  type AttemptRecord,
  type DispatchHooks,
} from '#gateway/upstream/dispatcher'

/** Channels tried for one session at most (as ROUTE_MAX_ATTEMPTS' default for HTTP calls) */
const MAX_ATTEMPTS = 3
/** Bytes of a refused handshake's answer read for its error message */
const REFUSAL_BYTES = 16 * 1024

export interface UpstreamConnection {
  candidate: RouteCandidate
  /** Paused from its handshake on (the relay resumes it); frames already parsed then are in `early` */
  socket: WebSocket
  /** Frames the upstream sent before the relay took over (its `session.created` comes at once) */
  early: Array<{ data: RawData; isBinary: boolean }>
  /** Stops collecting early frames (the relay's own listener takes over) */
  stopCollecting(): void
}

export interface ConnectOptions {
  /** The client asked for the beta dialect: `OpenAI-Beta: realtime=v1` goes up */
  beta: boolean
  /** Largest message the upstream may send (REALTIME_MAX_MESSAGE_MB) */
  maxPayload: number
  /** The client went away while the gateway was connecting */
  signal: AbortSignal
  health: ChannelHealth | null
  hooks: DispatchHooks
  /** A WebRTC call's sideband: `{base}/realtime?call_id=` (the provider's call id) instead of `?model=` */
  callId?: string
  /** A transcription session: `{base}/realtime?intent=transcription` (its model goes in its session update, not the URL) */
  transcription?: boolean
}

/**
 * Opens the session's upstream WebSocket on the first candidate channel that
 * accepts it. Nothing has reached the client yet, so a refused handshake
 * (5xx, 429, 401/403: the channel's key), a network error or a handshake that
 * outlasts the channel's connect timeout moves on to the next candidate, as
 * an HTTP call fails over (bounded attempts, the channels' circuit breakers
 * and per-model cool-downs obeyed and fed). Another 4xx is the client's (a
 * model the upstream does not know): answered as the upstream said it,
 * without the channel's key or address.
 */
export async function connectUpstream(candidates: RouteCandidate[], options: ConnectOptions): Promise<UpstreamConnection> {
  const { health, hooks, signal } = options
  let attempts = 0
  let lastFailure: GatewayError | null = null
  for (const candidate of candidates) {
    if (attempts >= MAX_ATTEMPTS) break
    const request = adapterFor(candidate.channel.provider).realtime?.(candidate.channel, candidate.upstreamModel) ?? null
    if (request === null) continue
    const channelId = candidate.channel.id
    if (health && (!health.modelAvailable(channelId, candidate.upstreamModel) || !health.tryAcquire(channelId))) continue
    if (signal.aborted) {
      health?.release(channelId)
      throw new ClientGoneError()
    }
    attempts++
    hooks.onAttempt?.(candidate)
    const started = performance.now()
    const record = (outcome: AttemptRecord['outcome'], status: number | null, error: string | null) =>
      hooks.onAttemptResult?.({ attempt: attempts, channelId, status, outcome, error, latencyMs: Math.round(performance.now() - started) })
    if (options.beta) request.headers['openai-beta'] = 'realtime=v1'
    if (options.callId !== undefined) request.url = `${request.url.slice(0, request.url.indexOf('?'))}?call_id=${encodeURIComponent(options.callId)}`
    else if (options.transcription) request.url = transcriptionUrl(request.url)
    const timeoutMs = candidate.channel.timeouts?.connect ?? DEFAULT_TIMEOUTS.connect
    const outcome = await handshake(request, timeoutMs, options.maxPayload, signal)
    if (outcome.socket) {
      health?.success(channelId, candidate.upstreamModel)
      record('ok', 101, null)
      return { candidate, socket: outcome.socket, early: outcome.early!, stopCollecting: outcome.stopCollecting! }
    }
    if (outcome.clientGone) {
      health?.release(channelId)
      record('client_error', null, 'client closed the connection')
      throw new ClientGoneError()
    }
    if (outcome.status === undefined) {
      const message = outcome.timedOut ? `realtime handshake timeout (${timeoutMs} ms)` : outcome.error!
      record(outcome.timedOut ? 'timeout' : 'network_error', null, message)
      health?.failure(channelId, message)
      lastFailure = concealChannel(GatewayError.providerError(`Upstream realtime connection failed: ${message}`), candidate.channel)
      continue
    }
    const status = outcome.status
    const failure = concealChannel(upstreamFailure(status, outcome.body!), candidate.channel)
    if (status === 429) {
      const retryAfterMs = parseRetryAfter(outcome.headers!['retry-after'], outcome.headers!['retry-after-ms'])
      record('rate_limited', status, failure.message)
      health?.release(channelId)
      health?.rateLimited(channelId, candidate.upstreamModel, `HTTP 429: ${failure.message}`.slice(0, 500), retryAfterMs)
      lastFailure = rateLimitedFor(candidate.upstreamModel, retryAfterMs)
      continue
    }
    if (status === 401 || status === 403 || status >= 500 || status < 400) {
      // The channel's failure (its key, its server, a redirect never followed): the next channel may serve.
      record(status === 401 || status === 403 ? 'auth_error' : 'http_error', status, failure.message)
      health?.failure(channelId, `realtime handshake answered HTTP ${status}: ${failure.message}`.slice(0, 500))
      lastFailure =
        status === 401 || status === 403
          ? GatewayError.providerError(`Upstream refused the channel's credentials for realtime (HTTP ${status})`)
          : status >= 500
            ? failure
            : GatewayError.providerError(`Upstream answered HTTP ${status} to the realtime handshake`)
      continue
    }
    // Another 4xx: the session itself is wrong (a model the upstream does not serve); another channel would say the same.
    health?.success(channelId)
    record('client_error', status, failure.message)
    throw failure
  }
  if (attempts === 0) {
    const model = candidates[0]?.upstreamModel ?? 'model'
    throw lastFailure ?? GatewayError.noAvailableChannel(model)
  }
  throw lastFailure ?? GatewayError.providerError('Upstream realtime connection failed')
}

/**
 * A transcription session's URL: the channel's realtime URL without its
 * model (`model=`, Azure's `deployment=`; OpenAI refuses a transcription
 * model there) and with `intent=transcription`, other parameters (Azure's
 * `api-version`) kept.
 */
export function transcriptionUrl(url: string): string {
  const parsed = new URL(url)
  parsed.searchParams.delete('model')
  parsed.searchParams.delete('deployment')
  parsed.searchParams.set('intent', 'transcription')
  return parsed.toString()
}

interface HandshakeOutcome {
  socket?: WebSocket
  early?: UpstreamConnection['early']
  stopCollecting?: () => void
  /** The upstream answered the upgrade with an HTTP status instead */
  status?: number
  headers?: IncomingMessage['headers']
  body?: Buffer
  error?: string
  timedOut?: boolean
  clientGone?: boolean
}

/** One WebSocket handshake, settled once: open, refused with a status, failed, timed out, or the client gone. */
function handshake(request: UpstreamSocketRequest, timeoutMs: number, maxPayload: number, signal: AbortSignal): Promise<HandshakeOutcome> {
  return new Promise((resolve) => {
    const socket = new WebSocket(request.url, {
      headers: request.headers,
      handshakeTimeout: timeoutMs,
      maxPayload,
      // Frames are relayed as they are: no compression to undo and redo (and no zlib memory per session).
      perMessageDeflate: false,
      followRedirects: false,
    })
    let settled = false
    const settle = (outcome: HandshakeOutcome) => {
      if (settled) return
      settled = true
      signal.removeEventListener('abort', onAbort)
      resolve(outcome)
    }
    const onAbort = () => {
      settle({ clientGone: true })
      socket.terminate()
    }
    signal.addEventListener('abort', onAbort)
    // Errors after the outcome (the terminate of a refused handshake) have nowhere to go.
    socket.on('error', (error) => {
      const timedOut = /handshake has timed out/i.test(error.message)
      settle(timedOut ? { timedOut: true } : { error: describe(error) })
    })
    socket.once('open', () => {
      if (settled) return socket.terminate()
      // The upstream speaks first (session.created): nothing it says may be lost before the relay listens.
      socket.pause()
      const early: UpstreamConnection['early'] = []
      const collect = (data: RawData, isBinary: boolean) => early.push({ data, isBinary })
      socket.on('message', collect)
      settle({ socket, early, stopCollecting: () => socket.off('message', collect) })
    })
    socket.once('unexpected-response', (upgrade, response) => {
      const chunks: Buffer[] = []
      let size = 0
      const done = () => {
        settle({ status: response.statusCode ?? 502, headers: response.headers, body: Buffer.concat(chunks) })
        upgrade.destroy()
      }
      response.on('data', (chunk: Buffer) => {
        if (size >= REFUSAL_BYTES) return
        chunks.push(chunk)
        size += chunk.length
        if (size >= REFUSAL_BYTES) done()
      })
      response.once('end', done)
      response.once('error', done)
      response.once('close', done)
    })
  })
}
