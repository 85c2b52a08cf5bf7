import type { HttpContext } from '@adonisjs/core/http'
import app from '@adonisjs/core/services/app'
import { monthlyUsageReport } from '#services/account_report'

export default class UsageController {
  /** GET /v1/usage: the key owner's token usage this calendar month, by model (seed 000's shape). */
  async show({ principal, response }: HttpContext) {
    const gateway = await app.container.make('gateway')
    await gateway.meter.drain()
    return response.json(await monthlyUsageReport(principal.user.id, principal.plan))
  }
}
