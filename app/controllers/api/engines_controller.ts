import type { HttpContext } from '@adonisjs/core/http'
import { engineEndpoint } from '#gateway/http/engine_endpoints'
import { callByPath } from '#gateway/http/generation_request'

export default class EnginesController {
  /**
   * POST /v1/engines/* and /engines/*: OpenAI's legacy engine paths
   * (`{engine}/completions`, `/chat/completions`, `/embeddings`), resolved as
   * the API lane resolves them, so the router (API_LANE=false) answers alike.
   */
  async call(ctx: HttpContext) {
    await callByPath(ctx, engineEndpoint, 'Unknown engine operation')
  }
}
