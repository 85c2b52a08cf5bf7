import type { HttpContext } from '@adonisjs/core/http'
import { apiCallOf, gatewayInstance } from '#gateway/http/generation_request'
import { cancelBatch, createBatch, listBatches, showBatch } from '#gateway/batches/batches_api'
import { listParams } from '#gateway/batches/list_params'
import { unlessClientGone } from '#gateway/batches/upstream_calls'

/** OpenAI's Batch API on OpenAI-compatible channels (app/gateway/batches/batches_api.ts). */
export default class BatchesController {
  /** POST /v1/batches {input_file_id, endpoint, completion_window, metadata} */
  async store(ctx: HttpContext) {
    return answer(ctx, await unlessClientGone(createBatch(await gatewayInstance(), apiCallOf(ctx))))
  }

  /** GET /v1/batches (after, limit) */
  async index(ctx: HttpContext) {
    return ctx.response.json(await listBatches(apiCallOf(ctx), listParams(ctx.request.qs(), 20, 100)))
  }

  /** GET /v1/batches/:id: asked upstream, billed once finished */
  async show(ctx: HttpContext) {
    return answer(ctx, await unlessClientGone(showBatch(await gatewayInstance(), apiCallOf(ctx), ctx.params.id)))
  }

  /** POST /v1/batches/:id/cancel */
  async cancel(ctx: HttpContext) {
    return answer(ctx, await unlessClientGone(cancelBatch(await gatewayInstance(), apiCallOf(ctx), ctx.params.id)))
  }
}

/** The JSON answer, or nothing for a client that went away. */
function answer(ctx: HttpContext, body: Record<string, any> | undefined) {
  if (body !== undefined) ctx.response.json(body)
}
