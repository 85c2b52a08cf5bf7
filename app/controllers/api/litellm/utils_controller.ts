import type { HttpContext } from '@adonisjs/core/http'
import app from '@adonisjs/core/services/app'
import { GatewayError } from '#exceptions/gateway_error'
import { modelAllowed } from '#gateway/access_policy'
import { modelNameProblem } from '#gateway/http/model_name'
import { countChatPromptTokens, countTokens } from '#gateway/metering/tokenizer'
import { fieldError } from '#services/litellm_management'

/**
 * LiteLLM's `POST /utils/token_counter` {model, messages | prompt}: the
 * tokens of a prompt as the gateway counts them when an upstream reports no
 * usage (metering/tokenizer.ts: o200k_base, chat framing as OpenAI bills
 * it), in LiteLLM's shape. Any key, for a model it may use; no upstream
 * call, no usage row. `model_used` is the name the model's first channel is
 * sent (its mapping), the request's own when no channel serves it.
 */
export default class UtilsController {
  async tokenCounter({ principal, request, response }: HttpContext) {
    const gateway = await app.container.make('gateway')
    // In flight like the /v1 calls (the key's max_parallel was taken at auth): the global bound, refused while draining.
    gateway.service.admitUnmetered(response.response)
    const body = request.body()
    const model = body.model
    if (typeof model !== 'string' || model === '') throw fieldError('model', 'a model name is required')
    const problem = modelNameProblem(model)
    if (problem) throw fieldError('model', problem)
    if (!modelAllowed(principal, model)) throw GatewayError.modelNotAllowed(model)
    let total: number
    if (body.messages !== undefined && body.messages !== null) {
      if (!Array.isArray(body.messages)) throw fieldError('messages', 'a list of chat messages is expected')
      assertChatMessages(body.messages)
      total = await countChatPromptTokens(body.messages)
    } else if (body.prompt !== undefined && body.prompt !== null) {
      if (typeof body.prompt !== 'string') throw fieldError('prompt', 'a string is expected')
      total = await countTokens(body.prompt)
    } else {
      throw GatewayError.invalidRequest('prompt or messages is required: the text to count', 'missing_required_parameter', 'messages')
    }
    let used = model
    try {
      used = gateway.service.router(principal.plan).route(model)[0]?.upstreamModel ?? model
    } catch {
      // No channel serves it (or not for this plan): counted all the same, under the name asked for.
    }
    return response.json({
      total_tokens: total,
      request_model: model,
      model_used: used,
      tokenizer_type: 'openai_tokenizer',
      original_response: null,
      error: false,
      error_message: null,
      status_code: null,
    })
  }
}

/**
 * Each message an object whose content is text, a list of parts or absent,
 * and whose tool calls a list: the tokenizer skipped anything else, so
 * `[1, "x", null]` or `content: 5` was answered as a count (of framing
 * only) that no upstream would ever bill, where a generation refuses it.
 */
function assertChatMessages(messages: unknown[]) {
  messages.forEach((message, i) => {
    const at = `messages[${i}]`
    if (message === null || typeof message !== 'object' || Array.isArray(message)) throw fieldError(at, 'a chat message object is expected')
    const { content, tool_calls: toolCalls, name } = message as Record<string, unknown>
    if (content !== undefined && content !== null && typeof content !== 'string' && !Array.isArray(content)) {
      throw fieldError(`${at}.content`, 'text or a list of content parts is expected')
    }
    if (toolCalls !== undefined && toolCalls !== null && !Array.isArray(toolCalls)) throw fieldError(`${at}.tool_calls`, 'a list is expected')
    if (name !== undefined && name !== null && typeof name !== 'string') throw fieldError(`${at}.name`, 'a string is expected')
  })
}
