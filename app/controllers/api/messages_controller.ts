import type { HttpContext } from '@adonisjs/core/http'
import { generate, withAccount } from '#gateway/http/generation_request'
import { countTokensEnvelope, messagesEnvelope } from '#validators/generation'

export default class MessagesController {
  /** POST /v1/messages: Anthropic Messages, streamed or not, passed through to Anthropic or translated for any channel. */
  async store(ctx: HttpContext) {
    await generate(ctx, 'messages', 'anthropic_messages', messagesEnvelope)
  }

  /** POST /v1/messages/count_tokens: the prompt's input tokens, from Anthropic or the gateway's tokenizer. */
  async countTokens(ctx: HttpContext) {
    await withAccount(ctx, 'messages.count_tokens', countTokensEnvelope, (gw, account, { rawBody, body }) =>
      gw.service.countTokens(
        {
          principal: ctx.principal,
          ingress: 'anthropic_messages',
          rawBody,
          body,
          model: body.model,
          req: ctx.request.request,
          res: ctx.response.response,
        },
        account
      )
    )
  }
}
