import db from '@adonisjs/lucid/services/db'
import type { Gateway } from '#gateway/gateway'

export interface ChannelStatus {
  id: number
  name: string
  provider: string
  /** Only for administrators: never shown to anonymous visitors */
  baseUrl: string | null
  state: 'available' | 'cooling' | 'disabled'
  requests: number
  /** 0..1, null without requests */
  successRate: number | null
  p50Ms: number | null
  lastFailureAt: Date | null
}

/** Recomputed at most this often: the page is public and the query scans a day of rows. */
const TTL_MS = 10_000
let memo: { at: number; rows: any[] } | null = null

/**
 * Per-channel health from the last 24 hours of requests: success rate
 * (failures are upstream faults: 5xx, 429 and aborted upstream calls), median
 * latency, last failure; plus the router's current state of each channel.
 */
export async function channelStatuses(gateway: Gateway, showUpstream: boolean): Promise<ChannelStatus[]> {
  if (!memo || Date.now() - memo.at > TTL_MS) {
    const result = await db.rawQuery(
      `SELECT channel_id,
              COUNT(*)::int AS requests,
              COUNT(*) FILTER (WHERE status < 500 AND status <> 429)::int AS ok,
              percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms) AS p50,
              MAX(created_at) FILTER (WHERE status >= 500 OR status = 429) AS last_failure
         FROM usage_records
        WHERE created_at > now() - interval '24 hours' AND channel_id IS NOT NULL
        GROUP BY channel_id`
    )
    memo = { at: Date.now(), rows: result.rows }
  }
  const stats = new Map(memo.rows.map((r) => [Number(r.channel_id), r]))
  return gateway.catalog.channels.map((channel) => {
    const s = stats.get(channel.id)
    const requests = s ? Number(s.requests) : 0
    return {
      id: channel.id,
      name: channel.name,
      provider: channel.provider,
      baseUrl: showUpstream ? channel.baseUrl : null,
      state: !channel.enabled ? 'disabled' : gateway.health.isAvailable(channel.id) ? 'available' : 'cooling',
      requests,
      successRate: requests ? Number(s.ok) / requests : null,
      p50Ms: s?.p50 == null ? null : Math.round(Number(s.p50)),
      lastFailureAt: s?.last_failure ? new Date(s.last_failure) : null,
    }
  })
}

/** Forget the memoised figures (tests). */
export function resetChannelStatusMemo() {
  memo = null
}
