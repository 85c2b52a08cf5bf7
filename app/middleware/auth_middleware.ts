import type { HttpContext } from '@adonisjs/core/http'
import type { NextFn } from '@adonisjs/core/types/http'

/** Pages that need a signed-in account: anonymous visitors go to /login. (Replaced by the panel's on merge.) */
export default class AuthMiddleware {
  async handle(ctx: HttpContext, next: NextFn) {
    if (!(await ctx.auth.use('web').check())) return ctx.response.redirect('/login')
    ctx.view.share({ currentUser: ctx.auth.use('web').user })
    return next()
  }
}
