import type { HttpContext } from '@adonisjs/core/http'
import type { NextFn } from '@adonisjs/core/types/http'
import { authenticate } from '#gateway/auth/authenticate'
import { gatewayInstance } from '#gateway/http/generation_request'
import type { Principal } from '#gateway/types'

declare module '@adonisjs/core/http' {
  interface HttpContext {
    principal: Principal
  }
}

/**
 * API routes served through the router (GET /v1/models, /v1beta, ...): key
 * auth and rate limits, as the API lane runs them for the POST endpoints.
 */
export default class ApiKeyMiddleware {
  async handle(ctx: HttpContext, next: NextFn) {
    ctx.principal = await authenticate(await gatewayInstance(), ctx.request.request, ctx.response.response)
    return next()
  }
}
