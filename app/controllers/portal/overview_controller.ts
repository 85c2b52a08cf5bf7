import type { HttpContext } from '@adonisjs/core/http'
import app from '@adonisjs/core/services/app'
import { balanceFigures, overview } from '#services/portal_report'
import { GATEWAY_ERROR_CODES } from '#services/gateway_errors'
import { portalTeams } from '#actions/teams'

export default class OverviewController {
  /**
   * GET /dashboard: balance, this month's tokens and spend against the plan,
   * requests per day for 30 days, the last errors and how to fix them; a
   * notice for each team of the user's keys that refuses them (budget spent, blocked).
   */
  async show({ view, auth }: HttpContext) {
    const user = auth.use('web').getUserOrFail()
    const gateway = await app.container.make('gateway')
    await gateway.meter.drain()
    const plan = user.planId ? (gateway.catalog.plans.get(user.planId) ?? null) : null
    const [figures, data, teams] = await Promise.all([balanceFigures(user.id), overview(user.id), portalTeams(user.id)])
    // A team of one of the user's keys that refuses them now (its budget spent: 402s; blocked: 401s).
    const refusingTeams = teams.filter((entry) => entry.keys.length > 0 && (entry.budgetReached || entry.team.blocked_at !== null))
    const ratio = (used: number, limit: number | null) => (limit ? Math.min(1, used / limit) : null)
    return view.render('pages/portal/overview', {
      figures,
      data,
      plan,
      inputRatio: ratio(data.inputTokens, plan?.monthlyInputTokens ?? null),
      outputRatio: ratio(data.outputTokens, plan?.monthlyOutputTokens ?? null),
      knownCodes: GATEWAY_ERROR_CODES,
      refusingTeams,
      chart: {
        days: data.days.map((d) => d.day),
        requests: data.days.map((d) => d.requests),
        errors: data.days.map((d) => d.errors),
      },
    })
  }
}
