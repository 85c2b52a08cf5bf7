import { GatewayError } from '#exceptions/gateway_error'
import { baseOf, withChannelHeaders, type UpstreamRequest } from '#gateway/providers/provider_adapter'
import { vertexModelCall } from '#gateway/providers/vertex/vertex_adapter'
import type { ChannelInfo } from '#gateway/types'
import type { VideoRequest } from '#gateway/videos/video_request'

/**
 * Google's Veo, behind OpenAI's Videos API and for Gemini clients:
 * `:predictLongRunning` makes an operation, polled until `done` (Gemini API:
 * `GET {base}/{operation name}`; Vertex: `:fetchPredictOperation`). A finished
 * operation names its videos: the Gemini API by a `uri` read with the
 * channel's key, Vertex inline (`bytesBase64Encoded`) or in Cloud Storage
 * (`gcsUri`, which the gateway does not read).
 */

/** Veo's request for an OpenAI-wire creation: one video, its length, the aspect and resolution of its size. */
export function veoBody(request: VideoRequest): string {
  const instance: Record<string, any> = { prompt: request.prompt }
  if (request.image !== null) instance.image = { bytesBase64Encoded: request.image.bytes.toString('base64'), mimeType: request.image.mimeType }
  else if (request.imageUrl !== null) instance.image = dataUrlImage(request.imageUrl)
  const parameters: Record<string, any> = { durationSeconds: request.seconds, sampleCount: 1 }
  if (request.size !== null) {
    const [width, height] = request.size.split('x').map(Number)
    parameters.aspectRatio = width >= height ? '16:9' : '9:16'
    parameters.resolution = Math.max(width, height) >= 1920 ? '1080p' : '720p'
  }
  return JSON.stringify({ instances: [instance], parameters })
}

/** A JSON body's input_reference for Veo: only an image in the request (a data: URL); Veo cannot read OpenAI's file ids or the web. */
function dataUrlImage(url: string): Record<string, string> {
  const match = /^data:(image\/[a-z0-9.+-]+);base64,([A-Za-z0-9+/=\s]+)$/i.exec(url)
  if (!match) {
    throw GatewayError.invalidRequest(
      "Veo takes 'input_reference' as an image file part or a data: URL of an image",
      'invalid_value',
      'input_reference'
    )
  }
  return { bytesBase64Encoded: match[2].replace(/\s/g, ''), mimeType: match[1].toLowerCase() }
}

/** A Gemini operation name the gateway may put in a path: `models/{model}/operations/{id}` and no way out of it */
export function safeOperationName(name: unknown): name is string {
  return typeof name === 'string' && name.length <= 512 && /^[A-Za-z0-9@._\-/]+$/.test(name) && !name.includes('..') && !name.startsWith('/')
}

/** `:predictLongRunning` on the channel (Gemini API or Vertex) with `body`. */
export function submitRequest(channel: ChannelInfo, model: string, body: string): UpstreamRequest {
  if (channel.provider === 'vertex') return vertexModelCall(channel, model, 'predictLongRunning', body)
  const { origin, basePath } = baseOf(channel)
  const name = encodeURIComponent(model.replace(/^models\//, '')).replace(/%40/g, '@')
  return { origin, path: `${basePath}/models/${name}:predictLongRunning`, headers: geminiHeaders(channel, true), body }
}

/** The operation's state now: Gemini API `GET {base}/{name}`; Vertex `:fetchPredictOperation` {operationName}. */
export function pollRequest(channel: ChannelInfo, model: string, operation: string): UpstreamRequest {
  if (channel.provider === 'vertex') return vertexModelCall(channel, model, 'fetchPredictOperation', JSON.stringify({ operationName: operation }))
  const { origin, basePath } = baseOf(channel)
  return { method: 'GET', origin, path: `${basePath}/${operation}`, headers: geminiHeaders(channel, false), body: '' }
}

function geminiHeaders(channel: ChannelInfo, json: boolean): Record<string, string> {
  const headers: Record<string, string> = { accept: 'application/json' }
  if (json) headers['content-type'] = 'application/json'
  if (channel.apiKey) headers['x-goog-api-key'] = channel.apiKey
  withChannelHeaders(headers, channel, {}, [])
  return headers
}

/** A made video as the operation names it */
export interface VeoSample {
  uri: string | null
  base64: string | null
  mimeType: string
}

/** The videos a finished operation made (Gemini API's generatedSamples, Vertex's videos) */
export function samplesOf(operation: Record<string, any>): VeoSample[] {
  const response = operation.response ?? {}
  const list = response.generateVideoResponse?.generatedSamples ?? response.generatedSamples ?? response.videos ?? []
  if (!Array.isArray(list)) return []
  const samples: VeoSample[] = []
  for (const item of list) {
    const video = item?.video ?? item
    if (video === null || typeof video !== 'object') continue
    const uri = typeof video.uri === 'string' ? video.uri : typeof video.gcsUri === 'string' ? video.gcsUri : null
    const base64 = typeof video.bytesBase64Encoded === 'string' ? video.bytesBase64Encoded : typeof video.encodedVideo === 'string' ? video.encodedVideo : null
    // A Vertex video whose inline bytes the row left out (storedOperation) is still one made: read again for /content.
    if (uri === null && base64 === null && video.inline !== true) continue
    samples.push({ uri, base64, mimeType: typeof video.mimeType === 'string' ? video.mimeType : typeof video.encoding === 'string' ? video.encoding : 'video/mp4' })
  }
  return samples
}

/** An operation's status in OpenAI's words, and its error when it failed (a done one that made no video failed too: Veo's safety filter). */
export function operationState(operation: Record<string, any>): { status: 'in_progress' | 'completed' | 'failed'; error: { code: string; message: string } | null; made: number } {
  if (operation.done !== true) return { status: 'in_progress', error: null, made: 0 }
  if (operation.error) {
    const message = typeof operation.error.message === 'string' ? operation.error.message : 'The video could not be generated'
    return { status: 'failed', error: { code: 'video_generation_failed', message: message.slice(0, 1000) }, made: 0 }
  }
  const made = samplesOf(operation).length
  if (made === 0) {
    const reasons = operation.response?.generateVideoResponse?.raiMediaFilteredReasons ?? operation.response?.raiMediaFilteredReasons
    const why = Array.isArray(reasons) && typeof reasons[0] === 'string' ? `: ${reasons[0].slice(0, 500)}` : ''
    return { status: 'failed', error: { code: 'content_filtered', message: `No video was generated${why}` }, made: 0 }
  }
  return { status: 'completed', error: null, made }
}

/** The operation as the row keeps it: a Vertex video's inline bytes left out (read again for /content), the rest as sent */
export function storedOperation(operation: Record<string, any>): Record<string, any> {
  const videos = operation.response?.videos
  if (!Array.isArray(videos) || !videos.some((v: any) => typeof v?.bytesBase64Encoded === 'string')) return operation
  return {
    ...operation,
    response: { ...operation.response, videos: videos.map((v: any) => (typeof v?.bytesBase64Encoded === 'string' ? { ...v, bytesBase64Encoded: undefined, inline: true } : v)) },
  }
}
