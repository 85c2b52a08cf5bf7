import { createHash, randomBytes } from 'node:crypto'

/**
 * A batch's custom ids kept compactly (table batch_custom_ids): a random
 * salt, then 8 bytes of SHA-256(salt + id) per id. Ids are the client's, of
 * any length (OpenAI sets none), so they are not kept as written; the salt is
 * drawn after the ids are known, so no client can choose two ids whose
 * digests collide (by chance: about 1 in 10^9 for 100,000 ids, and then one
 * line goes unbilled, never one billed twice).
 */
const SALT_BYTES = 16
const DIGEST_BYTES = 8

function digest(salt: Buffer, id: string): string {
  // latin1: each byte one UTF-16 unit, an 8-character key for the Set/Map.
  return createHash('sha256').update(salt).update(id, 'utf8').digest().toString('latin1', 0, DIGEST_BYTES)
}

/** Collects the digests of ids as a batch's input is read (ids already checked unique). */
export class CustomIdDigests {
  #salt = randomBytes(SALT_BYTES)
  #digests: string[] = []

  add(id: string) {
    this.#digests.push(digest(this.#salt, id))
  }

  /**
   * Adds an id unless its digest is one already added (false then): for ids
   * not checked unique before (Gemini's keys), compared as they are billed
   * (their UTF-8: 'x\ud800' and 'x\ud801' are one), 8 bytes a key held
   * however long the key.
   */
  addNew(id: string): boolean {
    const key = digest(this.#salt, id)
    this.#seen ??= new Set()
    if (this.#seen.has(key)) return false
    this.#seen.add(key)
    this.#digests.push(key)
    return true
  }

  #seen: Set<string> | undefined

  /** The salt then every digest: what batch_custom_ids.digests keeps. */
  toBuffer(): Buffer {
    return Buffer.concat([this.#salt, Buffer.from(this.#digests.join(''), 'latin1')])
  }
}

/**
 * Which lines of a finished batch's output (or results) are billed: the
 * first line of each custom id the batch was created with; a later line of
 * the same id (`repeated`) and a line of an id it never had (`unknown`) are
 * not. Holds one entry per request of the batch, at most.
 *
 * A batch created before its ids were kept (`stored` null) bills the first
 * line of each distinct id, up to its request count (`expected`), and no more.
 */
export class BilledOnce {
  /** By digest: the id's place among the batch's (from 0), or -1 - place once a line of it was billed */
  #ids: Map<string, number> | null
  #salt: Buffer
  /** Without stored ids: the digests billed, at most `expected` */
  #seen = new Set<string>()
  repeated = 0
  unknown = 0
  /** The place among the batch's ids (its request's, from 0) of the id admit() last let through; -1 without stored ids */
  admittedAt = -1

  /** Are the batch's ids known (each billed once), or only its request count? */
  get keyed(): boolean {
    return this.#ids !== null
  }

  constructor(
    stored: Buffer | null,
    private expected: number
  ) {
    if (stored === null || stored.length < SALT_BYTES) {
      this.#ids = null
      this.#salt = Buffer.alloc(0)
      return
    }
    this.#salt = stored.subarray(0, SALT_BYTES)
    this.#ids = new Map()
    const text = stored.toString('latin1', SALT_BYTES)
    for (let at = 0, place = 0; at + DIGEST_BYTES <= text.length; at += DIGEST_BYTES, place++) this.#ids.set(text.slice(at, at + DIGEST_BYTES), place)
  }

  /** Is this line's usage billed? (false for a repeat or an id the batch never had; each counted for the log) */
  admit(customId: unknown): boolean {
    if (typeof customId !== 'string') {
      this.unknown++
      return false
    }
    const key = digest(this.#salt, customId)
    if (this.#ids !== null) {
      const place = this.#ids.get(key)
      if (place === undefined) {
        this.unknown++
        return false
      }
      if (place < 0) {
        this.repeated++
        return false
      }
      this.#ids.set(key, -1 - place)
      this.admittedAt = place
      return true
    }
    if (this.#seen.has(key)) {
      this.repeated++
      return false
    }
    if (this.#seen.size >= this.expected) {
      this.unknown++
      return false
    }
    this.#seen.add(key)
    return true
  }
}
