import { GatewayError } from '#exceptions/gateway_error'
import { fromGeminiImages, fromImagen, geminiImageBody, isImagenModel, readImageAsk, type GoogleImageAsk, type InlineImage } from '#gateway/google_images'
import { fieldValue, partNamed } from '#gateway/http/multipart'
import { imageDimensions, imagenMaskOf, type Dimensions } from '#gateway/image_masks'
import {
  imagenEditBody,
  imagenUpscaleBody,
  isImagenEditModel,
  isImagenImageInModel,
  isImagenUpscaleModel,
  readImagenEditOptions,
  type ImagenEditOptions,
} from '#gateway/imagen_edits'
import type { ImagesAnswer, ImageUploadCall } from '#gateway/image_uploads'
import type { ProviderKind } from '#gateway/types'
import { readBody, type UpstreamBody } from '#gateway/upstream/dispatcher'
import { parseAnswer } from '#gateway/upstream/upstream_answer'

/**
 * `POST /v1/images/edits` on Google's channels (`google`, `vertex`): Gemini's
 * image models edit from the prompt and the images themselves, so the form's
 * image files become `inlineData` parts before the prompt, sent to
 * `:generateContent` asking for the IMAGE modality (google_images.ts), and
 * the answer's images come back as OpenAI's `data[]`. On `vertex` channels,
 * Imagen's capability model and upscaler edit too: `:predict` with the image
 * as a reference image (imagen_edits.ts), OpenAI's mask made Imagen's
 * (image_masks.ts); their predictions read as a generation's.
 */

/**
 * Why a Google channel's model cannot take this edit, or null: Imagen edits
 * only with its capability model or upscaler, on Vertex (the Gemini API
 * serves neither); Gemini takes no mask and answers whole.
 */
export function googleEditProblem(call: ImageUploadCall, upstreamModel: string, provider: ProviderKind): string | null {
  if (call.stream) return "stream: Google's image models answer whole; send the edit without stream=true"
  if (isImagenImageInModel(upstreamModel)) {
    if (provider !== 'vertex') return `Image edits with '${upstreamModel}' are Vertex AI's: route the model to a vertex channel (the Gemini API does not serve it)`
    if (isImagenUpscaleModel(upstreamModel) && partNamed(call.form, 'mask') !== undefined) return `mask: '${upstreamModel}' upscales the whole image and takes no mask`
    return null
  }
  if (isImagenModel(upstreamModel)) {
    return `Image edits with '${upstreamModel}' are not served (it makes images from a prompt): edit with imagen-3.0-capability-001 on a vertex channel, or a Gemini image model (gemini-2.5-flash-image)`
  }
  if (partNamed(call.form, 'mask') !== undefined) {
    return "mask: Gemini image models take no mask (say in the prompt what to change); masked edits are imagen-3.0-capability-001's, on a vertex channel"
  }
  return null
}

/** An edit read for Google's channels: its options and images once, a body per upstream model. */
export class GoogleEdit {
  readonly #ask: GoogleImageAsk
  readonly #imagen: ImagenEditOptions
  readonly #call: ImageUploadCall
  #images: InlineImage[] | null
  /** Imagen's mask of the client's (prepare()), null without one */
  #mask: Buffer | null = null
  #bodies = new Map<string, Buffer>()

  constructor(call: ImageUploadCall) {
    const field = (name: string) => fieldValue(call.rawBody, call.form, name)
    this.#ask = readImageAsk({
      prompt: field('prompt'),
      n: field('n'),
      size: field('size'),
      response_format: field('response_format'),
      aspect_ratio: field('aspect_ratio'),
      image_size: field('image_size'),
      negative_prompt: field('negative_prompt'),
      person_generation: field('person_generation'),
      output_format: field('output_format'),
    })
    this.#imagen = readImagenEditOptions(field)
    this.#call = call
    this.#images = inlineImages(call)
  }

  /**
   * Before any body: the client's mask made Imagen's when a candidate edits
   * with the capability model (a bad mask: the client's 400, nothing sent);
   * `signal` (the client gone) stops the decode.
   */
  async prepare(models: readonly string[], signal?: AbortSignal) {
    if (!models.some(isImagenEditModel)) return
    const part = partNamed(this.#call.form, 'mask')
    if (part === undefined) return
    if (part.filename === null) throw GatewayError.invalidRequest('mask: a PNG file part is required', 'invalid_mask', 'mask')
    this.#mask = await imagenMaskOf(this.#call.rawBody.subarray(part.bodyStart, part.bodyEnd), this.#imageSize(), signal)
  }

  /** The body for this model: Imagen's :predict, or generateContent (a 400 when it cannot take the request: n > 1) */
  body(model: string): Buffer {
    let body = this.#bodies.get(model)
    if (body === undefined) {
      const images = this.#images ?? []
      if (isImagenImageInModel(model)) {
        // A header of no pixels (0 wide or high) is no image: Vertex would refuse it, the upscaler's factor be x4 (size over 0)
        const size = this.#imageSize()
        if (size !== null && (size.width < 1 || size.height < 1)) {
          throw GatewayError.invalidRequest(`image: it is ${size.width}x${size.height}; an image to edit has pixels`, 'invalid_image', 'image')
        }
      }
      const request = isImagenEditModel(model)
        ? imagenEditBody(this.#ask, this.#imagen, model, images, this.#mask)
        : isImagenUpscaleModel(model)
          ? imagenUpscaleBody(this.#ask, this.#imagen, model, images, this.#imageSize())
          : geminiImageBody(this.#ask, model, images)
      body = Buffer.from(JSON.stringify(request))
      this.#bodies.set(model, body)
    }
    return body
  }

  /** dispatch()'s AnswerCheck for a Google candidate: Imagen's or Gemini's answer (not JSON, an error body: fails over) as OpenAI's */
  async read(body: UpstreamBody, model: string): Promise<ImagesAnswer> {
    const upstream = parseAnswer(await readBody(body))
    const { answer, usage, refusal } = isImagenModel(model) ? fromImagen(upstream, this.#ask) : fromGeminiImages(upstream, this.#ask)
    return { bytes: Buffer.from(JSON.stringify(answer)), answer, usage, refusal }
  }

  /** The upstream has the body: its base64 copies of the images go */
  release() {
    this.#images = null
    this.#mask = null
    this.#bodies.clear()
  }

  /** The first image's width and height (from its header), null when unread */
  #imageSize(): Dimensions | null {
    const part = this.#call.form.parts.find((p) => p.filename !== null && (p.name === 'image' || p.name === 'image[]'))
    return part === undefined ? null : imageDimensions(this.#call.rawBody.subarray(part.bodyStart, part.bodyEnd))
  }
}

/** The form's image files (`image`, `image[]`) as base64 inline parts, their type from the part or their bytes. */
function inlineImages(call: ImageUploadCall): InlineImage[] {
  const images: InlineImage[] = []
  for (const part of call.form.parts) {
    if (part.filename === null || (part.name !== 'image' && part.name !== 'image[]')) continue
    const bytes = call.rawBody.subarray(part.bodyStart, part.bodyEnd)
    const mimeType = imageType(bytes) ?? (part.contentType?.startsWith('image/') ? part.contentType : null)
    if (mimeType === null) throw GatewayError.invalidRequest(`image: '${part.filename}' is not a PNG, JPEG or WEBP image`, 'invalid_image', 'image')
    images.push({ mimeType, data: bytes.toString('base64') })
  }
  return images
}

/** PNG, JPEG and WEBP by their first bytes (clients send `application/octet-stream` as often as the type) */
function imageType(bytes: Buffer): string | null {
  if (bytes.length >= 8 && bytes.readUInt32BE(0) === 0x89504e47) return 'image/png'
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'image/jpeg'
  if (bytes.length >= 12 && bytes.toString('latin1', 0, 4) === 'RIFF' && bytes.toString('latin1', 8, 12) === 'WEBP') return 'image/webp'
  return null
}
