import type { HttpContext } from '@adonisjs/core/http'
import type { NextFn } from '@adonisjs/core/types/http'
import { sessionEpochCurrent } from '#services/session_epoch'
import { useRequestLocale } from '#middleware/detect_user_locale_middleware'

/**
 * Pages that need a signed-in account (admin panel, user portal). An
 * anonymous visitor goes to /login and comes back here after it; a disabled
 * account is signed out, and so is a session older than the account's last
 * password change.
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
    if (!sessionEpochCurrent(ctx.session, user)) {
      // The password changed since this session signed in (here or by an admin's reset).
      await ctx.auth.use('web').logout()
      // The panel's routes do not run the locale middleware: its language is set here (ctx.i18n was undefined: a 500).
      ctx.session.flash('error', useRequestLocale(ctx).t('auth.password.signed_out'))
      if (ctx.request.method() === 'GET') ctx.session.put('login.next', ctx.request.url(true))
      return ctx.response.redirect('/login')
    }
    ctx.view.share({ currentUser: user })
    return next()
  }
}
