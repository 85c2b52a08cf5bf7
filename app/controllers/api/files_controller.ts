import type { HttpContext } from '@adonisjs/core/http'
import { apiCallOf, gatewayInstance } from '#gateway/http/generation_request'
import { deleteFile, fileContent, listFiles, showFile, uploadFile } from '#gateway/batches/files_api'
import { listParams } from '#gateway/batches/list_params'
import { unlessClientGone } from '#gateway/batches/upstream_calls'

/** OpenAI's Files API, for the Batch API's input and output files (app/gateway/batches/files_api.ts). */
export default class FilesController {
  /** POST /v1/files: a multipart upload (file, purpose=batch) */
  async store(ctx: HttpContext) {
    return answer(ctx, await unlessClientGone(uploadFile(await gatewayInstance(), apiCallOf(ctx))))
  }

  /** GET /v1/files (purpose, limit, after) */
  async index(ctx: HttpContext) {
    return ctx.response.json(await listFiles(apiCallOf(ctx), listParams(ctx.request.qs(), 10_000, 10_000)))
  }

  /** GET /v1/files/:id */
  async show(ctx: HttpContext) {
    return answer(ctx, await unlessClientGone(showFile(await gatewayInstance(), apiCallOf(ctx), ctx.params.id)))
  }

  /** GET /v1/files/:id/content: the upstream's bytes, streamed */
  async content(ctx: HttpContext) {
    await unlessClientGone(fileContent(await gatewayInstance(), apiCallOf(ctx), ctx.params.id))
  }

  /** DELETE /v1/files/:id */
  async destroy(ctx: HttpContext) {
    return answer(ctx, await unlessClientGone(deleteFile(await gatewayInstance(), apiCallOf(ctx), ctx.params.id)))
  }
}

/** The JSON answer, or nothing for a client that went away. */
function answer(ctx: HttpContext, body: Record<string, any> | undefined) {
  if (body !== undefined) ctx.response.json(body)
}
