import type { HttpContext } from '@adonisjs/core/http'
import { apiCallOf } from '#gateway/http/generation_request'
import { completions } from '#gateway/http/api_endpoints'

export default class CompletionsController {
  /** POST /v1/completions: OpenAI's legacy text completions (FIM with `suffix`), passed through. */
  async store(ctx: HttpContext) {
    await completions(apiCallOf(ctx))
  }
}
