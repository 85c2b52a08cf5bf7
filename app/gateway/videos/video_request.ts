import { GatewayError } from '#exceptions/gateway_error'
import type { GatewayService } from '#gateway/gateway_service'
import type { ApiCall } from '#gateway/http/generation_request'
import { bodyLimitFor } from '#gateway/http/body_limits'
import { boundaryOf, fieldValue, partNamed, withFieldValue, type MultipartForm } from '#gateway/http/multipart'
import { assertStorableModel } from '#gateway/http/model_name'
import { parseJsonObject, readRawBody } from '#gateway/http/raw_body'
import { readUploadForm, type ReadFields } from '#gateway/http/upload_form'

/** OpenAI's model when a request names none */
export const DEFAULT_VIDEO_MODEL = 'sora-2'
/** OpenAI's lengths (seconds); 4 when none is asked for */
const SORA_SECONDS = new Set([4, 8, 12])
const SORA_DEFAULT_SECONDS = 4
/** Veo's lengths: 4 to 8 seconds (Veo 3: 4, 6, 8; Veo 2: 5 to 8), 8 when none is asked for */
export const VEO_DEFAULT_SECONDS = 8
const VEO_MIN_SECONDS = 4
const VEO_MAX_SECONDS = 8

/** The parts of a multipart creation the gateway reads (each once; all but the image as text) */
const READ_FIELDS: ReadFields = {
  all: ['prompt', 'model', 'seconds', 'size', 'input_reference'],
  text: new Set(['prompt', 'model', 'seconds', 'size']),
}

/** A Veo model (by name): OpenAI-wire requests for it are made with Veo's parameters, and its lengths are Veo's */
export function isVeoModel(model: string): boolean {
  return /(^|\/)veo-/i.test(model)
}

/** A video creation as the gateway read it: what it checks, holds and (for Veo) translates; the client's bytes for an OpenAI-wire channel. */
export interface VideoRequest {
  prompt: string
  model: string
  seconds: number
  /** `WIDTHxHEIGHT`, or null when the request names none */
  size: string | null
  /** The first frame sent as a file part (multipart), for Veo's `image` */
  image: { bytes: Buffer; mimeType: string } | null
  /** The JSON body's input_reference (an image URL or file id), for Veo a data: URL only */
  imageUrl: string | null
  rawBody: Buffer
  /** The body's content type: JSON, or the client's multipart/form-data with its boundary */
  contentType: string
  /** The JSON body, or null for a multipart one */
  json: Record<string, any> | null
  form: MultipartForm | null
}

/**
 * `POST /v1/videos`, JSON or multipart/form-data (the openai SDKs send a
 * form, with `input_reference` as a file part): read through the same
 * readers and limits as the image uploads (IMAGE_UPLOAD_MAX_MB, the body
 * budget, the upload timeout), checked in OpenAI's words.
 */
export async function readVideoRequest(service: Pick<GatewayService, 'receiveBody'>, call: ApiCall): Promise<VideoRequest> {
  const contentType = call.req.headers['content-type'] ?? ''
  if (boundaryOf(contentType) !== null) {
    const { rawBody, form } = await readUploadForm(service, call, 'videos', { model: '' }, 'prompt, model, seconds, size and input_reference', READ_FIELDS)
    const file = partNamed(form, 'input_reference')
    const image =
      file && file.filename !== null
        ? { bytes: rawBody.subarray(file.bodyStart, file.bodyEnd), mimeType: imageType(file.contentType) }
        : null
    const fields = {
      prompt: fieldValue(rawBody, form, 'prompt'),
      model: fieldValue(rawBody, form, 'model'),
      seconds: fieldValue(rawBody, form, 'seconds'),
      size: fieldValue(rawBody, form, 'size'),
    }
    return { ...checked(fields), image, imageUrl: null, rawBody, contentType, json: null, form }
  }
  const rawBody = await service.receiveBody(readRawBody(call.req, call.res, bodyLimitFor('videos')))
  const json = parseJsonObject(rawBody)
  const reference = json.input_reference
  const imageUrl = typeof reference === 'string' ? reference : typeof reference?.image_url === 'string' ? reference.image_url : null
  return { ...checked(json), image: null, imageUrl, rawBody, contentType: 'application/json', json, form: null }
}

/** The request's bytes for an OpenAI-wire channel that knows the model as `upstreamModel` (the client's when the same). */
export function bodyFor(request: VideoRequest, upstreamModel: string): Buffer {
  if (request.json !== null) {
    if (upstreamModel === request.json.model) return request.rawBody
    return Buffer.from(JSON.stringify({ ...request.json, model: upstreamModel }))
  }
  if (fieldValue(request.rawBody, request.form!, 'model') === upstreamModel) return request.rawBody
  return withFieldValue(request.rawBody, request.form!, 'model', upstreamModel)
}

function checked(fields: Record<string, any>): Pick<VideoRequest, 'prompt' | 'model' | 'seconds' | 'size'> {
  const prompt = fields.prompt
  if (prompt === undefined || prompt === null || prompt === '') {
    throw GatewayError.invalidRequest("Missing required parameter: 'prompt'.", 'missing_required_parameter', 'prompt')
  }
  if (typeof prompt !== 'string') throw GatewayError.invalidRequest("Invalid type for 'prompt': expected a string.", 'invalid_type', 'prompt')
  const model = fields.model ?? DEFAULT_VIDEO_MODEL
  if (typeof model !== 'string' || model === '') throw GatewayError.invalidRequest("Invalid 'model': expected a model name.", 'invalid_type', 'model')
  assertStorableModel(model)
  const size = fields.size ?? null
  if (size !== null && (typeof size !== 'string' || !/^\d{2,5}x\d{2,5}$/.test(size))) {
    throw GatewayError.invalidRequest("Invalid 'size': expected WIDTHxHEIGHT, such as '1280x720'.", 'invalid_value', 'size')
  }
  return { prompt, model, seconds: secondsOf(fields.seconds, model), size }
}

/** OpenAI's `seconds` ('4', '8', '12': a string in the SDKs, a number taken too); Veo's 4 to 8 for a Veo model. */
function secondsOf(value: unknown, model: string): number {
  const veo = isVeoModel(model)
  if (value === undefined || value === null || value === '') return veo ? VEO_DEFAULT_SECONDS : SORA_DEFAULT_SECONDS
  const n = typeof value === 'number' ? value : typeof value === 'string' && /^\d{1,3}$/.test(value) ? Number(value) : NaN
  if (veo ? Number.isInteger(n) && n >= VEO_MIN_SECONDS && n <= VEO_MAX_SECONDS : SORA_SECONDS.has(n)) return n
  const allowed = veo ? `a whole number from ${VEO_MIN_SECONDS} to ${VEO_MAX_SECONDS}` : "one of '4', '8' and '12'"
  throw GatewayError.invalidRequest(`Invalid 'seconds': ${String(value).slice(0, 20)}. Expected ${allowed}.`, 'invalid_value', 'seconds')
}

/** An image part's type as Veo takes it (PNG, JPEG, WebP); a part that names none is taken as PNG */
function imageType(contentType: string | null): string {
  const type = (contentType ?? '').split(';')[0].trim().toLowerCase()
  return type.startsWith('image/') ? type : 'image/png'
}
