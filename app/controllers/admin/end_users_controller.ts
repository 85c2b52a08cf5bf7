import type { HttpContext } from '@adonisjs/core/http'
import User from '#models/user'
import { checkbox, notFound, panelActor, withFormFields } from '#controllers/admin/panel'
import { deleteEndUser, plain, setEndUser, type EndUserSettings } from '#actions/end_users'
import { endUsersOf } from '#services/end_user_spend'
import { listBudgets } from '#actions/budgets'
import { settleMetering } from '#services/settle_metering'

/**
 * A user's end users (the `user` their apps send with each request): this
 * month's spend and requests, and the settings an operator makes for one
 * (blocked, a monthly limit), through app/actions/end_users.ts like the
 * management API and `enduser:set`. A refused input (a limit that is no
 * amount) comes back to the form with the reason (AdminInputError).
 */
export default class EndUsersController {
  /** GET /admin/users/:id/end-users */
  async index(ctx: HttpContext) {
    const user = await User.find(Number(ctx.params.id))
    if (!user) return notFound(ctx)
    // The month's spend includes the calls that just ended (the meter writes behind).
    await settleMetering()
    const [endUsers, budgets] = await Promise.all([endUsersOf(user.id), listBudgets()])
    const month = new Date().toISOString().slice(0, 7)
    return ctx.view.render('admin/users/end_users', { user, endUsers, budgets, month })
  }

  /**
   * POST /admin/users/:id/end-users: creates or changes one end user's
   * settings; only the fields the form posted change (the Block button
   * posts `blocked` alone, the limit form `monthly_limit` alone; an empty
   * limit removes it).
   */
  async store(ctx: HttpContext) {
    const { request, response, session, params } = ctx
    const input: EndUserSettings = { userRef: String(Number(params.id)), endUser: textInput(request.input('end_user')) }
    if (request.input('blocked') !== undefined && request.input('blocked') !== null) input.blocked = checkbox(request.input('blocked'))
    // The add/change form's other fields (the table's inline forms do not post them): empty is none / never / unlinked.
    // Posted but empty arrives as null (the body parser's empty strings): `in` tells it from a field not posted.
    const posted = request.all()
    const given = (field: string) => {
      const value = posted[field]
      return value === null || value === undefined || value === '' ? null : value
    }
    // An emptied limit removes it (it was read as "not posted" and left as it was).
    if ('monthly_limit' in posted) input.monthlyLimit = given('monthly_limit') === null ? null : String(posted.monthly_limit)
    if ('budget_period' in posted) input.budgetPeriod = given('budget_period')
    if ('rpm' in posted) input.rpm = given('rpm')
    if ('tpm' in posted) input.tpm = given('tpm')
    if ('budget_id' in posted) input.budgetId = given('budget_id')
    const { owner, endUser, created } = await withFormFields(
      { budgetPeriod: 'budget_period', budgetId: 'budget_id', rpm: 'rpm', tpm: 'tpm' },
      () => setEndUser(input, panelActor(ctx))
    )
    const per = endUser.budget_period === null ? 'in all' : `a ${endUser.budget_period}`
    const limitText =
      endUser.budget_id !== null ? 'the limits of its budget' : endUser.monthly_limit === null ? 'no limit' : `a limit of $${plain(endUser.monthly_limit)} ${per}`
    session.flash('success', `${created ? 'Added' : 'Saved'} end user ${endUser.end_user}: ${endUser.blocked ? 'blocked' : 'allowed'}, ${limitText}.`)
    return response.redirect(`/admin/users/${owner.id}/end-users`)
  }

  /** POST /admin/users/:id/end-users/remove: forgets the settings (its usage stays, and it is served again) */
  async destroy(ctx: HttpContext) {
    const { request, response, session, params } = ctx
    const endUser = textInput(request.input('end_user'))
    await deleteEndUser(String(Number(params.id)), endUser, panelActor(ctx))
    session.flash('success', `Removed the settings of end user ${endUser}: served without limit.`)
    return response.redirect(`/admin/users/${Number(params.id)}/end-users`)
  }
}

/** A form field as text; a repeated one (`end_user=a&end_user=b`, an array) is no end user's name: '' (refused). */
function textInput(value: unknown): string {
  return typeof value === 'string' ? value : ''
}
