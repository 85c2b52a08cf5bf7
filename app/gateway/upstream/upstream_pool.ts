import { Pool } from 'undici'

/**
 * One keep-alive connection pool per upstream origin (and connect timeout), created on first use
 * and shared by every request to that origin.
 */
const pools = new Map<string, Pool>()

export function poolFor(origin: string, connectTimeoutMs = 10_000): Pool {
  const key = connectTimeoutMs === 10_000 ? origin : `${origin}#${connectTimeoutMs}`
  let pool = pools.get(key)
  if (!pool) {
    pool = new Pool(origin, {
      connections: 512,
      pipelining: 1,
      keepAliveTimeout: 30_000,
      keepAliveMaxTimeout: 600_000,
      headersTimeout: 300_000,
      bodyTimeout: 300_000,
      connectTimeout: connectTimeoutMs,
    })
    pools.set(key, pool)
  }
  return pool
}

export async function closePools() {
  const all = [...pools.values()]
  pools.clear()
  await Promise.all(all.map((pool) => pool.close().catch(() => {})))
}
