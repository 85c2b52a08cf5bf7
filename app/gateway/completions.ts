import type { IncomingMessage, ServerResponse } from 'node:http'
import { GatewayError } from '#exceptions/gateway_error'
import { authorizeAndReserve, authorizeCacheHit } from '#gateway/access_policy'
import type { Catalog } from '#gateway/catalog'
import { cacheKeyOf, type CacheDirective, type ResponseCache, type StreamRecorder } from '#gateway/cache/response_cache'
import { completionText, promptParts, promptProblem, textCompletionsFormat } from '#gateway/completions_wire'
import { toTokenUsage } from '#gateway/dialects/dialect'
import { decodeChatUsage } from '#gateway/dialects/openai_chat/response'
import { parseJsonObject } from '#gateway/http/raw_body'
import { addOperationHeaders } from '#gateway/http/litellm_headers'
import type { RequestAccount } from '#gateway/metering/request_account'
import { countTokens } from '#gateway/metering/tokenizer'
import { adapterFor } from '#gateway/providers/registry'
import { ClientStream, STREAM_HEADERS } from '#gateway/relay/client_stream'
import { relayPassThroughStream, type StreamOutcome } from '#gateway/relay/pass_through_stream'
import { StreamHold } from '#gateway/metering/stream_hold'
import type { RouteCandidate } from '#gateway/routing/channel_router'
import { dispatch, readBody, type UpstreamBody } from '#gateway/upstream/dispatcher'
import { answeredAs, parseAnswer } from '#gateway/upstream/upstream_answer'
import { withoutUpstreamCost } from '#gateway/upstream/upstream_cost'
import { withoutChannelSecrets } from '#gateway/upstream/channel_secrets'
import { checkStreamOpening } from '#gateway/upstream/stream_opening'
import type { ChannelInfo, Principal, TokenUsage } from '#gateway/types'
import { replayCachedAnswer } from '#gateway/cache/cache_replay'
import { whileClientListens } from '#gateway/relay/client_gone'
import { SENSITIVE_WORDS_CODE } from '#gateway/content_filter/word_filter'

export interface CompletionsCall {
  principal: Principal
  /** The client's bytes: what goes upstream when the model is not mapped (stream_options aside) */
  rawBody: Buffer
  body: Record<string, any>
  model: string
  stream: boolean
  req: IncomingMessage
  res: ServerResponse
}

/** What the flow needs of GatewayService. */
export interface CompletionsServices {
  catalog: Catalog
  /** The model's candidates, then those of its fallback models (GatewayService.#route) */
  route: (model: string) => RouteCandidate[]
  responseCache: ResponseCache | null
  /** A recorder for a stream the request wants cached (`caching`) or logged; null when nothing is kept */
  recorder: (caching: boolean) => StreamRecorder | null
}

const CONTENT_TYPE_JSON = 'application/json'
const RELEASED_BODY: Record<string, any> = Object.freeze({})

/**
 * `POST /v1/completions` (OpenAI's legacy text completions, FIM with
 * `suffix`) on the OpenAI-compatible channels that serve it. Always a
 * pass-through: the client's bytes go upstream (only `model` rewritten when
 * mapped, `stream_options.include_usage` added to a stream, as for chat), and
 * the answer comes back as the upstream's bytes, its stream relayed event by
 * event. Usage is the upstream's, else the tokenizer's estimate.
 */
export async function textCompletions(services: CompletionsServices, call: CompletionsCall, account: RequestAccount) {
  account.model = call.model
  account.stream = call.stream
  const problem = promptProblem(call.body.prompt)
  if (problem) throw GatewayError.invalidRequest(problem)
  const responseCache = services.responseCache
  const cache =
    responseCache === null
      ? null
      : responseCache.directive(
          call.req.headers,
          (bytes = call.rawBody) => cacheKeyOf(account.principal.user.id, 'completions', call.model, call.stream, false, bytes),
          call.body
        )
  if (cache !== null && !cache.refresh) {
    // A stored answer needs no channel and no money (gateway_service.ts #begin).
    authorizeCacheHit(account.principal, call.model)
    const hit = responseCache!.get(cache.key)
    // A replay is free (its row's cost is 0): a whole answer says so, as for generations.
    if (hit) return replayCachedAnswer(call.res, account, hit, answerHeaders(account, hit.contentType, null, hit.stream ? null : 0n, null))
  }
  authorizeAndReserve(services.catalog, account, call.model, call.rawBody.length, call.body)

  const candidates = services.route(call.model).filter((c) => adapterFor(c.channel.provider).offers(c.channel, 'completions'))
  if (candidates.length === 0) {
    throw GatewayError.invalidRequest(`No channel serving '${call.model}' offers text completions`, 'unsupported_endpoint')
  }
  const includeUsage = call.body.stream_options?.include_usage === true
  await whileClientListens(call.res, account, () => estimate(call, ''), async (signal) => {
    // A whole answer is read and checked inside its attempt: one that is no answer fails over like a 5xx.
    const { candidate, response, body, answer } = await dispatch(
      candidates,
      (c) =>
        adapterFor(c.channel.provider).request(c.channel, {
          operation: 'completions',
          dialect: 'openai_chat',
          model: c.upstreamModel,
          stream: call.stream,
          body: upstreamBody(call, c.upstreamModel),
          clientHeaders: call.req.headers,
        }),
      signal,
      account.dispatchHooks,
      (b, c) => readAnswer(call, b, c)
    )
    // The upstream has the bytes: a stream can last minutes, the parsed body is not needed (an estimate re-reads the bytes).
    call.body = RELEASED_BODY
    // A fallback model answers as itself, as for generations.
    const publicModel = candidate.publicModel ?? call.model
    const clientModel = candidate.upstreamModel !== publicModel ? publicModel : null
    if (answer === null) {
      const headers = answerHeaders(account, STREAM_HEADERS['content-type'], cacheStatus(cache), null, candidate.channel)
      const out = new ClientStream(call.res, headers, () => account.markFirstByte())
      out.recorder = services.recorder(cache !== null)
      // The answer's hold, kept ahead of what it costs as it streams (null: its tokens cost nothing).
      const hold = StreamHold.open(account)
      const outcome = await relayPassThroughStream(body, textCompletionsFormat, {
        encoder: { model: publicModel, includeUsage },
        clientModel,
        stream: out,
        // The answer check, decided once per stream (null: off or prompts only)
        screen: services.catalog.wordFilter?.streamScreen() ?? null,
        // The upstream's own error event, without the channel's key and address
        conceal: (text) => withoutChannelSecrets(text, candidate.channel),
        hold,
      })
      if (account.loggedRequest !== null && out.recorder !== null) account.loggedResponse = out.recorder.head()
      if (cache !== null && out.recorder !== null && !outcome.error && !outcome.clientClosed && !outcome.withheld) {
        const bytes = out.recorder.bytes()
        if (bytes !== null) responseCache!.set(cache.key, { stream: true, contentType: STREAM_HEADERS['content-type'], bytes }, cache.ttlMs)
      }
      const usage = await usageOfStream(call, outcome)
      if (outcome.withheld) return account.close(200, SENSITIVE_WORDS_CODE, usage)
      if (outcome.clientClosed) return account.close(499, 'client_closed', usage)
      if (outcome.outOfFunds) return account.close(200, outcome.outOfFunds.code, hold!.billable(usage))
      return account.close(200, outcome.error ? 'stream_interrupted' : null, usage)
    }

    const { bytes, parsed } = answer
    const wordFilter = services.catalog.wordFilter
    // A stream request the upstream answered whole is checked the same way: nothing is sent yet.
    if (wordFilter?.checkCompletions === true) {
      // A listed word in the answer withholds it (word_filter.ts); the tokens used are still billed.
      const text = completionText(parsed)
      const refusal = wordFilter.screenCompletion(text)
      if (refusal) {
        const found = decodeChatUsage(parsed?.usage)
        account.close(refusal.status, refusal.code, found ? toTokenUsage(found) : await estimate(call, text))
        throw refusal
      }
    }
    if (account.loggedRequest !== null) account.loggedResponse = bytes
    account.markFirstByte()
    const found = decodeChatUsage(parsed?.usage)
    const reported = found ? toTokenUsage(found) : null
    if (!call.res.destroyed) {
      // The cost when the upstream reported the usage (else counted by the tokenizer after the answer went out).
      const headers = answerHeaders(account, CONTENT_TYPE_JSON, cacheStatus(cache), reported && account.successCost(reported), candidate.channel)
      headers['content-length'] = String(bytes.length)
      call.res.writeHead(response.statusCode, headers)
      call.res.end(bytes)
    }
    if (cache !== null && response.statusCode === 200) responseCache!.set(cache.key, { stream: false, contentType: CONTENT_TYPE_JSON, bytes }, cache.ttlMs)
    account.close(response.statusCode, null, reported ?? (await estimate(call, completionText(parsed))))
  })
}

/**
 * dispatch()'s AnswerCheck: the whole answer read and parsed once in its
 * attempt (no JSON, an error body, no choices: the next candidate is tried),
 * the model named as the client knows it. Null for a stream (relayed as it
 * comes once its opening was checked: stream_opening.ts).
 */
async function readAnswer(call: CompletionsCall, body: UpstreamBody, candidate: RouteCandidate): Promise<{ bytes: Buffer; parsed: any } | null> {
  const contentType = body.headers['content-type']
  if (call.stream && typeof contentType === 'string' && contentType.includes('text/event-stream')) {
    // Nothing has reached the client yet: a stream that fails at once fails over too.
    await checkStreamOpening(body, textCompletionsFormat.passThrough)
    return null
  }
  const bytes = await readBody(body)
  const parsed = parseAnswer(bytes)
  if (!Array.isArray(parsed.choices) || parsed.choices.length === 0) throw GatewayError.providerError('Upstream returned an answer without its content')
  // The upstream's own bill is not the client's (upstream_cost.ts); the model named as the client knows it.
  return { bytes: answeredAs(withoutUpstreamCost(bytes, parsed), parsed, candidate.publicModel ?? call.model, candidate.upstreamModel), parsed }
}

/** The client's bytes, unless the model is mapped or a stream must ask for its usage (chat's rules). */
function upstreamBody(call: CompletionsCall, upstreamModel: string): Buffer | string {
  const changed = textCompletionsFormat.passThrough.upstreamBody(call.body, upstreamModel, call.model, call.stream, call.rawBody)
  if (changed === null) return call.rawBody
  return Buffer.isBuffer(changed) ? changed : JSON.stringify(changed)
}

/** The stream's usage: the upstream's final count, else completed with the tokenizer (a cut stream, no usage). */
async function usageOfStream(call: CompletionsCall, outcome: StreamOutcome): Promise<TokenUsage> {
  if (outcome.usage && outcome.usageFinal) return toTokenUsage(outcome.usage)
  const completion = outcome.completionText()
  const estimated = await estimate(call, completion.text, completion.chars)
  if (!outcome.usage) return estimated
  const partial = toTokenUsage(outcome.usage)
  const promptTokens = partial.promptTokens || estimated.promptTokens
  const completionTokens = Math.max(partial.completionTokens, estimated.completionTokens)
  return { ...partial, promptTokens, completionTokens, totalTokens: promptTokens + completionTokens, estimated: true }
}

/** The tokenizer's count of the prompt (and suffix) and of the completion, marked estimated. */
async function estimate(call: CompletionsCall, completion: string, completionChars = completion.length): Promise<TokenUsage> {
  let promptTokens: number
  try {
    const { text, tokenIds } = promptParts(call.body === RELEASED_BODY ? parseJsonObject(call.rawBody) : call.body)
    promptTokens = tokenIds + (text ? await countTokens(text) : 0)
  } catch {
    promptTokens = Math.ceil(call.rawBody.length / 4)
  }
  const completionTokens = completion ? await countTokens(completion, completionChars) : 0
  return {
    promptTokens,
    completionTokens,
    totalTokens: promptTokens + completionTokens,
    cachedTokens: 0,
    reasoningTokens: 0,
    estimated: true,
  }
}

/**
 * The answer's headers: a stream's (SSE, no buffering by proxies) or a whole
 * JSON answer's; LiteLLM's with `costPico` (null: not known when they go out)
 * and the channel that answered.
 */
function answerHeaders(
  account: RequestAccount,
  contentType: string,
  cache: string | null,
  costPico: bigint | null,
  channel: ChannelInfo | null
): Record<string, string> {
  const headers: Record<string, string> =
    contentType === CONTENT_TYPE_JSON ? { 'content-type': contentType } : { ...STREAM_HEADERS, 'content-type': contentType }
  headers['x-request-id'] = account.requestId
  if (cache !== null) headers['x-gateway-cache'] = cache
  addOperationHeaders(headers, account, costPico, channel)
  return headers
}

function cacheStatus(cache: CacheDirective | null): string | null {
  return cache === null ? null : cache.refresh ? 'REFRESH' : 'MISS'
}
