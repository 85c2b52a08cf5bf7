import type { IncomingMessage, ServerResponse } from 'node:http'
import { GatewayError } from '#exceptions/gateway_error'
import { authorizeAndHold } from '#gateway/access_policy'
import type { Catalog } from '#gateway/catalog'
import { dialectOf } from '#gateway/dialects/registry'
import { imagesUsage } from '#gateway/images'
import { googleEditProblem, GoogleEdit } from '#gateway/google_edits'
import { IMAGE_TOKENS_HELD, speaksGoogleImages } from '#gateway/google_images'
import { replacePartContent, partNamed, withLeadingField, type MultipartForm } from '#gateway/http/multipart'
import { completionTokenHold, promptTokenHold } from '#gateway/metering/reservation'
import type { RequestAccount } from '#gateway/metering/request_account'
import { addOperationHeaders } from '#gateway/http/litellm_headers'
import { adapterFor } from '#gateway/providers/registry'
import { whileClientListens } from '#gateway/relay/client_gone'
import { ClientStream, STREAM_HEADERS } from '#gateway/relay/client_stream'
import type { RouteCandidate } from '#gateway/routing/channel_router'
import { SseParser } from '#gateway/sse/sse_parser'
import { ClientGoneError, forEachChunk, readBody, type UpstreamBody } from '#gateway/upstream/dispatcher'
import { checkStreamOpening } from '#gateway/upstream/stream_opening'
import { parseAnswer } from '#gateway/upstream/upstream_answer'
import { withoutUpstreamCost } from '#gateway/upstream/upstream_cost'
import type { ChannelInfo, Principal, TokenUsage } from '#gateway/types'
import { answerUpload, dispatchUpload, UploadBodies } from '#gateway/upload_dispatch'

export type ImageUploadOperation = 'image_edits' | 'image_variations'

/** An image edit or variation upload, its form read (http/image_upload.ts). */
export interface ImageUploadCall {
  principal: Principal
  /** The client's multipart body, forwarded as-is unless a channel maps the model */
  rawBody: Buffer
  form: MultipartForm
  /** The client's content type (its boundary is the body's) */
  contentType: string
  model: string
  /** The form has a `model` part (a variation without one is dall-e-2's) */
  modelNamed: boolean
  /** Images asked for (`n`, 1 by default) */
  n: number
  /** Bytes of an edit's prompt (0 for a variation) */
  promptBytes: number
  /** Image files uploaded (`image`, `image[]`) */
  inputImages: number
  /** gpt-image's `stream=true` on an edit: SSE events `image_edit.partial_image`, `image_edit.completed` */
  stream: boolean
  req: IncomingMessage
  res: ServerResponse
}

/**
 * Tokens an input image may take, for the hold: GPT image models bill an
 * input picture as image tokens (a few hundred at low input fidelity, some
 * thousands at high); 8,192 is over what one costs, so the hold is over the
 * bill rather than under it. The bytes of the upload say nothing of this
 * (a PNG's size is not its tokens): held by bytes as JSON bodies are (one
 * token per 3), a 4 MB upload would hold 1.4 million tokens.
 */
const INPUT_IMAGE_TOKENS = 8192

/**
 * `POST /v1/images/edits` and `/v1/images/variations` on channels that
 * offer them (the OpenAI family; Azure edits only): the client's multipart
 * bytes go upstream as sent (only the `model` part's value changes when a
 * channel maps the name), the answer comes back as the upstream's bytes; an
 * edit's `stream=true` (gpt-image) is relayed as it arrives. Priced like
 * image generations: each image at the model's per-image price, plus tokens
 * when the upstream reports them; held at `n` images while it runs.
 */
export async function relayImageUpload(
  catalog: Catalog,
  /** The model's candidates, then those of its fallback models (GatewayService.#route) */
  route: (model: string) => RouteCandidate[],
  operation: ImageUploadOperation,
  call: ImageUploadCall,
  account: RequestAccount
) {
  account.model = call.model
  account.stream = call.stream
  const promptTokens = promptTokenHold(call.promptBytes) + call.inputImages * INPUT_IMAGE_TOKENS
  // The images' tokens at the image output price (a Gemini image model's; gpt-image's image tokens), as for generations.
  account.imageAnswer = true
  authorizeAndHold(catalog, account, call.model, promptTokens, Math.max(completionTokenHold({ n: call.n }), call.n * IMAGE_TOKENS_HELD), call.n)
  const offered = route(call.model).filter((c) => adapterFor(c.channel.provider).offers(c.channel, operation))
  // Google's channels edit with Gemini's image models (whole, no mask) and, on Vertex, Imagen's capability model and upscaler (google_edits.ts).
  const problem = (c: RouteCandidate) => (speaksGoogleImages(c.channel.provider) ? googleEditProblem(call, c.upstreamModel, c.channel.provider) : null)
  const candidates = offered.filter((c) => problem(c) === null)
  if (candidates.length === 0) {
    if (offered.length > 0) throw GatewayError.invalidRequest(problem(offered[0])!, 'unsupported_value')
    const what = operation === 'image_edits' ? 'image edits' : 'image variations'
    throw GatewayError.invalidRequest(`No channel serving '${call.model}' offers ${what}`, 'unsupported_endpoint')
  }
  const bodies = new UploadBodies(call, (upstreamModel) => {
    const part = call.modelNamed ? partNamed(call.form, 'model') : undefined
    return part ? replacePartContent(call.rawBody, part, upstreamModel) : withLeadingField(call.rawBody, call.form, 'model', upstreamModel)
  })
  // Google's channels get a body of the form's images and prompt (generateContent, Imagen's predict), made once per model
  // (a bad size or mask: a 400 before any is tried).
  const googleModels = candidates.filter((c) => speaksGoogleImages(c.channel.provider)).map((c) => c.upstreamModel)
  const google = googleModels.length > 0 ? new GoogleEdit(call) : null
  const bodyOf = (c: RouteCandidate) => (google !== null && speaksGoogleImages(c.channel.provider) ? google.body(c.upstreamModel) : bodies.for(c.upstreamModel))
  // What a stream has delivered so far is what a client that hangs up is billed (a whole answer it left: nothing).
  const streamed = noImages()
  await whileClientListens(call.res, account, () => streamed, async (signal) => {
    if (google !== null) {
      // Within the client's listening: one gone while its mask is decoded (a 4096x4096 one takes a second) stops it, billed nothing.
      await google.prepare(googleModels, signal)
      for (const model of googleModels) google.body(model)
    }
    const result = await dispatchUpload(call, candidates, operation, bodyOf, account, signal, (body, c) =>
      google !== null && speaksGoogleImages(c.channel.provider) ? google.read(body, c.upstreamModel) : readImagesAnswer(body, call.stream)
    )
    // The upstream has the upload: neither the copies nor the client's bytes (up to IMAGE_UPLOAD_MAX_MB) are kept for the answer.
    bodies.release()
    google?.release()
    call.rawBody = RELEASED_BODY
    if (result.answer === null) return relayImageStream(call, account, result.body, streamed, result.candidate.channel)
    const { bytes, answer, usage: translated, refusal } = result.answer
    if (refusal) {
      // No image came back (a blocked prompt, a safety stop): the tokens Google billed are billed, the client gets the 400.
      account.close(refusal.status, refusal.code, translated)
      throw refusal
    }
    const usage = translated ?? imagesUsage(answer)
    answerUpload(call.res, account, result.response.statusCode, bytes, 'application/json', usage, result.candidate.channel)
    account.close(result.response.statusCode, null, usage)
  })
}

/** A whole answer: the client's bytes and their JSON; translated from Google's, its usage too, or the refusal when it holds no image */
export interface ImagesAnswer {
  bytes: Buffer
  answer: any
  usage?: TokenUsage
  refusal?: GatewayError | null
}

/**
 * dispatch()'s AnswerCheck, as for image generations (json_operation.ts):
 * the whole answer's bytes (relayed as they are) and their JSON; not JSON,
 * or an error body with a success status, fails over. A stream the client
 * asked for is only opened here (stream_opening.ts: an error event first, or
 * no event at all, fails over); null then.
 */
async function readImagesAnswer(body: UpstreamBody, stream: boolean): Promise<ImagesAnswer | null> {
  const contentType = body.headers['content-type']
  if (stream && typeof contentType === 'string' && contentType.includes('text/event-stream')) {
    await checkStreamOpening(body, dialectOf('openai_chat').passThrough)
    return null
  }
  const bytes = await readBody(body)
  const answer = parseAnswer(bytes)
  // Relayed as they are, but for the upstream's own bill (upstream_cost.ts).
  return { bytes: withoutUpstreamCost(bytes, answer), answer }
}

/**
 * gpt-image's streamed edit: the upstream's SSE bytes go out as they arrive;
 * only events are parsed, for what they bill: each `image_edit.completed` is
 * one image, and carries the tokens of its image (summed).
 */
async function relayImageStream(call: ImageUploadCall, account: RequestAccount, body: AsyncIterable<Buffer>, usage: TokenUsage, channel: ChannelInfo) {
  const headers: Record<string, string> = { ...STREAM_HEADERS, 'x-request-id': account.requestId }
  // No cost: unknown when a stream's headers go out (as for generations).
  addOperationHeaders(headers, account, null, channel)
  const stream = new ClientStream(call.res, headers, () => account.markFirstByte())
  const parser = new SseParser()
  let failed = false
  const count = (chunk: Buffer) => {
    for (const event of parser.push(chunk)) {
      if (!event.data.includes('image_edit.completed')) continue
      try {
        const completed = JSON.parse(event.data)
        if (completed?.type !== 'image_edit.completed') continue
        const tokens = imagesUsage(completed)
        usage.images = (usage.images ?? 0) + 1
        usage.promptTokens += tokens.promptTokens
        usage.completionTokens += tokens.completionTokens
        usage.totalTokens += tokens.totalTokens
      } catch {}
    }
  }
  try {
    await forEachChunk(body, (chunk) => {
      count(chunk)
      return stream.gone ? false : stream.send(chunk)
    })
  } catch {
    if (stream.closedEarly) throw new ClientGoneError()
    failed = true
  }
  if (!failed && stream.closedEarly) throw new ClientGoneError()
  if (failed) call.res.destroy()
  else stream.end()
  account.close(200, failed ? 'stream_interrupted' : null, usage)
}

const RELEASED_BODY = Buffer.alloc(0)

/** No image and no token: a request that ended before its answer (the client gone) */
function noImages(): TokenUsage {
  return { promptTokens: 0, completionTokens: 0, totalTokens: 0, cachedTokens: 0, reasoningTokens: 0, images: 0, estimated: false }
}
