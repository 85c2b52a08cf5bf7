import type { Dispatcher } from 'undici'
import type { IncomingHttpHeaders } from 'node:http'
import type { AnswerWire, BodyDecoder } from '#gateway/providers/provider_adapter'
import { answerBudget, answerLimits, FREE_ANSWER_BYTES, UpstreamAnswersOverBudget, UpstreamAnswerTooLarge } from '#gateway/upstream/answer_limits'

/** What an upstream answer's body needs from its attempt: the idle clock and the end of the timers. */
export interface BodyTimers {
  /** A body chunk arrived, or the gateway reads the upstream again after waiting on its reader: the idle clock restarts */
  touch(): void
  /** The body ended, failed or was dropped */
  dispose(): void
}

/** A reader's callback: a promise makes the body wait (the client is not reading); false stops reading. */
/**
 * A reader of the body, chunk by chunk: false stops the read and ends the
 * upstream request; a promise makes the body wait for it, and one that
 * resolves to false stops it then (a check that had to wait: stream_hold.ts).
 */
export type ChunkSink = (chunk: Buffer) => void | false | Promise<void | false>

/** Chunks held before a reader attaches, past which the upstream is paused (undici's own stream default) */
const PENDING_HIGH_WATER = 64 * 1024

const NOTHING_HELD: readonly Buffer[] = Object.freeze([])

/** The reader stopped on purpose (a client gone, the answer complete): ends the upstream request. */
class ReadingStopped extends Error {
  constructor() {
    super('the gateway stopped reading the upstream body')
  }
}

/**
 * One upstream HTTP exchange, as undici's dispatch handler, and then its
 * body. undici calls the handler methods as the answer arrives; the gateway
 * awaits the head (`UpstreamBody.send`), then reads the body one of three
 * ways: `forEach` (streams: each chunk handed over as it arrives),
 * `collect` (the whole body) or async iteration.
 *
 * Why not undici's `request()`: for every request it builds an
 * AsyncResource, a Node Readable for the body (with its state, buffer list
 * and listeners) and an abort listener, and a slow stream keeps all of that
 * for its whole length. Here one object is the handler, the head and the
 * body; chunks go from undici's parser to the reader's callback with nothing
 * in between, and back-pressure is the dispatch controller's pause/resume.
 */
export class UpstreamBody implements Dispatcher.DispatchHandler, AsyncIterable<Buffer> {
  statusCode = 0
  headers: IncomingHttpHeaders = {}

  #controller: Dispatcher.DispatchController | null = null
  #timers: BodyTimers
  /** Settles the head promise (null once settled) */
  #onHead: ((body: UpstreamBody) => void) | null
  #onHeadError: ((error: Error) => void) | null
  /** Why the exchange was aborted before undici started it (applied when it does) */
  #abortReason: Error | null = null

  /** Chunks that arrived before a reader attached */
  #pending: Buffer[] | null = null
  #pendingBytes = 0
  #sink: ChunkSink | null = null
  /** The reader asked to wait (its promise is pending): chunks are held, the upstream paused */
  #waiting = false
  #onEnd: (() => void) | null = null
  #onError: ((error: Error) => void) | null = null
  /** 'open' until the body ended or failed; the failure is kept for a reader that attaches late */
  #state: 'open' | 'ended' | 'failed' = 'open'
  #failure: Error | null = null
  /** Someone waits for what is held before a reader attaches (held()) */
  #onHeld: (() => void) | null = null
  /** How the provider's answer is read (Bedrock's), if it is not the dialect's own bytes */
  #wire: AnswerWire | undefined
  /** Turns the body into the dialect's bytes as it arrives (AnswerWire.decoder) */
  #decoder: BodyDecoder | null = null

  private constructor(
    timers: BodyTimers,
    resolve: (body: UpstreamBody) => void,
    reject: (error: Error) => void,
    wire: AnswerWire | undefined
  ) {
    this.#timers = timers
    this.#onHead = resolve
    this.#onHeadError = reject
    this.#wire = wire
  }

  /**
   * Sends a request through the dispatcher; resolves with the exchange once
   * the answer's head is in (status and headers; the body unread), rejects on
   * a network error or an abort.
   */
  static send(
    dispatcher: Pick<Dispatcher, 'dispatch'>,
    options: Dispatcher.DispatchOptions,
    timers: BodyTimers & { watch(exchange: UpstreamBody): void },
    wire?: AnswerWire
  ): Promise<UpstreamBody> {
    return new Promise<UpstreamBody>((resolve, reject) => {
      const exchange = new UpstreamBody(timers, resolve, reject, wire)
      // The attempt's timers and the client's disconnect abort it from now on.
      timers.watch(exchange)
      dispatcher.dispatch(options, exchange)
    })
  }

  /**
   * Ends the exchange: before the head, its promise rejects at once, even
   * while the request still waits for a connection (undici only notices an
   * abort once the request starts); after it, a reader gets the error.
   */
  abort(reason: Error) {
    if (this.#state !== 'open') return
    if (this.#controller) {
      this.#controller.abort(reason)
      return
    }
    this.#abortReason ??= reason
    this.#rejectHead(reason)
  }

  /**
   * The reader asked the body to wait (the client is not reading): the
   * upstream is paused by the gateway, so its silence is not its own.
   */
  get waitingOnReader(): boolean {
    return this.#waiting
  }

  // --- undici's handler interface ---

  onRequestStart(controller: Dispatcher.DispatchController) {
    this.#controller = controller
    if (this.#abortReason) controller.abort(this.#abortReason)
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders) {
    // undici leaves the head's raw header buffers on the controller for the
    // exchange's whole life: views into the socket read that carried the head,
    // so each slow stream pinned that read and a dozen Buffer objects (~2 KB a
    // stream, seen in a heap snapshot of 2,000 streams). The parsed `headers`
    // are all the gateway reads.
    controller.rawHeaders = null
    // 1xx (100 Continue, 103 Early Hints): the real head is still to come.
    if (statusCode < 200) return
    const wire = this.#wire
    if (wire) {
      statusCode = wire.status?.(statusCode, headers) ?? statusCode
      const decoding = wire.decoder?.(statusCode, headers)
      if (decoding) {
        this.#decoder = decoding.decoder
        headers = { ...headers, 'content-type': decoding.contentType }
        delete headers['content-length']
      }
    }
    this.statusCode = statusCode
    this.headers = headers
    const resolve = this.#onHead
    this.#onHead = this.#onHeadError = null
    resolve?.(this)
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer) {
    this.#timers.touch()
    if (this.#decoder) {
      let decoded: Buffer | null
      try {
        decoded = this.#decoder.push(chunk)
      } catch (error) {
        controller.abort(error as Error)
        return
      }
      if (decoded === null) return
      chunk = decoded
    }
    this.#accept(chunk, controller)
  }

  /** A (decoded) chunk to the reader, or held until it reads; past the high-water mark the upstream waits too. */
  #accept(chunk: Buffer, controller: Dispatcher.DispatchController | null) {
    const sink = this.#sink
    if (sink && !this.#waiting && this.#pending === null) return this.#deliver(sink, chunk)
    // No reader yet, or the reader asked to wait: hold the chunk, and past the
    // high-water mark hold the upstream too.
    ;(this.#pending ??= []).push(chunk)
    this.#pendingBytes += chunk.length
    if (this.#pendingBytes > PENDING_HIGH_WATER) controller?.pause()
    this.#onHeld?.()
  }

  onResponseEnd(controller: Dispatcher.DispatchController) {
    if (this.#state !== 'open') return
    if (this.#decoder?.end) {
      let last: Buffer | null
      try {
        last = this.#decoder.end()
      } catch (error) {
        this.onResponseError(controller, error as Error)
        return
      }
      if (last !== null) this.#accept(last, null)
      // The reader may have stopped or failed on that last chunk.
      if (this.#state !== 'open') return
    }
    this.#state = 'ended'
    this.#timers.dispose()
    this.#decoder?.dispose?.()
    this.#onHeld?.()
    // The read ends once the reader has had every chunk (and its last wait is over).
    if (this.#sink && !this.#waiting && this.#pending === null) this.#finish()
  }

  onResponseError(_controller: Dispatcher.DispatchController | null, error: Error) {
    if (this.#state !== 'open') return
    this.#state = 'failed'
    this.#failure = error
    this.#timers.dispose()
    this.#decoder?.dispose?.()
    this.#rejectHead(error)
    this.#onHeld?.()
    if (this.#sink) this.#finish()
  }

  // --- reading the body ---

  /**
   * Hands each chunk to `onChunk` as it arrives, by events: no promise per
   * chunk, so a stream that idles between chunks holds nothing allocated for
   * the previous one. `onChunk` returns a promise to make the body wait (the
   * client is not reading), or false to stop reading (the upstream request
   * ends). Resolves at the end of the body, rejects with its error (an abort
   * included).
   */
  forEach(onChunk: ChunkSink): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#attach(onChunk, resolve, reject)
    })
  }

  /**
   * Before a reader attaches: the chunks held so far, once more than `seen`
   * of them are, the body ended (`complete`) or the hold is full. Nothing is
   * taken: the reader gets every chunk. Rejects with the body's failure.
   * (A stream's opening is looked at so, before any byte reaches the client:
   * stream_opening.ts.)
   */
  held(seen: number): Promise<readonly Buffer[]> {
    return new Promise((resolve, reject) => {
      const settle = () => {
        const chunks = this.#pending ?? NOTHING_HELD
        if (this.#state === 'open' && chunks.length <= seen && this.#pendingBytes <= PENDING_HIGH_WATER) return false
        this.#onHeld = null
        if (this.#state === 'failed') reject(this.#failure)
        else resolve(chunks)
        return true
      }
      if (!settle()) this.#onHeld = settle
    })
  }

  /** The whole body arrived (and no reader stopped it early) */
  get complete(): boolean {
    return this.#state === 'ended'
  }

  /**
   * The whole body; past `maxBytes` the read fails with
   * UpstreamAnswerTooLarge and the upstream request ends. Past its first
   * MB, the body's bytes are taken from the instance's budget of answers
   * being read (answerLimits.inflightBytes) while it is read, and given
   * back when the read ends; when the budget is spent the read fails with
   * UpstreamAnswersOverBudget.
   */
  collect(maxBytes = answerLimits.bodyBytes): Promise<Buffer> {
    const chunks: Buffer[] = []
    let bytes = 0
    let taken = 0
    const giveBack = () => {
      answerBudget.used -= taken
      taken = 0
    }
    return new Promise((resolve, reject) => {
      this.#attach(
        (chunk) => {
          bytes += chunk.length
          if (bytes > maxBytes) throw new UpstreamAnswerTooLarge("The upstream's answer", maxBytes)
          if (bytes > FREE_ANSWER_BYTES) {
            const more = bytes - FREE_ANSWER_BYTES - taken
            if (answerBudget.used + more > answerLimits.inflightBytes) throw new UpstreamAnswersOverBudget()
            answerBudget.used += more
            taken += more
          }
          chunks.push(chunk)
        },
        () => {
          giveBack()
          resolve(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks))
        },
        (error) => {
          giveBack()
          reject(error)
        }
      )
    })
  }

  /**
   * At most the first `maxBytes` of the body (an error answer, read for its
   * message): the read stops there, ending the upstream request.
   */
  collectPrefix(maxBytes: number): Promise<Buffer> {
    const chunks: Buffer[] = []
    let bytes = 0
    return new Promise((resolve, reject) => {
      this.#attach(
        (chunk) => {
          const room = maxBytes - bytes
          chunks.push(chunk.length > room ? chunk.subarray(0, room) : chunk)
          bytes += Math.min(chunk.length, room)
          if (bytes >= maxBytes) return false
        },
        () => resolve(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)),
        reject
      )
    })
  }

  /** Chunk by chunk, each asked for by the loop (the body waits in between). Leaving the loop early ends the request. */
  async *[Symbol.asyncIterator](): AsyncIterator<Buffer> {
    const queue: Buffer[] = []
    let wake: (() => void) | null = null
    let release: (() => void) | null = null
    let done = false
    let failure: Error | null = null
    this.forEach((chunk) => {
      queue.push(chunk)
      wake?.()
      return new Promise<void>((resolve) => (release = resolve))
    }).then(
      () => {
        done = true
        wake?.()
      },
      (error: Error) => {
        done = true
        failure = error
        wake?.()
      }
    )
    try {
      for (;;) {
        if (queue.length > 0) {
          yield queue.shift()!
          const next = release as (() => void) | null
          release = null
          next?.()
          continue
        }
        if (done) {
          if (failure) throw failure
          return
        }
        await new Promise<void>((resolve) => (wake = resolve))
        wake = null
      }
    } finally {
      if (!done) this.#stop()
    }
  }

  #attach(sink: ChunkSink, onEnd: () => void, onError: (error: Error) => void) {
    if (this.#sink) throw new Error('the upstream body is already being read')
    this.#sink = sink
    this.#onEnd = onEnd
    this.#onError = onError
    this.#drain(sink)
  }

  /**
   * Hands the held chunks over one at a time, stopping whenever the reader
   * asks to wait; then lets the upstream go on, or ends the read.
   */
  #drain(sink: ChunkSink) {
    while (this.#pending !== null && !this.#waiting) {
      const chunk = this.#pending.shift()!
      this.#pendingBytes -= chunk.length
      if (this.#pending.length === 0) this.#pending = null
      this.#deliver(sink, chunk)
      if (this.#sink !== sink) return
    }
    if (this.#waiting || this.#pending !== null) return
    if (this.#state === 'open') this.#controller?.resume()
    else this.#finish()
  }

  #deliver(sink: ChunkSink, chunk: Buffer) {
    let next: void | false | Promise<void | false>
    try {
      next = sink(chunk)
    } catch (error) {
      return this.#fail(error as Error)
    }
    if (next === false) return this.#stop()
    if (next) {
      this.#waiting = true
      this.#controller?.pause()
      next.then(
        (go) => {
          this.#waiting = false
          if (go === false) return this.#stop()
          // The upstream was silent because the gateway held it back: its own silence counts from
          // now. Without this the idle limit ran on from the last refresh while waiting, and fired
          // before the upstream's next chunk could arrive (a loaded machine: a stream cut as idle).
          this.#timers.touch()
          if (this.#sink === sink) this.#drain(sink)
        },
        (error: Error) => {
          this.#waiting = false
          this.#fail(error)
        }
      )
    }
  }

  /** The reader is done before the body is: end the upstream request, and the read, without an error. */
  #stop() {
    const onEnd = this.#onEnd
    this.#release()
    if (this.#state === 'open') {
      this.#state = 'ended'
      this.#timers.dispose()
      this.#decoder?.dispose?.()
      this.#controller?.abort(new ReadingStopped())
    }
    onEnd?.()
  }

  /** The reader failed: end the upstream request and reject the read with the reader's error. */
  #fail(error: Error) {
    const onError = this.#onError
    this.#release()
    if (this.#state === 'open') {
      this.#state = 'failed'
      this.#failure = error
      this.#timers.dispose()
      this.#decoder?.dispose?.()
      this.#controller?.abort(error)
    }
    onError?.(error)
  }

  #finish() {
    const { onEnd, onError } = { onEnd: this.#onEnd, onError: this.#onError }
    this.#release()
    if (this.#state === 'failed') onError?.(this.#failure!)
    else onEnd?.()
  }

  #release() {
    this.#pending = null
    this.#pendingBytes = 0
    this.#sink = null
    this.#onEnd = this.#onError = null
  }

  #rejectHead(error: Error) {
    const reject = this.#onHeadError
    this.#onHead = this.#onHeadError = null
    reject?.(error)
  }
}
