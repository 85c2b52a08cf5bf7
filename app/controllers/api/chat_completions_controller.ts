import type { HttpContext } from '@adonisjs/core/http'
import app from '@adonisjs/core/services/app'
import type { Gateway } from '#gateway/gateway'
import { parseJsonObject, readRawBody } from '#gateway/http/raw_body'
import { validateEnvelope } from '#gateway/http/envelope'
import { chatCompletionEnvelope } from '#validators/chat_completion'

let gateway: Gateway | undefined

export default class ChatCompletionsController {
  /** POST /v1/chat/completions: OpenAI chat completions, streamed or not, through the routed channel. */
  async store({ request, response, principal }: HttpContext) {
    gateway ??= await app.container.make('gateway')
    const account = gateway.service.openAccount(principal, 'chat.completions')
    try {
      const rawBody = await readRawBody(request.request)
      const body = parseJsonObject(rawBody)
      account.model = typeof body.model === 'string' ? body.model : ''
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
