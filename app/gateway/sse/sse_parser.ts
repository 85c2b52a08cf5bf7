import { answerLimits, UpstreamAnswerTooLarge } from '#gateway/upstream/answer_limits'

/**
 * Incremental Server-Sent Events parser (WHATWG rules): accepts chunks split
 * anywhere (even inside a UTF-8 sequence or a CRLF), handles LF, CR and CRLF
 * line ends, multi-line `data`, comments and `event`/`id` fields. It keeps only
 * the unfinished tail between chunks: no re-splitting of the whole buffer.
 * A line or event longer than the bound (answerLimits.eventChars) throws
 * UpstreamAnswerTooLarge: the relay ends the stream with an error event.
 */

export interface SseEvent {
  /** `event:` field, or undefined for the default "message" */
  event?: string
  data: string
  id?: string
}

export class SseParser {
  #decoder = new TextDecoder()
  #tail = ''
  /**
   * The open event's data lines, joined by LF as they come; null between
   * events. A string, not an array: `length = 0` drops an array's backing
   * store, so every event allocated a new one that the (long-lived) parser
   * held until the next event, on a slow stream a second later: promoted to
   * V8's old generation, then garbage there (~150 bytes per chunk, for
   * every open stream, until the next major GC).
   */
  #data: string | null = null
  #event: string | undefined
  #id: string | undefined
  #skipLeadingLf = false
  /** An unfinished line or an event's data past this many characters ends the stream (answerLimits) */
  readonly #maxChars: number

  constructor(maxChars = answerLimits.eventChars) {
    this.#maxChars = maxChars
  }

  /**
   * Between two events: nothing of an unfinished line or event is held, so
   * the next byte the upstream sends starts a new event.
   */
  get atBoundary(): boolean {
    return this.#tail === '' && this.#data === null && this.#event === undefined && !this.#skipLeadingLf
  }

  /** Feeds a chunk; returns the events it completed. */
  push(chunk: Uint8Array | string): SseEvent[] {
    let text = typeof chunk === 'string' ? chunk : this.#decoder.decode(chunk, { stream: true })
    if (this.#skipLeadingLf && text.startsWith('\n')) text = text.slice(1)
    this.#skipLeadingLf = false
    const events: SseEvent[] = []
    // Only the new text is scanned: the tail holds no line end, and a line
    // that spans many chunks is joined once, when it ends (scanning tail +
    // text every time was quadratic: a few MB in one line, as a base64 image
    // comes, cost seconds of the event loop).
    let start = 0
    const length = text.length
    for (let i = 0; i < length; i++) {
      const ch = text.charCodeAt(i)
      if (ch !== 10 && ch !== 13) continue
      let line = text.slice(start, i)
      if (this.#tail !== '') {
        line = this.#tail + line
        this.#tail = ''
      }
      this.#line(line, events)
      if (ch === 13) {
        if (i + 1 < length) {
          if (text.charCodeAt(i + 1) === 10) i++
        } else {
          this.#skipLeadingLf = true
        }
      }
      start = i + 1
    }
    if (start < length) {
      const rest = start === 0 ? text : text.slice(start)
      this.#tail = this.#tail === '' ? rest : this.#tail + rest
      if (this.#tail.length > this.#maxChars) throw new UpstreamAnswerTooLarge('A line of the upstream\'s stream', this.#maxChars)
    }
    return events
  }

  /** Flushes a final event not terminated by a blank line (lenient end of stream). */
  end(): SseEvent[] {
    const events: SseEvent[] = []
    if (this.#tail) this.#line(this.#tail, events)
    this.#tail = ''
    this.#line('', events)
    return events
  }

  #line(line: string, events: SseEvent[]) {
    if (line === '') {
      if (this.#data !== null) events.push({ event: this.#event, data: this.#data, id: this.#id })
      this.#data = null
      this.#event = undefined
      return
    }
    if (line.charCodeAt(0) === 58) return // ':' comment
    const colon = line.indexOf(':')
    const field = colon === -1 ? line : line.slice(0, colon)
    let value = colon === -1 ? '' : line.slice(colon + 1)
    if (value.charCodeAt(0) === 32) value = value.slice(1)
    switch (field) {
      case 'data':
        this.#data = this.#data === null ? value : `${this.#data}\n${value}`
        if (this.#data.length > this.#maxChars) throw new UpstreamAnswerTooLarge('An event of the upstream\'s stream', this.#maxChars)
        break
      case 'event':
        this.#event = value
        break
      case 'id':
        this.#id = value
        break
    }
  }
}

/**
 * The bytes end with a blank line (LF LF, CR LF CR LF or CR CR): fed to a
 * parser that was at a boundary, they leave it at one.
 */
export function endsWithBlankLine(bytes: Uint8Array): boolean {
  const n = bytes.length
  if (n < 2) return false
  const last = bytes[n - 1]
  const before = bytes[n - 2]
  if (last === 10) return before === 10 || (before === 13 && n >= 4 && bytes[n - 3] === 10 && bytes[n - 4] === 13)
  return last === 13 && before === 13
}

/** Serialises one event in the canonical framing. */
export function formatSse(event: SseEvent): string {
  let out = event.event ? `event: ${event.event}\n` : ''
  if (event.data.includes('\n')) {
    for (const line of event.data.split('\n')) out += `data: ${line}\n`
  } else {
    out += `data: ${event.data}\n`
  }
  return out + '\n'
}
