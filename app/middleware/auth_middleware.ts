import type { HttpContext } from '@adonisjs/core/http'
import type { NextFn } from '@adonisjs/core/types/http'

/**
 * Pages that need a signed-in account (admin panel, user portal). An
 * anonymous visitor goes to /login and comes back here after it; a disabled
 * account is signed out.
 */
export default class AuthMiddleware {
  async handle(ctx: HttpContext, next: NextFn) {
    const signedIn = await ctx.auth.use('web').check()
    const user = ctx.auth.use('web').user
    if (!signedIn || !user) {
      if (ctx.request.method() === 'GET') ctx.session.put('login.next', ctx.request.url(true))
      return ctx.response.redirect('/login')
    }
    if (user.disabledAt) {
      await ctx.auth.use('web').logout()
      ctx.session.flash('error', 'This account is disabled.')
      return ctx.response.redirect('/login')
    }
    ctx.view.share({ currentUser: user })
    return next()
  }
}
