import { WebSocket } from 'ws'
import logger from '@adonisjs/core/services/logger'
import { GatewayError } from '#exceptions/gateway_error'
import type { GatewayService } from '#gateway/gateway_service'
import { reportApiError, toGatewayError } from '#gateway/http/api_errors'
import { clientFacing } from '#gateway/http/client_message'
import { errorEvent, requestedModels } from '#gateway/realtime/realtime_events'
import type { RealtimeSession } from '#gateway/realtime/realtime_session'
import type { UpstreamConnection } from '#gateway/realtime/upstream_socket'
import { realtimeLimits } from '#gateway/realtime/realtime_limits'

/** What it keeps of the client's frames meanwhile (about 20 s of 24 kHz audio appends) */
export const MODEL_WAIT_BYTES = 1024 * 1024

export interface OpenedSession {
  session: RealtimeSession
  upstream: UpstreamConnection
}

/**
 * A transcription session opened with a key and `?intent=transcription`
 * alone: its model comes with the client's first session update, after the
 * handshake (which completes after the key's checks). Until then the
 * client's frames are kept (in order, MODEL_WAIT_BYTES at most); the first
 * one naming a transcription model has the session opened for it (`open`:
 * the model's checks, the route, the upstream with failover) and the kept
 * frames go up first, that update among them. A model refused (not
 * allowed, the balance, no channel, every upstream refusing) is an `error`
 * event answering that update, then a close: 1008 for the client's, 1011
 * for the upstream's. No update in `modelWaitMs` (30 s), or too many bytes
 * before it: `missing_model`, 1008. The wait holds a place in flight from
 * before the handshake is answered (a shutdown closes it, 1001).
 */
export class ModelWait {
  readonly abort = new AbortController()
  readonly realtime = true
  #release: () => void
  #client: WebSocket | null = null
  #frames: Array<{ data: Buffer; isBinary: boolean }> = []
  #bytes = 0
  #opening = false
  #done = false
  #timer: NodeJS.Timeout | null = null

  /** Admitted in flight now: throws the 503 of a draining gateway or a full one (answered before the upgrade). */
  constructor(
    service: GatewayService,
    private open: (model: string) => Promise<OpenedSession>
  ) {
    this.#release = service.admitSession(this)
    this.abort.signal.addEventListener('abort', () => this.#finish(1001, 'gateway shutting down'))
  }

  onDrain() {
    this.#finish(1001, 'gateway shutting down')
  }

  /** The handshake was not completed after all: the place is given back. */
  cancel() {
    this.#done = true
    this.#release()
  }

  /** The client's handshake is complete: its frames are kept until one names the model. */
  begin(client: WebSocket) {
    this.#client = client
    if (this.#done) return this.#finish(1001, 'gateway shutting down')
    this.#timer = setTimeout(
      () =>
        this.#refuse(
          GatewayError.invalidRequest(
            `No session update named the transcription model in ${Math.round(realtimeLimits.modelWaitMs / 1000)} s (session.audio.input.transcription.model, or the beta's session.input_audio_transcription.model)`,
            'missing_model'
          ),
          null,
          null
        ),
      realtimeLimits.modelWaitMs
    ).unref()
    client.on('message', this.#onMessage)
    client.on('error', () => {})
    client.once('close', () => this.#finish(1000, ''))
  }

  #finish(code: number, reason: string) {
    if (this.#done) return
    this.#done = true
    if (this.#timer) clearTimeout(this.#timer)
    const client = this.#client
    this.#release()
    if (client === null) return
    client.off('message', this.#onMessage)
    if (client.readyState === WebSocket.OPEN) client.close(code, reason)
  }

  #refuse(error: GatewayError, param: string | null, eventId: string | null) {
    const shown = clientFacing(error)
    const client = this.#client
    if (client !== null && client.readyState === WebSocket.OPEN && !this.#done) {
      client.send(errorEvent(shown.type, shown.code, shown.message, param ?? shown.param ?? null, eventId))
    }
    this.#finish(error.status >= 500 ? 1011 : 1008, shown.code.slice(0, 100))
  }

  #onMessage = (data: Buffer, isBinary: boolean) => {
    if (this.#done) return
    this.#frames.push({ data, isBinary })
    this.#bytes += data.length
    if (this.#opening) {
      // Sent while the upstream is being opened (a second or so): kept, within bounds.
      if (this.#bytes > 2 * MODEL_WAIT_BYTES) this.#refuse(new GatewayError(400, 'message_too_large', 'Too much was sent before the session was open', 'invalid_request_error'), null, null)
      return
    }
    const requested = isBinary ? null : requestedModels(data)
    const named = requested !== null && requested !== 'unreadable' ? requested.transcription.find((t) => t.model !== '') : undefined
    if (named === undefined) {
      if (this.#bytes > MODEL_WAIT_BYTES) {
        this.#refuse(GatewayError.invalidRequest('The session update naming the transcription model must come before the audio', 'missing_model'), null, null)
      }
      return
    }
    this.#opening = true
    if (this.#timer) clearTimeout(this.#timer)
    const eventId = requested !== null && requested !== 'unreadable' ? requested.eventId : null
    this.open(named.model).then(
      ({ session, upstream }) => {
        const client = this.#client!
        if (this.#done || client.readyState !== WebSocket.OPEN) {
          upstream.socket.terminate()
          session.release()
          return this.#finish(1000, '')
        }
        this.#done = true
        client.off('message', this.#onMessage)
        this.#release()
        session.start(client, upstream, this.#frames)
      },
      (error) => {
        reportApiError(error, logger)
        this.#refuse(toGatewayError(error), named.param, eventId)
      }
    )
  }
}
