import type { HttpContext } from '@adonisjs/core/http'
import type { NextFn } from '@adonisjs/core/types/http'
import app from '@adonisjs/core/services/app'
import { extractApiKey, resolvePrincipal } from '#gateway/auth/key_resolver'
import type { Gateway } from '#gateway/gateway'
import { admit, hasLimits } from '#gateway/limits/rate_limits'
import type { Principal } from '#gateway/types'

declare module '@adonisjs/core/http' {
  interface HttpContext {
    principal: Principal
  }
}

let gateway: Gateway | undefined

/**
 * Resolves the API key (any of the headers clients use) to its key, owner and
 * plan, from memory, and applies the key's and plan's rate limits.
 */
export default class ApiKeyMiddleware {
  async handle(ctx: HttpContext, next: NextFn) {
    gateway ??= await app.container.make('gateway')
    // The server may accept connections before boot has loaded the catalog.
    if (!gateway.catalog.loaded) await gateway.catalog.ensureLoaded()
    const req = ctx.request.request
    const principal = await resolvePrincipal(gateway.catalog, extractApiKey(req.headers, req.url))
    ctx.principal = principal
    // Rate limits apply to the calls that do work (POST); listing models or usage is free.
    if (req.method === 'POST' && hasLimits(principal)) {
      const headers = await admit(principal)
      // On the raw response: merged into every answer, relayed streams included.
      for (const name in headers) ctx.response.response.setHeader(name, headers[name])
    }
    return next()
  }
}
