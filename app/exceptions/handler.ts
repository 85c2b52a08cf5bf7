import app from '@adonisjs/core/services/app'
import { type HttpContext, ExceptionHandler } from '@adonisjs/core/http'
import { GatewayError } from '#exceptions/gateway_error'
import { AdminInputError } from '#actions/admin_input_error'
import { apiErrorAnswer, reportApiError } from '#gateway/http/api_errors'

const API_PREFIXES = ['/v1', '/api/']

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
    if (!API_PREFIXES.some((prefix) => path.startsWith(prefix))) {
      // A panel form refused by an action: back to the form with what was typed and the reason.
      if (error instanceof AdminInputError && 'session' in ctx && ctx.session) {
        ctx.session.flashExcept(['_csrf', '_method', 'password', 'apiKey'])
        if (error.field) ctx.session.flash('inputErrorsBag', { [error.field]: [error.message] })
        ctx.session.flash('error', error.message)
        return ctx.response.redirect().back()
      }
      return super.handle(error, ctx)
    }
    const res = ctx.response.response
    if (res.headersSent) {
      // A stream already started: nothing valid can be added; just end it.
      if (!res.writableEnded) res.end()
      return
    }
    const answer = apiErrorAnswer(error, path)
    ctx.response.status(answer.status)
    if (answer.headers) {
      for (const [name, value] of Object.entries(answer.headers)) ctx.response.header(name, value)
    }
    ctx.response.json(answer.body)
  }

  async report(error: unknown, ctx: HttpContext) {
    if (error instanceof AdminInputError) return
    if (error instanceof GatewayError) return reportApiError(error, ctx.logger)
    return super.report(error, ctx)
  }
}
