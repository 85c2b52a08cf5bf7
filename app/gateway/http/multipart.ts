/**
 * A small multipart/form-data reader for the uploads (audio transcriptions
 * and translations, image edits and variations; RFC 7578 over RFC 2046). The
 * gateway needs only a few text fields (`model`, `response_format`,
 * `stream`, an edit's `prompt` and `n`), an audio file's bytes for its
 * duration, and must forward the client's bytes unchanged, or with only the
 * `model` part's value replaced (or, for a form that names no model, added). So it finds where each part's headers and content lie in
 * the buffer and copies nothing. (formidable, which the body parser brings,
 * streams parts to disk and does not give byte offsets; busboy is not
 * installed.)
 */

/** One part: offsets into the body (content is [bodyStart, bodyEnd)). */
export interface MultipartPart {
  name: string
  filename: string | null
  contentType: string | null
  bodyStart: number
  bodyEnd: number
}

export interface MultipartForm {
  boundary: string
  /** Where the first delimiter line (`--boundary`) begins, after any preamble */
  start: number
  parts: MultipartPart[]
}

/** More parts than any audio or image form has: bounds the work a hostile body can ask for. */
export const MAX_PARTS = 256
export const MAX_HEADER_BYTES = 16 * 1024
const HEADERS_END = Buffer.from('\r\n\r\n')

/** The boundary of a `multipart/form-data` content type (quoted or not), or null. */
export function boundaryOf(contentType: string | undefined): string | null {
  if (!contentType) return null
  const [type, ...params] = splitParams(contentType)
  if (type.trim().toLowerCase() !== 'multipart/form-data') return null
  for (const param of params) {
    const eq = param.indexOf('=')
    if (eq < 0 || param.slice(0, eq).trim().toLowerCase() !== 'boundary') continue
    const value = unquote(param.slice(eq + 1).trim())
    // RFC 2046: 1 to 70 characters.
    return value.length >= 1 && value.length <= 70 ? value : null
  }
  return null
}

/** Thrown for a body that is not the multipart form it claims to be. */
export class MultipartError extends Error {}

/**
 * The parts of a multipart body. Tolerates a preamble, transport padding
 * after a delimiter and bare LF line ends in part headers; refuses a body
 * without its closing delimiter (a truncated upload).
 */
export function readMultipart(body: Buffer, boundary: string): MultipartForm {
  const dash = Buffer.from(`--${boundary}`)
  const delimiter = Buffer.from(`\r\n--${boundary}`)
  // The first delimiter may open the body without a CRLF before it. Found after a preamble, even an empty one (a
  // body that opens with CRLF--boundary: RFC 2046 attaches that CRLF to the delimiter), the CRLF is stepped over,
  // as multipart_scan.ts does.
  let at = body.subarray(0, dash.length).equals(dash) ? 0 : body.indexOf(delimiter)
  if (at < 0) throw new MultipartError('the body has no part delimited by the boundary of its content type')
  if (body[at] === 0x0d) at += 2
  const start = at
  const parts: MultipartPart[] = []
  for (;;) {
    let i = at + dash.length
    if (body[i] === 0x2d && body[i + 1] === 0x2d) return { boundary, start, parts }
    while (body[i] === 0x20 || body[i] === 0x09) i++
    if (body[i] === 0x0d && body[i + 1] === 0x0a) i += 2
    else if (body[i] === 0x0a) i += 1
    else throw new MultipartError('a boundary line is not followed by a line break')
    const next = body.indexOf(delimiter, i)
    if (next < 0) throw new MultipartError('the body ends before its closing boundary')
    if (parts.length === MAX_PARTS) throw new MultipartError(`more than ${MAX_PARTS} parts`)
    parts.push(partAt(body, i, next))
    at = next + 2
  }
}

/** A part between `start` (after its boundary line) and `end` (the CRLF of the next delimiter). */
function partAt(body: Buffer, start: number, end: number): MultipartPart {
  let headersEnd: number
  let bodyStart: number
  if (body[start] === 0x0d && body[start + 1] === 0x0a) {
    headersEnd = start
    bodyStart = start + 2
  } else {
    // Looked for within this part's first bytes only: searched up to the body's
    // end, parts with bare-LF headers each scanned the rest of the upload
    // (256 parts x 25 MB).
    const head = body.subarray(start, Math.min(end, start + MAX_HEADER_BYTES + HEADERS_END.length))
    const crlf = head.indexOf(HEADERS_END)
    const lf = crlf >= 0 ? -1 : head.indexOf('\n\n')
    if (crlf >= 0) {
      headersEnd = start + crlf
      bodyStart = start + crlf + 4
    } else if (lf >= 0) {
      headersEnd = start + lf
      bodyStart = start + lf + 2
    } else if (end - start > MAX_HEADER_BYTES) {
      throw new MultipartError('a part has too many header bytes')
    } else throw new MultipartError('a part has no blank line after its headers')
  }
  if (headersEnd - start > MAX_HEADER_BYTES) throw new MultipartError('a part has too many header bytes')
  return { ...partHeaders(body, start, headersEnd), bodyStart, bodyEnd: end }
}

/** A part's name, file name and type, from its header lines in [start, end) (multipart_scan.ts reads them too). */
export function partHeaders(body: Buffer, start: number, end: number): Pick<MultipartPart, 'name' | 'filename' | 'contentType'> {
  let name: string | null = null
  let filename: string | null = null
  let contentType: string | null = null
  for (const line of body.toString('utf8', start, end).split(/\r?\n/)) {
    const colon = line.indexOf(':')
    if (colon < 0) continue
    const header = line.slice(0, colon).trim().toLowerCase()
    const value = line.slice(colon + 1).trim()
    if (header === 'content-type') contentType = value
    else if (header === 'content-disposition') {
      const [kind, ...params] = splitParams(value)
      if (kind.trim().toLowerCase() !== 'form-data') continue
      for (const param of params) {
        const eq = param.indexOf('=')
        if (eq < 0) continue
        const key = param.slice(0, eq).trim().toLowerCase()
        if (key === 'name') name = unquote(param.slice(eq + 1).trim())
        else if (key === 'filename') filename = unquote(param.slice(eq + 1).trim())
      }
    }
  }
  if (name === null) throw new MultipartError('a part has no form-data name')
  return { name, filename, contentType }
}

/** The first part of that name, or undefined. */
export function partNamed(form: MultipartForm, name: string): MultipartPart | undefined {
  for (const part of form.parts) if (part.name === name) return part
  return undefined
}

/** A text field's value (the first part of that name that is not a file), or undefined. */
export function fieldValue(body: Buffer, form: MultipartForm, name: string): string | undefined {
  for (const part of form.parts) {
    if (part.name === name && part.filename === null) return body.toString('utf8', part.bodyStart, part.bodyEnd)
  }
  return undefined
}

/** The body with one part's content replaced; every other byte as it was. */
export function replacePartContent(body: Buffer, part: MultipartPart, content: string): Buffer {
  return Buffer.concat([body.subarray(0, part.bodyStart), Buffer.from(content, 'utf8'), body.subarray(part.bodyEnd)])
}

/**
 * The body with the text field `name` set to `value`: its first part's
 * content replaced, or, without one, a part added first (withLeadingField).
 * The form must be re-read after. (An Azure deployment names an audio form's model.)
 */
export function withFieldValue(body: Buffer, form: MultipartForm, name: string, value: string): Buffer {
  const part = partNamed(form, name)
  if (part !== undefined) return replacePartContent(body, part, value)
  return withLeadingField(body, form, name, value)
}

/**
 * The body with one more text field, put first (right after the preamble,
 * if any): every byte of the client's parts as it was. For a form that names
 * no model when the channel needs one named (an image variation's default
 * model, mapped to another name upstream).
 */
export function withLeadingField(body: Buffer, form: MultipartForm, name: string, value: string): Buffer {
  const at = form.start
  const part = Buffer.from(`--${form.boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`, 'utf8')
  return Buffer.concat([body.subarray(0, at), part, body.subarray(at)])
}

/** Splits `a; b="c;d"; e` on semicolons outside quotes. */
function splitParams(value: string): string[] {
  const out: string[] = []
  let current = ''
  let quoted = false
  for (let i = 0; i < value.length; i++) {
    const c = value[i]
    if (quoted && c === '\\' && i + 1 < value.length) {
      current += c + value[++i]
      continue
    }
    if (c === '"') quoted = !quoted
    if (c === ';' && !quoted) {
      out.push(current)
      current = ''
    } else current += c
  }
  out.push(current)
  return out
}

function unquote(value: string): string {
  if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) return value.slice(1, -1).replace(/\\(.)/g, '$1')
  return value
}

