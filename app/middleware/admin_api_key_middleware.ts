import type { HttpContext } from '@adonisjs/core/http'
import type { NextFn } from '@adonisjs/core/types/http'
import { authenticate } from '#gateway/auth/authenticate'
import { gatewayInstance } from '#gateway/http/generation_request'
import { GatewayError } from '#exceptions/gateway_error'

/**
 * The management API (/api/admin): a key issued with the management scope
 * (`manage`) whose owner is an admin, as LiteLLM's master key. Key auth, rate
 * limits and a disabled owner's refusal are the API's own (authenticate);
 * then the scope and the owner's role: an admin's everyday key is refused.
 */
export default class AdminApiKeyMiddleware {
  async handle(ctx: HttpContext, next: NextFn) {
    const principal = await authenticate(await gatewayInstance(), ctx.request.request, ctx.response.response)
    if (!principal.key.manage || principal.user.role !== 'admin') {
      throw new GatewayError(
        403,
        'admin_required',
        'The management API needs a management key of an administrator (issued with "manage": panel, key:create --manage)',
        'permission_error'
      )
    }
    ctx.principal = principal
    return next()
  }
}
