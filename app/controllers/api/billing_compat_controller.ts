import type { HttpContext } from '@adonisjs/core/http'
import app from '@adonisjs/core/services/app'
import { balanceReport } from '#services/account_report'
import { fromPico } from '#gateway/metering/money'
import { rollSpendPeriod } from '#gateway/metering/spend_period'
import type { Principal } from '#gateway/types'

/**
 * OpenAI's old dashboard billing endpoints, which chat apps still call to
 * show what is left (NextChat / ChatGPT-Next-Web, LobeChat, many one-API
 * clients; new-api answers them too). Apps compute the remaining amount as
 * `hard_limit_usd - total_usage / 100` (usage in cents). For a key with a
 * spend cap the figures are the cap's (its limit, what it has spent in the
 * current period); otherwise the account's (balance + spent, spent), so
 * the remaining amount is exactly the balance `/v1/balance` reports.
 */
async function figures(principal: Principal) {
  const gateway = await app.container.make('gateway')
  await gateway.meter.drain()
  const key = principal.key
  if (key.spendLimitPico !== null) {
    rollSpendPeriod(key, Date.now())
    return { limit: Number(fromPico(key.spendLimitPico)), used: Number(fromPico(key.spentPico)) }
  }
  const report = await balanceReport(principal.user.id)
  return { limit: round(report.balance + report.total_spent, 6), used: report.total_spent }
}

function round(value: number, digits: number) {
  const scale = 10 ** digits
  return Math.round(value * scale) / scale
}

export default class BillingCompatController {
  /** GET /v1/dashboard/billing/subscription */
  async subscription({ principal, response }: HttpContext) {
    const { limit } = await figures(principal)
    return response.json({
      object: 'billing_subscription',
      has_payment_method: true,
      soft_limit_usd: limit,
      hard_limit_usd: limit,
      system_hard_limit_usd: limit,
      // Unix seconds the key works until (0: no expiry), as OpenAI's field.
      access_until: principal.key.expiresAt === null ? 0 : Math.floor(principal.key.expiresAt / 1000),
      plan: { title: principal.plan?.name ?? 'Pay as you go', id: principal.plan ? String(principal.plan.id) : 'payg' },
    })
  }

  /**
   * GET /v1/dashboard/billing/usage[?start_date=&end_date=]: what was used, in
   * cents (the dates are accepted and, as in new-api, not applied). Never
   * checked, unlike the management API's dates: chat apps send odd values,
   * and the answer does not depend on them.
   */
  async usage({ principal, response }: HttpContext) {
    const { used } = await figures(principal)
    return response.json({ object: 'list', total_usage: round(used * 100, 4) })
  }
}
