import type { IncomingMessage } from 'node:http'

/**
 * What a realtime client's WebSocket handshake says, read once per session:
 * where it connects, the model, the key a browser hides in a subprotocol and
 * which OpenAI dialect of the API it wants.
 *
 * Paths: `/v1/realtime` (OpenAI's SDKs, LiteLLM and new-api clients), the
 * same without `/v1`, and Azure OpenAI's `/openai/realtime` (classic, the
 * model in `deployment=`) and `/openai/v1/realtime`.
 */
const REALTIME_PATHS = new Set(['/v1/realtime', '/realtime', '/openai/realtime', '/openai/v1/realtime'])

/** The prefix of the subprotocol browsers carry their key in (they cannot set headers on a WebSocket) */
const KEY_PROTOCOL = 'openai-insecure-api-key.'
/** The subprotocol that asks for the beta dialect of the API (OpenAI's browser samples send it) */
const BETA_PROTOCOL = 'openai-beta.realtime-v1'

/** Is this upgrade request the Realtime API's? (The server's shouldUpgradeCallback: one look at the path.) */
export function isRealtimeUpgrade(req: IncomingMessage): boolean {
  const upgrade = req.headers.upgrade
  if (typeof upgrade !== 'string' || upgrade.toLowerCase() !== 'websocket') return false
  return REALTIME_PATHS.has(pathOf(req.url ?? '/'))
}

export function pathOf(url: string): string {
  const query = url.indexOf('?')
  return query < 0 ? url : url.slice(0, query)
}

export interface RealtimeHandshake {
  path: string
  /** `?model=`, or Azure's `?deployment=`; '' when neither */
  model: string
  /** `?call_id=`: a server joining a WebRTC call's events (its sideband); '' when not */
  callId: string
  /** `?intent=transcription`: a transcription session (transcription_sessions.ts), its model named by the client's first session update */
  transcription: boolean
  /** The key of an `openai-insecure-api-key.<key>` subprotocol, or null */
  protocolKey: string | null
  /** The client asked for the beta dialect (`OpenAI-Beta: realtime=v1`, or the `openai-beta.realtime-v1` subprotocol) */
  beta: boolean
}

export function readHandshake(req: IncomingMessage): RealtimeHandshake {
  const url = req.url ?? '/'
  const path = pathOf(url)
  const query = new URLSearchParams(url.length > path.length ? url.slice(path.length + 1) : '')
  const model = query.get('model') ?? query.get('deployment') ?? ''
  const callId = query.get('call_id') ?? ''
  const transcription = query.get('intent') === 'transcription'
  let protocolKey: string | null = null
  let betaProtocol = false
  for (const protocol of offeredProtocols(req)) {
    if (protocol.startsWith(KEY_PROTOCOL)) protocolKey ||= protocol.slice(KEY_PROTOCOL.length) || null
    else if (protocol === BETA_PROTOCOL) betaProtocol = true
  }
  const betaHeader = req.headers['openai-beta']
  const beta = betaProtocol || (typeof betaHeader === 'string' && /(^|,)\s*realtime=v1\s*(,|$)/.test(betaHeader))
  return { path, model, callId, transcription, protocolKey, beta }
}

/** The subprotocols the client offered (Sec-WebSocket-Protocol, comma-separated). */
export function offeredProtocols(req: IncomingMessage): string[] {
  const header = req.headers['sec-websocket-protocol']
  if (typeof header !== 'string' || header === '') return []
  return header.split(',').map((p) => p.trim()).filter((p) => p !== '')
}

/**
 * The subprotocol the gateway answers with, as OpenAI does: `realtime` when
 * offered, else the beta one, else any other the client offered; never the
 * key's (it would be repeated in the answer's headers). Browsers fail a
 * handshake that offered protocols and got none back: when only the key's
 * was offered, none is chosen and such a client must offer another.
 */
export function chooseProtocol(offered: Set<string>): string | false {
  if (offered.has('realtime')) return 'realtime'
  if (offered.has(BETA_PROTOCOL)) return BETA_PROTOCOL
  for (const protocol of offered) if (!protocol.startsWith(KEY_PROTOCOL)) return protocol
  return false
}
