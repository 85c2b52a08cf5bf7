import type { HttpContext } from '@adonisjs/core/http'
import { apiCallOf } from '#gateway/http/generation_request'
import { responses, responsesCompact } from '#gateway/http/api_endpoints'

export default class ResponsesController {
  /** POST /v1/responses: OpenAI Responses, passed through to OpenAI or translated for chat-only channels. */
  async store(ctx: HttpContext) {
    await responses(apiCallOf(ctx))
  }

  /** POST /v1/responses/compact: Codex's remote compaction (responses_compact.ts). */
  async compact(ctx: HttpContext) {
    await responsesCompact(apiCallOf(ctx))
  }

  /** GET /v1/responses: Codex tries a WebSocket here first; 426 sends it to HTTP + SSE. */
  async upgrade({ response }: HttpContext) {
    response.status(426).header('upgrade', 'HTTP/1.1')
    return response.json({
      error: { message: 'WebSocket is not supported here; use POST /v1/responses with stream:true', type: 'invalid_request_error', param: null, code: 'upgrade_required' },
    })
  }

  /** GET/DELETE /v1/responses/:id: the gateway stores no responses (clients send store:false). */
  async unsupported({ response, request }: HttpContext) {
    response.status(501)
    return response.json({
      error: { message: `${request.method()} /v1/responses/{id} is not supported: the gateway does not store responses`, type: 'invalid_request_error', param: null, code: 'not_implemented' },
    })
  }
}
