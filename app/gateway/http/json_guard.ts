import { GatewayError } from '#exceptions/gateway_error'

/**
 * Nesting deeper than this is refused: no client needs it (tool schemas nest
 * a few levels), and recursive code further on (validation, translation,
 * JSON.stringify) would overflow the stack on thousands of levels.
 */
export const MAX_JSON_DEPTH = 128

const QUOTE = 0x22
const BACKSLASH = 0x5c
const OPEN_OBJECT = 0x7b
const CLOSE_OBJECT = 0x7d
const OPEN_ARRAY = 0x5b
const CLOSE_ARRAY = 0x5d
const COMMA = 0x2c

/**
 * One pass over the body's bytes, before JSON.parse, for what JSON.parse
 * accepts but the gateway must not: nesting deeper than MAX_JSON_DEPTH, and a
 * key twice at the top level. JSON.parse keeps the last `model`, an upstream
 * reading the raw bytes may keep the first: the request would be authorised
 * and billed as one model and served as another. Strings are skipped with
 * indexOf (native), so long texts and base64 images cost little.
 * Malformed JSON is left to JSON.parse to report.
 *
 * `member`: a top-level member whose object is a request of its own (a batch
 * input line's `body`), its keys checked alike: `{"model":"cheap","model":"dear"}`
 * there would be held and billed as one model, served as the other.
 */
export function checkJsonStructure(bytes: Buffer, member?: string) {
  const length = bytes.length
  let depth = 0
  let rootIsObject = false
  let expectKey = false
  let keys: Set<string> | null = null
  // The member's object: its value comes next (memberNext), it is open (memberKeys), a key comes next in it
  let memberNext = false
  let memberKeys: Set<string> | null = null
  let memberExpectKey = false
  for (let i = 0; i < length; i++) {
    const byte = bytes[i]
    if (byte === QUOTE) {
      const end = closingQuote(bytes, i)
      if (end < 0) return
      if (depth === 1 && rootIsObject && expectKey) {
        keys ??= new Set()
        const key = keyText(bytes, i, end)
        if (keys.has(key)) {
          throw GatewayError.invalidRequest(`Duplicate key '${key.slice(0, 64)}' in the request body`, 'duplicate_key')
        }
        keys.add(key)
        expectKey = false
        memberNext = key === member
      } else if (memberExpectKey && depth === 2) {
        const key = keyText(bytes, i, end)
        if (memberKeys!.has(key)) {
          throw GatewayError.invalidRequest(`Duplicate key '${key.slice(0, 64)}' in '${member}' of the request body`, 'duplicate_key')
        }
        memberKeys!.add(key)
        memberExpectKey = false
      }
      i = end
    } else if (byte === OPEN_OBJECT || byte === OPEN_ARRAY) {
      if (++depth > MAX_JSON_DEPTH) {
        throw GatewayError.invalidRequest(`Request body is nested too deeply (more than ${MAX_JSON_DEPTH} levels)`, 'json_too_deep')
      }
      if (depth === 1) {
        rootIsObject = byte === OPEN_OBJECT
        expectKey = rootIsObject
      } else if (depth === 2 && memberNext) {
        memberNext = false
        if (byte === OPEN_OBJECT) {
          memberKeys = new Set()
          memberExpectKey = true
        }
      }
    } else if (byte === CLOSE_OBJECT || byte === CLOSE_ARRAY) {
      // The member's object closed: the keys of a later object at depth 2 (another member's) are not its
      if (depth-- === 2) {
        memberKeys = null
        memberExpectKey = false
      }
    } else if (byte === COMMA) {
      if (depth === 1) expectKey = rootIsObject
      else if (depth === 2 && memberKeys !== null) memberExpectKey = true
    }
  }
}

/** Index of the quote that closes the string opened at `start`, or -1. */
function closingQuote(bytes: Buffer, start: number): number {
  let at = start
  for (;;) {
    at = bytes.indexOf(QUOTE, at + 1)
    if (at < 0) return -1
    let backslashes = 0
    for (let j = at - 1; j > start && bytes[j] === BACKSLASH; j--) backslashes++
    if (backslashes % 2 === 0) return at
  }
}

/** A key as JSON.parse would read it (`"mod\u0065l"` is `model`). */
function keyText(bytes: Buffer, start: number, end: number): string {
  const raw = bytes.toString('utf8', start + 1, end)
  if (!raw.includes('\\')) return raw
  try {
    return JSON.parse(`"${raw}"`)
  } catch {
    return raw
  }
}
