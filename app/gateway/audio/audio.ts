import type { IncomingMessage, ServerResponse } from 'node:http'
import { GatewayError } from '#exceptions/gateway_error'
import { authorizeEndUser, authorizeModel } from '#gateway/access_policy'
import type { Catalog } from '#gateway/catalog'
import { audioDurationMs } from '#gateway/audio/audio_duration'
import { checkSpeechOpening, readTranscript } from '#gateway/audio/audio_answer'
import { fieldValue, partNamed, replacePartContent, type MultipartForm } from '#gateway/http/multipart'
import { isPriced } from '#gateway/metering/pricing'
import type { RequestAccount } from '#gateway/metering/request_account'
import { addOperationHeaders } from '#gateway/http/litellm_headers'
import { adapterFor } from '#gateway/providers/registry'
import { ClientStream, STREAM_HEADERS } from '#gateway/relay/client_stream'
import type { RouteCandidate } from '#gateway/routing/channel_router'
import { SseParser } from '#gateway/sse/sse_parser'
import { ClientGoneError, dispatch, forEachChunk, type DispatchResult } from '#gateway/upstream/dispatcher'
import { relayedUpstreamHeader } from '#gateway/upstream/relayed_headers'
import type { PriceInfo, Principal, TokenUsage } from '#gateway/types'
import { whileClientListens } from '#gateway/relay/client_gone'
import { answerUpload, dispatchUpload, UploadBodies } from '#gateway/upload_dispatch'

/** A transcription or translation upload, its form read (api_endpoints.ts audioUpload). */
export interface TranscriptionCall {
  principal: Principal
  /** The client's multipart body, forwarded as-is unless a channel maps the model */
  rawBody: Buffer
  form: MultipartForm
  /** The client's content type (its boundary is the body's) */
  contentType: string
  model: string
  stream: boolean
  req: IncomingMessage
  res: ServerResponse
}

/** `POST /v1/audio/speech`: a JSON body. */
export interface SpeechCall {
  principal: Principal
  rawBody: Buffer
  body: Record<string, any>
  model: string
  req: IncomingMessage
  res: ServerResponse
}

type Route = (model: string) => RouteCandidate[]
export type UploadOperation = 'audio_transcriptions' | 'audio_translations'

/** The route's candidates whose channels serve OpenAI's audio endpoints; none is the client's 400. */
function audioCandidates(route: Route, model: string, what: string): RouteCandidate[] {
  const candidates = route(model).filter((c) => adapterFor(c.channel.provider).offers(c.channel, 'audio'))
  if (candidates.length === 0) {
    throw GatewayError.invalidRequest(`No channel serving '${model}' offers ${what}`, 'unsupported_endpoint')
  }
  return candidates
}

/**
 * Audio a byte of upload may hold, for the hold on the balance: 4,000 bytes
 * a second is 32 kbps, below what clients send (speech as 64-128 kbps MP3,
 * 256 kbps WAV), so the hold is over the bill rather than under it.
 */
const UPLOAD_BYTES_PER_SECOND = 4000
/** Tokens a transcript may take, for the same hold */
const TRANSCRIPT_TOKENS = 2048n

function reserveUpload(account: RequestAccount, price: PriceInfo | null, bytes: number) {
  if (!isPriced(price)) return
  const seconds = BigInt(Math.ceil(bytes / UPLOAD_BYTES_PER_SECOND))
  // Audio tokens (gpt-4o-transcribe) run about 10 a second.
  account.reserve(seconds * (price!.perSecondPico ?? 0n) + seconds * 10n * price!.inputPico + TRANSCRIPT_TOKENS * price!.outputPico)
}

/**
 * `POST /v1/audio/transcriptions` and `/v1/audio/translations` on channels
 * of the OpenAI family: the client's multipart bytes go upstream untouched
 * (only the `model` part's value changes when a channel maps the name), the
 * answer comes back as the upstream's bytes and content type (json, text,
 * srt, vtt; an SSE stream relayed as it arrives). Billed per second of audio
 * (the answer's `usage.seconds` or `duration`, else the file's own length
 * for WAV and MP3) plus tokens when the upstream reports them.
 */
export async function transcribe(catalog: Catalog, route: Route, operation: UploadOperation, call: TranscriptionCall, account: RequestAccount) {
  account.model = call.model
  account.stream = call.stream
  account.price = authorizeModel(catalog, account.principal, call.model)
  authorizeEndUser(account)
  reserveUpload(account, account.price, call.rawBody.length)
  const candidates = audioCandidates(route, call.model, operation === 'audio_translations' ? 'audio translations' : 'audio transcriptions')
  const modelPart = partNamed(call.form, 'model')!
  const bodies = new UploadBodies(call, (upstreamModel) => replacePartContent(call.rawBody, modelPart, upstreamModel))
  const format = fieldValue(call.rawBody, call.form, 'response_format')
  await whileClientListens(call.res, account, () => fileUsage(call), async (signal) => {
    const result = await dispatchUpload(call, candidates, operation, (c) => bodies.for(c.upstreamModel), account, signal, (body) => readTranscript(body, format, call.stream))
    bodies.release()
    if (result.answer === null) return relayTranscriptStream(call, account, result)
    const { bytes, contentType } = result.answer
    const usage = transcriptionUsage(bytes, contentType, call)
    answerUpload(call.res, account, result.response.statusCode, bytes, contentType, usage, result.candidate.channel)
    account.close(result.response.statusCode, null, usage)
  })
}

/**
 * gpt-4o-transcribe's `stream=true`: the upstream's SSE bytes go out as they
 * arrive; only events are parsed, for the usage of `transcript.text.done`.
 */
async function relayTranscriptStream(call: TranscriptionCall, account: RequestAccount, result: DispatchResult<unknown>) {
  const headers: Record<string, string> = { ...STREAM_HEADERS, 'x-request-id': account.requestId }
  // No cost: unknown when a stream's headers go out (as for generations).
  addOperationHeaders(headers, account, null, result.candidate.channel)
  const stream = new ClientStream(call.res, headers, () => account.markFirstByte())
  const parser = new SseParser()
  let tokens: TokenUsage | null = null
  const failed = await relayChunks(call.res, stream, result.body, (chunk) => {
    for (const event of parser.push(chunk)) {
      if (!event.data.includes('"usage"')) continue
      try {
        tokens = tokenUsageOf(JSON.parse(event.data)?.usage) ?? tokens
      } catch {}
    }
  })
  const usage = withSeconds(tokens, call)
  account.close(200, failed ? 'stream_interrupted' : null, usage)
}

/**
 * `POST /v1/audio/speech`: the JSON body goes upstream (the model renamed
 * when a channel maps it), the audio comes back chunk by chunk with the
 * upstream's content type, never held whole. Billed per character of
 * `input`.
 */
export async function speak(catalog: Catalog, route: Route, call: SpeechCall, account: RequestAccount) {
  account.model = call.model
  account.stream = true
  const characters = countCharacters(call.body.input)
  const price = (account.price = authorizeModel(catalog, account.principal, call.model))
  authorizeEndUser(account)
  if (isPriced(price)) {
    account.reserve(BigInt(characters) * (price!.perCharacterPico ?? 0n) + BigInt(Math.ceil(call.rawBody.length / 3)) * price!.inputPico)
  }
  const candidates = audioCandidates(route, call.model, 'speech')
  const usage: TokenUsage = { promptTokens: 0, completionTokens: 0, totalTokens: 0, cachedTokens: 0, reasoningTokens: 0, characters, estimated: false }
  await whileClientListens(call.res, account, () => usage, async (signal) => {
    const { candidate, response, body } = await dispatch(
      candidates,
      (c) =>
        adapterFor(c.channel.provider).request(c.channel, {
          operation: 'audio_speech',
          dialect: 'openai_chat',
          model: c.upstreamModel,
          stream: true,
          body: c.upstreamModel === call.model ? call.rawBody : JSON.stringify({ ...call.body, model: c.upstreamModel }),
          clientHeaders: call.req.headers,
        }),
      signal,
      account.dispatchHooks,
      // A JSON error or an empty body under a 200 fails over; the audio itself is never held.
      checkSpeechOpening
    )
    const headers: Record<string, string> = {
      // The upstream's content type and length describe the bytes relayed: the only headers of its own that follow them (relayed_headers.ts).
      'content-type': relayedUpstreamHeader(response.headers, 'content-type') ?? 'audio/mpeg',
      'x-request-id': account.requestId,
    }
    const length = relayedUpstreamHeader(response.headers, 'content-length')
    if (length !== undefined) headers['content-length'] = length
    // The audio is a stream: no cost header (as for a generation's stream).
    addOperationHeaders(headers, account, null, candidate.channel)
    const stream = new ClientStream(call.res, headers, () => account.markFirstByte())
    const failed = await relayChunks(call.res, stream, body)
    if (account.loggedRequest !== null) account.loggedResponse = `(${headers['content-type']} audio)`
    account.close(200, failed ? 'stream_interrupted' : null, usage)
  })
}

/**
 * Sends the upstream's chunks to the client as they come (`onChunk` reads
 * each first). Returns true when the upstream failed once the answer had
 * begun: no error body can follow, so the client's stream is cut. A client
 * gone is ClientGoneError (the caller's 499).
 */
async function relayChunks(res: ServerResponse, stream: ClientStream, body: AsyncIterable<Buffer>, onChunk?: (chunk: Buffer) => void) {
  let failed = false
  try {
    await forEachChunk(body, (chunk) => {
      onChunk?.(chunk)
      return stream.gone ? false : stream.send(chunk)
    })
  } catch {
    if (stream.closedEarly) throw new ClientGoneError()
    failed = true
  }
  if (!failed && stream.closedEarly) throw new ClientGoneError()
  if (failed) res.destroy()
  else stream.end()
  return failed
}

/** What a transcription answer says it used; the file's own length when it does not say. */
export function transcriptionUsage(bytes: Buffer, contentType: string, call: TranscriptionCall): TokenUsage {
  let tokens: TokenUsage | null = null
  let seconds: number | null = null
  if (contentType.includes('json')) {
    try {
      const answer = JSON.parse(bytes.toString('utf8'))
      tokens = tokenUsageOf(answer?.usage)
      // whisper-1: usage {type: "duration", seconds}; verbose_json: duration
      if (answer?.usage?.type === 'duration' && isSeconds(answer.usage.seconds)) seconds = answer.usage.seconds
      else if (isSeconds(answer?.duration)) seconds = answer.duration
    } catch {}
  }
  if (seconds !== null) return { ...(tokens ?? noTokens()), audioMillis: Math.round(seconds * 1000) }
  return withSeconds(tokens, call)
}

/** The answer's token usage, or the file's seconds; marked estimated when neither is known. */
function withSeconds(tokens: TokenUsage | null, call: TranscriptionCall): TokenUsage {
  const file = fileUsage(call)
  if (tokens === null) return file
  return { ...tokens, audioMillis: file.audioMillis }
}

/** The uploaded file's length (WAV, MP3), or 0 seconds marked estimated. */
function fileUsage(call: TranscriptionCall): TokenUsage {
  const part = partNamed(call.form, 'file')
  const ms = part ? audioDurationMs(call.rawBody.subarray(part.bodyStart, part.bodyEnd)) : null
  return { ...noTokens(), audioMillis: ms ?? 0, estimated: ms === null }
}

/** gpt-4o-transcribe's `usage: {type: "tokens", input_tokens, output_tokens}` */
function tokenUsageOf(usage: any): TokenUsage | null {
  if (!usage || usage.type !== 'tokens') return null
  const input = Number(usage.input_tokens) || 0
  const output = Number(usage.output_tokens) || 0
  return { ...noTokens(), promptTokens: input, completionTokens: output, totalTokens: input + output }
}

function noTokens(): TokenUsage {
  return { promptTokens: 0, completionTokens: 0, totalTokens: 0, cachedTokens: 0, reasoningTokens: 0, estimated: false }
}

function isSeconds(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 && value < 1e8
}

/** Characters as OpenAI and LiteLLM count them: code points. */
export function countCharacters(input: unknown): number {
  if (typeof input !== 'string') return 0
  let count = 0
  for (let i = 0; i < input.length; i++) {
    const c = input.charCodeAt(i)
    // A surrogate pair is one character.
    if (c < 0xd800 || c > 0xdbff || i + 1 === input.length) count++
  }
  return count
}
