import type { HttpContext } from '@adonisjs/core/http'
import { apiCallOf } from '#gateway/http/generation_request'
import { imageGenerations } from '#gateway/http/api_endpoints'

export default class ImagesController {
  /** POST /v1/images/generations: images as b64_json or url, billed per image. */
  async store(ctx: HttpContext) {
    await imageGenerations(apiCallOf(ctx))
  }
}
