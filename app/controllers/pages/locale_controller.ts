import type { HttpContext } from '@adonisjs/core/http'
import i18nManager from '@adonisjs/i18n/services/main'
import { LOCALE_COOKIE } from '#services/locale'

export default class LocaleController {
  /** GET /lang/:locale: the language picker; remembers the choice for a year and goes back. */
  async update({ params, request, response }: HttpContext) {
    if (i18nManager.supportedLocales().includes(params.locale)) {
      response.plainCookie(LOCALE_COOKIE, params.locale, { encode: false, maxAge: '1y', httpOnly: false, sameSite: 'lax' })
    }
    // Back to the page the picker was on, never to another site.
    const back = request.header('referer')
    let target = '/docs'
    if (back) {
      const url = new URL(back, 'http://local')
      if (url.host === request.host()) target = url.pathname + url.search + url.hash
    }
    return response.redirect(target)
  }
}
