import type { HttpContext } from '@adonisjs/core/http'
import { apiCallOf, gatewayInstance } from '#gateway/http/generation_request'
import { cancelResponse, deleteResponse, listInputItems, showResponse } from '#gateway/responses_store/responses_api'
import { unlessClientGone } from '#gateway/batches/upstream_calls'
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

  /** GET /v1/responses/:id: a stored response (responses_store/responses_api.ts); `stream=true&starting_after=N`: its events */
  async show(ctx: HttpContext) {
    return answer(ctx, await unlessClientGone(showResponse(await gatewayInstance(), apiCallOf(ctx), ctx.params.id, ctx.request.qs())))
  }

  /** POST /v1/responses/:id/cancel: a background response stopped */
  async cancel(ctx: HttpContext) {
    return answer(ctx, await unlessClientGone(cancelResponse(await gatewayInstance(), apiCallOf(ctx), ctx.params.id)))
  }

  /** DELETE /v1/responses/:id */
  async destroy(ctx: HttpContext) {
    return answer(ctx, await unlessClientGone(deleteResponse(await gatewayInstance(), apiCallOf(ctx), ctx.params.id)))
  }

  /** GET /v1/responses/:id/input_items (limit, order, after) */
  async inputItems(ctx: HttpContext) {
    return answer(ctx, await unlessClientGone(listInputItems(await gatewayInstance(), apiCallOf(ctx), ctx.params.id, ctx.request.qs())))
  }
}

/** The JSON answer, or nothing for a client that went away. */
function answer(ctx: HttpContext, body: Record<string, any> | undefined) {
  if (body !== undefined) ctx.response.json(body)
}
