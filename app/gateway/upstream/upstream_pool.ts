import { Pool } from 'undici'
import { OriginPool } from '#gateway/upstream/origin_pool'

/**
 * One keep-alive connection pool per upstream origin (and connect timeout), created on first use
 * and shared by every request to that origin.
 *
 * No cap on connections by default. A streamed completion holds its upstream
 * connection for its whole length (30-120 s for a coding agent), and a real
 * provider is a single origin: with a cap of N, stream N+1 waits for a whole
 * stream to finish before it even starts, while its client waits. The gateway
 * already holds one client socket per request, so a second socket upstream
 * costs no more than that; what bounds concurrency is the process's file
 * descriptor limit and the plans' rate limits, not this pool.
 * UPSTREAM_MAX_CONNECTIONS sets a cap per origin anyway (a provider that
 * limits connections per client IP); a request that waits for a free
 * connection spends its first-byte timeout doing so (see waitingForConnection).
 *
 * HTTP/2 (`allowH2`): an https origin that offers h2 in ALPN gets up to 100
 * concurrent streams per connection instead of one, through undici's Pool.
 * Plain-http origins (self-hosted servers, the mock) speak HTTP/1.1, one
 * connection per request in flight, through OriginPool, which places a
 * request in O(1) however many connections are open (origin_pool.ts).
 */
export type UpstreamPool = Pool | OriginPool

const pools = new Map<string, UpstreamPool>()
/** The cap each undici Pool was created with (read from the environment when the pool is made) */
const caps = new WeakMap<Pool, number>()
/**
 * The pool keys the channels use, as of the last channel reload
 * (retirePoolsExcept); null until the first, when any origin may be pooled.
 */
let keysInUse: ReadonlySet<string> | null = null

/** Connections per origin: null (no cap) unless UPSTREAM_MAX_CONNECTIONS is a positive number. */
export function connectionCap(raw = process.env.UPSTREAM_MAX_CONNECTIONS): number | null {
  const value = Number(raw)
  return raw && Number.isInteger(value) && value > 0 ? value : null
}

/** A pool's name in the map: its origin, and its connect timeout unless it is the default. */
export function poolKey(origin: string, connectTimeoutMs = 10_000): string {
  return connectTimeoutMs === 10_000 ? origin : `${origin}#${connectTimeoutMs}`
}

/**
 * The pool a request to `origin` is sent through: the origin's shared pool
 * (one map lookup), made on first use. An origin no channel uses any more
 * (a request routed before a channel reload that moved or deleted its
 * channel, which fails over to it after the reload) gets a pool of its own
 * that is never shared and closes once its one request is over: the map
 * only ever holds the origins of the channels, and nothing waits for the
 * next reload to be closed. (The check is made only when a pool is made,
 * never on the shared pools' path.)
 */
export function poolFor(origin: string, connectTimeoutMs = 10_000): UpstreamPool {
  const key = poolKey(origin, connectTimeoutMs)
  let pool = pools.get(key)
  if (!pool) {
    pool = newPool(origin, connectTimeoutMs)
    if (keysInUse !== null && !keysInUse.has(key)) return closedAfterOneRequest(pool)
    pools.set(key, pool)
  }
  return pool
}

function newPool(origin: string, connectTimeoutMs: number): UpstreamPool {
  const cap = connectionCap()
  const perConnection = {
    pipelining: 1,
    keepAliveTimeout: 30_000,
    keepAliveMaxTimeout: 600_000,
    headersTimeout: 300_000,
    bodyTimeout: 300_000,
    connectTimeout: connectTimeoutMs,
  }
  if (origin.startsWith('http:')) return new OriginPool(origin, { ...perConnection, connections: cap })
  const pool = new Pool(origin, { ...perConnection, connections: cap, allowH2: true })
  if (cap !== null) caps.set(pool, cap)
  return pool
}

/**
 * A pool that closes itself, gracefully, as soon as it has been handed its
 * first request (UpstreamBody.send dispatches at once): the request runs to
 * its end, a stream included, then the connection goes; a second request
 * would be refused (the dispatcher sends one per poolFor).
 */
function closedAfterOneRequest(pool: UpstreamPool): UpstreamPool {
  const dispatch = pool.dispatch.bind(pool) as UpstreamPool['dispatch']
  pool.dispatch = ((options, handler) => {
    const accepted = dispatch(options, handler)
    pool.close().catch(() => {})
    return accepted
  }) as UpstreamPool['dispatch']
  return pool
}

/**
 * Whether a request sent to this pool now would queue for a connection (the
 * pool is at its cap and every connection is busy). Read before sending, so a
 * first-byte timeout can say the time went to waiting, not to the provider.
 */
export function waitingForConnection(pool: UpstreamPool): boolean {
  if (pool instanceof OriginPool) return pool.saturated
  const cap = caps.get(pool)
  if (cap === undefined) return false
  // Requests already queued or in flight (one per connection on HTTP/1.1),
  // counted whether their connections are open yet or still connecting.
  const stats = pool.stats
  return stats.queued > 0 || stats.size >= cap
}

/**
 * Closes the pools whose key is not in `inUse` (the channels' origins and
 * connect timeouts, after they were reloaded): a channel moved to another
 * base URL, or deleted, would otherwise leave its pool and connections here
 * for the life of the process. Out of the map at once (a later request to
 * the origin gets a new pool); closed gracefully: requests running on it
 * finish (a stream in flight goes on to its end), idle connections go.
 * `inUse` is kept: a request routed just before the reload that still calls
 * an old origin gets a pool for itself alone (poolFor), not a shared one
 * left open until the next reload.
 */
export function retirePoolsExcept(inUse: ReadonlySet<string>) {
  keysInUse = inUse
  for (const [key, pool] of pools) {
    if (inUse.has(key)) continue
    pools.delete(key)
    pool.close().catch(() => {})
  }
}

/** The keys of the pools open now (read-only view, for tests and diagnostics). */
export function pooledOrigins(): string[] {
  return [...pools.keys()]
}

export async function closePools() {
  const all = [...pools.values()]
  pools.clear()
  await Promise.all(all.map((pool) => pool.close().catch(() => {})))
}
