import type { HttpContext } from '@adonisjs/core/http'
import { apiCallOf, gatewayInstance } from '#gateway/http/generation_request'
import { deleteFile, fileContent, listFiles, showFile, uploadFile } from '#gateway/batches/files_api'
import { listParams } from '#gateway/batches/list_params'
import { unlessClientGone } from '#gateway/batches/upstream_calls'
import {
  anthropicFileContent,
  deleteAnthropicFile,
  isAnthropicFilesCall,
  listAnthropicFiles,
  showAnthropicFile,
  uploadAnthropicFile,
} from '#gateway/provider_files/anthropic_files_api'

/**
 * The Files API at /v1/files: OpenAI's, for the Batch API's input and output
 * files (app/gateway/batches/files_api.ts), or Anthropic's, on Anthropic
 * channels (app/gateway/provider_files/anthropic_files_api.ts), for a call
 * that carries Anthropic's headers (isAnthropicFilesCall; its errors are
 * Anthropic's too: error_renderers.ts dialectForRequest).
 */
export default class FilesController {
  /** POST /v1/files: a multipart upload (file, purpose=batch; Anthropic's: file) */
  async store(ctx: HttpContext) {
    const gw = await gatewayInstance()
    const call = apiCallOf(ctx)
    const upload = isAnthropicFilesCall(call.req.headers) ? uploadAnthropicFile(gw, call) : uploadFile(gw, call)
    return answer(ctx, await unlessClientGone(upload))
  }

  /** GET /v1/files (purpose, limit, after; Anthropic's: limit, after_id, before_id) */
  async index(ctx: HttpContext) {
    const call = apiCallOf(ctx)
    if (isAnthropicFilesCall(call.req.headers)) return ctx.response.json(await listAnthropicFiles(call, ctx.request.qs()))
    return ctx.response.json(await listFiles(call, listParams(ctx.request.qs(), 10_000, 10_000)))
  }

  /** GET /v1/files/:id */
  async show(ctx: HttpContext) {
    const call = apiCallOf(ctx)
    if (isAnthropicFilesCall(call.req.headers)) return ctx.response.json(await showAnthropicFile(call, ctx.params.id))
    return answer(ctx, await unlessClientGone(showFile(await gatewayInstance(), call, ctx.params.id)))
  }

  /** GET /v1/files/:id/content: the upstream's bytes, streamed */
  async content(ctx: HttpContext) {
    const call = apiCallOf(ctx)
    const gw = await gatewayInstance()
    await unlessClientGone(isAnthropicFilesCall(call.req.headers) ? anthropicFileContent(gw, call, ctx.params.id) : fileContent(gw, call, ctx.params.id))
  }

  /** DELETE /v1/files/:id */
  async destroy(ctx: HttpContext) {
    const call = apiCallOf(ctx)
    const gw = await gatewayInstance()
    const deletion: Promise<Record<string, any>> = isAnthropicFilesCall(call.req.headers) ? deleteAnthropicFile(gw, call, ctx.params.id) : deleteFile(gw, call, ctx.params.id)
    return answer(ctx, await unlessClientGone(deletion))
  }
}

/** The JSON answer, or nothing for a client that went away. */
function answer(ctx: HttpContext, body: Record<string, any> | undefined) {
  if (body !== undefined) ctx.response.json(body)
}
