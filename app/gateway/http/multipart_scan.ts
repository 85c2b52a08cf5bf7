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
          this.#phase = 'headers'
          continue
        }
        case 'headers': {
          if (buf.length - i < 2) break scan
          if (buf[i] === 0x0d && buf[i + 1] === 0x0a) throw new MultipartError('a part has no form-data name')
          const region = buf.subarray(i, Math.min(buf.length, i + MAX_HEADER_BYTES + 4))
          const crlf = region.indexOf('\r\n\r\n')
          const lf = region.indexOf('\n\n')
          if (crlf < 0 && lf < 0) {
            if (region.length > MAX_HEADER_BYTES + 3) throw new MultipartError('a part has too many header bytes')
            break scan
          }
          const [end, skip] = crlf >= 0 && (lf < 0 || crlf < lf) ? [crlf, 4] : [lf, 2]
          if (end > MAX_HEADER_BYTES) throw new MultipartError('a part has too many header bytes')
          if (this.parts.length === MAX_PARTS) throw new MultipartError(`more than ${MAX_PARTS} parts`)
          const part: ScannedPart = { ...partHeaders(buf, i, i + end), bytes: null }
          this.parts.push(part)
          this.onPart(part)
          i += end + skip
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

  /** The body ended: throws when it ended before its closing delimiter (a truncated upload). */
  end() {
    if (this.#phase === 'start' || this.#phase === 'preamble') throw new MultipartError('the body has no part delimited by the boundary of its content type')
    if (this.#phase !== 'done') throw new MultipartError('the body ends before its closing boundary')
  }
}
