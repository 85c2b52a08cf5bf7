import type { HttpContext } from '@adonisjs/core/http'
import { GatewayError } from '#exceptions/gateway_error'
import { modelAllowed } from '#gateway/access_policy'
import { apiCallOf, gatewayInstance, generate, withAccount } from '#gateway/http/generation_request'
import { geminiEnvelope, predictEnvelope } from '#validators/generation'
import { providerServing } from '#controllers/api/models_controller'

const METHODS = ['generateContent', 'streamGenerateContent', 'countTokens', 'embedContent', 'batchEmbedContents', 'predict', 'predictLongRunning', 'batchGenerateContent', 'asyncBatchEmbedContent']

/** `gemini-2.5-flash:generateContent` -> [model, method] (the model may carry a `models/` prefix). */
function target(param: string): { model: string; method: string } {
  const decoded = decodePathPart(param)
  const at = decoded.lastIndexOf(':')
  const method = at > 0 ? decoded.slice(at + 1) : ''
  if (!METHODS.includes(method)) throw new GatewayError(404, 'not_found', `Unknown method '${method}'`, 'not_found_error')
  return { model: decoded.slice(0, at).replace(/^models\//, ''), method }
}

/** A path segment percent-decoded once more (clients encode `models/x` as one segment); malformed is a 400. */
function decodePathPart(param: string): string {
  try {
    return decodeURIComponent(param)
  } catch {
    throw GatewayError.invalidRequest('Malformed percent-encoding in the path', 'invalid_url')
  }
}

export default class GeminiController {
  /** POST /v1beta/models/{model}:{method}: Gemini generateContent family, native or translated. */
  async call(ctx: HttpContext) {
    let model: string
    let method: string
    try {
      ;({ model, method } = target(ctx.params.target))
    } catch (error) {
      // Authenticated, then refused: accounted like every admitted request.
      ;(await gatewayInstance()).service.openAccount(ctx.principal, 'gemini').fail(error)
      throw error
    }
    switch (method) {
      // Gemini's Batch API (app/gateway/batches/gemini_batches_api.ts), of generations or of embeddings: held, sent,
      // billed once it ends; no request's account.
      case 'batchGenerateContent':
      case 'asyncBatchEmbedContent': {
        const { createGeminiBatch } = await import('#gateway/batches/gemini_batches_api')
        const { unlessClientGone } = await import('#gateway/batches/upstream_calls')
        const batch = await unlessClientGone(createGeminiBatch(await gatewayInstance(), apiCallOf(ctx), model, method))
        if (batch !== undefined) ctx.response.json(batch)
        return
      }
      case 'generateContent':
        return generate(apiCallOf(ctx), 'gemini.generateContent', 'gemini', geminiEnvelope, { model, stream: false })
      case 'streamGenerateContent': {
        const sse = ctx.request.qs().alt === 'sse'
        return generate(apiCallOf(ctx), 'gemini.streamGenerateContent', 'gemini', geminiEnvelope, { model, stream: true, jsonArray: !sse })
      }
      case 'countTokens':
        return withAccount(
          apiCallOf(ctx),
          'gemini.countTokens',
          { validate: async (body: unknown) => body },
          (gw, account, { rawBody, body }) =>
            gw.service.countTokens(
              { principal: ctx.principal, ingress: 'gemini', rawBody, body, model, req: ctx.request.request, res: ctx.response.response },
              account
            ),
          model
        )
      // Imagen (@google/genai's generateImages): relayed to Google's channels, billed per image.
      case 'predict':
        return withAccount(
          apiCallOf(ctx),
          'gemini.predict',
          predictEnvelope,
          (gw, account, { rawBody, body }) =>
            gw.service.imagenPredict({ principal: ctx.principal, rawBody, body, model, req: ctx.request.request, res: ctx.response.response }, account),
          model
        )
      case 'predictLongRunning': {
        // Veo (videos/videos_api.ts): an operation the gateway holds, polls and bills once it is done.
        const { predictLongRunning } = await import('#gateway/videos/videos_api')
        const { publicBase } = await import('#controllers/api/videos_controller')
        const gw = await gatewayInstance()
        return ctx.response.json(await predictLongRunning(gw, apiCallOf(ctx), model, publicBase(ctx)))
      }
      default: {
        const { embedGemini } = await import('#controllers/api/embeddings_controller')
        return embedGemini(ctx, model, method as 'embedContent' | 'batchEmbedContents')
      }
    }
  }

  /** GET /v1beta/models: the models this key may use, in Gemini's list shape. */
  async index({ principal, response }: HttpContext) {
    const gw = await gatewayInstance()
    const models = gw.service
      .router(principal.plan)
      .servedModels(gw.catalog.prices.map((p) => p.pattern))
      .filter(({ id }) => modelAllowed(principal, id))
      .map(({ id }) => modelInfo(id))
    return response.json({ models })
  }

  /**
   * GET /v1beta/models/{model}: as GET /v1/models/{model}, a model no channel
   * or prefix rule serves is a 404; a generation path asked with GET (`x:generateContent`)
   * is a 405, not a model named after the method.
   */
  async show({ principal, params, response }: HttpContext) {
    const id = decodePathPart(params.model).replace(/^models\//, '')
    const at = id.lastIndexOf(':')
    if (at > 0 && METHODS.includes(id.slice(at + 1))) {
      throw new GatewayError(405, 'method_not_allowed', `${id.slice(at + 1)} is called with POST`, 'invalid_request_error')
    }
    if (!modelAllowed(principal, id)) throw GatewayError.modelNotAllowed(id)
    const gw = await gatewayInstance()
    if (!providerServing(gw.service.router(principal.plan), id)) throw GatewayError.modelNotFound(id)
    return response.json(modelInfo(id))
  }
}

function modelInfo(id: string) {
  return {
    name: `models/${id}`,
    displayName: id,
    supportedGenerationMethods: ['generateContent', 'streamGenerateContent', 'countTokens', 'embedContent', 'batchEmbedContents', 'batchGenerateContent', 'asyncBatchEmbedContent'],
  }
}
