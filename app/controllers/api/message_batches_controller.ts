import type { HttpContext } from '@adonisjs/core/http'
import { apiCallOf, gatewayInstance } from '#gateway/http/generation_request'
import {
  cancelMessageBatch,
  createMessageBatch,
  deleteMessageBatch,
  listMessageBatches,
  messageBatchListParams,
  messageBatchResults,
  showMessageBatch,
} from '#gateway/batches/message_batches_api'
import { unlessClientGone } from '#gateway/batches/upstream_calls'
import { requestBaseUrl } from '#controllers/pages/docs_controller'

/** Anthropic's Message Batches on Anthropic channels (app/gateway/batches/message_batches_api.ts). */
export default class MessageBatchesController {
  /** POST /v1/messages/batches {requests: [{custom_id, params}]} */
  async store(ctx: HttpContext) {
    return answer(ctx, await unlessClientGone(createMessageBatch(await gatewayInstance(), apiCallOf(ctx), requestBaseUrl(ctx.request))))
  }

  /** GET /v1/messages/batches (limit, after_id, before_id) */
  async index(ctx: HttpContext) {
    const params = messageBatchListParams(ctx.request.qs())
    return ctx.response.json(await listMessageBatches(apiCallOf(ctx), params, requestBaseUrl(ctx.request)))
  }

  /** GET /v1/messages/batches/:id: asked upstream, billed once ended */
  async show(ctx: HttpContext) {
    return answer(ctx, await unlessClientGone(showMessageBatch(await gatewayInstance(), apiCallOf(ctx), ctx.params.id, requestBaseUrl(ctx.request))))
  }

  /** POST /v1/messages/batches/:id/cancel */
  async cancel(ctx: HttpContext) {
    return answer(ctx, await unlessClientGone(cancelMessageBatch(await gatewayInstance(), apiCallOf(ctx), ctx.params.id, requestBaseUrl(ctx.request))))
  }

  /** GET /v1/messages/batches/:id/results: the upstream's JSONL relayed (written on the raw response) */
  async results(ctx: HttpContext) {
    await unlessClientGone(messageBatchResults(await gatewayInstance(), apiCallOf(ctx), ctx.params.id))
  }

  /** DELETE /v1/messages/batches/:id */
  async destroy(ctx: HttpContext) {
    return answer(ctx, await unlessClientGone(deleteMessageBatch(await gatewayInstance(), apiCallOf(ctx), ctx.params.id)))
  }
}

/** The JSON answer, or nothing for a client that went away. */
function answer(ctx: HttpContext, body: Record<string, any> | undefined) {
  if (body !== undefined) ctx.response.json(body)
}
