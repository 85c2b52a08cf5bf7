import { createHash } from 'node:crypto'
import type { IncomingHttpHeaders } from 'node:http'
import { GatewayError } from '#exceptions/gateway_error'
import { litellmCacheOf } from '#gateway/litellm_fields'

/**
 * Exact-match response cache (Portkey's "simple" cache, LiteLLM's and
 * Bifrost's caching), opt-in per request: a client that sends
 * `x-gateway-cache-ttl: <seconds>` gets, for the same user, model, wire
 * format and the same body bytes, the answer stored by an earlier identical
 * request within that time, without calling the provider. Only complete
 * 200 answers are stored, JSON or a stream's bytes exactly as the client
 * received them. In this process's memory, least recently used out first,
 * bounded in bytes (RESPONSE_CACHE_MB); per user, so one user's answers are
 * never served to another.
 */
export interface CachedAnswer {
  stream: boolean
  contentType: string
  bytes: Buffer
  storedAt: number
  expiresAt: number
}

/** What a request asked of the cache (null when it asked nothing: the usual case, one header lookup). */
export interface CacheDirective {
  key: string
  ttlMs: number
  /** Portkey's force-refresh: do not answer from the cache, store the fresh answer */
  refresh: boolean
}

/** Bytes counted per entry beyond its answer: the key, the entry object and the map's slot */
const ENTRY_OVERHEAD = 256
/** One answer may take at most this share of the cache (and never more than MAX_ENTRY_BYTES) */
const MAX_ENTRY_SHARE = 8
const MAX_ENTRY_BYTES = 4 * 1024 * 1024

export class ResponseCache {
  #entries = new Map<string, CachedAnswer>()
  #bytes = 0
  hits = 0
  misses = 0
  stored = 0
  evicted = 0

  constructor(
    readonly maxBytes: number,
    readonly maxTtlS: number
  ) {}

  get entries() {
    return this.#entries.size
  }

  get bytes() {
    return this.#bytes
  }

  /** The largest answer kept */
  get maxEntryBytes() {
    return Math.min(MAX_ENTRY_BYTES, Math.floor(this.maxBytes / MAX_ENTRY_SHARE))
  }

  /**
   * The request's directive from its headers; null when it sent none. A bad
   * value is the client's 400 (said in its own wire format by the caller).
   */
  directive(headers: IncomingHttpHeaders, keyOf: (body?: Buffer) => string, body?: Record<string, any>): CacheDirective | null {
    const raw = headers['x-gateway-cache-ttl']
    if (raw === undefined) {
      const controls = body === undefined ? undefined : litellmCacheOf(body)
      return controls === undefined ? null : this.#bodyDirective(controls, body!, keyOf)
    }
    const text = Array.isArray(raw) ? raw[0] : raw
    const ttlS = /^\d{1,9}$/.test(text.trim()) ? Number(text.trim()) : NaN
    if (!(ttlS >= 0) || ttlS > this.maxTtlS) {
      throw new GatewayError(
        400,
        'invalid_cache_ttl',
        `x-gateway-cache-ttl must be a whole number of seconds from 0 to ${this.maxTtlS} (0: do not use the cache)`
      )
    }
    if (ttlS === 0) return null
    const refresh = String(headers['x-gateway-cache-refresh'] ?? '').toLowerCase() === 'true'
    return { key: keyOf(), ttlMs: ttlS * 1000, refresh }
  }

  /**
   * LiteLLM's per-request cache controls, in the body: `cache: {"ttl": N}` (or
   * `"s-maxage": N`) as `x-gateway-cache-ttl: N`, `"no-cache": true` as a
   * refresh, `"no-store": true`: read, never store. Without a number of
   * seconds nothing is read or stored (this cache is per request, off unless
   * asked). The field is the gateway's (litellm_fields.ts: never forwarded),
   * so the entry is keyed on the body without it: a refresh replaces the
   * entry the others read.
   */
  #bodyDirective(cache: unknown, body: Record<string, any>, keyOf: (body?: Buffer) => string): CacheDirective | null {
    if (cache === null || typeof cache !== 'object' || Array.isArray(cache)) {
      throw new GatewayError(400, 'invalid_cache_ttl', 'cache must be an object such as {"ttl": 600}, {"s-maxage": 600}, {"no-cache": true} or {"no-store": true}')
    }
    const controls = cache as Record<string, unknown>
    const seconds = controls.ttl ?? controls['s-maxage']
    if (seconds === undefined || seconds === null) return null
    if (typeof seconds !== 'number' || !Number.isInteger(seconds) || seconds < 0 || seconds > this.maxTtlS) {
      throw new GatewayError(400, 'invalid_cache_ttl', `cache.ttl must be a whole number of seconds from 0 to ${this.maxTtlS} (0: do not use the cache)`)
    }
    if (seconds === 0) return null
    const { cache: _cache, ...rest } = body
    return { key: keyOf(Buffer.from(JSON.stringify(rest))), ttlMs: controls['no-store'] === true ? 0 : seconds * 1000, refresh: controls['no-cache'] === true }
  }

  /** A fresh answer stored under the key (and now the most recently used), else undefined. */
  get(key: string, now = Date.now()): CachedAnswer | undefined {
    const entry = this.#entries.get(key)
    if (!entry) {
      this.misses++
      return undefined
    }
    this.#entries.delete(key)
    if (entry.expiresAt <= now) {
      this.#bytes -= sizeOf(entry)
      this.misses++
      return undefined
    }
    this.#entries.set(key, entry)
    this.hits++
    return entry
  }

  /** Stores an answer for ttlMs; too large ones are not kept. Evicts the least recently used to fit. */
  set(key: string, answer: Omit<CachedAnswer, 'storedAt' | 'expiresAt'>, ttlMs: number, now = Date.now()) {
    // A request that may read but not store (LiteLLM's `no-store`)
    if (ttlMs <= 0) return false
    const entry: CachedAnswer = { ...answer, storedAt: now, expiresAt: now + ttlMs }
    const size = sizeOf(entry)
    if (answer.bytes.length > this.maxEntryBytes) return false
    const earlier = this.#entries.get(key)
    if (earlier) {
      this.#entries.delete(key)
      this.#bytes -= sizeOf(earlier)
    }
    while (this.#bytes + size > this.maxBytes && this.#entries.size > 0) {
      const [oldestKey, oldest] = this.#entries.entries().next().value!
      this.#entries.delete(oldestKey)
      this.#bytes -= sizeOf(oldest)
      this.evicted++
    }
    this.#entries.set(key, entry)
    this.#bytes += size
    this.stored++
    return true
  }

  clear() {
    this.#entries.clear()
    this.#bytes = 0
  }
}

function sizeOf(entry: CachedAnswer) {
  return entry.bytes.length + ENTRY_OVERHEAD
}

/**
 * The key of a request: who asks (the user: never shared across users),
 * in which wire format, for which model (Gemini's is in the path), stream or
 * not, and the body's exact bytes.
 */
export function cacheKeyOf(userId: number, ingress: string, model: string, stream: boolean, jsonArray: boolean, rawBody: Buffer) {
  return createHash('sha256')
    .update(`${userId}\0${ingress}\0${model}\0${stream ? (jsonArray ? 'a' : 's') : 'j'}\0`)
    .update(rawBody)
    .digest('base64url')
}

/**
 * A stream's bytes as the client receives them, up to a limit: the response
 * cache stores them only when the whole stream fit (bytes()), the request log
 * keeps the head of a longer one (head()).
 */
export class StreamRecorder {
  #chunks: Buffer[] = []
  #length = 0
  #overflow = false

  constructor(private readonly limit: number) {}

  add(chunk: string | Buffer) {
    if (this.#overflow || chunk.length === 0) return
    let bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk
    if (this.#length + bytes.length > this.limit) {
      this.#overflow = true
      bytes = bytes.subarray(0, this.limit - this.#length)
    }
    this.#chunks.push(bytes)
    this.#length += bytes.length
  }

  /** The whole stream, or null when it did not fit */
  bytes(): Buffer | null {
    return this.#overflow ? null : Buffer.concat(this.#chunks, this.#length)
  }

  /** What fit: the whole stream, or its first `limit` bytes */
  head(): Buffer {
    return Buffer.concat(this.#chunks, this.#length)
  }
}
