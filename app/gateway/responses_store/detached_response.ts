import { EventEmitter } from 'node:events'

/**
 * What a background run (background_runs.ts) gives the relays in place of a
 * client's ServerResponse: the answer goes nowhere on the wire. Each Server-
 * Sent Event the Responses stream encoder writes is handed to `onEvent`
 * whole (its text and its parsed data); `destroy()` is a client that went
 * away (a cancel): the relays stop as for a closed connection, and the
 * upstream is aborted. Only what ClientStream, generate() and the relays use
 * of a ServerResponse is here.
 */
export class DetachedResponse extends EventEmitter {
  destroyed = false
  closed = false
  writableEnded = false
  writableFinished = false
  headersSent = false
  statusCode = 200
  #partial = ''

  constructor(private onEvent: (text: string, data: Record<string, any> | null) => void) {
    super()
  }

  writeHead(status: number) {
    this.statusCode = status
    this.headersSent = true
    return this
  }

  setHeader() {
    return this
  }

  write(chunk: string | Buffer): boolean {
    if (this.destroyed || this.writableEnded) return false
    this.#take(typeof chunk === 'string' ? chunk : chunk.toString('utf8'))
    return true
  }

  end(chunk?: string | Buffer) {
    if (this.destroyed || this.writableEnded) return this
    if (chunk !== undefined && chunk.length > 0) this.#take(typeof chunk === 'string' ? chunk : chunk.toString('utf8'))
    this.writableEnded = true
    this.writableFinished = true
    this.#close()
    return this
  }

  /** The run is cancelled: later writes are dropped, and 'close' tells generate() to abort the upstream. */
  destroy() {
    if (this.destroyed) return this
    this.destroyed = true
    this.#close()
    return this
  }

  #close() {
    if (this.closed) return
    this.closed = true
    queueMicrotask(() => this.emit('close'))
  }

  /** Whole events (`\n\n`-terminated blocks) out of the text written so far. */
  #take(text: string) {
    let buffered = this.#partial + text
    let end = buffered.indexOf('\n\n')
    while (end >= 0) {
      const block = buffered.slice(0, end + 2)
      buffered = buffered.slice(end + 2)
      const dataLine = block.split('\n').find((line) => line.startsWith('data:'))
      let data: Record<string, any> | null = null
      if (dataLine !== undefined) {
        try {
          data = JSON.parse(dataLine.slice(5).trim())
        } catch {}
      }
      this.onEvent(block, data)
      end = buffered.indexOf('\n\n')
    }
    this.#partial = buffered
  }
}
