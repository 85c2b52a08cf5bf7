import type { HttpContext } from '@adonisjs/core/http'
import app from '@adonisjs/core/services/app'
import type { Gateway } from '#gateway/gateway'
import { parseJsonObject, readRawBody } from '#gateway/http/raw_body'
import { validateEnvelope } from '#gateway/http/envelope'
import { bodyLimitFor } from '#gateway/http/body_limits'
import { assertStorableModel } from '#gateway/http/model_name'
import { chatCompletionEnvelope } from '#validators/chat_completion'

let gateway: Gateway | undefined
const CHAT_BODY_LIMIT = bodyLimitFor('chat.completions')

export default class ChatCompletionsController {
  /** POST /v1/chat/completions: OpenAI chat completions, streamed or not, through the routed channel. */
  async store({ request, response, principal }: HttpContext) {
    gateway ??= await app.container.make('gateway')
    const account = gateway.service.openAccount(principal, 'chat.completions')
    try {
      const rawBody = await readRawBody(request.request, response.response, CHAT_BODY_LIMIT)
      const body = parseJsonObject(rawBody)
      const model = typeof body.model === 'string' ? body.model : ''
      assertStorableModel(model)
      account.model = model
      const envelope = await validateEnvelope(chatCompletionEnvelope, body)
      await gateway.service.chatCompletions(
        {
          principal,
          rawBody,
          body,
          model: envelope.model,
          stream: envelope.stream === true,
          req: request.request,
          res: response.response,
        },
        account
      )
    } catch (error) {
      account.fail(error)
      throw error
    }
  }
}
