import type { HttpContext } from '@adonisjs/core/http'
import { withAccount } from '#gateway/http/generation_request'
import { embeddingsEnvelope } from '#validators/generation'

const anyBody = { validate: async (body: unknown) => body }

export default class EmbeddingsController {
  /** POST /v1/embeddings: vectors as floats or base64 (the openai SDK's default), from any embeddings channel. */
  async store(ctx: HttpContext) {
    await withAccount(ctx, 'embeddings', embeddingsEnvelope, (gw, account, { rawBody, body }) =>
      gw.service.embeddings(
        { principal: ctx.principal, ingress: 'openai', rawBody, body, model: body.model, req: ctx.request.request, res: ctx.response.response },
        account
      )
    )
  }
}

/** POST /v1beta/models/{model}:embedContent | :batchEmbedContents (called by the Gemini controller). */
export function embedGemini(ctx: HttpContext, model: string, method: 'embedContent' | 'batchEmbedContents') {
  return withAccount(
    ctx,
    `gemini.${method}`,
    anyBody,
    (gw, account, { rawBody, body }) =>
      gw.service.embeddings(
        { principal: ctx.principal, ingress: 'gemini', geminiMethod: method, rawBody, body, model, req: ctx.request.request, res: ctx.response.response },
        account
      ),
    model
  )
}
