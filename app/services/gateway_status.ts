import db from '@adonisjs/lucid/services/db'
import { readFileSync } from 'node:fs'
import type { Gateway } from '#gateway/gateway'

const version: string = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version
const startedAt = Date.now()

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

/** Liveness, version, uptime, database round trip, channel counts: GET /api/status and /status. */
export async function gatewayStatus(gateway: Gateway) {
  const started = performance.now()
  let database: { status: string; latency_ms?: number; error?: string }
  try {
    await db.rawQuery('SELECT 1')
    database = { status: 'ok', latency_ms: Math.round((performance.now() - started) * 100) / 100 }
  } catch {
    database = { status: 'unavailable', error: 'database did not answer' }
  }
  return {
    status: database.status === 'ok' ? 'ok' : 'degraded',
    version,
    uptime_seconds: Math.floor((Date.now() - startedAt) / 1000),
    database,
    channels: channelCounts(gateway),
    in_flight: gateway.service.inFlight,
  }
}
