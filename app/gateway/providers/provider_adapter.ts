import type { Readable } from 'node:stream'
import type { IncomingHttpHeaders } from 'node:http'
import type { DialectName } from '#gateway/dialects/canonical'
import type { EncodeHints } from '#gateway/dialects/dialect'
import type { ChannelInfo } from '#gateway/types'

/** An attempt's limits as a streamed body sees them (the dispatcher's AttemptGuard). */
export interface AttemptClock {
  /** A chunk went up: the first-byte limit starts again */
  touch(): void
  /**
   * Set by the body: true while the gateway waits on the client for more of
   * it. Its silence is the client's (BODY_TIMEOUT_MS bounds it), not the
   * upstream's: the first-byte limit waits, and a total limit expiring then
   * is the client's 408, not the channel's failure.
   */
  clientSending: (() => boolean) | null
}

/** A ready-to-send upstream HTTP request. */
export interface UpstreamRequest {
  /** Default POST (DELETE: the Files API's, app/gateway/batches/) */
  method?: 'GET' | 'POST' | 'DELETE' | 'PATCH'
  origin: string
  path: string
  headers: Record<string, string>
  /** A stream: a client's upload passed on as it arrives (streamed_upload.ts) */
  body: string | Buffer | Readable
  /**
   * A streamed body's progress: handed the attempt's clock as it is sent,
   * touched as each chunk goes up (the first-byte limit counts from the
   * body's last byte, not from the start of an upload that takes minutes)
   */
  bodyProgress?: (clock: AttemptClock) => void
  /** How the answer is read when it is not the dialect's own bytes (Bedrock's event stream, its error types) */
  answer?: AnswerWire
  /**
   * Completes the request before it is sent, when it needs something fetched
   * first (Vertex's OAuth access token, when none is cached): the dispatcher
   * awaits it inside the attempt. Absent on the hot path (a cached token is
   * set by request() itself). Throws CredentialsRefused when the channel's
   * credentials are refused.
   */
  prepare?: () => Promise<void>
}

/** The channel's credentials were refused before any request was sent (a token exchange): the channel is taken out of rotation like for a 401. */
export class CredentialsRefused extends Error {}

/**
 * An upstream whose answers need reading before the dialect's codecs see
 * them: applied by UpstreamBody as the answer arrives, so the dispatcher,
 * the stream checks and the relays work on the dialect's own form.
 */
export interface AnswerWire {
  /** The status the gateway acts on (Bedrock's bad-credentials 403 as a 401) */
  status?(statusCode: number, headers: IncomingHttpHeaders): number
  /** A decoder of a 2xx body into the dialect's bytes (and the content type they have); null: the body is the dialect's own */
  decoder?(statusCode: number, headers: IncomingHttpHeaders): { decoder: BodyDecoder; contentType: string } | null
}

/** Turns body chunks into the dialect's bytes: null while a chunk completes nothing; throws on a corrupt body. */
export interface BodyDecoder {
  push(chunk: Buffer): Buffer | null
  /** The body ended: what is still to hand on (a whole answer read to its end: Bedrock's Converse) */
  end?(): Buffer | null
  /** The exchange is over however it ended (after end(), a failure, the reader stopping): what the decoder holds is given back */
  dispose?(): void
}

/** A realtime session's upstream WebSocket: where to connect (ws: or wss:) and the handshake's headers. */
export interface UpstreamSocketRequest {
  url: string
  headers: Record<string, string>
}

/** What the gateway asks an upstream to do. */
export type Operation =
  | 'generate'
  | 'count_tokens'
  | 'embeddings'
  | 'images'
  | 'completions'
  | 'rerank'
  | 'moderations'
  | 'audio_transcriptions'
  | 'audio_translations'
  | 'audio_speech'
  | 'image_edits'
  | 'image_variations'
  /** Google's `:predict` (Imagen), relayed from a Gemini-native client */
  | 'predict'

export interface UpstreamCall {
  operation: Operation
  /** Wire dialect of the body (generate, count_tokens) */
  dialect: DialectName
  /** Model name sent upstream (Gemini puts it in the path) */
  model: string
  /** The model name the client asked for (Bedrock reads an opaque profile ARN's model family from it) */
  clientModel?: string
  stream: boolean
  body: string | Buffer
  clientHeaders: IncomingHttpHeaders
  /** The body's content type when not JSON (an audio or image upload's multipart/form-data with its boundary) */
  contentType?: string
}

/** OpenAI's endpoints besides generation and embeddings that channels may offer (ProviderAdapter.offers); and Google's Imagen `:predict` */
export type RelayedService = 'images' | 'image_edits' | 'image_variations' | 'completions' | 'audio' | 'rerank' | 'moderations' | 'predict'

/** The embeddings wire an upstream speaks: OpenAI's, the Gemini API's batchEmbedContents, Vertex's `:predict` (instances / predictions) */
export type EmbeddingsWire = 'openai' | 'gemini' | 'vertex'

/**
 * What a provider adapter knows: which wire dialects a channel speaks, and
 * how to address it (URL, auth, forwarded headers). Reading answers belongs
 * to the dialects, shared by every provider of a dialect. No framework types.
 */
export interface ProviderAdapter {
  /** Generation dialects the channel speaks natively for an upstream model (when known), preferred first */
  dialects(channel: ChannelInfo, upstreamModel?: string): readonly DialectName[]
  /** How translated requests must be phrased for this channel's vendor */
  encodeHints?(channel: ChannelInfo): EncodeHints | undefined
  /** Native token counting (else the gateway counts with its tokenizer) */
  countsTokens(channel: ChannelInfo, upstreamModel?: string): boolean
  embeddings(channel: ChannelInfo): EmbeddingsWire | null
  /**
   * Whether the channel offers one of OpenAI's other endpoints, relayed as
   * they are: images, image edits and variations (multipart uploads), legacy completions (FIM), audio (transcriptions,
   * translations, speech), rerank (`{base}/rerank`: vLLM, Infinity, TEI,
   * SiliconFlow, Jina, Cohere v2), moderations
   */
  offers(channel: ChannelInfo, service: RelayedService): boolean
  request(channel: ChannelInfo, call: UpstreamCall): UpstreamRequest
  /** GET request listing upstream models (health checks, admin) */
  modelsPath(channel: ChannelInfo): UpstreamRequest
  /** OpenAI's Realtime API for this channel and upstream model; null (or absent) when the channel has none */
  realtime?(channel: ChannelInfo, model: string): UpstreamSocketRequest | null
}

/** The WebSocket origin of an HTTP one: http -> ws, https -> wss. */
export function socketOrigin(origin: string): string {
  return origin.startsWith('https:') ? `wss:${origin.slice(6)}` : origin.startsWith('http:') ? `ws:${origin.slice(5)}` : origin
}

/** Splits a base URL into the pool origin and the path prefix requests are appended to. */
export function splitBaseUrl(baseUrl: string): { origin: string; basePath: string } {
  const url = new URL(baseUrl)
  return { origin: url.origin, basePath: url.pathname.replace(/\/+$/, '') }
}

/** The channel's base URL, split once per channel snapshot. */
const bases = new WeakMap<ChannelInfo, { origin: string; basePath: string }>()

export function baseOf(channel: ChannelInfo): { origin: string; basePath: string } {
  let base = bases.get(channel)
  if (!base) {
    base = splitBaseUrl(channel.baseUrl)
    bases.set(channel, base)
  }
  return base
}

/** Copies the listed client headers and then the channel's own extra headers. */
export function withChannelHeaders(
  headers: Record<string, string>,
  channel: ChannelInfo,
  clientHeaders: IncomingHttpHeaders,
  forward: readonly string[]
): Record<string, string> {
  for (const name of forward) {
    const value = clientHeaders[name]
    if (typeof value === 'string') headers[name] = value
  }
  for (const [name, value] of Object.entries(channel.extraHeaders)) headers[name.toLowerCase()] = value
  return headers
}
