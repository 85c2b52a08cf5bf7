import type { HttpContext } from '@adonisjs/core/http'
import type { NextFn } from '@adonisjs/core/types/http'
import { useRequestLocale } from '#middleware/detect_user_locale_middleware'

/**
 * The admin panel: role `admin` only (runs after `auth`); anyone else gets a
 * 403 page, in the visitor's language (the panel itself is in English).
 */
export default class AdminMiddleware {
  async handle(ctx: HttpContext, next: NextFn) {
    if (ctx.auth.use('web').user?.role !== 'admin') {
      ctx.response.status(403)
      useRequestLocale(ctx)
      return ctx.response.send(await ctx.view.render('pages/errors/forbidden'))
    }
    return next()
  }
}
