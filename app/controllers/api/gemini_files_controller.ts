import type { HttpContext } from '@adonisjs/core/http'
import { apiCallOf, gatewayInstance } from '#gateway/http/generation_request'
import { unlessClientGone } from '#gateway/batches/upstream_calls'
import { requestBaseUrl } from '#controllers/pages/docs_controller'
import { deleteGeminiFile, geminiUpload, listGeminiFiles, showGeminiFile } from '#gateway/provider_files/gemini_files_api'
import { createGeminiCache, deleteGeminiCache, listGeminiCaches, showGeminiCache, updateGeminiCache } from '#gateway/provider_files/gemini_caches_api'

/** Gemini's Files API and cachedContents on google channels (app/gateway/provider_files/). */
export default class GeminiFilesController {
  /** POST /upload/v1beta/files: a resumable upload's start or chunk, or a multipart upload */
  async upload(ctx: HttpContext) {
    const answer = await unlessClientGone(geminiUpload(await gatewayInstance(), apiCallOf(ctx), ctx.request.qs(), requestBaseUrl(ctx.request)))
    if (answer === undefined) return
    for (const [name, value] of Object.entries(answer.headers)) ctx.response.header(name, value)
    ctx.response.status(answer.status)
    if (answer.body === null) return ctx.response.send('')
    return ctx.response.json(answer.body)
  }

  /** GET /v1beta/files (pageSize, pageToken) */
  async index(ctx: HttpContext) {
    return ctx.response.json(await listGeminiFiles(apiCallOf(ctx), ctx.request.qs()))
  }

  /** GET /v1beta/files/:id */
  async show(ctx: HttpContext) {
    return answer(ctx, await unlessClientGone(showGeminiFile(await gatewayInstance(), apiCallOf(ctx), `files/${ctx.params.id}`)))
  }

  /** DELETE /v1beta/files/:id */
  async destroy(ctx: HttpContext) {
    return answer(ctx, await unlessClientGone(deleteGeminiFile(await gatewayInstance(), apiCallOf(ctx), `files/${ctx.params.id}`)))
  }

  /** POST /v1beta/cachedContents */
  async createCache(ctx: HttpContext) {
    return answer(ctx, await unlessClientGone(createGeminiCache(await gatewayInstance(), apiCallOf(ctx))))
  }

  /** GET /v1beta/cachedContents (pageSize, pageToken) */
  async caches(ctx: HttpContext) {
    return ctx.response.json(await listGeminiCaches(apiCallOf(ctx), ctx.request.qs()))
  }

  /** GET /v1beta/cachedContents/:id */
  async showCache(ctx: HttpContext) {
    return answer(ctx, await unlessClientGone(showGeminiCache(await gatewayInstance(), apiCallOf(ctx), `cachedContents/${ctx.params.id}`)))
  }

  /** PATCH /v1beta/cachedContents/:id (updateMask in the query, passed on) */
  async updateCache(ctx: HttpContext) {
    const url = ctx.request.url(true)
    const search = url.includes('?') ? url.slice(url.indexOf('?')) : ''
    return answer(ctx, await unlessClientGone(updateGeminiCache(await gatewayInstance(), apiCallOf(ctx), `cachedContents/${ctx.params.id}`, search)))
  }

  /** DELETE /v1beta/cachedContents/:id */
  async destroyCache(ctx: HttpContext) {
    return answer(ctx, await unlessClientGone(deleteGeminiCache(await gatewayInstance(), apiCallOf(ctx), `cachedContents/${ctx.params.id}`)))
  }
}

/** The JSON answer, or nothing for a client that went away. */
function answer(ctx: HttpContext, body: Record<string, any> | undefined) {
  if (body !== undefined) ctx.response.json(body)
}
