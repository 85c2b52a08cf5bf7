import type { HttpContext } from '@adonisjs/core/http'
import { GatewayError } from '#exceptions/gateway_error'
import { engineEndpoint } from '#gateway/http/engine_endpoints'
import { apiCallOf } from '#gateway/http/generation_request'

export default class EnginesController {
  /**
   * POST /v1/engines/* and /engines/*: OpenAI's legacy engine paths
   * (`{engine}/completions`, `/chat/completions`, `/embeddings`), resolved as
   * the API lane resolves them, so the router (API_LANE=false) answers alike.
   */
  async call(ctx: HttpContext) {
    const url = ctx.request.request.url ?? '/'
    const query = url.indexOf('?')
    const target = engineEndpoint(query < 0 ? url : url.slice(0, query))
    if (target === undefined) throw new GatewayError(404, 'not_found', 'Unknown engine operation', 'not_found_error')
    const call = apiCallOf(ctx)
    call.deployment = target.deployment
    await target.endpoint(call)
  }
}
