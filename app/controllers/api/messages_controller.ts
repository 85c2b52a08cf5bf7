import type { HttpContext } from '@adonisjs/core/http'
import { apiCallOf } from '#gateway/http/generation_request'
import { countMessageTokens, messages } from '#gateway/http/api_endpoints'

export default class MessagesController {
  /** POST /v1/messages: Anthropic Messages, streamed or not, passed through to Anthropic or translated for any channel. */
  async store(ctx: HttpContext) {
    await messages(apiCallOf(ctx))
  }

  /** POST /v1/messages/count_tokens: the prompt's input tokens, from Anthropic or the gateway's tokenizer. */
  async countTokens(ctx: HttpContext) {
    await countMessageTokens(apiCallOf(ctx))
  }
}
