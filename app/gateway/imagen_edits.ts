import { GatewayError } from '#exceptions/gateway_error'
import { IMAGEN_MAX_IMAGES, type GoogleImageAsk, type InlineImage } from '#gateway/google_images'
import type { Dimensions } from '#gateway/image_masks'

/**
 * OpenAI's `/v1/images/edits` as Vertex AI's Imagen editing: the capability
 * model (`imagen-3.0-capability-001`) and the upscaler
 * (`imagen-4.0-upscale-preview`), both on `:predict`, both Vertex's own (the
 * Gemini API serves neither).
 *
 * - Edit: `instances[0]` holds the prompt and `referenceImages`: the image as
 *   `REFERENCE_TYPE_RAW`; with OpenAI's `mask`, that mask made Imagen's
 *   (image_masks.ts) as `REFERENCE_TYPE_MASK` in `MASK_MODE_USER_PROVIDED`
 *   and `editMode` EDIT_MODE_INPAINT_INSERTION (what OpenAI's masked edit
 *   is: new content where the mask is clear). Without a mask, Imagen finds
 *   the region itself: `MASK_MODE_BACKGROUND` and EDIT_MODE_BGSWAP, Google's
 *   mask-free edit ("replace the background": the subject kept, the rest
 *   made from the prompt). The form's `edit_mode` (inpaint_insertion,
 *   inpaint_removal, outpaint, bgswap) and `mask_mode` (background,
 *   foreground; without a mask) choose otherwise.
 * - Upscale: `instances[0].image` and `parameters.mode: "upscale"` with
 *   `upscaleConfig.upscaleFactor`: the form's `upscale_factor` (x2, x3, x4),
 *   else the nearest to `size` over the image's, else x2. One image.
 *
 * The answer is Imagen's `predictions[]`, read as a generation's
 * (google_images.ts `fromImagen`: filtered ones not billed).
 */

/** Imagen's editing and customisation models (imagen-3.0-capability-001) */
export function isImagenEditModel(model: string): boolean {
  return /^(?:publishers\/google\/)?(?:models\/)?imagen-[\w.]*-capability-/i.test(model)
}

/** Imagen's upscaler (imagen-4.0-upscale-preview) */
export function isImagenUpscaleModel(model: string): boolean {
  return /^(?:publishers\/google\/)?(?:models\/)?imagen-[\w.]*-upscale/i.test(model)
}

/** Imagen models that take an image on `:predict`, not a prompt alone: edits only */
export function isImagenImageInModel(model: string): boolean {
  return isImagenEditModel(model) || isImagenUpscaleModel(model)
}

const EDIT_MODES: Record<string, string> = {
  inpaint_insertion: 'EDIT_MODE_INPAINT_INSERTION',
  inpaint_removal: 'EDIT_MODE_INPAINT_REMOVAL',
  outpaint: 'EDIT_MODE_OUTPAINT',
  bgswap: 'EDIT_MODE_BGSWAP',
}
const MASK_MODES: Record<string, string> = { background: 'MASK_MODE_BACKGROUND', foreground: 'MASK_MODE_FOREGROUND' }
const UPSCALE_FACTORS = ['x2', 'x3', 'x4']

/** The form's Imagen-only fields, read once */
export interface ImagenEditOptions {
  editMode: string | null
  maskMode: string | null
  upscaleFactor: string | null
}

/** Reads `edit_mode`, `mask_mode` and `upscale_factor` (a value Imagen has not: the client's 400). */
export function readImagenEditOptions(field: (name: string) => string | undefined): ImagenEditOptions {
  return {
    editMode: oneOf(field('edit_mode'), Object.keys(EDIT_MODES), 'edit_mode'),
    maskMode: oneOf(field('mask_mode'), Object.keys(MASK_MODES), 'mask_mode'),
    upscaleFactor: oneOf(field('upscale_factor'), UPSCALE_FACTORS, 'upscale_factor'),
  }
}

function oneOf(value: string | undefined, allowed: string[], param: string): string | null {
  if (value === undefined || value.trim() === '') return null
  const name = value.trim().toLowerCase()
  if (!allowed.includes(name)) throw GatewayError.invalidRequest(`${param}: '${value.slice(0, 30)}' is not one of ${allowed.join(', ')}`, 'invalid_value', param)
  return name
}

/** Imagen's input images are PNG or JPEG, one to edit */
function rawImage(images: readonly InlineImage[], model: string): InlineImage {
  if (images.length !== 1) {
    throw GatewayError.invalidRequest(`image: '${model}' edits one image a request (${images.length} sent)`, 'invalid_value', 'image')
  }
  const [image] = images
  if (image.mimeType !== 'image/png' && image.mimeType !== 'image/jpeg') {
    throw GatewayError.invalidRequest(`image: Imagen takes PNG or JPEG images, not ${image.mimeType}`, 'invalid_image', 'image')
  }
  return image
}

/** Parameters both kinds take from OpenAI's request */
function commonParameters(ask: GoogleImageAsk, parameters: Record<string, unknown>) {
  parameters.includeRaiReason = true
  if (ask.negativePrompt !== null) parameters.negativePrompt = ask.negativePrompt
  if (ask.personGeneration !== null) parameters.personGeneration = ask.personGeneration
  if (ask.mimeType !== null) parameters.outputOptions = { mimeType: ask.mimeType }
}

/** The capability model's `:predict` body; `mask` is Imagen's (image_masks.ts), or null when the client sent none. */
export function imagenEditBody(ask: GoogleImageAsk, options: ImagenEditOptions, model: string, images: readonly InlineImage[], mask: Buffer | null): Record<string, unknown> {
  if (ask.n > IMAGEN_MAX_IMAGES) throw GatewayError.invalidRequest(`n: Imagen makes 1 to ${IMAGEN_MAX_IMAGES} images a request`, 'invalid_n', 'n')
  const image = rawImage(images, model)
  const editMode = options.editMode ?? (mask !== null ? 'inpaint_insertion' : 'bgswap')
  if (mask === null && editMode === 'outpaint') {
    throw GatewayError.invalidRequest('edit_mode: outpaint needs a mask (the image on a larger transparent canvas, as the mask of it)', 'invalid_value', 'edit_mode')
  }
  if (mask !== null && options.maskMode !== null) {
    throw GatewayError.invalidRequest('mask_mode: only without a mask (Imagen finds the background or foreground itself)', 'invalid_value', 'mask_mode')
  }
  const maskReference: Record<string, unknown> =
    mask !== null
      ? {
          referenceType: 'REFERENCE_TYPE_MASK',
          referenceId: 2,
          referenceImage: { bytesBase64Encoded: mask.toString('base64'), mimeType: 'image/png' },
          maskImageConfig: { maskMode: 'MASK_MODE_USER_PROVIDED' },
        }
      : { referenceType: 'REFERENCE_TYPE_MASK', referenceId: 2, maskImageConfig: { maskMode: MASK_MODES[options.maskMode ?? 'background'] } }
  const parameters: Record<string, unknown> = { editMode: EDIT_MODES[editMode], sampleCount: ask.n }
  commonParameters(ask, parameters)
  return {
    instances: [
      {
        prompt: ask.prompt,
        referenceImages: [
          { referenceType: 'REFERENCE_TYPE_RAW', referenceId: 1, referenceImage: { bytesBase64Encoded: image.data, mimeType: image.mimeType } },
          maskReference,
        ],
      },
    ],
    parameters,
  }
}

/** The upscaler's `:predict` body: one image, a factor (see the file's comment). */
export function imagenUpscaleBody(ask: GoogleImageAsk, options: ImagenEditOptions, model: string, images: readonly InlineImage[], size: Dimensions | null): Record<string, unknown> {
  if (ask.n !== 1) throw GatewayError.invalidRequest('n: an upscale makes one image', 'invalid_n', 'n')
  const image = rawImage(images, model)
  const parameters: Record<string, unknown> = { mode: 'upscale', sampleCount: 1, upscaleConfig: { upscaleFactor: options.upscaleFactor ?? factorOf(ask, size) } }
  commonParameters(ask, parameters)
  return { instances: [{ image: { bytesBase64Encoded: image.data, mimeType: image.mimeType } }], parameters }
}

/** The factor nearest `size` over the image's size (2, 3 or 4), x2 when either is unknown */
function factorOf(ask: GoogleImageAsk, size: Dimensions | null): string {
  if (ask.width === null || ask.height === null || size === null) return 'x2'
  const ratio = Math.max(ask.width / size.width, ask.height / size.height)
  return `x${Math.min(4, Math.max(2, Math.round(ratio)))}`
}
