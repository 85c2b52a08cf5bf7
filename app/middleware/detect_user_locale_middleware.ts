import { I18n } from '@adonisjs/i18n'
import i18nManager from '@adonisjs/i18n/services/main'
import type { NextFn } from '@adonisjs/core/types/http'
import type { HttpContext } from '@adonisjs/core/http'
import { LOCALE_COOKIE, LOCALE_NAMES, localeFormatters } from '#services/locale'

/**
 * Picks the page language: the visitor's choice (the language picker's
 * cookie), else the best match for Accept-Language, else English. Pages
 * only: /v1 never runs it.
 */
export default class DetectUserLocaleMiddleware {
  protected requestLocale(ctx: HttpContext) {
    const chosen = ctx.request.plainCookie(LOCALE_COOKIE, { encoded: false })
    if (typeof chosen === 'string' && i18nManager.supportedLocales().includes(chosen)) return chosen
    return i18nManager.getSupportedLocaleFor(ctx.request.languages()) ?? i18nManager.defaultLocale
  }

  async handle(ctx: HttpContext, next: NextFn) {
    ctx.i18n = i18nManager.locale(this.requestLocale(ctx))
    ctx.containerResolver.bindValue(I18n, ctx.i18n)
    if ('view' in ctx) {
      ctx.view.share({
        i18n: ctx.i18n,
        l10n: localeFormatters(ctx.i18n),
        locales: i18nManager.supportedLocales(),
        localeNames: LOCALE_NAMES,
      })
    }
    return next()
  }
}

declare module '@adonisjs/core/http' {
  export interface HttpContext {
    i18n: I18n
  }
}
