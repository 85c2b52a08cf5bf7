import type { HttpContext } from '@adonisjs/core/http'
import type { NextFn } from '@adonisjs/core/types/http'
import { homeFor } from '#services/home_path'
import { sessionEpochCurrent } from '#services/session_epoch'

/** Pages for signed-out visitors (login, register): a signed-in account goes to its home instead. */
export default class GuestMiddleware {
  async handle(ctx: HttpContext, next: NextFn) {
    if (await ctx.auth.use('web').check()) {
      const user = ctx.auth.use('web').user!
      if (!user.disabledAt && sessionEpochCurrent(ctx.session, user)) return ctx.response.redirect(homeFor(user))
    }
    return next()
  }
}
