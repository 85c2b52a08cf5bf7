import type { HttpContext } from '@adonisjs/core/http'
import { apiCallOf } from '#gateway/http/generation_request'
import { chatCompletions } from '#gateway/http/api_endpoints'

export default class ChatCompletionsController {
  /** POST /v1/chat/completions: OpenAI chat completions, streamed or not, through the routed channel. */
  async store(ctx: HttpContext) {
    await chatCompletions(apiCallOf(ctx))
  }
}
