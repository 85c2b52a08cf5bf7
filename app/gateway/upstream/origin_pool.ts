import { Client, type Dispatcher } from 'undici'

/** Options for each connection of the pool (those of an undici Client). */
export type ConnectionOptions = Client.Options

interface Queued {
  options: Dispatcher.DispatchOptions
  handler: Dispatcher.DispatchHandler
}

/**
 * The connections to one plain-HTTP upstream origin: undici Clients, each
 * carrying one request at a time (HTTP/1.1), handed out from a stack of the
 * idle ones.
 *
 * Why not undici's Pool: to place a request it scans its clients, in order,
 * for one that is not busy, and then once more to learn whether another is
 * free. Every open stream is a busy client, so at 5,000 open streams each new
 * request walks 5,000 clients twice, and opening n streams costs n^2: 10% of
 * the gateway's CPU while 5,000 streams opened, in a profile of the bench.
 * Here a request takes the most recently freed connection (warm, and the ones
 * left at the bottom of the stack time out), or opens one: O(1) whatever is
 * open. Connections that closed while idle are let go, so a burst of streams
 * leaves nothing behind once its keep-alive ends (undici's Pool keeps every
 * client it ever made).
 *
 * https origins keep undici's Pool (upstream_pool.ts): they may speak
 * HTTP/2, where a few connections carry every stream, and the Pool's probe
 * waits for the first connection's ALPN before opening more.
 */
export class OriginPool {
  readonly #origin: string
  readonly #options: ConnectionOptions
  /** At most this many connections (null: no cap) */
  readonly #cap: number | null
  readonly #clients = new Set<Client>()
  /** Clients that can take a request now, the latest freed on top; entries not in #idleSet are stale (skipped) */
  #idle: Client[] = []
  /** Which clients are idle now */
  #idleSet = new Set<Client>()
  /** Stale entries in #idle (retired while idle), swept when they are many */
  #stale = 0
  /** Clients whose connection is open now */
  #connected = new WeakSet<Client>()
  /** Requests waiting for a connection (only with a cap) */
  #queue: Queued[] = []
  #queueHead = 0
  #closed = false
  /** close() waiting for the queue to empty */
  #queueEmptied: (() => void) | null = null
  #closing: Promise<void> | null = null

  constructor(origin: string, options: ConnectionOptions & { connections?: number | null }) {
    const { connections, ...perClient } = options
    this.#origin = origin
    this.#options = perClient
    this.#cap = connections ?? null
  }

  /** Connections open or opening, busy or idle. */
  get size(): number {
    return this.#clients.size
  }

  /** Requests waiting for a free connection. */
  get queued(): number {
    return this.#queue.length - this.#queueHead
  }

  /** Whether a request sent now would wait for a connection (at the cap, none idle). */
  get saturated(): boolean {
    return this.#cap !== null && this.#idleSet.size === 0 && this.#clients.size >= this.#cap
  }

  dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    if (this.#closed) {
      handler.onResponseError?.(null as any, new Error('the upstream pool is closed'))
      return false
    }
    const client = this.#takeIdle() ?? this.#open()
    if (!client) {
      this.#queue.push({ options, handler })
      return false
    }
    // true: it can take another right away (an HTTP/2 connection under its stream limit).
    if (client.dispatch(options, handler)) this.#makeIdle(client)
    return true
  }

  /**
   * Graceful, like undici's Pool: takes no new request, lets the running ones
   * finish and the waiting ones run as connections free up, then closes every
   * connection. (A channel's old origin is closed this way while streams may
   * still be running on it: upstream_pool.ts retirePoolsExcept.)
   */
  close(): Promise<void> {
    this.#closing ??= this.#close()
    return this.#closing
  }

  async #close() {
    this.#closed = true
    if (this.queued > 0) {
      // A client that drains hands its connection to the queue even now (see #drainedWhileClosing).
      await new Promise<void>((resolve) => (this.#queueEmptied = resolve))
    }
    await Promise.all([...this.#clients].map((client) => client.close().catch(() => {})))
    this.#forgetAll()
  }

  async destroy(): Promise<void> {
    this.#closed = true
    this.#failQueued(new Error('the upstream pool was destroyed'))
    await Promise.all([...this.#clients].map((client) => client.destroy().catch(() => {})))
    this.#forgetAll()
  }

  #forgetAll() {
    this.#clients.clear()
    this.#idle = []
    this.#idleSet.clear()
    this.#stale = 0
  }

  #makeIdle(client: Client) {
    if (this.#idleSet.has(client)) return
    this.#idleSet.add(client)
    this.#idle.push(client)
  }

  #takeIdle(): Client | null {
    while (this.#idle.length > 0) {
      const client = this.#idle.pop()!
      if (!this.#idleSet.delete(client)) {
        this.#stale--
        continue
      }
      if (client.closed || client.destroyed) {
        this.#clients.delete(client)
        continue
      }
      return client
    }
    return null
  }

  #open(): Client | null {
    if (this.#cap !== null && this.#clients.size >= this.#cap) return null
    const client = new Client(this.#origin, this.#options)
    this.#clients.add(client)
    client.on('drain', () => this.#drained(client))
    client.on('connect', () => this.#connected.add(client))
    ;(client as Dispatcher).on('disconnect', () => this.#disconnected(client))
    return client
  }

  /** A client finished its request(s): it takes a waiting request, or waits on the stack. */
  #drained(client: Client) {
    if (client.closed || client.destroyed || !this.#clients.has(client)) return
    if (this.#closed) return this.#drainedWhileClosing(client)
    while (this.queued > 0) {
      const next = this.#queue[this.#queueHead]
      this.#queue[this.#queueHead++] = undefined as any
      if (this.#queueHead === this.#queue.length) {
        this.#queue = []
        this.#queueHead = 0
      }
      if (!client.dispatch(next.options, next.handler)) return
    }
    // Its connection already closed (the upstream said keep-alive is over): nothing worth keeping.
    if (!this.#connected.has(client)) return this.#retire(client)
    this.#makeIdle(client)
  }

  /** Closing: the client takes the next waiting request, if any is left; the last one lets close() go on. */
  #drainedWhileClosing(client: Client) {
    while (this.queued > 0) {
      const next = this.#queue[this.#queueHead]
      this.#queue[this.#queueHead++] = undefined as any
      if (!client.dispatch(next.options, next.handler)) break
    }
    if (this.queued === 0 && this.#queueEmptied) {
      this.#queue = []
      this.#queueHead = 0
      this.#queueEmptied()
      this.#queueEmptied = null
    }
  }

  /**
   * The connection closed (the upstream's keep-alive ended, or an error). An
   * idle client is let go; a busy one is let go when it drains.
   */
  #disconnected(client: Client) {
    this.#connected.delete(client)
    if (this.#closed || !this.#idleSet.delete(client)) return
    this.#retire(client)
    // Its entry in the stack is skipped when reached; sweep when such entries are most of the stack.
    if (++this.#stale > 64 && this.#stale * 2 > this.#idle.length) {
      this.#idle = this.#idle.filter((c) => this.#idleSet.has(c))
      this.#stale = 0
    }
  }

  #retire(client: Client) {
    this.#clients.delete(client)
    client.close().catch(() => {})
  }

  #failQueued(error: Error) {
    for (let i = this.#queueHead; i < this.#queue.length; i++) this.#queue[i].handler.onResponseError?.(null as any, error)
    this.#queue = []
    this.#queueHead = 0
    // destroy() while close() waited for the queue: nothing is left to wait for.
    this.#queueEmptied?.()
    this.#queueEmptied = null
  }
}
