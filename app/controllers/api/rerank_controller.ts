import type { HttpContext } from '@adonisjs/core/http'
import { apiCallOf } from '#gateway/http/generation_request'
import { rerank } from '#gateway/http/api_endpoints'

export default class RerankController {
  /** POST /v1/rerank, /v2/rerank, /rerank: Jina / Cohere rerank, relayed to a channel's {base}/rerank. */
  async store(ctx: HttpContext) {
    await rerank(apiCallOf(ctx))
  }
}
