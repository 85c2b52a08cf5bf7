import { GatewayError } from '#exceptions/gateway_error'
import { asksForAudio, completionTokenHold, imageAnswerTokenHold, mayAnswerImages, webSearchHold } from '#gateway/metering/reservation'
import { MAX_COMPLETION_HOLD } from '#gateway/batches/batch_input'
import { CustomIdDigests } from '#gateway/batches/custom_ids'
import { MAX_MESSAGE_BATCH_REQUESTS } from '#gateway/batches/message_batch_input'
import { parsedLine, readJsonLines } from '#gateway/batches/batch_output'
import { resourceName } from '#gateway/provider_files/file_pins'

/**
 * A Gemini batch's creation body (`POST /v1beta/models/{m}:batchGenerateContent`,
 * `{batch: {display_name, input_config: {requests: {requests: [{request,
 * metadata: {key}}]}} | {file_name}}}`, either spelling of each field, as
 * Google's REST API takes them), read once for what the gateway must know:
 * the inline requests (counted and held as each alone would be) or the
 * Files API file that holds them.
 */
export type GeminiBatchSource = { kind: 'inline'; requests: Array<Record<string, any>> } | { kind: 'file'; fileName: string }

/** What reads a batch's requests (inline or a file's lines) tallies each into: its hold, and what its bill needs */
export interface RequestTally {
  readonly requests: number
  add(request: Record<string, any>, key: unknown): void
  /** Work left from the requests added (an embedding batch's token counts): done before the next chunk is read */
  flush?(): Promise<void>
}

/**
 * The requests' keys (metadata.key, a file line's key), kept for the bill
 * while every request has its own: unique as the bill tells them apart (by
 * digest: keys differing only in lone surrogates are one); once one is not,
 * the results are billed by place (sumGeminiResultsFile), and the digests
 * are no longer needed.
 */
export class RequestKeys {
  #digests = new CustomIdDigests()
  #keyed = true
  #count = 0

  add(key: unknown) {
    this.#count++
    if (this.#keyed && (typeof key !== 'string' || !this.#digests.addNew(key))) {
      this.#keyed = false
      this.#digests = new CustomIdDigests()
    }
  }

  /**
   * The keys' digests (custom_ids.ts) when every request named a key of its
   * own, for a results file's lines (each key billed once); else null (the
   * first lines up to the request count are billed). Inline answers come in
   * the requests' order and are billed by place.
   */
  digests(): Buffer | null {
    return this.#keyed && this.#count > 0 ? this.#digests.toBuffer() : null
  }
}

/**
 * What a batch's requests may use, for its hold (batch_pricing.ts
 * batchHold): as an OpenAI batch file's lines are held (batch_input.ts),
 * each request's `generationConfig.maxOutputTokens` (else the default
 * allowance) times its `candidateCount`, its Google Search grounding, and
 * which may answer with audio or images.
 */
export class GeminiHoldTally implements RequestTally {
  requests = 0
  completionHold = 0
  searchHold = 0
  audioHold = 0
  imageHold = 0
  /** The image requests' tokens when the image output price is the higher: one image per candidate at least (batch_input.ts) */
  imageAnswerHold = 0
  #keys = new RequestKeys()

  add(request: Record<string, any>, key: unknown) {
    this.requests++
    this.#keys.add(key)
    const completion = completionTokenHold(request)
    this.completionHold = Math.min(this.completionHold + completion, MAX_COMPLETION_HOLD)
    this.searchHold = Math.min(this.searchHold + webSearchHold(request), MAX_COMPLETION_HOLD)
    if (asksForAudio(request)) this.audioHold = Math.min(this.audioHold + completion, this.completionHold)
    else if (mayAnswerImages(request)) {
      this.imageHold = Math.min(this.imageHold + completion, this.completionHold)
      this.imageAnswerHold = Math.min(this.imageAnswerHold + Math.max(completion, imageAnswerTokenHold(request)), MAX_COMPLETION_HOLD)
    }
  }

  /** The keys' digests, or null (RequestKeys.digests) */
  customIds(): Buffer | null {
    return this.#keys.digests()
  }
}

function refused(message: string, field = 'batch') {
  return GatewayError.invalidRequest(message, 'invalid_batch', field)
}

function objectOrNull(value: unknown): Record<string, any> | null {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, any>) : null
}

/** The longest Files API name a batch may name (Google's are `files/` and up to 40 characters; the row's column is 64) */
const MAX_FILE_NAME = 64

/**
 * The batch's source, its inline requests checked (each an object with a
 * `request` object; a `request.model`, as @google/genai writes it, must be
 * the path's model) and tallied into `tally`; a file's name checked.
 */
export function readGeminiBatch(body: Record<string, any>, model: string, tally: RequestTally): GeminiBatchSource {
  const batch = objectOrNull(body.batch)
  if (batch === null) throw refused("'batch' is required: {display_name, input_config}")
  const input = objectOrNull(batch.inputConfig ?? batch.input_config)
  if (input === null) throw refused("'batch.input_config' is required: {requests: {requests: [...]}} or {file_name}", 'batch.input_config')
  const fileName = input.fileName ?? input.file_name
  const wrapper = input.requests
  if ((fileName === undefined) === (wrapper === undefined)) {
    throw refused("'batch.input_config' takes exactly one of 'requests' and 'file_name'", 'batch.input_config')
  }
  if (fileName !== undefined) {
    if (typeof fileName !== 'string' || fileName.length > MAX_FILE_NAME || resourceName(fileName, 'files/') !== fileName) {
      throw refused("'batch.input_config.file_name' must name a Files API file ('files/abc123')", 'batch.input_config.file_name')
    }
    return { kind: 'file', fileName }
  }
  const requests = objectOrNull(wrapper)?.requests
  if (!Array.isArray(requests) || requests.length === 0) {
    throw refused("'batch.input_config.requests.requests' must list at least one {request, metadata}", 'batch.input_config.requests')
  }
  if (requests.length > MAX_MESSAGE_BATCH_REQUESTS) throw refused(`A batch takes at most ${MAX_MESSAGE_BATCH_REQUESTS} inline requests`, 'batch.input_config.requests')
  for (let i = 0; i < requests.length; i++) {
    const at = `batch.input_config.requests.requests[${i}]`
    const item = objectOrNull(requests[i])
    const request = objectOrNull(item?.request)
    if (item === null || request === null) throw refused(`${at}: an object {request, metadata} with a request object is required`, at)
    if (request.model !== undefined) {
      const named = typeof request.model === 'string' ? request.model.replace(/^models\//, '') : null
      if (named !== model) {
        throw GatewayError.invalidRequest(
          `${at}.request.model is '${String(request.model).slice(0, 100)}', not the batch's model '${model.slice(0, 100)}': a batch is for the model of its path`,
          'mixed_models',
          `${at}.request.model`
        )
      }
    }
    tally.add(request, objectOrNull(item.metadata)?.key)
  }
  return { kind: 'inline', requests }
}

/**
 * The body for a channel that maps the client's model to another name: each
 * inline request's `request.model`, where it names one, renamed (the path
 * carries the channel's name); null when nothing in the body names it.
 */
export function withUpstreamModel(body: Record<string, any>, source: GeminiBatchSource, model: string): string | null {
  if (source.kind !== 'inline' || !source.requests.some((item) => item.request.model !== undefined)) return null
  const batch = body.batch
  const input = batch.inputConfig ?? batch.input_config
  const requests = source.requests.map((item) => (item.request.model === undefined ? item : { ...item, request: { ...item.request, model: `models/${model}` } }))
  const renamed = { ...input, requests: { ...input.requests, requests } }
  return JSON.stringify({ ...body, batch: { ...batch, [batch.inputConfig !== undefined ? 'inputConfig' : 'input_config']: renamed } })
}

/**
 * An input file's lines (`{key, request}`, read back from the channel that
 * holds it, as they stream: readJsonLines' bounds) tallied as inline
 * requests are; a line that is not one still holds a request's default
 * allowance (the upstream may run it); more than 100,000 lines are a 400
 * (as inline requests). A tally with work left per chunk (an embedding
 * batch's token counts) does it before the next chunk is read. Returns the
 * file's bytes.
 */
export async function tallyInputFile(body: AsyncIterable<Buffer>, tally: RequestTally): Promise<number> {
  let bytes = 0
  const flush = tally.flush === undefined ? undefined : () => tally.flush!()
  await readJsonLines(
    body,
    (line) => {
      bytes += line.length + 1
      if (line.length === 0 || (line.length === 1 && line[0] === 0x0d)) return
      // As many as inline (a 2 GB file of 20-byte lines was 100 million requests tallied, their digests held)
      if (tally.requests >= MAX_MESSAGE_BATCH_REQUESTS) throw refused(`A batch takes at most ${MAX_MESSAGE_BATCH_REQUESTS} requests: the file has more`, 'batch.input_config.file_name')
      const parsed = parsedLine(line)
      tally.add(objectOrNull(parsed?.request) ?? {}, parsed?.key)
    },
    flush
  )
  await flush?.()
  return bytes
}
