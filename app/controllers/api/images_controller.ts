import type { HttpContext } from '@adonisjs/core/http'
import { apiCallOf } from '#gateway/http/generation_request'
import { imageEdits, imageGenerations, imageVariations } from '#gateway/http/api_endpoints'

export default class ImagesController {
  /** POST /v1/images/generations: images as b64_json or url, billed per image. */
  async store(ctx: HttpContext) {
    await imageGenerations(apiCallOf(ctx))
  }

  /** POST /v1/images/edits: a multipart upload, billed per image. */
  async edits(ctx: HttpContext) {
    await imageEdits(apiCallOf(ctx))
  }

  /** POST /v1/images/variations: a multipart upload (dall-e-2), billed per image. */
  async variations(ctx: HttpContext) {
    await imageVariations(apiCallOf(ctx))
  }
}
