import type { IncomingMessage, ServerResponse } from 'node:http'
import { Readable } from 'node:stream'
import { GatewayError } from '#exceptions/gateway_error'
import { bodyTiming } from '#gateway/http/body_limits'
import { continueIfAwaited } from '#gateway/http/expect_continue'
import { encodingOf, timedOut, unsupportedEncoding } from '#gateway/http/raw_body'
import type { AttemptClock, UpstreamRequest } from '#gateway/providers/provider_adapter'
import { ClientGoneError, NoFurtherAttempt } from '#gateway/upstream/dispatcher'

/** What a streamed upload is checked against as its bytes pass. */
export interface UploadChecks {
  /** Bytes the body may have; past it, `tooLarge()` */
  limit: number
  tooLarge: () => GatewayError
  /** Sees each chunk before it goes on (a multipart scan); throws a GatewayError to stop the upload */
  inspect?: (chunk: Buffer) => void
  /** The body ended: throws a GatewayError to refuse it before its last bytes go on */
  atEnd?: () => void
}

/**
 * A request body sent upstream as it arrives, never held whole (a provider
 * file upload: Anthropic's 500 MB, Gemini's 2 GB): the client's request is
 * the upstream request's body, pulled as undici writes it (back-pressure
 * both ways: memory does not grow with the size). Its bytes are counted and
 * checked as they pass; the last chunk is held back until the end's checks
 * pass, so an upstream never gets a whole body the gateway refused. A
 * failure (over the limit, a malformed form, the client gone or silent for
 * BODY_TIMEOUT_MS while it is read) aborts `signal`, the dispatch's client signal: the
 * upstream request is cut off mid-body (no file is stored there) and
 * `run` throws the failure for the endpoint's wire. Once the body has passed
 * whole, nothing aborts the call: a file the upstream stored is recorded
 * even if the client left meanwhile. While the gateway waits on the client
 * for more of it, the channel's first-byte limit waits too, and its total
 * limit running out is the client's 408: a slow client is not the channel's
 * failure (AttemptClock.clientSending).
 *
 * Single use: a failed attempt that took none of the body is tried on the
 * next channel (a fresh stream over the same request); one that took bytes
 * is the last (NoFurtherAttempt: the dispatcher answers its failure).
 */
export class StreamedUpload {
  /** Bytes received from the client */
  bytes = 0
  /** Why the upload stopped (a GatewayError for the client, or ClientGoneError) */
  failure: Error | null = null
  readonly #abort = new AbortController()
  /** Aborted when the upload fails: the dispatch's client signal */
  readonly signal = this.#abort.signal
  /** The client's Content-Length (the upstream gets the same bytes, so the same length), or null */
  readonly #declared: number | null
  /** A byte was taken from the client: no other attempt can have the body */
  #started = false
  /** The body passed whole, its checks too */
  #done = false
  /** The newest chunk, held until the next one (or the end's checks) lets it go */
  #held: Buffer | null = null
  /** The current attempt's body */
  #out: Readable | null = null
  #listening = false
  /** The attempt's clock: bytes going up are not the upstream's silence (UpstreamRequest.bodyProgress) */
  #clock: AttemptClock | null = null
  #idle: NodeJS.Timeout | undefined

  constructor(
    private req: IncomingMessage,
    private res: ServerResponse,
    private checks: UploadChecks
  ) {
    const encoding = encodingOf(req)
    if (encoding !== null) throw unsupportedEncoding(encoding)
    const header = req.headers['content-length']
    this.#declared = header === undefined || req.headers['transfer-encoding'] !== undefined ? null : Number(header)
    if (this.#declared !== null && this.#declared > checks.limit) throw checks.tooLarge()
    // Gone before the first attempt (or between two): the dispatch sees the signal and stops.
    if (req.destroyed) this.#fail(new ClientGoneError())
    else req.once('close', this.#onClose)
  }

  /**
   * The request with this body (and the client's Content-Length) for one
   * attempt; NoFurtherAttempt once an attempt took bytes of it.
   */
  attach(request: UpstreamRequest): UpstreamRequest {
    request.body = this.#open()
    request.bodyProgress = (clock) => {
      this.#clock = clock
      clock.clientSending = this.#clientSending
    }
    if (this.#declared !== null) request.headers['content-length'] = String(this.#declared)
    return request
  }

  /**
   * Runs the dispatch: its failure is the upload's when the upload failed
   * (the 413, 400 or 408 for the client's wire; ClientGoneError: nothing to
   * answer), else its own. An answer given while the client still sends
   * closes the connection after it (the rest of the body is not read).
   */
  async run<T>(work: Promise<T>): Promise<T> {
    try {
      return await work
    } catch (error) {
      const failure = this.failure ?? error
      if (!this.#done && failure instanceof GatewayError) failure.headers = { ...failure.headers, connection: 'close' }
      throw failure
    } finally {
      this.#stop()
    }
  }

  #open(): Readable {
    if (this.#started || this.failure !== null) throw new NoFurtherAttempt()
    if (!this.#listening) {
      this.#listening = true
      // Everything the headers decide is decided: a client waiting on `Expect: 100-continue` may send.
      continueIfAwaited(this.req, this.res)
      // Paused first: a 'data' listener would otherwise start the flow before undici reads.
      this.req.pause()
      this.req.on('data', this.#onData)
      this.req.on('end', this.#onEnd)
      this.req.on('error', this.#onClose)
      this.#idle = setTimeout(this.#onIdle, bodyTiming.timeoutMs).unref()
    }
    const out: Readable = new Readable({
      read: () => {
        if (this.#out === out) this.req.resume()
      },
      destroy: (error, callback) => {
        // undici ended the attempt (an error, an answer before the body's end): the client's stream stays.
        if (this.#out === out) {
          this.#out = null
          this.#clock = null
          if (!this.#done) this.req.pause()
        }
        callback(error)
      },
    })
    this.#out = out
    return out
  }

  /**
   * The gateway waits on the client: the attempt reads (the request flows), the body has not ended. Paused, it
   * waits on the upstream (its back-pressure, its connection): the channel's limits are its own then.
   */
  #clientSending = () => !this.#done && this.failure === null && this.#out !== null && !this.req.isPaused()

  #onData = (chunk: Buffer) => {
    this.#started = true
    this.bytes += chunk.length
    if (this.bytes > this.checks.limit) return this.#fail(this.checks.tooLarge())
    try {
      this.checks.inspect?.(chunk)
    } catch (error) {
      return this.#fail(error as Error)
    }
    this.#idle?.refresh()
    this.#clock?.touch()
    const previous = this.#held
    this.#held = chunk
    if (previous !== null && this.#out !== null && !this.#out.push(previous)) this.req.pause()
  }

  #onEnd = () => {
    try {
      this.checks.atEnd?.()
    } catch (error) {
      return this.#fail(error as Error)
    }
    this.#done = true
    clearTimeout(this.#idle)
    if (this.#held !== null) this.#out?.push(this.#held)
    this.#held = null
    this.#out?.push(null)
  }

  #onClose = () => {
    if (!this.#done && !this.req.readableEnded) this.#fail(new ClientGoneError())
  }

  #onIdle = () => {
    // Paused, the gateway is not reading (the upstream's back-pressure, a connection awaited): not the client's silence.
    if (this.req.isPaused()) return void this.#idle?.refresh()
    this.#fail(timedOut(bodyTiming.timeoutMs))
  }

  #fail(error: Error) {
    if (this.failure !== null || this.#done) return
    this.failure = error
    this.#held = null
    // The dispatcher's attempt aborts its upstream exchange on this signal (the upstream gets a cut
    // body, stores nothing) and tries no other channel.
    this.#abort.abort(error)
    this.#out?.destroy(error)
    this.#stop()
  }

  #stop() {
    clearTimeout(this.#idle)
    this.req.off('data', this.#onData)
    this.req.off('end', this.#onEnd)
    this.req.off('error', this.#onClose)
    this.req.off('close', this.#onClose)
  }
}
