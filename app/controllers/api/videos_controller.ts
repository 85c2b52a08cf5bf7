import type { HttpContext } from '@adonisjs/core/http'
import env from '#start/env'
import { apiCallOf, gatewayInstance } from '#gateway/http/generation_request'
import { unlessClientGone } from '#gateway/batches/upstream_calls'
import { requestBaseUrl } from '#controllers/pages/docs_controller'
import {
  createVideo,
  deleteVideo,
  getOperation,
  listVideos,
  remixVideo,
  retrieveVideo,
  videoContent,
} from '#gateway/videos/videos_api'

/** OpenAI's Videos API (app/gateway/videos/videos_api.ts), and Veo's operations for Gemini clients. */
export default class VideosController {
  /** POST /v1/videos: JSON or multipart/form-data {prompt, model, seconds, size, input_reference} */
  async store(ctx: HttpContext) {
    return answer(ctx, await unlessClientGone(createVideo(await gatewayInstance(), apiCallOf(ctx))))
  }

  /** GET /v1/videos (after, limit, order) */
  async index(ctx: HttpContext) {
    return answer(ctx, await unlessClientGone(listVideos(await gatewayInstance(), apiCallOf(ctx), ctx.request.qs())))
  }

  /** GET /v1/videos/:id */
  async show(ctx: HttpContext) {
    return answer(ctx, await unlessClientGone(retrieveVideo(await gatewayInstance(), apiCallOf(ctx), ctx.params.id)))
  }

  /** GET /v1/videos/:id/content (variant): the upstream's bytes, streamed */
  async content(ctx: HttpContext) {
    await unlessClientGone(videoContent(await gatewayInstance(), apiCallOf(ctx), ctx.params.id, ctx.request.qs()))
  }

  /** DELETE /v1/videos/:id */
  async destroy(ctx: HttpContext) {
    return answer(ctx, await unlessClientGone(deleteVideo(await gatewayInstance(), apiCallOf(ctx), ctx.params.id)))
  }

  /** POST /v1/videos/:id/remix {prompt} */
  async remix(ctx: HttpContext) {
    return answer(ctx, await unlessClientGone(remixVideo(await gatewayInstance(), apiCallOf(ctx), ctx.params.id)))
  }

  /** GET /v1beta/models/:model/operations/:id and /v1beta/operations/:id: a Gemini client's Veo operation */
  async operation(ctx: HttpContext) {
    return answer(ctx, await unlessClientGone(getOperation(await gatewayInstance(), apiCallOf(ctx), ctx.params.id, publicBase(ctx))))
  }
}

/** The address clients reach the gateway at (APP_URL when set): a Veo operation's video uris point there */
export function publicBase(ctx: HttpContext): string {
  return env.get('APP_URL')?.replace(/\/+$/, '') || requestBaseUrl(ctx.request)
}

/** The JSON answer, or nothing for a client that went away. */
function answer(ctx: HttpContext, body: Record<string, any> | undefined) {
  if (body !== undefined) ctx.response.json(body)
}
