import app from '@adonisjs/core/services/app'
import { type HttpContext, ExceptionHandler } from '@adonisjs/core/http'
import { GatewayError } from '#exceptions/gateway_error'
import { AdminInputError } from '#actions/admin_input_error'
import { isDataException, reportApiError, sendApiError } from '#gateway/http/api_errors'
import { isApiPath } from '#gateway/http/api_paths'
import { dialectForRequest } from '#gateway/http/error_renderers'
import { useRequestLocale } from '#middleware/detect_user_locale_middleware'
import i18nManager from '@adonisjs/i18n/services/main'

/**
 * API routes answer every error in the wire format of the endpoint called,
 * never with a stack trace; the admin panel keeps Adonis's HTML handling.
 */
export default class HttpExceptionHandler extends ExceptionHandler {
  protected debug = !app.inProduction

  /** Pages (panel, login) in production: a readable error page, never a stack trace. */
  protected renderStatusPages = app.inProduction
  protected statusPages = {
    '404': (_: unknown, { view }: HttpContext) => view.render('pages/errors/not_found'),
    '500..599': (_: unknown, { view }: HttpContext) => view.render('pages/errors/server_error'),
  }

  async handle(error: unknown, ctx: HttpContext) {
    const path = ctx.request.url()
    if (!isApiPath(path)) {
      // A panel form refused by an action: back to the form with what was typed and the reason.
      if (error instanceof AdminInputError && 'session' in ctx && ctx.session) {
        ctx.session.flashExcept(['_csrf', '_method', 'password', 'apiKey', 'oidcClientSecret', 'githubClientSecret'])
        if (error.field) {
          // Said once: beside the field when the page it goes back to renders it, else at the top
          // (components/flash.edge); the summary at the top then points to it, as for a VineJS refusal.
          ctx.session.flash('inputErrorsBag', { [error.field]: [error.message] })
          ctx.session.flash('errorsBag', { E_VALIDATION_ERROR: panelText(ctx, 'errors.E_VALIDATION_ERROR') })
        } else {
          ctx.session.flash('error', error.message)
        }
        return ctx.response.redirect().back()
      }
      // A form value Postgres refused (a NUL in a text, a number past its column): the form again with why, not a 500.
      if (isDataException(error) && ctx.request.method() === 'POST' && 'session' in ctx && ctx.session) {
        ctx.session.flashExcept(['_csrf', '_method', 'password', 'apiKey', 'oidcClientSecret', 'githubClientSecret'])
        ctx.session.flash('error', 'A value in the form is out of range or contains characters that cannot be stored')
        return ctx.response.redirect().back()
      }
      // Error pages in the visitor's language, also where the locale middleware did not run
      // (a path no route matches, the panel).
      useRequestLocale(ctx)
      return super.handle(error, ctx)
    }
    // The same answer the API lane writes (on the raw response: Adonis then has nothing left to send).
    sendApiError(error, path, ctx.response.response, dialectForRequest(path, ctx.request.request.headers))
  }

  async report(error: unknown, ctx: HttpContext) {
    if (error instanceof AdminInputError) return
    // A panel form's value the database refused went back to the form (handle): the visitor's input, not a failure.
    if (isDataException(error) && ctx.request.method() === 'POST' && !isApiPath(ctx.request.url())) return
    // API errors log as the lane logs them (a client's bad value is not a stack trace in the log).
    if (error instanceof GatewayError || isApiPath(ctx.request.url())) {
      return reportApiError(error, ctx.logger)
    }
    return super.report(error, ctx)
  }
}

/** A text in the request's language where the locale middleware ran (as VineJS's summary), else the default (the panel's). */
function panelText(ctx: HttpContext, key: string) {
  return (ctx.i18n ?? i18nManager.locale(i18nManager.defaultLocale)).t(key)
}
