import type { HttpContext } from '@adonisjs/core/http'
import { portalTeams, teamMembers } from '#actions/teams'
import { budgetResetsAt, budgetSpentNow } from '#actions/budget_group'
import { toPico } from '#gateway/metering/money'
import { recordId } from '#services/record_id'
import { settleMetering } from '#services/settle_metering'

/**
 * The teams a user is in (a member, or the owner of a key in one): the
 * team's budget, spend, models, limits and block, and the user's own keys in
 * it, never another member's (their keys, names or spend: the team's total
 * is shown, not who made it). The same reads as the panel (app/actions/teams.ts).
 * A member sees their own member budget in the team and what they spent
 * under it; the team's admins see every member's.
 */
export default class TeamsController {
  /** GET /dashboard/teams: every team of the user's, one row each. */
  async index({ view, auth }: HttpContext) {
    const user = auth.use('web').getUserOrFail()
    // This process's queued usage rows first, as the panel's team pages (the spend shown includes every call so far).
    await settleMetering()
    const teams = await portalTeams(user.id)
    return view.render('pages/portal/teams', { teams })
  }

  /** GET /dashboard/teams/:id: one team of the user's; any other id (another team, none) is 404. */
  async show({ view, auth, params, response, i18n }: HttpContext) {
    const user = auth.use('web').getUserOrFail()
    const id = recordId(params.id)
    await settleMetering()
    const [entry] = id === null ? [] : await portalTeams(user.id, id)
    if (!entry) return response.notFound(i18n.t('portal.teams.not_found'))
    const members = entry.role === null ? [] : ((await teamMembers([entry.team.id])).get(entry.team.id) ?? [])
    const budgets = members.map((m) => ({
      member: m,
      spent: budgetSpentNow(m),
      resetsAt: budgetResetsAt(m),
      reached: m.max_budget !== null && toPico(budgetSpentNow(m)) >= toPico(m.max_budget),
    }))
    // Their own always; everyone's only for the team's admins (a plain member sees no one else's).
    const own = budgets.find((b) => b.member.user_id === user.id) ?? null
    return view.render('pages/portal/team_show', { entry, own, members: entry.role === 'admin' ? budgets : [] })
  }
}
