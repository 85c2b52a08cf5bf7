import { randomFillSync } from 'node:crypto'

/**
 * Request ids as time-ordered UUIDs (version 7, RFC 9562): 48 bits of Unix
 * milliseconds, then 74 random bits.
 *
 * The id is the unique key of usage_records and the index key of
 * request_attempts. With random (version 4) ids every metered row lands on a
 * random leaf page of those indexes: past a few million rows the pages are
 * no longer in cache, and after each checkpoint nearly every insert writes a
 * full page image to the WAL. Ids that grow with time all go to the
 * rightmost pages. Measured on a 2M-row usage_records (docs/benchmarks.md,
 * eighth pass): Postgres CPU 41-48 -> 34 µs per metered row, WAL 2,961 ->
 * 1,067 bytes per row.
 *
 * Built like node's own randomUUID: random bytes drawn from a pooled buffer,
 * hex digits written into a reused buffer and read out as one flat string
 * (no chain of concatenations to flatten later), so an id costs no more
 * than a version 4 one. The creation time it reveals is the response's Date
 * header to the millisecond.
 */
const DIGITS = Buffer.from('0123456789abcdef', 'latin1')

/** Random bytes for 256 ids (10 bytes each), refilled when spent. */
const pool = Buffer.allocUnsafe(10 * 256)
let offset = pool.length

/** The id being written; the dashes stay where they are. */
const out = Buffer.from('00000000-0000-0000-0000-000000000000', 'latin1')

function hex(at: number, byte: number) {
  out[at] = DIGITS[byte >>> 4]
  out[at + 1] = DIGITS[byte & 0x0f]
}

export function requestId(now: number = Date.now()): string {
  if (offset + 10 > pool.length) {
    randomFillSync(pool)
    offset = 0
  }
  const r = offset
  offset += 10
  // 48-bit milliseconds: the high 32 bits, then the low 16.
  const high = Math.floor(now / 0x10000)
  const low = now % 0x10000
  hex(0, (high >>> 24) & 0xff)
  hex(2, (high >>> 16) & 0xff)
  hex(4, (high >>> 8) & 0xff)
  hex(6, high & 0xff)
  hex(9, low >>> 8)
  hex(11, low & 0xff)
  // version 7, then 12 random bits
  hex(14, 0x70 | (pool[r] & 0x0f))
  hex(16, pool[r + 1])
  // variant 10xx, then 62 random bits
  hex(19, 0x80 | (pool[r + 2] & 0x3f))
  hex(21, pool[r + 3])
  hex(24, pool[r + 4])
  hex(26, pool[r + 5])
  hex(28, pool[r + 6])
  hex(30, pool[r + 7])
  hex(32, pool[r + 8])
  hex(34, pool[r + 9])
  return out.toString('latin1', 0, 36)
}

/** The creation time an id of `requestId` carries (ms since the epoch). */
export function requestIdTime(id: string): number {
  return Number.parseInt(id.slice(0, 8) + id.slice(9, 13), 16)
}

/** A request id as the gateway issues them (x-request-id: a UUID), any case: what lookups by id accept. */
export const REQUEST_ID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
