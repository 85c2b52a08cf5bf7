import type { IncomingMessage, ServerResponse } from 'node:http'
import { GatewayError } from '#exceptions/gateway_error'
import { authorizeAndReserve, authorizeCacheHit } from '#gateway/access_policy'
import type { Catalog } from '#gateway/catalog'
import { countTokens } from '#gateway/metering/tokenizer'
import type { RequestAccount } from '#gateway/metering/request_account'
import type { EmbeddingsWire } from '#gateway/providers/provider_adapter'
import { adapterFor } from '#gateway/providers/registry'
import type { RouteCandidate } from '#gateway/routing/channel_router'
import { dispatch, readBody, type UpstreamBody } from '#gateway/upstream/dispatcher'
import { decodeAnswer, parseAnswer } from '#gateway/upstream/upstream_answer'
import { reportedCount } from '#gateway/metering/token_counts'
import type { Principal, TokenUsage } from '#gateway/types'
import { cacheKeyOf, type ResponseCache } from '#gateway/cache/response_cache'
import { replayCachedAnswer } from '#gateway/cache/cache_replay'
import { addOperationHeaders } from '#gateway/http/litellm_headers'
import { vertexEmbeddingsBody, vertexEmbeddingsRefusal, vertexTokenCount, vertexVectors, type EmbeddingHints } from '#gateway/vertex_embeddings'

export interface EmbeddingsCall {
  principal: Principal
  /** The client's wire: OpenAI `/v1/embeddings` or Gemini `:embedContent` / `:batchEmbedContents` */
  ingress: EmbeddingsWire
  geminiMethod?: 'embedContent' | 'batchEmbedContents'
  rawBody: Buffer
  body: Record<string, any>
  model: string
  req: IncomingMessage
  res: ServerResponse
}

interface Inputs {
  texts: Array<string | number[]>
  dimensions?: number
  /** A Gemini request's taskType and title, per input (Vertex's instances carry them) */
  hints?: EmbeddingHints[]
}

/** Little-endian float32 (what the openai SDK decodes) <-> numbers. */
export function floatsToBase64(values: number[]): string {
  const view = new DataView(new ArrayBuffer(values.length * 4))
  values.forEach((v, i) => view.setFloat32(i * 4, v, true))
  return Buffer.from(view.buffer).toString('base64')
}

export function base64ToFloats(text: string): number[] {
  const bytes = Buffer.from(text, 'base64')
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  return Array.from({ length: bytes.length / 4 }, (_, i) => view.getFloat32(i * 4, true))
}

function isEmbeddingInput(item: unknown): boolean {
  return typeof item === 'string' || (Array.isArray(item) && item.every((t) => typeof t === 'number'))
}

function decodeInputs(call: EmbeddingsCall): Inputs {
  const body = call.body
  if (call.ingress === 'openai') {
    const input = body.input
    const texts = typeof input === 'string' || (Array.isArray(input) && typeof input[0] === 'number') ? [input] : input
    if (!Array.isArray(texts) || texts.length === 0) throw GatewayError.invalidRequest('input: expected a string or an array')
    if (!texts.every(isEmbeddingInput)) {
      throw GatewayError.invalidRequest('input: each item must be a string or an array of token ids')
    }
    return { texts, dimensions: body.dimensions }
  }
  const requests = call.geminiMethod === 'embedContent' ? [body] : body.requests
  if (!Array.isArray(requests)) throw GatewayError.invalidRequest('requests: expected an array')
  const texts = requests.map((r: any) => {
    const parts = r?.content?.parts ?? []
    if (!Array.isArray(parts)) throw GatewayError.invalidRequest('content.parts: expected an array')
    return parts.map((p: any) => (typeof p?.text === 'string' ? p.text : '')).join('')
  })
  if (texts.length === 0) throw GatewayError.invalidRequest('content: nothing to embed')
  const hints = requests.some((r: any) => r?.taskType || r?.title) ? requests.map((r: any) => hintsOf(r)) : undefined
  return { texts, dimensions: requests[0]?.outputDimensionality, hints }
}

function hintsOf(request: any): EmbeddingHints {
  const hints: EmbeddingHints = {}
  if (typeof request?.taskType === 'string') hints.taskType = request.taskType
  if (typeof request?.title === 'string') hints.title = request.title
  return hints
}

const textOf = (text: string | number[]) => (typeof text === 'string' ? text : text.join(' '))

/** The request body for an upstream of the given wire (the client's bytes when the wire is the client's own). */
function upstreamBody(call: EmbeddingsCall, wire: EmbeddingsWire, upstreamModel: string, inputs: () => Inputs): string | Buffer {
  if (wire === 'openai') {
    if (call.ingress === 'openai') return upstreamModel === call.model ? call.rawBody : JSON.stringify({ ...call.body, model: upstreamModel })
    const { texts, dimensions } = inputs()
    return JSON.stringify({ model: upstreamModel, input: texts, encoding_format: 'float', ...(dimensions ? { dimensions } : {}) })
  }
  const { texts, dimensions, hints } = inputs()
  if (wire === 'vertex') return vertexEmbeddingsBody(texts.map(textOf), hints, dimensions)
  return JSON.stringify({
    requests: texts.map((text, i) => ({
      model: `models/${upstreamModel}`,
      content: { parts: [{ text: textOf(text) }] },
      ...(dimensions ? { outputDimensionality: dimensions } : {}),
      ...hints?.[i],
    })),
  })
}

/** An upstream's embeddings answer, as its attempt read it */
interface Vectors {
  wire: EmbeddingsWire
  parsed: any
  vectors: Array<number[] | string>
}

/**
 * dispatch()'s AnswerCheck: the answer read and parsed once in its attempt;
 * not JSON, an error body, or no list of vectors fails over to the next
 * candidate like a 5xx.
 */
async function readVectors(body: UpstreamBody, candidate: RouteCandidate, inputs: () => Inputs): Promise<Vectors> {
  const wire = adapterFor(candidate.channel.provider).embeddings(candidate.channel)!
  const parsed = parseAnswer(await readBody(body))
  if (wire === 'vertex') {
    const vectors = decodeAnswer(() => vertexVectors(parsed, inputs().texts.length))
    if (vectors === null) throw GatewayError.providerError('Upstream returned an answer without one vector of numbers for each input')
    return { wire, parsed, vectors }
  }
  const list = wire === 'openai' ? parsed.data : parsed.embeddings
  if (!Array.isArray(list)) throw GatewayError.providerError('Upstream returned an answer without its content')
  const vectors: Array<number[] | string> = decodeAnswer(() =>
    wire === 'openai' ? list.map((d: any) => d?.embedding) : list.map((e: any) => e?.values ?? [])
  )
  return { wire, parsed, vectors }
}

/**
 * Embeddings in either wire, from an upstream of either wire. The openai
 * SDK asks for base64 by default: the answer honours `encoding_format`
 * whatever the upstream returned (little-endian float32).
 */
export async function embeddings(
  catalog: Catalog,
  /** The model's candidates, then those of its fallback models (GatewayService.#route) */
  route: (model: string) => RouteCandidate[],
  call: EmbeddingsCall,
  account: RequestAccount,
  responseCache: ResponseCache | null = null
) {
  account.model = call.model
  // The response cache, as for generations (gateway_service.ts): only when the client asked for it.
  const cache =
    responseCache === null
      ? null
      : responseCache.directive(
          call.req.headers,
          (bytes = call.rawBody) => cacheKeyOf(account.principal.user.id, `embeddings/${call.ingress}/${call.geminiMethod ?? ''}`, call.model, false, false, bytes),
          call.body
        )
  if (cache !== null && !cache.refresh) {
    authorizeCacheHit(account.principal, call.model)
    const hit = responseCache!.get(cache.key)
    if (hit) {
      const headers: Record<string, string> = { 'content-type': hit.contentType, 'x-request-id': account.requestId }
      // A replay is free (its row's cost is 0), as for generations.
      addOperationHeaders(headers, account, 0n, null)
      return replayCachedAnswer(call.res, account, hit, headers)
    }
  }
  authorizeAndReserve(catalog, account, call.model, call.rawBody.length, call.body)
  let candidates = route(call.model).filter((c) => adapterFor(c.channel.provider).embeddings(c.channel) !== null)
  if (candidates.length === 0) {
    throw GatewayError.invalidRequest(`No channel serving '${call.model}' offers embeddings`, 'unsupported_endpoint')
  }
  let decoded: Inputs | null = null
  const inputs = () => (decoded ??= decodeInputs(call))
  // Decoded before dispatch when any candidate needs it: a malformed input is the client's 400,
  // not a failure of the channel it was being translated for.
  if (call.ingress === 'gemini' || candidates.some((c) => adapterFor(c.channel.provider).embeddings(c.channel) !== 'openai')) inputs()
  // A Vertex channel takes so many instances a call (vertex_embeddings.ts): one that cannot is passed over; none left, the client hears why.
  if (decoded !== null) {
    const count = (decoded as Inputs).texts.length
    let refused: string | null = null
    candidates = candidates.filter((c) => {
      if (adapterFor(c.channel.provider).embeddings(c.channel) !== 'vertex') return true
      const why = vertexEmbeddingsRefusal(c.upstreamModel, count)
      if (why !== null) refused = why
      return why === null
    })
    if (candidates.length === 0) throw GatewayError.invalidRequest(refused ?? 'too many inputs', 'too_many_inputs')
  }
  // The answer is read and checked inside its attempt (readVectors): one that is no answer fails over like a 5xx.
  const { candidate, answer: read } = await dispatch(
    candidates,
    (c) => {
      const adapter = adapterFor(c.channel.provider)
      const wire = adapter.embeddings(c.channel)!
      return adapter.request(c.channel, {
        operation: 'embeddings',
        dialect: 'openai_chat',
        model: c.upstreamModel,
        stream: false,
        body: upstreamBody(call, wire, c.upstreamModel, inputs),
        clientHeaders: call.req.headers,
      })
    },
    account.abort.signal,
    account.dispatchHooks,
    (body, c) => readVectors(body, c, inputs)
  )
  const { wire, parsed, vectors } = read
  let usage: TokenUsage
  // A count that cannot be believed (token_counts.ts) is no count: the inputs are counted instead.
  const reported = wire === 'openai' ? reportedCount(parsed?.usage?.prompt_tokens) : wire === 'vertex' ? vertexTokenCount(parsed) : null
  if (reported !== null) {
    const prompt = reported
    usage = { promptTokens: prompt, completionTokens: 0, totalTokens: prompt, cachedTokens: 0, reasoningTokens: 0, estimated: false }
  } else {
    const prompt = await countTokens(inputs().texts.map((t) => (typeof t === 'string' ? t : '')).join('\n'))
    usage = { promptTokens: prompt, completionTokens: 0, totalTokens: prompt, cachedTokens: 0, reasoningTokens: 0, estimated: true }
  }

  let answer: unknown
  if (call.ingress === 'openai') {
    const base64 = call.body.encoding_format === 'base64'
    answer = {
      object: 'list',
      data: vectors.map((v, index) => ({
        object: 'embedding',
        index,
        embedding: base64 ? (typeof v === 'string' ? v : floatsToBase64(v)) : typeof v === 'string' ? base64ToFloats(v) : v,
      })),
      // A fallback model answers as itself (as generations do).
      model: candidate.publicModel ?? call.model,
      usage: { prompt_tokens: usage.promptTokens, total_tokens: usage.promptTokens },
    }
  } else {
    const values = vectors.map((v) => (typeof v === 'string' ? base64ToFloats(v) : v))
    answer = call.geminiMethod === 'embedContent' ? { embedding: { values: values[0] ?? [] } } : { embeddings: values.map((v) => ({ values: v })) }
  }
  const bytes = Buffer.from(JSON.stringify(answer))
  if (account.loggedRequest !== null) account.loggedResponse = bytes
  account.markFirstByte()
  if (!call.res.destroyed) {
    const headers: Record<string, string> = { 'content-type': 'application/json', 'content-length': String(bytes.length), 'x-request-id': account.requestId }
    if (cache !== null) headers['x-gateway-cache'] = cache.refresh ? 'REFRESH' : 'MISS'
    addOperationHeaders(headers, account, account.successCost(usage), candidate.channel)
    call.res.writeHead(200, headers)
    call.res.end(bytes)
  }
  if (cache !== null) responseCache!.set(cache.key, { stream: false, contentType: 'application/json', bytes }, cache.ttlMs)
  account.close(200, null, usage)
}
