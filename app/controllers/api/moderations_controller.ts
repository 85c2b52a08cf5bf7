import type { HttpContext } from '@adonisjs/core/http'
import { apiCallOf } from '#gateway/http/generation_request'
import { moderations } from '#gateway/http/api_endpoints'

export default class ModerationsController {
  /** POST /v1/moderations: OpenAI's moderation, relayed to a channel's {base}/moderations. */
  async store(ctx: HttpContext) {
    await moderations(apiCallOf(ctx))
  }
}
