import { GatewayError } from '#exceptions/gateway_error'
import { fromGeminiImages, geminiImageBody, isImagenModel, readImageAsk, type GoogleImageAsk, type InlineImage } from '#gateway/google_images'
import { fieldValue, partNamed } from '#gateway/http/multipart'
import type { ImagesAnswer, ImageUploadCall } from '#gateway/image_uploads'
import { readBody, type UpstreamBody } from '#gateway/upstream/dispatcher'
import { parseAnswer } from '#gateway/upstream/upstream_answer'

/**
 * `POST /v1/images/edits` on Google's channels (`google`, `vertex`): Gemini's
 * image models edit from the prompt and the images themselves, so the form's
 * image files become `inlineData` parts before the prompt, sent to
 * `:generateContent` asking for the IMAGE modality (google_images.ts), and
 * the answer's images come back as OpenAI's `data[]`.
 */

/**
 * Why a Google channel's model cannot take this edit, or null: Imagen edits
 * are Vertex's own API (imagen-3.0-capability-001, reference images and mask
 * modes), not this one; Gemini takes no mask and answers whole.
 */
export function googleEditProblem(call: ImageUploadCall, upstreamModel: string): string | null {
  if (isImagenModel(upstreamModel)) {
    return `Image edits with Imagen ('${upstreamModel}') are not served: edit with a Gemini image model (gemini-2.5-flash-image, gemini-3-pro-image-preview)`
  }
  if (partNamed(call.form, 'mask') !== undefined) return 'mask: Gemini image models take no mask; say in the prompt what to change'
  if (call.stream) return 'stream: Gemini image models answer whole; send the edit without stream=true'
  return null
}

/** An edit read for Google's channels: its options and images once, a body per upstream model. */
export class GoogleEdit {
  readonly #ask: GoogleImageAsk
  #images: InlineImage[] | null
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
      person_generation: field('person_generation'),
    })
    this.#images = inlineImages(call)
  }

  /** The generateContent body for this model (a 400 when it cannot take the request: n > 1) */
  body(model: string): Buffer {
    let body = this.#bodies.get(model)
    if (body === undefined) {
      body = Buffer.from(JSON.stringify(geminiImageBody(this.#ask, model, this.#images ?? [])))
      this.#bodies.set(model, body)
    }
    return body
  }

  /** dispatch()'s AnswerCheck for a Google candidate: Gemini's answer (not JSON, an error body: fails over) as OpenAI's */
  async read(body: UpstreamBody): Promise<ImagesAnswer> {
    const { answer, usage, refusal } = fromGeminiImages(parseAnswer(await readBody(body)), this.#ask)
    return { bytes: Buffer.from(JSON.stringify(answer)), answer, usage, refusal }
  }

  /** The upstream has the body: its base64 copies of the images go */
  release() {
    this.#images = null
    this.#bodies.clear()
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
