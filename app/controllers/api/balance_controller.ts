import type { HttpContext } from '@adonisjs/core/http'
import app from '@adonisjs/core/services/app'
import { balanceReport } from '#services/account_report'

export default class BalanceController {
  /** GET /v1/balance: prepaid balance and total spent (seed 003's shape). */
  async show({ principal, response }: HttpContext) {
    const gateway = await app.container.make('gateway')
    await gateway.meter.drain()
    return response.json(await balanceReport(principal.user.id))
  }
}
