import type { HttpContext } from '@adonisjs/core/http'
import { apiCallOf, withAccount } from '#gateway/http/generation_request'
import { embeddings } from '#gateway/http/api_endpoints'

const anyBody = { validate: async (body: unknown) => body }

export default class EmbeddingsController {
  /** POST /v1/embeddings: vectors as floats or base64 (the openai SDK's default), from any embeddings channel. */
  async store(ctx: HttpContext) {
    await embeddings(apiCallOf(ctx))
  }
}

/** POST /v1beta/models/{model}:embedContent | :batchEmbedContents (called by the Gemini controller). */
export function embedGemini(ctx: HttpContext, model: string, method: 'embedContent' | 'batchEmbedContents') {
  const call = apiCallOf(ctx)
  return withAccount(
    call,
    `gemini.${method}`,
    anyBody,
    (gw, account, { rawBody, body }) =>
      gw.service.embeddings(
        { principal: call.principal, ingress: 'gemini', geminiMethod: method, rawBody, body, model, req: call.req, res: call.res },
        account
      ),
    model
  )
}
