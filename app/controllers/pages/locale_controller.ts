import type { HttpContext } from '@adonisjs/core/http'
import i18nManager from '@adonisjs/i18n/services/main'
import { LOCALE_COOKIE } from '#services/locale'
import { safeNextPath } from '#services/home_path'

export default class LocaleController {
  /** GET /lang/:locale: the language picker; remembers the choice for a year and goes back. */
  async update({ params, request, response }: HttpContext) {
    if (i18nManager.supportedLocales().includes(params.locale)) {
      response.plainCookie(LOCALE_COOKIE, params.locale, { encode: false, maxAge: '1y', httpOnly: false, sameSite: 'lax' })
    }
    // Back to the page the picker was on, never to another site: a path of
    // ours such as //evil.com or /\evil.com (a 404 page's Referer) is one, and
    // a Referer that is no URL at all goes to /docs.
    const back = URL.parse(request.header('referer') ?? '', 'http://local')
    const path = back && back.host === request.host() ? safeNextPath(back.pathname + back.search + back.hash) : null
    return response.redirect(path ?? '/docs')
  }
}
