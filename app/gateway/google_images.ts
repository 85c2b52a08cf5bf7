import { GatewayError } from '#exceptions/gateway_error'
import { toTokenUsage } from '#gateway/dialects/dialect'
import { geminiUsageOfBody } from '#gateway/dialects/gemini/response'
import { countTokensNow } from '#gateway/metering/tokenizer'
import type { ProviderKind, TokenUsage } from '#gateway/types'

/**
 * OpenAI's images wire (`/v1/images/generations`, `/v1/images/edits`) on
 * Google's native channels (`google`: the Gemini API, `vertex`), which have
 * no such endpoint: what the clients of new-api and LiteLLM do with
 * `imagen-4.0-*` and Gemini's image models (`gemini-2.5-flash-image`,
 * `gemini-3-pro-image-preview`) through it.
 *
 * - Imagen: `:predict` with `instances: [{prompt}]` and `parameters`
 *   (sampleCount, aspectRatio, sampleImageSize...); its `predictions[]`
 *   (`bytesBase64Encoded`, `mimeType`; a filtered one only `raiFilteredReason`)
 *   become `data[]`. Billed per image.
 * - Gemini's image models: `:generateContent` asking for the IMAGE modality,
 *   `imageConfig.aspectRatio` / `imageSize`; the answer's image parts
 *   (`inlineData`, thought images left out) become `data[]`. Billed by the
 *   tokens Google reports (the IMAGE modality at the image output price),
 *   plus the per-image price when one is set.
 *
 * `response_format: "url"` is answered with data URLs (`data:image/png;base64,...`):
 * Google returns the bytes and keeps no file the gateway could point to.
 */

/** Kinds that speak Google's own wire and get the translation */
export function speaksGoogleImages(provider: ProviderKind): boolean {
  return provider === 'google' || provider === 'vertex'
}

/** Imagen models (`imagen-4.0-generate-001`, `imagen-4.0-fast-generate-001`...), maybe with a `models/` or publisher prefix */
export function isImagenModel(model: string): boolean {
  return /^(?:publishers\/google\/)?(?:models\/)?imagen-/i.test(model)
}

/** Gemini 2.0's image preview answers images only beside text (`["TEXT", "IMAGE"]`); later image models take IMAGE alone */
function needsTextModality(model: string): boolean {
  return /gemini-2\.0-/i.test(model)
}

/** Imagen answers 1 to 4 images a request */
export const IMAGEN_MAX_IMAGES = 4
/**
 * Output tokens an image may take, for the hold: Gemini 2.5 Flash Image bills
 * 1,290 an image, Gemini 3 Pro Image 1,120 at 1K and 2K, 2,000 at 4K.
 */
export const IMAGE_TOKENS_HELD = 2000
/** Tokens of an image when an answer reports none (Gemini 2.5 Flash Image's, at 1K) */
const IMAGE_TOKENS_ESTIMATE = 1290

const IMAGEN_RATIOS = ['1:1', '3:4', '4:3', '9:16', '16:9']
const GEMINI_RATIOS = ['1:1', '2:3', '3:2', '3:4', '4:3', '4:5', '5:4', '9:16', '16:9', '21:9']

/** The options of an OpenAI images request, read once for either of Google's wires. */
export interface GoogleImageAsk {
  prompt: string
  n: number
  /** OpenAI's `size` (`1536x1024`), or null for `auto` / none */
  width: number | null
  height: number | null
  /** `aspect_ratio` named by the client (one of Google's), over the size's */
  aspectRatio: string | null
  /** `image_size` named by the client (1K, 2K, 4K), over the size's */
  imageSize: string | null
  negativePrompt: string | null
  personGeneration: string | null
  /** b64_json (default) or url (a data URL) */
  asUrl: boolean
  /** `output_format` jpeg or png (Imagen's outputOptions.mimeType) */
  mimeType: string | null
}

/**
 * Reads the fields of an OpenAI images request that Google's wires take (a
 * JSON body, or an edit's form fields as strings); a size or option Google
 * cannot take is the client's 400, in OpenAI's format, before any channel is
 * tried.
 */
export function readImageAsk(fields: {
  prompt: unknown
  n: unknown
  size?: unknown
  response_format?: unknown
  aspect_ratio?: unknown
  image_size?: unknown
  negative_prompt?: unknown
  person_generation?: unknown
  output_format?: unknown
}): GoogleImageAsk {
  if (typeof fields.prompt !== 'string' || fields.prompt.trim() === '') {
    throw GatewayError.invalidRequest('prompt: a text describing the image is required', 'missing_prompt', 'prompt')
  }
  const n = fields.n === undefined || fields.n === null ? 1 : Number(fields.n)
  if (!Number.isInteger(n) || n < 1) throw GatewayError.invalidRequest('n: a whole number from 1 is required', 'invalid_n', 'n')
  const ask: GoogleImageAsk = {
    prompt: fields.prompt,
    n,
    width: null,
    height: null,
    aspectRatio: optionalText(fields.aspect_ratio, 'aspect_ratio'),
    imageSize: optionalText(fields.image_size, 'image_size'),
    negativePrompt: optionalText(fields.negative_prompt, 'negative_prompt'),
    personGeneration: optionalText(fields.person_generation, 'person_generation'),
    asUrl: false,
    mimeType: null,
  }
  const size = fields.size
  if (size !== undefined && size !== null && size !== 'auto') {
    const match = typeof size === 'string' ? /^\s*(\d{1,5})\s*x\s*(\d{1,5})\s*$/i.exec(size) : null
    const width = match ? Number(match[1]) : 0
    const height = match ? Number(match[2]) : 0
    if (width < 1 || height < 1 || width > 8192 || height > 8192) {
      throw GatewayError.invalidRequest(`size: '${String(size).slice(0, 40)}' is not WIDTHxHEIGHT (1024x1024, 1536x1024, 1024x1536, 1792x1024...) or auto`, 'invalid_size', 'size')
    }
    ask.width = width
    ask.height = height
  }
  if (ask.imageSize !== null && !['1K', '2K', '4K'].includes(ask.imageSize.toUpperCase())) {
    throw GatewayError.invalidRequest(`image_size: '${ask.imageSize.slice(0, 20)}' is not 1K, 2K or 4K`, 'invalid_value', 'image_size')
  }
  const format = fields.response_format
  if (format !== undefined && format !== null && format !== 'b64_json' && format !== 'url') {
    throw GatewayError.invalidRequest("response_format: 'b64_json' or 'url' is required", 'invalid_value', 'response_format')
  }
  ask.asUrl = format === 'url'
  if (fields.output_format === 'jpeg' || fields.output_format === 'png') ask.mimeType = `image/${fields.output_format}`
  return ask
}

function optionalText(value: unknown, param: string): string | null {
  if (value === undefined || value === null) return null
  if (typeof value !== 'string' || value.trim() === '') throw GatewayError.invalidRequest(`${param}: a string is required`, 'invalid_value', param)
  return value.trim()
}

/** The supported ratio nearest the size's (by the log of the ratios: 1536x1024 is 4:3 for Imagen, 3:2 for Gemini). */
function aspectRatioOf(ask: GoogleImageAsk, ratios: readonly string[], param: string): string | undefined {
  if (ask.aspectRatio !== null) {
    if (!ratios.includes(ask.aspectRatio)) {
      throw GatewayError.invalidRequest(`aspect_ratio: '${ask.aspectRatio.slice(0, 20)}' is not one of ${ratios.join(', ')}`, 'invalid_value', param)
    }
    return ask.aspectRatio
  }
  if (ask.width === null || ask.height === null) return undefined
  const wanted = Math.log(ask.width / ask.height)
  let best = ratios[0]
  let distance = Infinity
  for (const ratio of ratios) {
    const [w, h] = ratio.split(':').map(Number)
    const d = Math.abs(Math.log(w / h) - wanted)
    if (d < distance) {
      best = ratio
      distance = d
    }
  }
  return best
}

/** The size tier: the client's `image_size`, else by the size's longer side (over 1792: 2K; over 3072: 4K where the model has it). */
function imageSizeOf(ask: GoogleImageAsk, max: '2K' | '4K'): string | undefined {
  if (ask.imageSize !== null) return ask.imageSize.toUpperCase()
  if (ask.width === null || ask.height === null) return undefined
  const side = Math.max(ask.width, ask.height)
  if (side > 3072 && max === '4K') return '4K'
  return side > 1792 ? '2K' : undefined
}

/** Imagen's `:predict` body. */
export function imagenBody(ask: GoogleImageAsk): Record<string, unknown> {
  if (ask.n > IMAGEN_MAX_IMAGES) {
    throw GatewayError.invalidRequest(`n: Imagen makes 1 to ${IMAGEN_MAX_IMAGES} images a request`, 'invalid_n', 'n')
  }
  const parameters: Record<string, unknown> = { sampleCount: ask.n, includeRaiReason: true }
  const ratio = aspectRatioOf(ask, IMAGEN_RATIOS, ask.aspectRatio !== null ? 'aspect_ratio' : 'size')
  if (ratio !== undefined) parameters.aspectRatio = ratio
  const size = imageSizeOf(ask, '2K')
  if (size === '4K') throw GatewayError.invalidRequest('image_size: Imagen makes 1K or 2K images', 'invalid_value', 'image_size')
  if (size !== undefined) parameters.sampleImageSize = size
  if (ask.negativePrompt !== null) parameters.negativePrompt = ask.negativePrompt
  if (ask.personGeneration !== null) parameters.personGeneration = ask.personGeneration
  if (ask.mimeType !== null) parameters.outputOptions = { mimeType: ask.mimeType }
  return { instances: [{ prompt: ask.prompt }], parameters }
}

/** An image uploaded to edit, as a Gemini inline part */
export interface InlineImage {
  mimeType: string
  data: string
}

/** Gemini's `:generateContent` body asking for the image (after the images to edit, when any). */
export function geminiImageBody(ask: GoogleImageAsk, model: string, images: readonly InlineImage[] = []): Record<string, unknown> {
  if (ask.n > 1) {
    throw GatewayError.invalidRequest('n: Gemini image models make one image a request (send n requests)', 'invalid_n', 'n')
  }
  if (ask.negativePrompt !== null) {
    throw GatewayError.invalidRequest('negative_prompt: Imagen takes one, Gemini image models do not (say it in the prompt)', 'invalid_value', 'negative_prompt')
  }
  const imageConfig: Record<string, unknown> = {}
  const ratio = aspectRatioOf(ask, GEMINI_RATIOS, ask.aspectRatio !== null ? 'aspect_ratio' : 'size')
  if (ratio !== undefined) imageConfig.aspectRatio = ratio
  const size = imageSizeOf(ask, '4K')
  if (size !== undefined) imageConfig.imageSize = size
  if (ask.personGeneration !== null) imageConfig.personGeneration = ask.personGeneration
  const generationConfig: Record<string, unknown> = { responseModalities: needsTextModality(model) ? ['TEXT', 'IMAGE'] : ['IMAGE'] }
  if (Object.keys(imageConfig).length > 0) generationConfig.imageConfig = imageConfig
  const parts: unknown[] = images.map((image) => ({ inlineData: image }))
  parts.push({ text: ask.prompt })
  return { contents: [{ role: 'user', parts }], generationConfig }
}

/** An OpenAI images answer made from Google's, its usage, or the refusal when it holds no image. */
export interface GoogleImagesAnswer {
  answer: Record<string, unknown>
  usage: TokenUsage
  /** No image came back (all filtered, a blocked prompt, a text-only answer): the client's 400, the usage still billed */
  refusal: GatewayError | null
}

/**
 * Imagen's predictions -> OpenAI's data[]: one image per prediction with
 * bytes, at most the `n` asked (its `sampleCount`: an upstream answering
 * more is not believed past it, neither billed nor relayed); the filtered
 * ones say why.
 */
export function fromImagen(upstream: any, ask: GoogleImageAsk): GoogleImagesAnswer {
  const data: Record<string, unknown>[] = []
  const reasons: string[] = []
  const predictions = Array.isArray(upstream?.predictions) ? upstream.predictions : []
  for (const prediction of predictions) {
    const bytes = prediction?.bytesBase64Encoded
    if (typeof bytes === 'string' && bytes !== '') {
      if (data.length === ask.n) continue
      const item = imageItem(bytes, typeof prediction.mimeType === 'string' ? prediction.mimeType : 'image/png', ask)
      if (typeof prediction.prompt === 'string') item.revised_prompt = prediction.prompt
      data.push(item)
    } else if (typeof prediction?.raiFilteredReason === 'string') reasons.push(prediction.raiFilteredReason)
  }
  const usage: TokenUsage = { promptTokens: 0, completionTokens: 0, totalTokens: 0, cachedTokens: 0, reasoningTokens: 0, images: data.length, estimated: false }
  const refusal = data.length === 0 ? safetyRefusal(reasons.length > 0 ? reasons.join('; ') : 'the upstream returned none (filtered)') : null
  return { answer: { created: nowSeconds(), data }, usage, refusal }
}

/**
 * Gemini's answer -> OpenAI's data[]: each image part of the candidates
 * (`inlineData` or `inline_data`; a thought's draft image left out), with
 * gpt-image's `usage` shape; billed by the reported tokens plus the images.
 */
export function fromGeminiImages(upstream: any, ask: GoogleImageAsk): GoogleImagesAnswer {
  const data: Record<string, unknown>[] = []
  const texts: string[] = []
  let finish: string | null = null
  for (const candidate of Array.isArray(upstream?.candidates) ? upstream.candidates : []) {
    if (typeof candidate?.finishReason === 'string') finish = candidate.finishReason
    const parts = candidate?.content?.parts
    if (!Array.isArray(parts)) continue
    for (const part of parts) {
      if (part === null || typeof part !== 'object' || part.thought === true) continue
      const inline = part.inlineData ?? part.inline_data
      const mime = inline?.mimeType ?? inline?.mime_type
      if (typeof inline?.data === 'string' && inline.data !== '' && (typeof mime !== 'string' || mime.startsWith('image/'))) {
        data.push(imageItem(inline.data, typeof mime === 'string' ? mime : 'image/png', ask))
      } else if (typeof part.text === 'string' && part.text.trim() !== '') texts.push(part.text)
    }
  }
  const reported = geminiUsageOfBody(upstream)
  const usage = reported !== null ? toTokenUsage(reported) : estimatedUsage(ask.prompt, data.length)
  usage.images = data.length
  const answer: Record<string, unknown> = { created: nowSeconds(), data, usage: openAiImageUsage(usage) }
  let refusal: GatewayError | null = null
  if (data.length === 0) {
    const blocked = upstream?.promptFeedback?.blockReason
    const why = typeof blocked === 'string' ? `prompt blocked: ${blocked}` : finish !== null && finish !== 'STOP' ? `finish reason ${finish}` : 'the model answered no image'
    const said = texts.join(' ').trim()
    refusal = safetyRefusal(said === '' ? why : `${why}; it said: ${said.slice(0, 300)}`)
  }
  return { answer, usage, refusal }
}

/** gpt-image's usage member: the prompt's tokens and the answer's (its images' and thoughts' included). */
function openAiImageUsage(usage: TokenUsage): Record<string, unknown> {
  return { input_tokens: usage.promptTokens, output_tokens: usage.completionTokens, total_tokens: usage.promptTokens + usage.completionTokens }
}

/** No usageMetadata (a proxy that drops it): the prompt counted, each image at its usual tokens, marked estimated. */
function estimatedUsage(prompt: string, images: number): TokenUsage {
  const promptTokens = countTokensNow(prompt) ?? Math.ceil(prompt.length / 4)
  const imageTokens = images * IMAGE_TOKENS_ESTIMATE
  return {
    promptTokens,
    completionTokens: imageTokens,
    totalTokens: promptTokens + imageTokens,
    cachedTokens: 0,
    reasoningTokens: 0,
    imageCompletionTokens: imageTokens || undefined,
    estimated: true,
  }
}

function imageItem(base64: string, mimeType: string, ask: GoogleImageAsk): Record<string, unknown> {
  return ask.asUrl ? { url: `data:${mimeType};base64,${base64}` } : { b64_json: base64 }
}

/** OpenAI's refusal of an image request its safety system stopped */
function safetyRefusal(reason: string): GatewayError {
  return GatewayError.invalidRequest(`No image was generated: ${reason}`, 'content_policy_violation')
}

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000)
}
