import type { HttpContext } from '@adonisjs/core/http'
import { apiCallOf, gatewayInstance } from '#gateway/http/generation_request'
import { deleteFile, fileContent, listFiles, showFile, uploadFile } from '#gateway/batches/files_api'
import { listParams } from '#gateway/batches/list_params'

/** OpenAI's Files API, for the Batch API's input and output files (app/gateway/batches/files_api.ts). */
export default class FilesController {
  /** POST /v1/files: a multipart upload (file, purpose=batch) */
  async store(ctx: HttpContext) {
    return ctx.response.json(await uploadFile(await gatewayInstance(), apiCallOf(ctx)))
  }

  /** GET /v1/files (purpose, limit, after) */
  async index(ctx: HttpContext) {
    return ctx.response.json(await listFiles(apiCallOf(ctx), listParams(ctx.request.qs(), 10_000, 10_000)))
  }

  /** GET /v1/files/:id */
  async show(ctx: HttpContext) {
    return ctx.response.json(await showFile(await gatewayInstance(), apiCallOf(ctx), ctx.params.id))
  }

  /** GET /v1/files/:id/content: the upstream's bytes, streamed */
  async content(ctx: HttpContext) {
    await fileContent(await gatewayInstance(), apiCallOf(ctx), ctx.params.id)
  }

  /** DELETE /v1/files/:id */
  async destroy(ctx: HttpContext) {
    return ctx.response.json(await deleteFile(await gatewayInstance(), apiCallOf(ctx), ctx.params.id))
  }
}
