import { Pool } from 'undici'

/**
 * One keep-alive connection pool per upstream origin, created on first use
 * and shared by every request to that origin.
 */
const pools = new Map<string, Pool>()

export function poolFor(origin: string): Pool {
  let pool = pools.get(origin)
  if (!pool) {
    pool = new Pool(origin, {
      connections: 512,
      pipelining: 1,
      keepAliveTimeout: 30_000,
      keepAliveMaxTimeout: 600_000,
      headersTimeout: 300_000,
      bodyTimeout: 300_000,
      connectTimeout: 10_000,
    })
    pools.set(origin, pool)
  }
  return pool
}

export async function closePools() {
  const all = [...pools.values()]
  pools.clear()
  await Promise.all(all.map((pool) => pool.close().catch(() => {})))
}
