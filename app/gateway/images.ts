import { GatewayError } from '#exceptions/gateway_error'
import { authorizeAndHold } from '#gateway/access_policy'
import type { Catalog } from '#gateway/catalog'
import {
  fromGeminiImages,
  fromImagen,
  geminiImageBody,
  IMAGE_TOKENS_HELD,
  imagenBody,
  isImagenModel,
  readImageAsk,
  speaksGoogleImages,
} from '#gateway/google_images'
import { isImagenImageInModel } from '#gateway/imagen_edits'
import type { JsonOperation, JsonOperationCall, JsonOperationTranslation } from '#gateway/json_operation'
import { completionTokenHold, imageHold, promptTokenHold } from '#gateway/metering/reservation'
import type { RequestAccount } from '#gateway/metering/request_account'
import type { RouteCandidate } from '#gateway/routing/channel_router'
import type { TokenUsage } from '#gateway/types'

/**
 * `POST /v1/images/generations` on channels that offer it, relayed like the
 * other one-shot JSON operations (json_operation.ts): to the OpenAI family
 * the body passes through (b64_json or url answers alike), each image is
 * billed at the model's per-image price, plus tokens when the upstream
 * reports them (gpt-image). Google's channels (`google`, `vertex`) get it
 * translated (google_images.ts): Imagen's `:predict`, Gemini image models'
 * `:generateContent`.
 */
export const IMAGES: JsonOperation = {
  operation: 'images',
  unsupported: 'generates images',
  usageOf: (answer) => imagesUsage(answer),
  imagesAsked: imageHold,
  hold: holdImages,
  translation: { applies: (candidate: RouteCandidate) => speaksGoogleImages(candidate.channel.provider), of: googleImages },
}

/**
 * The hold of an images request: its prompt (by its bytes), its `n` images at
 * the per-image price, and their tokens at the model's image output price
 * (a Gemini image model's ~1,290 an image at $30 per 1M, gpt-image's image
 * tokens): IMAGE_TOKENS_HELD an image, or the request's own max, if larger.
 */
function holdImages(catalog: Catalog, account: RequestAccount, call: JsonOperationCall) {
  const images = imageHold(call.body)
  account.imageAnswer = true
  authorizeAndHold(
    catalog,
    account,
    call.model,
    promptTokenHold(call.rawBody.length),
    Math.max(completionTokenHold(call.body), images * IMAGE_TOKENS_HELD),
    images
  )
}

/** OpenAI's images request for Google's channels: read once (a bad size is a 400 before any channel), a body per upstream model. */
function googleImages(call: JsonOperationCall): JsonOperationTranslation {
  const ask = readImageAsk(call.body as { prompt: unknown; n: unknown })
  return {
    body: (model) => {
      // The capability model and the upscaler take an image: an edit's (google_edits.ts), not a prompt alone.
      if (isImagenImageInModel(model)) {
        throw GatewayError.invalidRequest(`'${model}' edits images: send it the image at /v1/images/edits`, 'unsupported_value', 'model')
      }
      return JSON.stringify(isImagenModel(model) ? imagenBody(ask) : geminiImageBody(ask, model))
    },
    answer: (upstream, model) => (isImagenModel(model) ? fromImagen(upstream, ask) : fromGeminiImages(upstream, ask)),
  }
}

export function imagesUsage(answer: any): TokenUsage {
  const input = Number(answer?.usage?.input_tokens ?? 0) || 0
  const output = Number(answer?.usage?.output_tokens ?? 0) || 0
  return {
    promptTokens: input,
    completionTokens: output,
    totalTokens: input + output,
    cachedTokens: 0,
    reasoningTokens: 0,
    images: Array.isArray(answer?.data) ? answer.data.length : 0,
    estimated: false,
  }
}
