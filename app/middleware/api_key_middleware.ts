import type { HttpContext } from '@adonisjs/core/http'
import type { NextFn } from '@adonisjs/core/types/http'
import app from '@adonisjs/core/services/app'
import { extractApiKey, resolvePrincipal } from '#gateway/auth/key_resolver'
import type { Gateway } from '#gateway/gateway'
import type { Principal } from '#gateway/types'

declare module '@adonisjs/core/http' {
  interface HttpContext {
    principal: Principal
  }
}

let gateway: Gateway | undefined

/** Resolves the API key (any of the headers clients use) to its key, owner and plan, from memory. */
export default class ApiKeyMiddleware {
  async handle(ctx: HttpContext, next: NextFn) {
    gateway ??= await app.container.make('gateway')
    const req = ctx.request.request
    ctx.principal = await resolvePrincipal(gateway.catalog, extractApiKey(req.headers, req.url))
    return next()
  }
}
