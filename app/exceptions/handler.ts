import app from '@adonisjs/core/services/app'
import { type HttpContext, ExceptionHandler } from '@adonisjs/core/http'
import { GatewayError } from '#exceptions/gateway_error'
import { AdminInputError } from '#actions/admin_input_error'
import { dialectForPath, renderError } from '#gateway/http/error_renderers'
import { clientFacing } from '#gateway/http/client_message'

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
    const gatewayError = clientFacing(toGatewayError(error))
    const res = ctx.response.response
    if (res.headersSent) {
      // A stream already started: nothing valid can be added; just end it.
      if (!res.writableEnded) res.end()
      return
    }
    ctx.response.status(gatewayError.status)
    if (gatewayError.headers) {
      for (const [name, value] of Object.entries(gatewayError.headers)) ctx.response.header(name, value)
    }
    ctx.response.json(renderError(dialectForPath(path), gatewayError))
  }

  async report(error: unknown, ctx: HttpContext) {
    if (error instanceof AdminInputError) return
    if (error instanceof GatewayError) {
      // Expected outcomes (client errors, upstream failures): one line, no stack.
      if (error.status >= 500) ctx.logger.warn({ code: error.code, status: error.status }, error.message)
      return
    }
    return super.report(error, ctx)
  }
}

/** Framework errors (404 route, body too large, ...) keep their status; anything unknown is a 500. */
export function toGatewayError(error: unknown): GatewayError {
  if (error instanceof GatewayError) return error
  const e = error as { status?: number; code?: string; message?: string }
  if (e?.status === 404) return new GatewayError(404, 'not_found', e.message || 'Not found', 'not_found_error')
  if (e?.status === 413) return new GatewayError(413, 'request_too_large', 'Request body is too large')
  if (e?.status && e.status >= 400 && e.status < 500) {
    return new GatewayError(e.status, (e.code || 'invalid_request').toLowerCase(), e.message || 'Bad request')
  }
  if (isDatabaseUnavailable(error)) {
    // A read the caches could not serve (a key not seen yet) during a Postgres outage.
    const unavailable = new GatewayError(503, 'database_unavailable', 'The gateway cannot reach its database; retry shortly', 'service_unavailable')
    unavailable.headers = { 'retry-after': '5' }
    return unavailable
  }
  return GatewayError.internal()
}

/** Postgres is down, restarting or unreachable (not a bug of the request). */
function isDatabaseUnavailable(error: unknown): boolean {
  const e = error as { code?: string; message?: string }
  if (typeof e?.code === 'string' && /^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|57P0[1-3]|08\d{3})$/.test(e.code)) return true
  return /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error/.test(e?.message ?? '')
}
