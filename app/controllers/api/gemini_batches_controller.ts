import type { HttpContext } from '@adonisjs/core/http'
import { GatewayError } from '#exceptions/gateway_error'
import { apiCallOf, gatewayInstance } from '#gateway/http/generation_request'
import { unlessClientGone } from '#gateway/batches/upstream_calls'
import {
  cancelGeminiBatch,
  deleteGeminiBatch,
  downloadGeminiFile,
  listGeminiBatches,
  showGeminiBatch,
} from '#gateway/batches/gemini_batches_api'

/**
 * Gemini's Batch API on google channels (app/gateway/batches/gemini_batches_api.ts):
 * get, list, cancel, delete, and the results file's download. The creation
 * (`models/{m}:batchGenerateContent`) is one of GeminiController's methods.
 */
export default class GeminiBatchesController {
  /** GET /v1beta/batches (pageSize, pageToken) */
  async index(ctx: HttpContext) {
    return ctx.response.json(await listGeminiBatches(apiCallOf(ctx), ctx.request.qs()))
  }

  /** GET /v1beta/batches/:id */
  async show(ctx: HttpContext) {
    return answer(ctx, await unlessClientGone(showGeminiBatch(await gatewayInstance(), apiCallOf(ctx), ctx.params.id)))
  }

  /** POST /v1beta/batches/:id:cancel (Google's custom method: the param holds `{id}:cancel`) */
  async cancel(ctx: HttpContext) {
    const id = String(ctx.params.target)
    if (!id.endsWith(':cancel')) throw new GatewayError(404, 'not_found', `Unknown method on batches/${id.slice(0, 100)}`, 'not_found_error')
    return answer(ctx, await unlessClientGone(cancelGeminiBatch(await gatewayInstance(), apiCallOf(ctx), id.slice(0, -':cancel'.length))))
  }

  /** DELETE /v1beta/batches/:id */
  async destroy(ctx: HttpContext) {
    return answer(ctx, await unlessClientGone(deleteGeminiBatch(await gatewayInstance(), apiCallOf(ctx), ctx.params.id)))
  }

  /** GET /download/v1beta/files/:id:download (?alt=media): the owner's file's bytes, relayed */
  async download(ctx: HttpContext) {
    const target = String(ctx.params.target)
    if (!target.endsWith(':download')) throw new GatewayError(404, 'not_found', `Unknown method on files/${target.slice(0, 100)}`, 'not_found_error')
    await unlessClientGone(downloadGeminiFile(await gatewayInstance(), apiCallOf(ctx), `files/${target.slice(0, -':download'.length)}`))
  }
}

/** The JSON answer, or nothing for a client that went away. */
function answer(ctx: HttpContext, body: Record<string, any> | undefined) {
  if (body !== undefined) ctx.response.json(body)
}
