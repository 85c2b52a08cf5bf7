import { authorizeAndHold } from '#gateway/access_policy'
import type { Catalog } from '#gateway/catalog'
import { IMAGEN_MAX_IMAGES } from '#gateway/google_images'
import type { JsonOperation, JsonOperationCall } from '#gateway/json_operation'
import { promptTokenHold } from '#gateway/metering/reservation'
import type { RequestAccount } from '#gateway/metering/request_account'
import type { TokenUsage } from '#gateway/types'

/**
 * Gemini-native Imagen: `POST /v1beta/models/{imagen}:predict`, what
 * @google/genai's `models.generateImages` calls, on `google` and `vertex`
 * channels. Relayed as it came (json_operation.ts: the client's bytes up,
 * the model in the path; Google's bytes back), billed per image: each
 * prediction that carries one (a filtered one, `raiFilteredReason` only, is
 * not billed). Held at `parameters.sampleCount` images (Imagen's default 4).
 */
export const IMAGEN_PREDICT: JsonOperation = {
  operation: 'predict',
  unsupported: "serves Imagen's predict",
  modelInPath: true,
  usageOf: (answer, call) => predictUsage(answer, imagesAsked(call.body)),
  hold: holdPredict,
}

function holdPredict(catalog: Catalog, account: RequestAccount, call: JsonOperationCall) {
  account.imageAnswer = true
  authorizeAndHold(catalog, account, call.model, promptTokenHold(call.rawBody.length), 0, imagesAsked(call.body))
}

/** `parameters.sampleCount`, Imagen's default 4 when absent; never held past 4 (Google refuses more). */
function imagesAsked(body: Record<string, any>): number {
  const count = body.parameters?.sampleCount
  return typeof count === 'number' && Number.isInteger(count) && count >= 1 && count < IMAGEN_MAX_IMAGES ? count : IMAGEN_MAX_IMAGES
}

/** Each prediction carrying an image, at most `asked` (the sampleCount held: more answered are not billed) */
export function predictUsage(answer: any, asked: number): TokenUsage {
  let images = 0
  if (Array.isArray(answer?.predictions)) {
    for (const prediction of answer.predictions) if (typeof prediction?.bytesBase64Encoded === 'string' && prediction.bytesBase64Encoded !== '') images++
  }
  images = Math.min(images, asked)
  return { promptTokens: 0, completionTokens: 0, totalTokens: 0, cachedTokens: 0, reasoningTokens: 0, images, estimated: false }
}
