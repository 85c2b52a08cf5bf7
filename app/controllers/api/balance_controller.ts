import type { HttpContext } from '@adonisjs/core/http'
import app from '@adonisjs/core/services/app'
import { balanceReport } from '#services/account_report'
import { fromPico } from '#gateway/metering/money'
import { rollSpendPeriod } from '#gateway/metering/spend_period'

export default class BalanceController {
  /**
   * GET /v1/balance: prepaid balance and total spent (seed 003's shape), and
   * the calling key's spend cap when it has one (LiteLLM's /key/info
   * figures: what the cap counts now, and when a resetting cap resets).
   */
  async show({ principal, response }: HttpContext) {
    const gateway = await app.container.make('gateway')
    await gateway.meter.drain()
    const report = await balanceReport(principal.user.id)
    const key = principal.key
    if (key.spendLimitPico === null) return response.json(report)
    rollSpendPeriod(key, Date.now())
    return response.json({
      ...report,
      key: {
        spend_limit: Number(fromPico(key.spendLimitPico)),
        spend_period: key.spendPeriod,
        spent: Number(fromPico(key.spentPico)),
        resets_at: key.spendPeriod ? new Date(key.periodEndsAt).toISOString().replace(/\.\d{3}Z$/, 'Z') : null,
      },
    })
  }
}
