import { currentAnnouncement } from '#actions/set_announcement'
import { I18n } from '@adonisjs/i18n'
import i18nManager from '@adonisjs/i18n/services/main'
import type { NextFn } from '@adonisjs/core/types/http'
import type { HttpContext } from '@adonisjs/core/http'
import { LOCALE_COOKIE, LOCALE_NAMES, localeFormatters } from '#services/locale'

/**
 * The page language: the visitor's choice (the language picker's cookie),
 * else the best match for Accept-Language, else English.
 */
function requestLocale(ctx: HttpContext) {
  const chosen = ctx.request.plainCookie(LOCALE_COOKIE, { encoded: false })
  if (typeof chosen === 'string' && i18nManager.supportedLocales().includes(chosen)) return chosen
  return i18nManager.getSupportedLocaleFor(ctx.request.languages()) ?? i18nManager.defaultLocale
}

/**
 * Sets the request's language (ctx.i18n, t() in templates, the picker).
 * The middleware runs it on the portal, docs, status and login routes; the
 * error pages run it themselves (403 in the panel, 404 of an unknown path,
 * 500), since they are shown where the middleware did not run.
 */
export function useRequestLocale(ctx: HttpContext) {
  if (!ctx.i18n) {
    ctx.i18n = i18nManager.locale(requestLocale(ctx))
    ctx.containerResolver.bindValue(I18n, ctx.i18n)
  }
  if ('view' in ctx) {
    ctx.view.share({
      i18n: ctx.i18n,
      l10n: localeFormatters(ctx.i18n),
      locales: i18nManager.supportedLocales(),
      localeNames: LOCALE_NAMES,
    })
  }
  return ctx.i18n
}

/** Pages only: /v1 never runs it. */
export default class DetectUserLocaleMiddleware {
  async handle(ctx: HttpContext, next: NextFn) {
    useRequestLocale(ctx)
    // The operator's announcement, on every portal and public page (cached a few seconds per process).
    if ('view' in ctx) ctx.view.share({ announcement: await currentAnnouncement() })
    return next()
  }
}

declare module '@adonisjs/core/http' {
  export interface HttpContext {
    i18n: I18n
  }
}
