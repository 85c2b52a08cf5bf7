import type { HttpContext } from '@adonisjs/core/http'
import app from '@adonisjs/core/services/app'
import { gatewayStatus } from '#services/gateway_status'

export default class StatusController {
  /** GET /api/status: liveness, version, uptime, database health, channel counts, per-model cool-downs, metering queue (no key needed). */
  async show({ response }: HttpContext) {
    const status = await gatewayStatus(await app.container.make('gateway'))
    return response.status(status.status === 'ok' ? 200 : 503).json(status)
  }
}
