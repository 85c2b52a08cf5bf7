import type { HttpContext } from '@adonisjs/core/http'
import { GatewayError } from '#exceptions/gateway_error'
import { azureEndpoint } from '#gateway/http/azure_endpoints'
import { apiCallOf } from '#gateway/http/generation_request'

export default class AzureController {
  /**
   * POST /openai/*: Azure OpenAI's paths (`/openai/deployments/{deployment}/...`,
   * `/openai/v1/...`, `/openai/responses`), resolved as the API lane resolves
   * them, so the router (API_LANE=false, or a path the lane passed on) answers alike.
   */
  async call(ctx: HttpContext) {
    const url = ctx.request.request.url ?? '/'
    const query = url.indexOf('?')
    const target = azureEndpoint(query < 0 ? url : url.slice(0, query))
    if (target === undefined) throw new GatewayError(404, 'not_found', 'Unknown Azure OpenAI operation', 'not_found_error')
    const call = apiCallOf(ctx)
    if (target.deployment !== undefined) call.deployment = target.deployment
    await target.endpoint(call)
  }
}
