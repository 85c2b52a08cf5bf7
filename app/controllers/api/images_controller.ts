import type { HttpContext } from '@adonisjs/core/http'
import { withAccount } from '#gateway/http/generation_request'
import { imagesEnvelope } from '#validators/generation'

export default class ImagesController {
  /** POST /v1/images/generations: images as b64_json or url, billed per image. */
  async store(ctx: HttpContext) {
    await withAccount(ctx, 'images.generations', imagesEnvelope, (gw, account, { rawBody, body }) =>
      gw.service.images(
        { principal: ctx.principal, rawBody, body, model: body.model, req: ctx.request.request, res: ctx.response.response },
        account
      )
    )
  }
}
