import { GatewayError } from '#exceptions/gateway_error'
import { asksForAudio, completionTokenHold, imageAnswerTokenHold, mayAnswerImages, webSearchHold } from '#gateway/metering/reservation'
import { modelNameProblem } from '#gateway/http/model_name'
import { CustomIdDigests } from '#gateway/batches/custom_ids'
import { checkJsonStructure } from '#gateway/http/json_guard'

/**
 * A batch input file (JSONL: one request a line, `{custom_id, method, url,
 * body}`), read once at upload for what the gateway must know of it: the one
 * model its lines name (OpenAI's rule too: a batch file is for one model;
 * the gateway routes, authorises and bills that model), the one endpoint
 * they call, and how many completion tokens they may use (each line's
 * max_tokens, else the default allowance: reservation.ts), the web searches
 * they may make and which of them ask for a spoken answer, for the batch's
 * hold (as each request alone holds them).
 */
export interface BatchInput {
  model: string
  /** The lines' `url` in OpenAI's form (`/v1/chat/completions`...) */
  endpoint: string
  /** The `url` as every line writes it (Azure's docs write `/chat/completions`), or null when lines write it differently */
  writtenUrl: string | null
  lines: number
  completionHold: number
  /** The web searches they may make (each line's webSearchHold), held at the price per search */
  searchHold: number
  /** Of completionHold, the tokens of lines asking for a spoken answer (asksForAudio), held at the audio output price */
  audioHold: number
  /** Of completionHold, the tokens of lines whose answer may be an image (mayAnswerImages), held at the image output price */
  imageHold: number
  /**
   * Those lines' tokens when the image output price is the higher (batchHold): each line's at least one image per
   * choice when it sets no max tokens (imageAnswerTokenHold), as a request alone is held; imageHold or more
   */
  imageAnswerHold: number
  /** The lines' custom ids, kept for the bill (custom_ids.ts: each billed once, no other) */
  customIds: Buffer
}

/** The endpoints a batch line may call (OpenAI's Batch API's, embeddings included). */
export const BATCH_ENDPOINTS: ReadonlySet<string> = new Set(['/v1/chat/completions', '/v1/responses', '/v1/embeddings', '/v1/completions'])

/**
 * A line's url (or a batch's `endpoint`) in OpenAI's form: one of
 * BATCH_ENDPOINTS, or Azure's form of one without `/v1` (`/chat/completions`,
 * as Azure's batch docs and AzureOpenAI clients write it); null for any other.
 */
export function batchEndpointOf(url: unknown): string | null {
  if (typeof url !== 'string') return null
  if (BATCH_ENDPOINTS.has(url)) return url
  return BATCH_ENDPOINTS.has(`/v1${url}`) ? `/v1${url}` : null
}

/** OpenAI's own limit of requests in one batch file */
export const MAX_BATCH_LINES = 50_000

/**
 * The completion tokens a file may hold at most: its lines' max_tokens are
 * the client's numbers (1e19 is an integer to JSON), summed past what a
 * bigint column or an exact JS number keeps. A file at this bound holds more
 * than any balance can cover: its batch is refused with 402, not stored wrong.
 */
export const MAX_COMPLETION_HOLD = Number.MAX_SAFE_INTEGER

function refused(message: string, code = 'invalid_batch_file') {
  return GatewayError.invalidRequest(message, code, 'file')
}

/** A UTF-16 surrogate not part of a pair (with the u flag, a pair is one code point and does not match) */
const LONE_SURROGATE = /\p{Cs}/u
/** A line's request: its keys checked for duplicates as a request body's */
const LINE_BODY = ['body'] as const

/**
 * Reads the file (a few seconds of parsing at 200 MB), letting the event
 * loop run every FILE_SLICE_MS: a 200 MB upload blocked every stream and
 * request of the instance for its whole read, and again for Azure's rewrite.
 */
export async function readBatchInput(bytes: Buffer): Promise<BatchInput> {
  let model: string | null = null
  let endpoint: string | null = null
  let writtenUrl: string | null = null
  let lines = 0
  let completionHold = 0
  let searchHold = 0
  let audioHold = 0
  let imageHold = 0
  let imageAnswerHold = 0
  const customIds = new Set<string>()
  const digests = new CustomIdDigests()
  await forEachLine(bytes, (text, raw, number) => {
    // As a request body's: a line nested thousands deep parsed, then overflowed the stack where it was written
    // again for Azure or a mapped name (a 502 counted as the channel's failure: a few uploads opened its circuit).
    // Its `body` is a request: a key twice there (`"model"`) would be held and billed as the last, and the
    // upstream, given the file's bytes as they are, may read the first.
    try {
      checkJsonStructure(raw, LINE_BODY)
    } catch (error) {
      if (!(error instanceof GatewayError)) throw error
      throw refused(`Line ${number}: ${error.message.replace('Request body', 'it').replace('the request body', 'the line')}`, error.code)
    }
    let line: any
    try {
      line = JSON.parse(text)
    } catch {
      throw refused(`Line ${number} of the file is not valid JSON`)
    }
    if (line === null || typeof line !== 'object' || Array.isArray(line)) throw refused(`Line ${number} is not a JSON object`)
    if (typeof line.custom_id !== 'string' || line.custom_id === '') throw refused(`Line ${number} has no custom_id`)
    // A lone surrogate is U+FFFD in UTF-8: 'x\ud800' and 'x\ud801' would be two ids of one digest (custom_ids.ts), one line billed.
    if (LONE_SURROGATE.test(line.custom_id)) throw refused(`Line ${number}: custom_id is not valid Unicode text (a lone surrogate)`)
    if (customIds.has(line.custom_id)) throw refused(`Line ${number} repeats the custom_id '${line.custom_id.slice(0, 100)}': each must be unique`)
    customIds.add(line.custom_id)
    digests.add(line.custom_id)
    if (line.method !== 'POST') throw refused(`Line ${number}: method must be POST`)
    const url = batchEndpointOf(line.url)
    if (url === null) {
      throw refused(`Line ${number}: url must be one of ${[...BATCH_ENDPOINTS].join(', ')} (or Azure's form without /v1)`)
    }
    if (endpoint !== null && url !== endpoint) {
      throw refused(`Line ${number} calls ${line.url}, line 1 ${endpoint}: a batch file calls one endpoint`, 'mixed_endpoints')
    }
    writtenUrl = endpoint === null || writtenUrl === line.url ? line.url : null
    endpoint = url
    const body = line.body
    if (body === null || typeof body !== 'object' || Array.isArray(body)) throw refused(`Line ${number} has no body object`)
    if (typeof body.model !== 'string' || body.model === '') throw refused(`Line ${number}: body.model is required`)
    const problem = modelNameProblem(body.model)
    if (problem) throw refused(`Line ${number}: ${problem}`)
    if (model !== null && body.model !== model) {
      throw refused(
        `Line ${number} names the model '${body.model.slice(0, 100)}', line 1 '${model.slice(0, 100)}': a batch file is for one model (as at OpenAI), which the gateway routes to one channel`,
        'mixed_models'
      )
    }
    model = body.model
    if (++lines > MAX_BATCH_LINES) throw refused(`The file has more than ${MAX_BATCH_LINES} requests`)
    // Embeddings answer no completion tokens.
    if (url === '/v1/embeddings') return
    const completion = completionTokenHold(body)
    completionHold = Math.min(completionHold + completion, MAX_COMPLETION_HOLD)
    searchHold = Math.min(searchHold + webSearchHold(body), MAX_COMPLETION_HOLD)
    if (asksForAudio(body)) audioHold = Math.min(audioHold + completion, completionHold)
    if (mayAnswerImages(body)) {
      imageHold = Math.min(imageHold + completion, completionHold)
      imageAnswerHold = Math.min(imageAnswerHold + Math.max(completion, imageAnswerTokenHold(body)), MAX_COMPLETION_HOLD)
    }
  })
  if (model === null || endpoint === null) throw refused('The file holds no request line')
  return { model, endpoint, writtenUrl, lines, completionHold, searchHold, audioHold, imageHold, imageAnswerHold, customIds: digests.toBuffer() }
}

/**
 * The file with each line's `body.model` renamed (a channel that maps the
 * client's name to another upstream; on Azure the deployment's name), and
 * its `url` when given (Azure's, without `/v1`): only those lines are
 * written again, every other byte as it was. Its lines, each ending in a
 * newline, for the upload's one concatenation (no whole copy in between).
 */
export async function withModel(bytes: Buffer, model: string, url?: string): Promise<Buffer[]> {
  const out: Buffer[] = []
  await forEachLine(bytes, (text) => {
    const line = JSON.parse(text)
    line.body.model = model
    if (url !== undefined) line.url = url
    out.push(Buffer.from(`${JSON.stringify(line)}\n`, 'utf8'))
  })
  return out
}

const NEWLINE = 0x0a

/** How long a file's lines are read before other work gets the event loop */
const FILE_SLICE_MS = 10

/**
 * Each non-blank line's text, its bytes and its 1-based number, one line at
 * a time: the file is never one string (200 MB of JSONL with one non-Latin-1
 * character was a 400 MB string, read twice for Azure: ~700 MB for one upload),
 * and every FILE_SLICE_MS the event loop runs what waits.
 */
async function forEachLine(bytes: Buffer, each: (text: string, raw: Buffer, number: number) => void) {
  let start = 0
  let number = 0
  let slice = performance.now()
  while (start <= bytes.length) {
    if (performance.now() - slice > FILE_SLICE_MS) {
      await new Promise<void>((resolve) => setImmediate(resolve))
      slice = performance.now()
    }
    let end = bytes.indexOf(NEWLINE, start)
    if (end < 0) end = bytes.length
    number++
    const raw = bytes.subarray(start, end)
    const text = raw.toString('utf8').trim()
    if (text !== '') each(text, raw, number)
    start = end + 1
  }
}
