import type { HttpContext } from '@adonisjs/core/http'
import db from '@adonisjs/lucid/services/db'
import { readFileSync } from 'node:fs'
import app from '@adonisjs/core/services/app'
import type { Gateway } from '#gateway/gateway'

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

const version: string = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')).version
const startedAt = Date.now()

export default class StatusController {
  /** GET /api/status: liveness, version, uptime, database health and channel counts (no key needed). */
  async show({ response }: HttpContext) {
    const gateway = await app.container.make('gateway')
    const started = performance.now()
    let database: { status: string; latency_ms?: number; error?: string }
    try {
      await db.rawQuery('SELECT 1')
      database = { status: 'ok', latency_ms: Math.round((performance.now() - started) * 100) / 100 }
    } catch {
      database = { status: 'unavailable', error: 'database did not answer' }
    }
    const ok = database.status === 'ok'
    return response.status(ok ? 200 : 503).json({
      status: ok ? 'ok' : 'degraded',
      version,
      uptime_seconds: Math.floor((Date.now() - startedAt) / 1000),
      database,
      channels: channelCounts(gateway),
      in_flight: gateway.service.inFlight,
    })
  }
}
