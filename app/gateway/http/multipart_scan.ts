import { MAX_HEADER_BYTES, MAX_PARTS, MultipartError, partHeaders, type MultipartPart } from '#gateway/http/multipart'

/** A part seen by the scan: its headers, and its content's length once its closing delimiter has passed. */
export interface ScannedPart extends Pick<MultipartPart, 'name' | 'filename' | 'contentType'> {
  bytes: number | null
}

/** Spaces and tabs a delimiter line may carry before its line break (RFC 2046 transport padding) */
const MAX_PADDING = 256
const NOTHING = Buffer.alloc(0)

/**
 * multipart/form-data read as it streams past (a streamed upload:
 * streamed_upload.ts), for what readMultipart tells of a whole body: each
 * part's name, file name and type (and content length), a malformed form,
 * a body cut before its closing delimiter. Nothing is kept but the few
 * bytes a delimiter split between two chunks needs (a part's headers while
 * they arrive, 16 KB at most): the contents pass through unread but for the
 * delimiter search. Same tolerance as readMultipart: a preamble, padding
 * after a delimiter, bare-LF header lines.
 */
export class MultipartScan {
  readonly parts: ScannedPart[] = []
  readonly #dash: Buffer
  readonly #delimiter: Buffer
  #phase: 'start' | 'preamble' | 'line' | 'headers' | 'content' | 'done' = 'start'
  /** Bytes of the last chunk not yet decided (a delimiter's start, headers still arriving) */
  #carry: Buffer = NOTHING
  /** The body offset of #carry's first byte */
  #offset = 0
  /** The body offset where the current part's content began */
  #contentStart = 0
  /** The current part's header bytes from earlier chunks, and how many */
  #head: Buffer[] = []
  #headBytes = 0
  /** Where the header scan stands: 0 in a line, 1 just after a LF, 2 after a LF and a CR */
  #afterLf = 0

  constructor(
    boundary: string,
    /** Called as each part's headers are read (a check may throw to refuse the form there) */
    private onPart: (part: ScannedPart) => void = () => {}
  ) {
    this.#dash = Buffer.from(`--${boundary}`)
    this.#delimiter = Buffer.from(`\r\n--${boundary}`)
  }

  /** The next bytes of the body; throws MultipartError when they make it malformed. */
  push(chunk: Buffer) {
    if (this.#phase === 'done') return
    // A chunk shorter than a delimiter is joined to what is carried (small both); a longer one is not copied.
    if ((this.#phase === 'content' || this.#phase === 'preamble') && this.#carry.length > 0 && chunk.length >= this.#delimiter.length) {
      chunk = this.#acrossChunks(chunk)
    }
    const buf = this.#carry.length === 0 ? chunk : Buffer.concat([this.#carry, chunk])
    const base = this.#offset
    let i = 0
    scan: for (;;) {
      switch (this.#phase) {
        case 'start':
          if (buf.length < this.#dash.length) break scan
          // The first delimiter may open the body without a CRLF before it.
          if (buf.subarray(0, this.#dash.length).equals(this.#dash)) {
            i = this.#dash.length
            this.#phase = 'line'
          } else this.#phase = 'preamble'
          continue
        case 'preamble':
        case 'content': {
          const at = buf.indexOf(this.#delimiter, i)
          if (at < 0) {
            // The end may hold a delimiter's first bytes: kept for the next chunk.
            i = Math.max(i, buf.length - (this.#delimiter.length - 1))
            break scan
          }
          if (this.#phase === 'content') this.parts[this.parts.length - 1].bytes = base + at - this.#contentStart
          i = at + this.#delimiter.length
          this.#phase = 'line'
          continue
        }
        case 'line': {
          if (buf.length - i < 2) break scan
          if (buf[i] === 0x2d && buf[i + 1] === 0x2d) {
            // The closing delimiter: the epilogue after it is nobody's.
            this.#phase = 'done'
            i = buf.length
            break scan
          }
          let j = i
          while (j < buf.length && (buf[j] === 0x20 || buf[j] === 0x09)) j++
          if (j - i > MAX_PADDING) throw new MultipartError('a boundary line is not followed by a line break')
          if (j === buf.length || (buf[j] === 0x0d && j + 1 === buf.length)) break scan
          if (buf[j] === 0x0d && buf[j + 1] === 0x0a) i = j + 2
          else if (buf[j] === 0x0a) i = j + 1
          else throw new MultipartError('a boundary line is not followed by a line break')
          // Just past a line break: a blank line now ends the (empty) headers.
          this.#afterLf = 1
          this.#phase = 'headers'
          continue
        }
        case 'headers': {
          // Byte by byte to the blank line (LF, CR LF, LF: bare LFs too), at most 16 KB: linear however
          // small the chunks (a search of all that was held, per chunk, would be quadratic).
          let j = i
          let state = this.#afterLf
          for (; j < buf.length; j++) {
            const byte = buf[j]
            if (byte === 0x0a) {
              if (state !== 0) break
              state = 1
            } else state = byte === 0x0d && state === 1 ? 2 : 0
          }
          this.#headBytes += j - i
          if (this.#headBytes > MAX_HEADER_BYTES) throw new MultipartError('a part has too many header bytes')
          if (j === buf.length) {
            this.#afterLf = state
            this.#head.push(Buffer.from(buf.subarray(i)))
            i = buf.length
            break scan
          }
          const head = this.#head.length === 0 ? buf.subarray(i, j) : Buffer.concat([...this.#head, buf.subarray(i, j)])
          this.#head = []
          this.#headBytes = 0
          // A delimiter before the blank line ends the part there (readMultipart: no blank line after its headers).
          // Read on, the headers of the part after it counted as this one's: an upstream splits them into two parts.
          if (head.indexOf(this.#delimiter) >= 0) throw new MultipartError('a part has no blank line after its headers')
          if (this.parts.length === MAX_PARTS) throw new MultipartError(`more than ${MAX_PARTS} parts`)
          // No header line at all (the blank line at once) is a part without a name.
          const part: ScannedPart = { ...partHeaders(head, 0, head.length), bytes: null }
          this.parts.push(part)
          this.onPart(part)
          i = j + 1
          this.#contentStart = base + i
          this.#phase = 'content'
          continue
        }
      }
    }
    // A copy: a slice would keep the whole chunk alive.
    this.#carry = i === buf.length ? NOTHING : Buffer.from(buf.subarray(i))
    this.#offset = base + i
  }

  /**
   * A delimiter split between the last chunk and this one, looked for in
   * their joint (a few bytes), so a file's contents are never copied: the
   * rest of the chunk, read from after the delimiter when one was there.
   */
  #acrossChunks(chunk: Buffer): Buffer {
    const carry = this.#carry
    const joint = Buffer.concat([carry, chunk.subarray(0, this.#delimiter.length - 1)])
    const at = joint.indexOf(this.#delimiter)
    const start = this.#offset
    this.#carry = NOTHING
    this.#offset = start + carry.length
    if (at < 0) return chunk
    if (this.#phase === 'content') this.parts[this.parts.length - 1].bytes = start + at - this.#contentStart
    this.#phase = 'line'
    const skip = at + this.#delimiter.length - carry.length
    this.#offset += skip
    return chunk.subarray(skip)
  }

  /** The body ended: throws when it ended before its closing delimiter (a truncated upload). */
  end() {
    if (this.#phase === 'start' || this.#phase === 'preamble') throw new MultipartError('the body has no part delimited by the boundary of its content type')
    if (this.#phase !== 'done') throw new MultipartError('the body ends before its closing boundary')
  }
}
