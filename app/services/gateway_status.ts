import db from '@adonisjs/lucid/services/db'
import { readFileSync } from 'node:fs'
import type { Gateway } from '#gateway/gateway'
import { outboxCounts } from '#services/mail/mail_sender'

const version: string = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version

/** How many channels can take traffic now; names stay private (the endpoint is public). */
function channelCounts(gateway: Gateway) {
  let enabled = 0
  let coolingDown = 0
  let disabled = 0
  for (const channel of gateway.catalog.channels) {
    if (!channel.enabled) disabled++
    else if (!gateway.health.isAvailable(channel.id)) coolingDown++
    else enabled++
  }
  return { available: enabled, cooling_down: coolingDown, disabled }
}

/**
 * (channel, upstream model) pairs cooling down after a 429 or a 403, with the
 * wait left; the upstream's message stays in channel:list and the panel. Only
 * channels open to every plan: the answer is public, and a model served only
 * to some plans (channels.plan_ids) is not named to anyone who asks.
 */
function modelCooldowns(gateway: Gateway) {
  const now = Date.now()
  const out: Array<{ channel_id: number; model: string; reason: string; retry_after_seconds: number }> = []
  const openToAll = new Set(gateway.catalog.channels.filter((c) => c.planIds == null || c.planIds.length === 0).map((c) => c.id))
  for (const channelId of gateway.health.channelsWithModelCooldowns(now)) {
    if (!openToAll.has(channelId)) continue
    for (const c of gateway.health.modelCooldowns(channelId, now)) {
      out.push({ channel_id: channelId, model: c.model, reason: c.kind, retry_after_seconds: Math.ceil((c.until - now) / 1000) })
    }
  }
  return out
}

/**
 * One round trip to the database: `ok` with its latency, or `unavailable`
 * (the driver's error stays in the logs: the answer is public). What
 * /api/status reports and the readiness probe (/health/readiness) requires.
 */
export async function databaseHealth(): Promise<{ status: 'ok' | 'unavailable'; latency_ms?: number; error?: string }> {
  const started = performance.now()
  try {
    await db.rawQuery('SELECT 1')
    return { status: 'ok', latency_ms: Math.round((performance.now() - started) * 100) / 100 }
  } catch {
    return { status: 'unavailable', error: 'database did not answer' }
  }
}

/** The running version (package.json), for the status answers. */
export function gatewayVersion(): string {
  return version
}

/**
 * Liveness, version, uptime, database round trip, channel counts, per-model
 * cool-downs and the metering queue: GET /api/status and the /status page.
 */
export async function gatewayStatus(gateway: Gateway) {
  const database = await databaseHealth()
  return {
    status: database.status === 'ok' ? 'ok' : 'degraded',
    version,
    uptime_seconds: Math.floor(process.uptime()),
    /** The boot is over: caches loaded (a load balancer's readiness check) */
    ready: gateway.ready,
    database,
    channels: channelCounts(gateway),
    model_cooldowns: modelCooldowns(gateway),
    metering: {
      queued: gateway.meter.queued,
      degraded: gateway.meter.degraded,
      spill_pending: gateway.meter.spilledPending,
      spilled_total: gateway.meter.spilledTotal,
      replayed_total: gateway.meter.replayedTotal,
    },
    in_flight: gateway.service.inFlight,
    response_cache: responseCacheStatus(gateway),
    // Counts only: the webhook's address and its errors are the operator's business (logs), not the public's.
    alerts: gateway.alerts ? { sent: gateway.alerts.sent, failed: gateway.alerts.failed, dropped: gateway.alerts.dropped } : null,
    // Log export per destination (langfuse, otlp, webhook), numbers only: never a URL, a key or an error.
    log_export: gateway.logExport ? gateway.logExport.counts() : null,
    // The e-mail outbox (all instances'), numbers only: never an address, a subject or an error.
    mail_outbox: database.status === 'ok' ? await outboxCounts().catch(() => null) : null,
  }
}

/** The exact-match response cache of this process: null when off (RESPONSE_CACHE_MB=0). */
function responseCacheStatus(gateway: Gateway) {
  const cache = gateway.service.responseCache
  if (!cache) return null
  return {
    entries: cache.entries,
    bytes: cache.bytes,
    max_bytes: cache.maxBytes,
    hits: cache.hits,
    misses: cache.misses,
    evicted: cache.evicted,
  }
}
