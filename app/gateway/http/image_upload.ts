import { GatewayError } from '#exceptions/gateway_error'
import type { ImageUploadCall, ImageUploadOperation } from '#gateway/image_uploads'
import { fieldValue, type MultipartForm } from '#gateway/http/multipart'
import { type ReadFields, readUploadForm } from '#gateway/http/upload_form'
import type { ApiCall } from '#gateway/http/generation_request'
import { assertStorableModel } from '#gateway/http/model_name'
import type { Catalog } from '#gateway/catalog'
import type { RequestAccount } from '#gateway/metering/request_account'
import type { GatewayService } from '#gateway/gateway_service'
import { admitModelLimit } from '#gateway/limits/admit_model_limit'

/** A variation's model when the form names none: OpenAI's only one (and its default) */
export const DEFAULT_VARIATION_MODEL = 'dall-e-2'
/** OpenAI answers 1 to 10 images a request */
const MAX_IMAGES = 10

/**
 * Reads an image edit or variation upload as the audio uploads are read
 * (audio_upload.ts): the multipart bytes within IMAGE_UPLOAD_MAX_MB, the
 * instance budget and the upload timeout, then only the fields the gateway
 * needs (model, n, stream, an edit's prompt, the image parts). No copy of the
 * images; the bytes go upstream as sent.
 */
export async function readImageUpload(
  service: Pick<GatewayService, 'receiveBody'>,
  call: ApiCall,
  endpoint: 'images.edits' | 'images.variations',
  account: RequestAccount,
  catalog: Catalog
): Promise<ImageUploadCall> {
  const operation: ImageUploadOperation = endpoint === 'images.edits' ? 'image_edits' : 'image_variations'
  const fields = `image${operation === 'image_edits' ? ', prompt' : ''} and model`
  const { rawBody, form, contentType } = await readUploadForm(service, call, endpoint, account, fields, READ_FIELDS)
  const named = fieldValue(rawBody, form, 'model')
  // An edit names its model (OpenAI's default changes with its releases, and the gateway bills the model it routes);
  // a variation is dall-e-2's, OpenAI's only variation model.
  const model = named === undefined || named === '' ? (operation === 'image_variations' ? DEFAULT_VARIATION_MODEL : '') : named
  if (model === '') throw GatewayError.missingModel()
  assertStorableModel(model)
  account.model = model
  // The key's own limit for this model, as on image generations (uncounted here, an edit was the way around it).
  await admitModelLimit(account, model, call.res)
  const images = inputImages(form, operation)
  const prompt = fieldValue(rawBody, form, 'prompt')
  if (operation === 'image_edits') {
    if (prompt === undefined || prompt.trim() === '') throw GatewayError.invalidRequest('prompt: a text field describing the edit is required', 'missing_prompt', 'prompt')
    // Sensitive words (content_filter/word_filter.ts), as for image generations: refused before routing, nothing held or charged.
    catalog.wordFilter?.screenPrompt(endpoint, { prompt })
  }
  return {
    principal: call.principal,
    rawBody,
    form,
    contentType,
    model,
    modelNamed: named !== undefined && named !== '',
    n: imagesAsked(fieldValue(rawBody, form, 'n')),
    promptBytes: prompt === undefined ? 0 : Buffer.byteLength(prompt),
    inputImages: images,
    stream: operation === 'image_edits' && fieldValue(rawBody, form, 'stream') === 'true',
    req: call.req,
    res: call.res,
  }
}

/**
 * The image files of the form: an edit's `image` or `image[]` parts (one or
 * more; the mask is not counted, it only marks where to edit), a variation's
 * one `image`. None is the client's 400.
 */
function inputImages(form: MultipartForm, operation: ImageUploadOperation): number {
  let count = 0
  for (const part of form.parts) {
    if (part.filename !== null && (part.name === 'image' || (operation === 'image_edits' && part.name === 'image[]'))) count++
  }
  if (count === 0) {
    const what = operation === 'image_edits' ? 'image (or image[]): one or more image file parts are' : 'image: an image file part is'
    throw GatewayError.invalidRequest(`${what} required`, 'missing_file', 'image')
  }
  return count
}

/** The form's `n` (OpenAI's default 1); anything but a whole number from 1 to 10 is refused, as OpenAI does. */
function imagesAsked(value: string | undefined): number {
  if (value === undefined) return 1
  const n = Number(value)
  if (!/^\s*\d+\s*$/.test(value) || n < 1 || n > MAX_IMAGES) {
    throw GatewayError.invalidRequest(`n: a whole number from 1 to ${MAX_IMAGES} is required`, 'invalid_n', 'n')
  }
  return n
}

/** The parts the gateway reads: authorised, billed and relayed by their first occurrence; of those, the text fields */
const READ_FIELDS: ReadFields = { all: ['model', 'stream', 'n', 'prompt', 'mask'], text: new Set(['model', 'stream', 'n', 'prompt']) }
