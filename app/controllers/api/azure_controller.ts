import type { HttpContext } from '@adonisjs/core/http'
import { azureEndpoint } from '#gateway/http/azure_endpoints'
import { callByPath } from '#gateway/http/generation_request'

export default class AzureController {
  /**
   * POST /openai/*: Azure OpenAI's paths (`/openai/deployments/{deployment}/...`,
   * `/openai/v1/...`, `/openai/responses`), resolved as the API lane resolves
   * them, so the router (API_LANE=false, or a path the lane passed on) answers alike.
   */
  async call(ctx: HttpContext) {
    await callByPath(ctx, azureEndpoint, 'Unknown Azure OpenAI operation')
  }
}
