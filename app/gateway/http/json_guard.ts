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
 * `path`: where an object that is a request of its own sits, its keys checked
 * alike: `{"model":"cheap","model":"dear"}` there would be held and billed as
 * one model, served as the other. A name is an object's member, `*` each
 * element of an array: `['body']` (a batch input line), `['requests', '*',
 * 'params']` (a Message Batch). Without one, nothing more than the top level
 * is tracked: ordinary requests pay one comparison per brace and comma.
 */
export function checkJsonStructure(bytes: Buffer, path?: readonly string[]) {
  const length = bytes.length
  let depth = 0
  let rootIsObject = false
  let expectKey = false
  let keys: Set<string> | null = null
  // Along `path`: the depth of the deepest open container on it (0: none), whether the next container opened
  // in that one is on it too, whether a key comes next there (an object); `indexes[d]`: the element's index
  // when the container at depth d is an array on the path, else -1. The checked object opens at depth `target`.
  const target = path === undefined ? 0 : path.length + 1
  const indexes: number[] | null = path === undefined ? null : new Array(target + 1).fill(-1)
  let along = 0
  let nextOnPath = false
  let alongExpectKey = false
  let targetKeys: Set<string> | null = null
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
        if (along === 1) nextOnPath = key === path![0]
      } else if (alongExpectKey && depth === along) {
        const key = keyText(bytes, i, end)
        if (targetKeys !== null) {
          if (targetKeys.has(key)) {
            throw GatewayError.invalidRequest(
              `Duplicate key '${key.slice(0, 64)}' in '${pathLabel(path!, indexes!)}' of the request body`,
              'duplicate_key'
            )
          }
          targetKeys.add(key)
        } else {
          nextOnPath = key === path![depth - 1]
        }
        alongExpectKey = false
      }
      i = end
    } else if (byte === OPEN_OBJECT || byte === OPEN_ARRAY) {
      if (++depth > MAX_JSON_DEPTH) {
        throw GatewayError.invalidRequest(`Request body is nested too deeply (more than ${MAX_JSON_DEPTH} levels)`, 'json_too_deep')
      }
      if (depth === 1) {
        rootIsObject = byte === OPEN_OBJECT
        expectKey = rootIsObject
        if (path !== undefined && rootIsObject) along = 1
      } else if (nextOnPath && depth === along + 1) {
        const isObject = byte === OPEN_OBJECT
        // In an object, only the named member's value is on the path; in an array, every element
        if (indexes![along] < 0) nextOnPath = false
        // On the path if it is what comes next: the checked object, an array for `*`, else an object
        if (depth === target ? isObject : (path![depth - 1] === '*') !== isObject) {
          along = depth
          nextOnPath = !isObject
          alongExpectKey = isObject
          indexes![depth] = isObject ? -1 : 0
          if (depth === target) targetKeys = new Set()
        }
      }
    } else if (byte === CLOSE_OBJECT || byte === CLOSE_ARRAY) {
      // A container on the path closed: the keys of a later object at its depth (another member's) are not its
      if (along !== 0 && depth === along) {
        targetKeys = null
        along--
        nextOnPath = indexes![along] >= 0
        alongExpectKey = false
      }
      depth--
    } else if (byte === COMMA) {
      if (depth === 1) expectKey = rootIsObject
      // (along is 0 off the path: a comma outside any container, in bytes that are not JSON, is JSON.parse's to refuse)
      else if (along !== 0 && depth === along) {
        if (indexes![depth] >= 0) indexes![depth]++
        else {
          nextOnPath = false
          alongExpectKey = true
        }
      }
    }
  }
}

/** `requests[2].params`: where the checked object sits, for the message */
function pathLabel(path: readonly string[], indexes: number[]): string {
  let label = ''
  for (let d = 0; d < path.length; d++) {
    label += path[d] === '*' ? `[${indexes[d + 1]}]` : `${label === '' ? '' : '.'}${path[d]}`
  }
  return label
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
