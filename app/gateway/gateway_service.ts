import { fileReferencesOf, pinnedCandidates } from '#gateway/provider_files/file_pins'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { GatewayError } from '#exceptions/gateway_error'
import { modelNameProblem } from '#gateway/http/model_name'
import { admitFallback, authorizeAndReserve, authorizeCacheHit, modelAllowed, raisePromptHold } from '#gateway/access_policy'
import { priceForPlan } from '#gateway/metering/pricing'
import { fromPico } from '#gateway/metering/money'
import { reasoningExcluded } from '#gateway/dialects/openai_chat/request'
import { addEndUserTokens, addModelTokens, addTokens, hasLimits } from '#gateway/limits/rate_limits'
import type { Catalog } from '#gateway/catalog'
import {
  eventsOfResponse,
  responseText,
  type CanonicalRequest,
  type CanonicalResponse,
  type CanonicalUsage,
  type DialectName,
} from '#gateway/dialects/canonical'
import { customToolNames, customToolTransform, unwrapCustomCalls } from '#gateway/dialects/custom_tools'
import { toTokenUsage, type Dialect, type EncoderOptions } from '#gateway/dialects/dialect'
import { dialectOf } from '#gateway/dialects/registry'
import { withSuffixReasoning } from '#gateway/dialects/suffix_reasoning'
import { webSearchAsked, withWebSearch } from '#gateway/dialects/web_search'
import { responseId, storedResponseObject } from '#gateway/dialects/openai_responses/response'
import { asClientError, decodeClientRequest } from '#gateway/dialects/client_request'
import { parseJsonObject } from '#gateway/http/raw_body'
import { embeddings, type EmbeddingsCall } from '#gateway/embeddings'
import { IMAGES } from '#gateway/images'
import { IMAGEN_PREDICT } from '#gateway/imagen_predict'
import { textCompletions, type CompletionsCall } from '#gateway/completions'
import { speak, transcribe, type SpeechCall, type TranscriptionCall, type UploadOperation } from '#gateway/audio/audio'
import { relayJsonOperation, type JsonOperationCall } from '#gateway/json_operation'
import { compactResponses, compactionV2, translatedOnly, type CompactCall } from '#gateway/responses_compact'
import { asksCompactionV2 } from '#gateway/dialects/openai_responses/compaction'
import { relayImageUpload, type ImageUploadCall, type ImageUploadOperation } from '#gateway/image_uploads'
import { RERANK } from '#gateway/rerank'
import { MODERATIONS } from '#gateway/moderations'
import { countTokens as countTokensFor, type CountTokensCall } from '#gateway/count_tokens'
import { countCanonicalPrompt } from '#gateway/dialects/prompt_tokens'
import { countChatPromptTokens, countTokens } from '#gateway/metering/tokenizer'
import { RequestAccount } from '#gateway/metering/request_account'
import type { UsageMeter } from '#gateway/metering/usage_meter'
import { adapterFor, upstreamDialect } from '#gateway/providers/registry'
import { ClientStream, STREAM_HEADERS } from '#gateway/relay/client_stream'
import { relayPassThroughStream, type StreamOutcome } from '#gateway/relay/pass_through_stream'
import { relayTranslatedStream } from '#gateway/relay/translated_stream'
import { StreamHold } from '#gateway/metering/stream_hold'
import { PlanRouters } from '#gateway/routing/plan_routers'
import { type ChannelRouter, type Refusal, type RouteCandidate, type RoutePlan } from '#gateway/routing/channel_router'
import { answersOverBudget, ClientGoneError, dispatch, readBody, type UpstreamBody } from '#gateway/upstream/dispatcher'
import { answerBudget, FREE_ANSWER_BYTES, takeAnswerCopies, UpstreamAnswersOverBudget } from '#gateway/upstream/answer_limits'
import { answeredAs, decodeAnswer, parseAnswer } from '#gateway/upstream/upstream_answer'
import { checkStreamOpening } from '#gateway/upstream/stream_opening'
import type { ChannelInfo, PlanInfo, Principal, TokenUsage } from '#gateway/types'
import { withoutChannelSecrets } from '#gateway/upstream/channel_secrets'
import type { RequestLogWriter } from '#gateway/logs/request_log_writer'
import { cacheKeyOf, StreamRecorder, type CacheDirective, type CachedAnswer, type ResponseCache } from '#gateway/cache/response_cache'
import { replayCachedAnswer } from '#gateway/cache/cache_replay'
import { SENSITIVE_WORDS_CODE } from '#gateway/content_filter/word_filter'
import { carriesLiteLLMFields, deleteLiteLLMFields } from '#gateway/litellm_fields'
import type { ResponseStore } from '#gateway/responses_store/response_store'
import { holdBuiltBody } from '#gateway/http/built_body_hold'
import { continuationOf, conversationTooLarge, inputItemsOf, nativeResponses, previousResponseNotFound } from '#gateway/responses_store/conversation'
import { bodyLimitFor } from '#gateway/http/body_limits'
import { assertReferencesFit, findReferencedItems, itemNotFound, withReferencedItems } from '#gateway/responses_store/item_references'
import { mintResponseId } from '#gateway/responses_store/response_ids'
import { addLiteLLMHeaders, liteLLMHeaderSettings } from '#gateway/http/litellm_headers'
import { applyProviderPreferences, readProviderPreferences } from '#gateway/routing/provider_preferences'
import { BackgroundRun, terminal, type BackgroundRuns } from '#gateway/responses_store/background_runs'
import { relayUpstreamStream } from '#gateway/responses_store/responses_api'
import type { ConversationStore } from '#gateway/conversations/conversation_store'
import { notFound as conversationNotFound } from '#gateway/conversations/conversations_api'

/** A parsed generation call (chat, messages, responses, generateContent), as a controller hands it over. */
export interface GenerateCall {
  principal: Principal
  /** The wire format the client speaks */
  ingress: DialectName
  /** The client's body bytes, forwarded as-is when nothing needs changing */
  rawBody: Buffer
  body: Record<string, any>
  model: string
  stream: boolean
  /** Gemini `:streamGenerateContent` without `alt=sse`: the stream is one JSON array */
  jsonArray?: boolean
  req: IncomingMessage
  res: ServerResponse
}

export type ChatCall = Omit<GenerateCall, 'ingress'>

/**
 * The request path after authentication: plan checks -> route the model to a
 * channel -> call the upstream -> relay the answer -> meter. When the channel
 * speaks the client's dialect the body and the stream pass through (only
 * usage-bearing events are parsed); otherwise both are translated through the
 * canonical form. Errors before the first byte are thrown as GatewayError
 * (rendered by the exception handler in the client's format); every path
 * ends in exactly one metering record.
 */
export class GatewayService {
  #routers: PlanRouters | null = null
  #routerVersion = -1
  /** Requests admitted and not yet metered, and realtime sessions open (graceful shutdown waits for them) */
  #inFlight = new Set<InFlightWork>()
  #draining = false
  #drained: (() => void) | null = null
  /** Admission bound: requests beyond it are refused with 503 */
  maxInFlight = 2048
  /** Requests admitted since start: the idle heap settle (start/settle_heap.ts) watches it for traffic */
  admitted = 0
  /** The exact-match response cache clients opt into per request (null: RESPONSE_CACHE_MB=0) */
  responseCache: ResponseCache | null = null
  /** Where request and response bodies go when the operator logs them (LOG_BODIES; null: off) */
  bodyLog: RequestLogWriter | null = null
  /** Stored Responses (`store`, previous_response_id; responses_store/); set by Gateway (null: none kept) */
  responses: ResponseStore | null = null
  /** LiteLLM's x-litellm-model-id / -model-api-base name the channel that answered (LITELLM_DEPLOYMENT_HEADERS; off: not shown) */
  get deploymentHeaders() {
    return liteLLMHeaderSettings.deployment
  }
  set deploymentHeaders(on: boolean) {
    liteLLMHeaderSettings.deployment = on
  }
  /** LiteLLM's x-litellm-* response headers on metered answers (LITELLM_HEADERS; on by default) */
  get litellmHeaders() {
    return liteLLMHeaderSettings.on
  }
  set litellmHeaders(on: boolean) {
    liteLLMHeaderSettings.on = on
  }
  /** Background responses of this instance (`background: true`); set by Gateway */
  background: BackgroundRuns | null = null
  /** The Conversations API's store (a Responses request's `conversation`); set by Gateway */
  conversations: ConversationStore | null = null

  constructor(
    private catalog: Catalog,
    private meter: UsageMeter
  ) {}

  /**
   * The router of a caller on this plan (null: a user without one): only the
   * channels open to the plan (channel groups, routing/plan_routers.ts).
   * Built again when the channels change; one map lookup otherwise.
   */
  router(plan: PlanInfo | null): ChannelRouter {
    if (!this.#routers || this.#routerVersion !== this.catalog.channelsVersion) {
      this.#routers = new PlanRouters(this.catalog.channels)
      this.#routerVersion = this.catalog.channelsVersion
    }
    return this.#routers.for(plan)
  }

  /** Starts the accounting of a request that passed key authentication. */
  openAccount(principal: Principal, endpoint: string): RequestAccount {
    if (this.#draining) throw new GatewayError(503, 'shutting_down', 'The gateway is shutting down', 'service_unavailable')
    if (this.#inFlight.size - this.#receiving >= this.maxInFlight) throw tooManyInFlight()
    const account = new RequestAccount(this.meter, principal, endpoint, (closed, usage) => {
      this.#inFlight.delete(closed)
      if (this.#inFlight.size === 0) this.#drained?.()
      onAccountClosed(closed, usage)
    })
    this.#inFlight.add(account)
    this.admitted++
    return account
  }

  get inFlight(): number {
    return this.#inFlight.size
  }

  /**
   * What is in flight now, for GET /metrics (a walk over the in-flight set
   * at scrape time; nothing is counted per request): realtime sessions, the
   * rest (requests, and the few unmetered calls holding a place), and of
   * those the streams.
   */
  inFlightCounts(): { requests: number; streams: number; realtimeSessions: number } {
    let streams = 0
    let realtimeSessions = 0
    for (const work of this.#inFlight) {
      if (work.realtime === true) realtimeSessions++
      else if (work instanceof RequestAccount && work.stream) streams++
    }
    return { requests: this.#inFlight.size - realtimeSessions, streams, realtimeSessions }
  }

  /**
   * A realtime session (WebSocket /v1/realtime): admitted like a request (503
   * while draining or at the in-flight bound), held in flight until `release`
   * is called, aborted when a shutdown's grace ends; `onDrain` is told when a
   * shutdown starts (a session ends at its next quiet moment). Its responses
   * are metered on accounts of their own (responseAccount).
   */
  admitSession(session: InFlightWork): () => void {
    if (this.#draining) throw new GatewayError(503, 'shutting_down', 'The gateway is shutting down', 'service_unavailable')
    if (this.#inFlight.size - this.#receiving >= this.maxInFlight) throw tooManyInFlight()
    this.#inFlight.add(session)
    this.admitted++
    return () => {
      if (!this.#inFlight.delete(session)) return
      if (this.#inFlight.size === 0) this.#drained?.()
    }
  }

  /**
   * A request the gateway answers itself with no usage row (LiteLLM's token
   * counter: tokenizer work, no upstream): admitted like a request (503 while
   * draining or at the in-flight bound), its place held until its response
   * closes. Without it, a key's calls to it ran beside MAX_INFLIGHT, and on
   * through a shutdown.
   */
  admitUnmetered(res: ServerResponse): void {
    const release = this.admitSession({ abort: new AbortController() })
    // A client gone while its body was read: its 'close' has been and gone.
    if (res.destroyed) release()
    else res.once('close', release)
  }

  /**
   * The account of one response of an admitted realtime session: metered as
   * any request is (its row, its charge, the key's token windows), outside the
   * in-flight count (the session holds that place) and never refused.
   */
  responseAccount(principal: Principal, endpoint: string): RequestAccount {
    return new RequestAccount(this.meter, principal, endpoint, onAccountClosed)
  }

  /** Requests in flight whose body is still arriving (receiveBody) */
  #receiving = 0

  /**
   * A request's body upload, outside the in-flight cap: a connection sending
   * its body slowly holds what it has sent (the body budget and timeout bound
   * that), not one of MAX_INFLIGHT's slots. 8,192 connections of one key each
   * sending a byte of their body held every slot for the body timeout, every
   * other request a 503. The cap applies again once the body is in.
   */
  async receiveBody(upload: Promise<Buffer>): Promise<Buffer> {
    this.#receiving++
    let body: Buffer
    try {
      body = await upload
    } finally {
      this.#receiving--
    }
    if (this.#inFlight.size - this.#receiving > this.maxInFlight) throw tooManyInFlight()
    return body
  }

  /**
   * Refuses new requests from now on. With `graceMs` (at SIGTERM), also aborts
   * whatever still runs when the grace period ends: the HTTP server's close
   * waits for open streams, so this is what bounds a shutdown.
   */
  startDraining(graceMs?: number) {
    if (this.#draining) return
    this.#draining = true
    for (const work of this.#inFlight) work.onDrain?.()
    if (graceMs !== undefined) {
      setTimeout(() => {
        for (const account of this.#inFlight) account.abort.abort()
      }, graceMs).unref()
    }
  }

  /** Waits for in-flight requests up to `graceMs`, then aborts the rest (they are metered as they end). */
  async drain(graceMs: number) {
    this.startDraining()
    if (this.#inFlight.size === 0) return
    const done = new Promise<void>((resolve) => (this.#drained = resolve))
    let timer: NodeJS.Timeout | undefined
    const expired = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), graceMs)))
    if (await Promise.race([done.then(() => false), expired])) {
      for (const account of this.#inFlight) account.abort.abort()
      await Promise.race([done, new Promise((resolve) => setTimeout(resolve, 1000))])
    }
    clearTimeout(timer)
  }

  countTokens(call: CountTokensCall, account: RequestAccount): Promise<void> {
    return countTokensFor(this.router(account.principal.plan), call, account)
  }

  embeddings(call: EmbeddingsCall, account: RequestAccount): Promise<void> {
    // The model's channels, then its operator-set fallbacks' (as for generations).
    return embeddings(this.catalog, (model) => this.#route(model, account, null), call, account, this.responseCache)
  }

  images(call: JsonOperationCall, account: RequestAccount): Promise<void> {
    return relayJsonOperation(this.catalog, (model) => this.#route(model, account, null), call, account, IMAGES)
  }

  /** Gemini-native Imagen (`:predict`), relayed to Google's channels, billed per image (imagen_predict.ts) */
  imagenPredict(call: JsonOperationCall, account: RequestAccount): Promise<void> {
    return relayJsonOperation(this.catalog, (model) => this.#route(model, account, null), call, account, IMAGEN_PREDICT)
  }

  /** Image edits and variations (multipart uploads), relayed as they came (image_uploads.ts) */
  imageUpload(operation: ImageUploadOperation, call: ImageUploadCall, account: RequestAccount): Promise<void> {
    return relayImageUpload(this.catalog, (model) => this.#route(model, account, null), operation, call, account)
  }

  /** Legacy text completions (`/v1/completions`, FIM): always passed through (completions.ts). */
  completions(call: CompletionsCall, account: RequestAccount): Promise<void> {
    return textCompletions(
      {
        catalog: this.catalog,
        route: (model) => this.#route(model, account, null),
        responseCache: this.responseCache,
        recorder: (caching) => this.streamRecorder(caching, account),
      },
      call,
      account
    )
  }

  /** Transcriptions and translations (multipart uploads) */
  transcribe(operation: UploadOperation, call: TranscriptionCall, account: RequestAccount): Promise<void> {
    return transcribe(this.catalog, (model) => this.#route(model, account, null), operation, call, account)
  }

  speech(call: SpeechCall, account: RequestAccount): Promise<void> {
    return speak(this.catalog, (model) => this.#route(model, account, null), call, account)
  }

  rerank(call: JsonOperationCall, account: RequestAccount): Promise<void> {
    return relayJsonOperation(this.catalog, (model) => this.#route(model, account, null), call, account, RERANK)
  }

  moderations(call: JsonOperationCall, account: RequestAccount): Promise<void> {
    return relayJsonOperation(this.catalog, (model) => this.#route(model, account, null), call, account, MODERATIONS)
  }

  /** Codex's remote compaction (`/v1/responses/compact`): relayed to Responses channels, else emulated (responses_compact.ts). */
  async compactResponses(call: CompactCall, account: RequestAccount): Promise<void> {
    // Emulated (translated channels only): a previous_response_id or item_reference is resolved here, as for v2.
    if (typeof call.body.previous_response_id === 'string' || call.body.input.some((item: any) => item?.type === 'item_reference')) {
      let candidates: RouteCandidate[] = []
      try {
        candidates = this.router(account.principal.plan).route(call.model)
      } catch {}
      if (translatedOnly(candidates)) call = await this.#storedHistory(call, account, candidates)
    }
    return compactResponses(this.catalog, (model) => this.#route(model, account, null), call, account)
  }

  chatCompletions(call: ChatCall, account: RequestAccount): Promise<void> {
    return this.generate({ ...call, ingress: 'openai_chat' }, account)
  }

  async generate(call: GenerateCall, account: RequestAccount): Promise<void> {
    // Codex's compaction v2 for a model only other formats serve: emulated (one comparison for other calls).
    if (call.ingress === 'openai_responses' && asksCompactionV2(call.body)) {
      const emulated = this.#compactionV2(call, account)
      if (emulated !== null) return emulated
    }
    // Responses' background mode (responses_store/background_runs.ts): one property test for every other call.
    if (call.ingress === 'openai_responses' && call.body.background === true) return this.#generateInBackground(call, account)
    const exchange = this.#begin(call, account)
    if (exchange.cachedAnswer) return this.#replay(exchange, account, exchange.cachedAnswer)
    // Provider files and caches (provider_files/file_pins.ts): sent only to the channel that holds them. A body that
    // names none pays one byte search (Anthropic and Gemini ingresses; the others, only when a google channel is
    // among the candidates: a URL part their translation gives Google as fileData).
    const files = fileReferencesOf(call.ingress, call.rawBody, call.body, exchange.candidates)
    if (files !== null) exchange.candidates = await pinnedCandidates(exchange.candidates, files, account.principal.user.id, call.model)
    // A Responses follow-up (previous_response_id): its conversation read, its route narrowed, then prepared.
    if (exchange.previousId !== null) await this.#continue(exchange, account)
    // A conversation (Conversations API): its items put before the input, then prepared.
    else if (exchange.conversationId !== null) await this.#withConversation(exchange, account)
    // Responses item references a translated channel cannot resolve (listed by the decoder while preparing; none: nothing done).
    const references = exchange.itemReferences
    if (references !== undefined) await this.#resolveReferences(exchange, account, references)
    return this.#exchange(exchange, account)
  }

  /**
   * `background: true` (Responses): admitted within the user's bound, then
   * routed and prepared as any request (its refusals are the client's
   * answer). A Responses-native route gets the request as it is, but as one
   * JSON answer: the upstream runs it, the gateway polls it and bills it when
   * it ends (a client that asked a stream gets the upstream's stream of it).
   * A translated route runs here, detached from the client's connection:
   * answered at once (queued), the rest goes on in a BackgroundRun.
   */
  async #generateInBackground(call: GenerateCall, account: RequestAccount): Promise<void> {
    const runs = this.background
    if (runs === null || this.responses === null || !this.responses.enabled) {
      throw GatewayError.invalidRequest('Background mode needs stored responses, which this gateway does not keep (RESPONSES_STORE_DAYS=0)', 'invalid_value', 'background')
    }
    if (call.body.store === false) throw GatewayError.invalidRequest('Background mode requires store to be true.', 'invalid_value', 'store')
    const release = runs.admit(account.principal.user.id)
    let kept = false
    try {
      const exchange = this.#begin(call, account)
      if (exchange.previousId !== null) await this.#continue(exchange, account)
      else if (exchange.conversationId !== null) await this.#withConversation(exchange, account)
      const references = exchange.itemReferences
      if (references !== undefined) await this.#resolveReferences(exchange, account, references)
      const native = exchange.candidates.filter(nativeResponses)
      if (native.length > 0) {
        // The upstream runs it: only Responses-native channels, and one JSON answer (its id, queued).
        exchange.candidates = native
        const clientStream = call.stream
        if (clientStream) {
          call.stream = false
          account.stream = false
          call.body.stream = false
          delete call.body.stream_options
          call.rawBody = Buffer.from(JSON.stringify(call.body))
          exchange.prepareAgain()
        }
        const background: NativeBackground = { clientStream, adopt: (id, channel) => {
          kept = true
          runs.adopt(id, account.principal.user.id, account, channel, exchange.publicModel, release)
        } }
        exchange.background = background
        return await this.#exchange(exchange, account)
      }
      // Run here: streamed upstream (a cancel or a shutdown bills what it streamed, as a cut stream), into a DetachedResponse.
      const clientStream = call.stream
      call.stream = true
      account.stream = true
      exchange.prepareAgain()
      const storing = exchange.storing!
      const { principal } = account
      const run = new BackgroundRun(
        mintResponseId(),
        principal.user.id,
        { input: storing.input, instructions: storing.instructions, previousId: storing.previousId, model: exchange.publicModel, apiKeyId: principal.key.id },
        runs
      )
      exchange.backgroundRun = run
      runs.start(run, release)
      // In a conversation: its input and output added once it ended.
      if (exchange.conversationId !== null) run.onEnded(() => this.#appendTurn(exchange, account, run.view()))
      kept = true
      if (!clientStream || !run.follow(call.res, -1)) {
        const body = Buffer.from(JSON.stringify(run.view()))
        call.res.writeHead(200, { ...exchange.jsonHeaders(account, null), 'content-length': String(body.length) })
        call.res.end(body)
      }
      account.markFirstByte()
      call.res = run.res as unknown as ServerResponse
      void this.#exchange(exchange, account).catch((error) => {
        if (!account.closed) account.fail(error)
        run.fail(error)
      })
    } finally {
      if (!kept) release()
    }
  }

  /** Dispatch, relay, meter: the request prepared. */
  async #exchange(exchange: Exchange, account: RequestAccount): Promise<void> {
    const { call } = exchange
    const abort = account.abort
    const onClose = () => {
      if (!call.res.writableFinished) abort.abort()
    }
    call.res.on('close', onClose)
    // Gone already (while its key, user or body was read): its 'close' is past, and the upstream must not be called.
    if (call.res.closed) onClose()
    try {
      // A whole answer is read and checked inside its attempt (readAnswer): one that is no answer fails over.
      const { candidate, response, body, answer } = await dispatch(
        exchange.candidates,
        (c) => exchange.upstreamRequest(c),
        abort.signal,
        account.dispatchHooks,
        (b, c) => exchange.readAnswer(b, c)
      )
      const upstream = dialectOf(upstreamDialect(candidate.channel, call.ingress, candidate.upstreamModel))
      exchange.answeredBy = candidate.channel
      // A translated answer's encoder writes what only this upstream gives (chat's reasoning_details)
      exchange.encoderOptions.upstream = upstream.name
      // A Responses answer to store: translated, kept here under the gateway's id; else held by the upstream.
      if (exchange.storing !== null) exchange.answeredOn(candidate.channel, upstream === exchange.ingress)
      // The upstream has the request: keep what the answer needs, let the parsed body go (a stream can last minutes).
      exchange.releaseRequest(upstream !== exchange.ingress ? upstream.name : null)
      // A fallback model answers as itself (its name in the answer, as LiteLLM and OpenRouter do).
      if (candidate.publicModel !== undefined) exchange.answerAs(candidate.publicModel)
      const mapped = candidate.upstreamModel !== exchange.publicModel
      if (answer === null) return await this.#relayStream(exchange, account, body, upstream, mapped, candidate.channel)
      return await this.#relayJson(exchange, account, response.statusCode, answer)
    } catch (error) {
      if (error instanceof ClientGoneError || (abort.signal.aborted && !(error instanceof GatewayError))) {
        return account.close(499, 'client_closed', await exchange.estimate(''))
      }
      throw error
    } finally {
      call.res.off('close', onClose)
      exchange.releaseAnswerCopies()
    }
  }

  /** The v2 emulation (responses_compact.ts) when no channel of the model speaks Responses; null otherwise. */
  #compactionV2(call: GenerateCall, account: RequestAccount): Promise<void> | null {
    let candidates: RouteCandidate[]
    try {
      candidates = this.router(account.principal.plan).route(call.model)
    } catch {
      return null
    }
    if (!translatedOnly(candidates)) return null
    return this.#storedHistory(call, account, candidates).then((history) =>
      compactionV2(this.catalog, (model) => this.#route(model, account, null), history, account)
    )
  }

  /**
   * An emulated compaction's history (v1 or v2) as a follow-up's: the
   * conversation `previous_response_id` names put in front of the input (the
   * summary call is one the store never sees: without it, the summary would
   * be of the last turn alone), item references resolved. Unknown ids are
   * OpenAI's 400s.
   */
  async #storedHistory<C extends { body: Record<string, any>; rawBody: Buffer; res: ServerResponse }>(call: C, account: RequestAccount, candidates: RouteCandidate[]): Promise<C> {
    const previous = call.body.previous_response_id
    const hasReference = call.body.input.some((item: any) => item?.type === 'item_reference')
    if ((typeof previous !== 'string' || previous === '') && !hasReference) return call
    const store = this.responses !== null && this.responses.enabled ? this.responses : null
    const userId = account.principal.user.id
    let input: unknown[] = call.body.input
    /** Bytes of the built body counted in the body budget so far */
    let held = 0
    if (typeof previous === 'string' && previous !== '') {
      if (store === null) throw previousResponseNotFound(previous)
      const next = await continuationOf(store, previous, userId, input, candidates, bodyLimitFor('responses'))
      // Translated channels only: an upstream-held or unknown id was refused already.
      if (next.kind !== 'gateway') throw previousResponseNotFound(previous)
      // Counted before the body is built of it (a refusal costs no serialisation), topped up after.
      holdBuiltBody(call.res, next.itemBytes)
      held = next.itemBytes
      input = next.input
    }
    const ids = input.flatMap((item: any) => (item?.type === 'item_reference' ? [String(item.id)] : []))
    if (ids.length > 0) {
      const found = store !== null ? await findReferencedItems(store, ids, userId, input) : new Map<string, unknown>()
      const missing = ids.find((id) => !found.has(id))
      if (missing !== undefined) throw itemNotFound(missing)
      assertReferencesFit(input, found, call.rawBody.length, bodyLimitFor('responses'))
      input = withReferencedItems(input, found)
    }
    const body: Record<string, any> = { ...call.body, input }
    delete body.previous_response_id
    const rawBody = Buffer.from(JSON.stringify(body))
    if (rawBody.length > bodyLimitFor('responses')) throw conversationTooLarge()
    holdBuiltBody(call.res, rawBody.length - held)
    return { ...call, body, rawBody }
  }

  /**
   * Plan checks, routing and the upstream bodies, before anything is sent. Not
   * inline in generate(): that frame stays suspended for the whole answer, and
   * V8 keeps whatever its registers last held (the parsed body included).
   */
  #begin(call: GenerateCall, account: RequestAccount): Exchange {
    account.model = call.model
    account.stream = call.stream
    const cache = this.responseCache === null ? null : this.#cacheDirective(call, account)
    if (cache !== null && !cache.refresh) {
      // A stored answer needs no channel and no money: nothing is routed, prepared, sent or charged.
      authorizeCacheHit(account.principal, call.model)
      const hit = this.responseCache!.get(cache.key)
      if (hit) return new Exchange(call, [], false, cache, hit)
    }
    // Resolved once here (memoised per name): a thinking suffix (`-thinking`, `-high`...) on a name no
    // channel serves is its base model's route, and the row is the base model's (routing/model_suffix.ts).
    const plan = this.router(account.principal.plan).resolve(call.model)
    const suffix = typeof plan === 'object' ? plan.suffix : undefined
    if (suffix !== undefined) {
      account.model = suffix.base
      account.requestedModel = call.model
    }
    // OpenRouter's web search (`:online`, `plugins` web, chat's web_search_options): the upstream's own
    // search tool, its searches held (dialects/web_search.ts). One property test (`plugins`) otherwise.
    const webSearch = webSearchAsked(call.body, call.ingress === 'openai_chat', suffix?.webSearch === true)
    authorizeAndReserve(this.catalog, account, call.model, call.rawBody.length, call.body, 0, suffix?.base, webSearch ?? 0)
    const asked = requestFallbacks(call.body, call.model)
    const exchange = new Exchange(call, this.#route(call.model, account, asked, plan), carriesGatewayFields(call.body, asked), cache)
    exchange.webSearch = webSearch
    exchange.litellmHeaders = this.litellmHeaders
    // OpenRouter's provider preferences and :nitro / :floor, over the gateway's channels (an openrouter
    // channel also gets the object as sent): two property tests for every other request.
    const provider = call.body.provider
    if (suffix?.sort !== undefined || (provider !== undefined && provider !== null)) {
      exchange.candidates = applyProviderPreferences(exchange.candidates, readProviderPreferences(provider, suffix?.sort), account.price, account.repricer)
    }
    exchange.deploymentHeaders = this.deploymentHeaders
    // Responses: a follow-up, an answer to store (`store` not false; Codex sends false: two property tests).
    if (call.ingress === 'openai_responses') exchange.readResponsesState(this.responses?.enabled === true)
    if (exchange.accountsUsage) exchange.encoderOptions.usageCost = (usage) => usdOf(account.successCost(toTokenUsage(usage)))
    // Translation errors surface here, as the client's 400, before any channel is tried
    // (a follow-up's once its conversation is read: #continue).
    if (exchange.previousId === null && exchange.conversationId === null) exchange.prepare()
    return exchange
  }

  /**
   * A Responses follow-up: the conversation `previous_response_id` names.
   * Kept here: the body's input becomes the whole conversation (any channel
   * serves it). Held by a Responses-native channel: only that channel is
   * tried. Unknown or another user's: OpenAI's 400 (an unknown id still goes
   * to the route's Responses-native channels, which may hold it).
   */
  async #continue(exchange: Exchange, account: RequestAccount) {
    const { call } = exchange
    const id = exchange.previousId!
    const store = this.responses
    if (store === null || !store.enabled) {
      const native = exchange.candidates.filter(nativeResponses)
      if (native.length === 0) throw previousResponseNotFound(id)
      exchange.candidates = native
    } else {
      const next = await continuationOf(store, id, account.principal.user.id, call.body.input, exchange.candidates, bodyLimitFor('responses'))
      if (next.kind === 'gateway') {
        // In the body budget while the request lasts: its earlier items before the body is built, then the rest.
        holdBuiltBody(call.res, next.itemBytes)
        call.body.input = next.input
        delete call.body.previous_response_id
        call.rawBody = Buffer.from(JSON.stringify(call.body))
        // No larger than a body the client could send whole (the upstream call, the pass-through hold it).
        if (call.rawBody.length > bodyLimitFor('responses')) throw conversationTooLarge()
        holdBuiltBody(call.res, call.rawBody.length - next.itemBytes)
        raisePromptHold(account, call.rawBody.length)
      } else {
        exchange.candidates = next.candidates
      }
    }
    exchange.prepare()
  }

  /**
   * A Responses request naming a conversation (Conversations API,
   * conversations/): the conversation's items, oldest first, then the
   * request's own input become the input (`conversation` removed: an
   * upstream would look for its own); counted in the body budget and the
   * prompt hold, as a follow-up's conversation is. Not this user's, expired
   * or unknown: OpenAI's 404.
   */
  async #withConversation(exchange: Exchange, account: RequestAccount) {
    const { call } = exchange
    const id = exchange.conversationId!
    const store = this.conversations
    const items = store !== null && store.enabled ? await store.input(id, account.principal.user.id) : null
    if (items === null) throw conversationNotFound(id)
    call.body.input = [...items, ...inputItemsOf(call.body.input)]
    delete call.body.conversation
    call.rawBody = Buffer.from(JSON.stringify(call.body))
    if (call.rawBody.length > bodyLimitFor('responses')) {
      const error = new GatewayError(413, 'request_too_large', 'The conversation and this input are larger than a request body may be; start a new conversation')
      error.param = 'conversation'
      throw error
    }
    holdBuiltBody(call.res, call.rawBody.length)
    raisePromptHold(account, call.rawBody.length)
    exchange.prepare()
  }

  /** A turn of a conversation answered (completed or incomplete): its own input and its output added, behind the answer. */
  #appendTurn(exchange: Exchange, account: RequestAccount, response: any) {
    const id = exchange.conversationId
    const store = this.conversations
    if (id === null || store === null || exchange.storing === null) return
    if ((response?.status !== 'completed' && response?.status !== 'incomplete') || !Array.isArray(response.output)) return
    const items = [...inputItemsOf(exchange.storing.input), ...response.output] as Record<string, any>[]
    store.appendLater(id, account.principal.user.id, items)
  }

  /**
   * Responses `item_reference`s on a route with translated channels: each
   * becomes the stored item it names (this user's; item_references.ts), for
   * every candidate, and the request is prepared again. One not found: only
   * the route's Responses-native channels may hold it (they get the request
   * as it is); none: the 400.
   */
  async #resolveReferences(exchange: Exchange, account: RequestAccount, ids: string[]) {
    const { call } = exchange
    const store = this.responses
    const input: unknown[] = Array.isArray(call.body.input) ? call.body.input : []
    const found = store !== null && store.enabled ? await findReferencedItems(store, ids, account.principal.user.id, input) : new Map<string, unknown>()
    const missing = ids.find((id) => !found.has(id))
    if (missing !== undefined) {
      const native = exchange.candidates.filter(nativeResponses)
      if (native.length === 0) throw itemNotFound(missing, store?.enabled ? '' : ' Responses are not stored by this gateway: send the item itself (store: false in the client).')
      exchange.candidates = native
      return
    }
    assertReferencesFit(input, found, call.rawBody.length, bodyLimitFor('responses'))
    call.body.input = withReferencedItems(input, found)
    // The stored response keeps the items, not the references (its input_items, a later conversation).
    const storing = exchange.storing
    if (storing !== null && Array.isArray(storing.input)) storing.input = withReferencedItems(storing.input, found)
    call.rawBody = Buffer.from(JSON.stringify(call.body))
    holdBuiltBody(call.res, call.rawBody.length)
    raisePromptHold(account, call.rawBody.length)
    exchange.prepareAgain()
  }

  /** A streamed Responses answer: the finished response its encoder left (translated), or the upstream's id (held there). */
  #storeStreamed(exchange: Exchange, account: RequestAccount, upstreamId: string | null) {
    const stored = exchange.encoderOptions.stored
    if (stored) {
      if (stored.final) this.#storeResponse(exchange, account, stored.final)
    } else if (upstreamId !== null) this.#storeResponse(exchange, account, null, responseId(upstreamId))
  }

  /**
   * Queues a Responses answer for the store, once it was sent (setImmediate:
   * its serialisation is not the last byte's wait). `response`: the response
   * object the client got (translated), or null (held upstream: `upstreamId`).
   */
  #storeResponse(exchange: Exchange, account: RequestAccount, response: Record<string, any> | null, upstreamId?: unknown) {
    const storing = exchange.storing
    const store = this.responses
    if (exchange.conversationId !== null && response !== null && exchange.backgroundRun === null) this.#appendTurn(exchange, account, response)
    if (storing === null || store === null || storing.channel === null || exchange.backgroundRun !== null) return
    const { principal } = account
    const common = { userId: principal.user.id, apiKeyId: principal.key.id, channelId: storing.channel.id, model: exchange.publicModel, createdAt: new Date() }
    if (response === null) {
      if (typeof upstreamId !== 'string' || upstreamId === '' || upstreamId.length > 128) return
      const background = exchange.background !== null
      const record = { ...common, id: upstreamId, kind: 'upstream' as const, previousResponseId: null, inputItems: null, instructions: null, outputItems: null, usage: null, status: 'completed', background }
      setImmediate(() => store.save(record))
      return
    }
    if (response.status !== 'completed' && response.status !== 'incomplete') return
    const record = {
      ...common,
      id: String(response.id),
      kind: 'gateway' as const,
      previousResponseId: storing.previousId,
      inputItems: inputItemsOf(storing.input),
      instructions: storing.instructions,
      outputItems: Array.isArray(response.output) ? response.output : [],
      usage: response.usage ?? null,
      status: response.status,
    }
    setImmediate(() => store.save(record))
  }

  /** What the request asked of the response cache: null without `x-gateway-cache-ttl` (one header lookup). */
  #cacheDirective(call: GenerateCall, account: RequestAccount): CacheDirective | null {
    return this.responseCache!.directive(
      call.req.headers,
      (bytes = call.rawBody) => cacheKeyOf(account.principal.user.id, call.ingress, call.model, call.stream, call.jsonArray === true, bytes),
      call.body
    )
  }

  /** Answers from the cache in the dialect's own headers (cache_replay.ts). */
  #replay(exchange: Exchange, account: RequestAccount, hit: CachedAnswer) {
    // A replay is free (the row's cost is 0): a whole answer says so.
    const headers = hit.stream ? exchange.streamHeaders(account, hit.contentType) : exchange.jsonHeaders(account, 0n)
    replayCachedAnswer(exchange.call.res, account, hit, headers)
  }

  /** Keeps a complete 200 answer for the next identical request, when this one asked for it. */
  #store(exchange: Exchange, stream: boolean, contentType: string, bytes: Buffer | null) {
    const cache = exchange.cache
    if (cache === null || bytes === null || this.responseCache === null) return
    // An answer that states its cost is this request's: a replay is charged nothing, and would say otherwise.
    if (exchange.encoderOptions.usageCost) return
    this.responseCache.set(cache.key, { stream, contentType, bytes }, cache.ttlMs)
  }

  /** A recorder for a stream the request wants cached or logged (null otherwise: nothing kept). */
  #recorder(exchange: Exchange, account: RequestAccount) {
    return this.streamRecorder(exchange.cache !== null, account)
  }

  /** A recorder for a stream whose request asked for the cache (`cached`) or is logged; null otherwise. */
  streamRecorder(cached: boolean, account: RequestAccount): StreamRecorder | null {
    const caching = cached && this.responseCache !== null
    const logging = account.loggedRequest !== null
    if (!caching && !logging) return null
    // One byte past the log's limit tells the log the stream was longer.
    const limit = Math.max(caching ? this.responseCache!.maxEntryBytes : 0, logging ? this.bodyLog!.options.maxBodyBytes + 1 : 0)
    return new StreamRecorder(limit)
  }

  /** A logged call's streamed answer: what the client received, up to the log's limit. */
  #logStream(account: RequestAccount, out: ClientStream) {
    if (account.loggedRequest !== null && out.recorder !== null) account.loggedResponse = out.recorder.head()
  }

  /**
   * The model's channels, then, when an operator set fallbacks for it, the
   * channels of each fallback model the principal may use (its plan and key
   * globs; a priced one only with money on the balance, its hold taken: admitFallback), tagged with that
   * model: dispatch gives each model its own attempts, the account bills the
   * model that answers, and the client is answered as that model. A model
   * without fallbacks costs one map lookup.
   */
  #route(
    model: string,
    account: RequestAccount,
    asked: readonly string[] | null,
    /** Generation's plan, resolved before (a thinking suffix's included); other operations route the name as it is */
    plan?: RoutePlan | Refusal
  ): RouteCandidate[] {
    const configured = this.catalog.fallbacksFor(model)
    // The channels open to the caller's plan only, for the model and every fallback alike.
    const router = this.router(account.principal.plan)
    if (configured.length === 0 && asked === null) return plan === undefined ? router.route(model) : router.candidatesOf(plan, model)
    // The client's own list first (OpenRouter's `models`, LiteLLM's `fallbacks`), then the operator's.
    const fallbacks = asked === null ? configured : [...new Set([...asked, ...configured])]
    let candidates: RouteCandidate[] = []
    let failure: unknown = null
    try {
      candidates = plan === undefined ? router.route(model) : router.candidatesOf(plan, model)
    } catch (error) {
      failure = error
    }
    const { principal } = account
    for (const fallback of fallbacks) {
      if (!modelAllowed(principal, fallback)) continue
      let routed: RouteCandidate[]
      try {
        routed = router.route(fallback)
      } catch {
        continue
      }
      // A priced fallback is admitted like a request, and its hold taken now (access_policy.ts).
      if (!admitFallback(account, priceForPlan(this.catalog.priceFor(fallback), principal.plan))) continue
      for (const c of routed) candidates.push({ channel: c.channel, upstreamModel: c.upstreamModel, publicModel: fallback })
    }
    if (candidates.length === 0) throw failure
    account.repricer = (name) => priceForPlan(this.catalog.priceFor(name), principal.plan)
    return candidates
  }

  /** A whole answer, read and checked in its attempt (Exchange.readAnswer) */
  async #relayJson(
    exchange: Exchange,
    account: RequestAccount,
    status: number,
    answer: WholeAnswer
  ) {
    const { call, ingress } = exchange
    if (answer.decoded === null) {
      const parsed = answer.parsed
      const bytes = answer.bytes!
      if (this.catalog.wordFilter?.checkCompletions === true) {
        const text = exchange.passThroughText(parsed)
        await this.#screenCompletion(account, text, async () => {
          const found = ingress.usageOfBody(parsed)
          return found ? toTokenUsage(found) : exchange.estimate(text)
        })
      }
      // The upstream's own bill taken out (upstream_cost.ts); asked with OpenRouter's fields (reasoning left out,
      // usage's cost): amended. Re-framed only then.
      const dropped = ingress.passThrough.dropUpstreamCost?.(parsed) === true
      const amended = exchange.amends && ingress.passThrough.amend!(parsed, exchange.encoderOptions, ingress.usageOfBody(parsed))
      const sent = amended || dropped ? Buffer.from(JSON.stringify(parsed)) : bytes
      // Background on a Responses-native channel, still running there: billed when it ends (background_runs.ts).
      const background = exchange.background
      if (background !== null && status === 200 && !terminal(parsed?.status) && typeof parsed?.id === 'string' && exchange.storing?.channel) {
        const channel = exchange.storing.channel
        this.#storeResponse(exchange, account, null, parsed.id)
        background.adopt(parsed.id, channel)
        account.markFirstByte()
        if (background.clientStream) return relayUpstreamStream(channel, exchange.publicModel, parsed.id, undefined, call.res)
        return this.#answer(exchange, account, status, sent, null)
      }
      // The usage the upstream reported is the row's, and its cost LiteLLM's x-litellm-response-cost. Without
      // one the answer goes out first: counting it is the meter's business, not the client's wait (no cost header).
      const found = ingress.usageOfBody(parsed)
      const usage = found ? toTokenUsage(found) : null
      this.#answer(exchange, account, status, sent, usage === null ? null : account.successCost(usage))
      if (status === 200) this.#store(exchange, false, 'application/json', sent)
      // Held by the Responses-native upstream: its id remembered with the channel (follow-ups go back there).
      if (status === 200 && exchange.storing !== null) this.#storeResponse(exchange, account, null, parsed?.id)
      if (status === 200 && exchange.conversationId !== null) this.#appendTurn(exchange, account, parsed)
      return account.close(status, null, usage ?? (await exchange.estimate(exchange.passThroughText(parsed))))
    }
    const response = unwrapCustomCalls(answer.decoded, exchange.customTools())
    const usage = response.usage ? toTokenUsage(response.usage) : await exchange.estimate(responseText(response))
    // Also an answer that came whole to a stream request (replayed below as a stream): nothing is sent yet, so it is withheld as a non-streamed one is.
    if (this.catalog.wordFilter?.checkCompletions === true) await this.#screenCompletion(account, responseText(response), async () => usage)
    if (call.stream) {
      // The upstream ignored `stream` (or its stream came labelled as JSON): replay its answer as the client's stream.
      const encoder = ingress.streamEncoder(exchange.encoderOptions)
      const out = new ClientStream(call.res, exchange.streamHeaders(account, encoder.contentType), () => account.markFirstByte())
      out.recorder = this.#recorder(exchange, account)
      await out.write(eventsOfResponse(response).map((e) => encoder.push(e)).join('') + encoder.end())
      out.end()
      this.#logStream(account, out)
      if (!out.closedEarly) this.#store(exchange, true, encoder.contentType, out.recorder?.bytes() ?? null)
      if (!out.closedEarly && exchange.storing !== null) this.#storeStreamed(exchange, account, response.id)
      return account.close(200, null, usage)
    }
    const stored = exchange.encoderOptions.stored
    // Stored here: answered under the gateway's own id (responses_store/response_ids.ts).
    if (stored) response.id = stored.id
    let whole = ingress.encodeResponse(response, exchange.publicModel, exchange.encoderOptions.upstream)
    if (stored) whole = storedResponseObject(whole, stored)
    if (exchange.conversationId !== null) (whole as Record<string, any>).conversation = { id: exchange.conversationId }
    if (exchange.amends) ingress.passThrough.amend!(whole, exchange.encoderOptions, response.usage)
    const encoded = Buffer.from(JSON.stringify(whole))
    this.#answer(exchange, account, status, encoded, account.successCost(usage))
    if (status === 200) this.#store(exchange, false, 'application/json', encoded)
    if (status === 200 && stored) this.#storeResponse(exchange, account, whole)
    account.close(status, null, usage)
  }

  /**
   * The sensitive-word check of a whole answer (when the operator asked for
   * it): a listed word in its text withholds it. The client gets the 400 in
   * its format instead; the tokens the upstream used are still metered and
   * billed (the upstream was paid), on the row the error closes.
   */
  async #screenCompletion(account: RequestAccount, text: string, usage: () => Promise<TokenUsage>) {
    const refusal = this.catalog.wordFilter?.screenCompletion(text)
    if (!refusal) return
    account.close(refusal.status, refusal.code, await usage())
    throw refusal
  }

  /** A whole JSON answer, in one write; `costPico`: what its row bills (null: not known yet). */
  #answer(exchange: Exchange, account: RequestAccount, status: number, bytes: Buffer, costPico: bigint | null) {
    if (account.loggedRequest !== null) account.loggedResponse = bytes
    account.markFirstByte()
    const { res } = exchange.call
    if (res.destroyed) return
    const headers = exchange.jsonHeaders(account, costPico)
    headers['content-length'] = String(bytes.length)
    res.writeHead(status, headers)
    res.end(bytes)
  }

  async #relayStream(
    exchange: Exchange,
    account: RequestAccount,
    upstreamBody: AsyncIterable<Buffer>,
    upstreamDialect: Dialect,
    mapped: boolean,
    channel: ChannelInfo
  ) {
    const { call, ingress } = exchange
    // The answer check, decided once per stream (null: off or prompts only; no chunk pays for it).
    const screen = this.catalog.wordFilter?.streamScreen() ?? null
    // The upstream's own error event reaches the client: without the channel's key and address (asked of that event only).
    const conceal = (text: string) => withoutChannelSecrets(text, channel)
    // The answer's hold, kept ahead of what it costs as it streams (null: its tokens cost nothing).
    const hold = StreamHold.open(account)
    let outcome: StreamOutcome
    if (upstreamDialect === ingress) {
      const contentType = call.jsonArray ? 'application/json' : STREAM_HEADERS['content-type']
      const out = new ClientStream(call.res, exchange.streamHeaders(account, contentType), () => account.markFirstByte())
      out.recorder = this.#recorder(exchange, account)
      // A Responses answer held upstream: its id read from the final event (parsed anyway for its usage).
      let heldId: unknown
      let held: unknown
      const onParsed =
        exchange.storing === null
          ? null
          : (parsed: Record<string, any>) => {
              heldId = parsed.response?.id ?? heldId
              held = parsed.response ?? held
            }
      outcome = await relayPassThroughStream(upstreamBody, ingress, {
        encoder: exchange.encoderOptions,
        clientModel: mapped ? exchange.publicModel : null,
        stream: out,
        screen,
        conceal,
        hold,
        onParsed,
      })
      this.#logStream(account, out)
      if (out.recorder && !outcome.error && !outcome.clientClosed && !outcome.withheld) this.#store(exchange, true, contentType, out.recorder.bytes())
      if (onParsed !== null && !outcome.error && !outcome.withheld) this.#storeResponse(exchange, account, null, heldId)
      if (exchange.conversationId !== null && !outcome.error && !outcome.withheld && !outcome.clientClosed) this.#appendTurn(exchange, account, held)
    } else {
      const encoder = ingress.streamEncoder(exchange.encoderOptions)
      const out = new ClientStream(call.res, exchange.streamHeaders(account, encoder.contentType), () => account.markFirstByte())
      out.recorder = this.#recorder(exchange, account)
      const transform = customToolTransform(exchange.customTools())
      outcome = await relayTranslatedStream(upstreamBody, upstreamDialect.streamDecoder(), encoder, out, transform, screen, conceal, hold)
      this.#logStream(account, out)
      if (out.recorder && !outcome.error && !outcome.clientClosed && !outcome.withheld) this.#store(exchange, true, encoder.contentType, out.recorder.bytes())
      // A whole stream the client got: its response stored (a cut or failed one is not).
      if (exchange.storing !== null && !outcome.error && !outcome.clientClosed && !outcome.withheld && !outcome.outOfFunds) {
        this.#storeStreamed(exchange, account, null)
      }
    }
    const usage = await exchange.usageOfStream(outcome)
    // Stopped by the answer check: billed as a stream cut short (the tokens seen), the row marked as a withheld answer is.
    if (outcome.withheld) account.close(200, SENSITIVE_WORDS_CODE, usage)
    else if (outcome.clientClosed) account.close(499, 'client_closed', usage)
    // Cut when the balance (or the key's cap) could not cover more: billed what was relayed, within the hold.
    else if (outcome.outOfFunds) account.close(200, outcome.outOfFunds.code, hold!.billable(usage))
    else if (outcome.error) account.close(200, 'stream_interrupted', usage)
    else account.close(200, null, usage)
  }
}

/** What is in flight: a request's account, or a realtime session (admitSession). */
export interface InFlightWork {
  /** Aborted when a shutdown's grace period ends */
  readonly abort: AbortController
  /** A shutdown started: new work is refused, this should end soon */
  onDrain?(): void
  /** A realtime session (counted apart by inFlightCounts) */
  readonly realtime?: boolean
}

/** A whole answer as its attempt read and checked it (Exchange.readAnswer) */
interface WholeAnswer {
  /** The bytes the client gets and their JSON (passed through); null when translated */
  bytes: Buffer | null
  parsed: any
  /** Translated (or replayed as a stream): the decoded answer; null when passed through */
  decoded: CanonicalResponse | null
}

/** `background: true` on a Responses-native route (GatewayService.#generateInBackground) */
interface NativeBackground {
  /** The client asked a stream: it gets the upstream's stream of the response (GET ?stream=true) */
  clientStream: boolean
  /** The upstream answered it queued or in progress: polled and billed when it ends */
  adopt(id: string, channel: ChannelInfo): void
}

/** What a stored Responses answer keeps of its request (Exchange.readResponsesState) */
interface StoringRequest {
  input: unknown
  instructions: string | null
  previousId: string | null
  /** The channel that answered (set once dispatch returns) */
  channel: ChannelInfo | null
}

/** What a released call's body reads as: nothing (the Exchange re-reads the raw bytes when it must). */
const RELEASED_BODY: Record<string, any> = Object.freeze({})
/** A translated call's raw bytes once released (its prompt is read from the bytes sent upstream). */
const RELEASED_BYTES = Buffer.alloc(0)

/**
 * One client request on its way through: the client's dialect, the
 * canonical form (decoded once, only when a translation needs it) and the
 * bodies built from it per upstream candidate.
 */
class Exchange {
  readonly ingress: Dialect
  readonly encoderOptions: EncoderOptions
  #canonical: CanonicalRequest | null = null
  /** One entry per dialect the route uses (usually one): a short array, not a Map, per request */
  #prepared: Array<{ candidate: RouteCandidate; dialect: DialectName; body: Buffer }> = []
  /** The body of the latest attempt (the one that answered, once dispatch returns) */
  #sent: Buffer | null = null
  /** The parsed body was let go (releaseRequest): read it again from the raw bytes if it is needed */
  #released = false
  /** A translated request, released: the prompt is read from the bytes sent upstream, in that dialect */
  #sentPrompt: { dialect: DialectName; bytes: Buffer } | null = null
  #customTools: Set<string> | null = null

  /** The model the client is answered as: the one it asked for, or the fallback model that answered */
  publicModel: string
  /** Responses: the `previous_response_id` the request continues (null: none, the usual case) */
  previousId: string | null = null
  /** Responses: the conversation (Conversations API) the request reads and adds to (null: none, the usual case) */
  conversationId: string | null = null
  /** Responses with `store` not false: what the stored response keeps of the request (null: nothing stored) */
  storing: StoringRequest | null = null
  /** `background: true` run here (translated): the run that keeps it (its own row, not #storeResponse's) */
  backgroundRun: BackgroundRun | null = null
  /** `background: true` on a Responses-native route: the upstream's response adopted for billing when it ends */
  background: NativeBackground | null = null
  /** The body carries fallback models (`models`, `fallbacks`): not for the upstream */
  #routingFields: boolean
  /** OpenRouter's web search asked (`:online`, `plugins` web): the searches the upstream's tool may make (null: none) */
  webSearch: number | null = null
  /** The channel whose answer the client gets (null: none yet, or a cache hit) */
  answeredBy: ChannelInfo | null = null
  /** Bytes of answerBudget taken for a whole answer's copies (readAnswer), given back by releaseAnswerCopies */
  #answerCopies = 0
  /** LiteLLM's headers are written (GatewayService.litellmHeaders) */
  litellmHeaders = true
  /** The answering channel is named in LiteLLM's deployment headers (GatewayService.deploymentHeaders) */
  deploymentHeaders = false

  constructor(
    readonly call: GenerateCall,
    public candidates: RouteCandidate[],
    routingFields = false,
    /** What the client asked of the response cache (null: nothing, the usual case) */
    readonly cache: CacheDirective | null = null,
    /** The stored answer that serves this request (no upstream call) */
    readonly cachedAnswer: CachedAnswer | null = null
  ) {
    this.publicModel = call.model
    this.#routingFields = routingFields
    this.ingress = dialectOf(call.ingress)
    // OpenRouter's usage accounting asks for the usage (and its cost) in the answer, the stream's last chunk too.
    this.accountsUsage = call.ingress === 'openai_chat' && call.body.usage !== undefined && call.body.usage?.include === true
    this.encoderOptions = {
      model: call.model,
      includeUsage: call.body.stream_options?.include_usage === true || this.accountsUsage,
      jsonArray: call.jsonArray,
    }
    if (call.ingress === 'openai_chat' && call.body.reasoning !== undefined && reasoningExcluded(call.body)) this.encoderOptions.reasoningExcluded = true
  }

  /** The client asked for OpenRouter's usage accounting (`usage: {include: true}`): the answer's usage gets its cost */
  readonly accountsUsage: boolean

  /** An answer is to be amended as the client asked (PassThroughRules.amend): reasoning left out, usage's cost */
  get amends(): boolean {
    return this.encoderOptions.reasoningExcluded === true || this.accountsUsage
  }

  /**
   * A Responses request: the response it continues, and, when it is to be
   * stored, its own input and instructions (references, kept until the answer
   * is stored: the input before a follow-up's conversation is put in front).
   */
  readResponsesState(storeEnabled: boolean) {
    const { body } = this.call
    const previous = body.previous_response_id
    if (typeof previous === 'string' && previous !== '') this.previousId = previous
    // The Conversations API's `conversation` (an id, or {id}): its items read as the input's start (GatewayService.#withConversation).
    const conversation = body.conversation
    if (conversation !== undefined && conversation !== null) {
      const id = typeof conversation === 'string' ? conversation : conversation?.id
      if (typeof id !== 'string' || id === '') throw GatewayError.invalidRequest("'conversation' must be a conversation's id or an object with its id", 'invalid_value', 'conversation')
      if (this.previousId !== null) {
        throw GatewayError.invalidRequest("'previous_response_id' and 'conversation' cannot be used together", 'invalid_request', 'conversation')
      }
      this.conversationId = id
    }
    // A response in a conversation is stored as its items are (its output appended once answered).
    if (!storeEnabled || (body.store === false && this.conversationId === null)) return
    const instructions = typeof body.instructions === 'string' ? body.instructions : null
    this.storing = { input: body.input, instructions, previousId: this.previousId, channel: null }
  }

  /** The channel that answered a request to store: translated, the answer gets the gateway's id; else the upstream keeps it. */
  answeredOn(channel: ChannelInfo, native: boolean) {
    const storing = this.storing!
    storing.channel = channel
    const run = this.backgroundRun
    if (run !== null) run.channelId = channel.id
    if (!native) {
      const id = run?.id ?? mintResponseId()
      this.encoderOptions.stored = { id, previousResponseId: storing.previousId, instructions: storing.instructions, background: run !== null }
    }
  }

  /** Responses item references the request's decoding met (undefined: none, or not decoded: no translated candidate) */
  get itemReferences(): string[] | undefined {
    return this.#canonical?.itemReferences
  }

  /** The body changed before dispatch (item references resolved): decoded and prepared again. */
  prepareAgain() {
    this.#canonical = null
    this.#prepared = []
    this.prepare()
  }

  /** A fallback model answered: the answer (and a translated stream's events) carry its name. */
  answerAs(model: string) {
    this.publicModel = model
    this.encoderOptions.model = model
  }

  canonical(): CanonicalRequest {
    const sent = this.#sentPrompt
    this.#canonical ??= sent ? decodeClientRequest(dialectOf(sent.dialect), parseJsonObject(sent.bytes)) : decodeClientRequest(this.ingress, this.#body())
    this.#canonical.stream = this.call.stream
    return this.#canonical
  }

  /**
   * Once an upstream has answered, only the answer matters: the upstream
   * bodies and the canonical form are dropped, and so is the parsed client
   * body (kept as its raw bytes, which are re-read in the rare case a count
   * needs them: an answer without usage). What a translated answer needs of
   * the request is kept first.
   *
   * undici holds the bytes it sent until the answer ends: one copy of the
   * prompt is kept, not two. In the client's dialect they say what the
   * client's bytes say (a model name or stream_options aside) and become the
   * raw body. Translated (`translatedTo`), they say it in the upstream's
   * dialect: a count reads the prompt from them, and the client's bytes go
   * (a coding agent's 20-200 KB each, for a stream's whole length).
   */
  releaseRequest(translatedTo: DialectName | null) {
    if (translatedTo) {
      this.#customTools = this.customTools()
      if (this.#sent) {
        this.#sentPrompt = { dialect: translatedTo, bytes: this.#sent }
        this.call.rawBody = RELEASED_BYTES
      }
    } else if (this.#sent) this.call.rawBody = this.#sent
    this.#sent = null
    this.#prepared = []
    this.#canonical = null
    this.#released = true
    this.call.body = RELEASED_BODY
  }

  #body(): Record<string, any> {
    return this.#released ? parseJsonObject(this.call.rawBody) : this.call.body
  }

  /**
   * Builds, before dispatch, the upstream body of the first candidate of each
   * dialect the route may use (kept for the attempt). A body that cannot be
   * decoded or encoded is the client's error and must fail here: inside
   * dispatch it would count as a failure of the channel.
   *
   * An attachment one dialect cannot carry (`unsupported_attachment`) narrows
   * the route to the candidates of the dialects that can, as untranslatable()
   * does; it is the client's 400 only when no candidate can carry it.
   */
  prepare() {
    const unsupported = untranslatable(this.call)
    if (unsupported) {
      // Only channels of the client's own format can serve it: the others are not tried.
      this.candidates = this.candidates.filter((c) => upstreamDialect(c.channel, this.call.ingress, c.upstreamModel) === this.call.ingress)
      if (this.candidates.length === 0) throw GatewayError.invalidRequest(unsupported)
    }
    /** Dialects that cannot carry an attachment of the request, and the first refusal (the 400 if none can) */
    let refused: { dialects: DialectName[]; error: GatewayError } | null = null
    for (const candidate of this.candidates) {
      const dialect = upstreamDialect(candidate.channel, this.call.ingress, candidate.upstreamModel)
      if (this.#prepared.some((p) => p.dialect === dialect) || refused?.dialects.includes(dialect)) continue
      try {
        this.#prepared.push({ candidate, dialect, body: this.#build(candidate, dialect) })
      } catch (error) {
        if (!(error instanceof GatewayError) || error.code !== 'unsupported_attachment') throw error
        if (refused) refused.dialects.push(dialect)
        else refused = { dialects: [dialect], error }
      }
    }
    if (refused) {
      const cannot = refused.dialects
      this.candidates = this.candidates.filter((c) => !cannot.includes(upstreamDialect(c.channel, this.call.ingress, c.upstreamModel)))
      if (this.candidates.length === 0) throw refused.error
    }
  }

  /** The request for one candidate (dispatch calls this per attempt). */
  upstreamRequest(candidate: RouteCandidate) {
    const { call } = this
    const dialect = upstreamDialect(candidate.channel, call.ingress, candidate.upstreamModel)
    return adapterFor(candidate.channel.provider).request(candidate.channel, {
      operation: 'generate',
      dialect,
      model: candidate.upstreamModel,
      clientModel: call.model,
      stream: call.stream,
      body: (this.#sent = this.upstreamBody(candidate, dialect)),
      clientHeaders: call.req.headers,
    })
  }

  /**
   * dispatch()'s AnswerCheck: a whole answer read, parsed once and checked
   * inside its attempt, so that one that is no answer (upstream_answer.ts;
   * no content: Dialect.isAnswer; a shape the decoder throws on) fails over
   * to the next candidate like a 5xx. Null for a stream the client asked for
   * (relayed as it comes once its opening was checked: stream_opening.ts).
   */
  async readAnswer(body: UpstreamBody, candidate: RouteCandidate): Promise<WholeAnswer | null> {
    const { call } = this
    const upstream = dialectOf(upstreamDialect(candidate.channel, call.ingress, candidate.upstreamModel))
    if (call.stream && isEventStream(body.headers['content-type'])) {
      // Nothing has reached the client yet: a stream that fails at once fails over too.
      await checkStreamOpening(body, upstream.passThrough)
      return null
    }
    const bytes = await readBody(body)
    // A large answer's parsed and encoded copies stay in memory until it is written: counted in the
    // instance's budget of answers until then (answer_limits.ts takeAnswerCopies; given back at the
    // request's end, or now when this answer fails over).
    let taken = 0
    if (bytes.length > FREE_ANSWER_BYTES) {
      try {
        taken = takeAnswerCopies(bytes.length, upstream !== this.ingress || call.stream ? 2 : 1)
      } catch (error) {
        if (error instanceof UpstreamAnswersOverBudget) throw answersOverBudget(error)
        throw error
      }
      this.#answerCopies += taken
    }
    try {
      const parsed = parseAnswer(bytes)
      if (!upstream.isAnswer(parsed)) throw GatewayError.providerError('Upstream returned an answer without its content')
      // A client that asked for a stream gets one, also from an upstream of its own format that
      // ignored `stream` (or a proxy that dropped it): a JSON body would break its SDK's stream reader.
      if (upstream !== this.ingress || call.stream) {
        return { bytes: null, parsed: null, decoded: decodeAnswer(() => upstream.decodeResponse(parsed)) }
      }
      // Passed through: the upstream's bytes, but the model named as the client knows it (a fallback's, or the asked one).
      return { bytes: answeredAs(bytes, parsed, candidate.publicModel ?? call.model, candidate.upstreamModel), parsed, decoded: null }
    } catch (error) {
      this.#answerCopies -= taken
      answerBudget.used -= taken
      throw error
    }
  }

  /**
   * The canonical request a candidate is encoded from: a model-name suffix's
   * reasoning in place of the client's (bare `-thinking` keeps thinking the
   * client asked for itself). A shallow copy: other candidates get theirs.
   */
  #canonicalFor(candidate: RouteCandidate): CanonicalRequest {
    const canonical = this.canonical()
    const { reasoning } = candidate
    if (reasoning === undefined) return canonical
    const bare = reasoning.effort === undefined && reasoning.budgetTokens === undefined
    if (bare && canonical.reasoning !== undefined) return canonical
    return { ...canonical, reasoning }
  }

  customTools(): Set<string> {
    return this.#customTools ?? customToolNames(this.canonical())
  }

  /** The body for a candidate: prepared before dispatch, or built now. */
  upstreamBody(candidate: RouteCandidate, dialect: DialectName): Buffer {
    return this.#prepared.find((p) => p.candidate === candidate)?.body ?? this.#build(candidate, dialect)
  }

  /**
   * The client's bytes when possible; a minimal change for a same-dialect
   * upstream; else a translation. Always bytes: undici would copy a string
   * into a Buffer anyway.
   */
  #build(candidate: RouteCandidate, dialect: DialectName): Buffer {
    const { call } = this
    try {
      if (dialect === call.ingress) {
        const chat = call.ingress === 'openai_chat'
        const { reasoning } = candidate
        // The vendor's hints only when a rename may apply (maxTokensRenamed, thinking, reasoning), the
        // body has gateway fields (OpenRouter keeps its own) or a suffix sets reasoning: property tests otherwise.
        const hints =
          this.#routingFields ||
          reasoning !== undefined ||
          (chat && (call.body.max_tokens !== undefined || call.body.thinking !== undefined || call.body.reasoning !== undefined))
            ? adapterFor(candidate.channel.provider).encodeHints?.(candidate.channel)
            : undefined
        // The routing fields are the gateway's: an upstream would refuse them (OpenAI: unrecognized argument).
        let body = this.#routingFields ? withoutRoutingFields(call.body, hints?.openRouterFields === true) : call.body
        // A model-name suffix's reasoning, in the vendor's own field.
        if (reasoning !== undefined) body = withSuffixReasoning(dialect, body, reasoning, candidate.upstreamModel, hints)
        if (this.webSearch !== null) body = withWebSearch(dialect, candidate.channel.provider, body, this.webSearch)
        const stripped = body !== call.body
        const changed = this.ingress.passThrough.upstreamBody(body, candidate.upstreamModel, call.model, call.stream, stripped ? undefined : call.rawBody, hints)
        if (!changed) return stripped ? Buffer.from(JSON.stringify(body)) : call.rawBody
        return Buffer.isBuffer(changed) ? changed : Buffer.from(JSON.stringify(changed))
      }
      const hints = adapterFor(candidate.channel.provider).encodeHints?.(candidate.channel)
      const encoded = dialectOf(dialect).encodeRequest(this.#canonicalFor(candidate), candidate.upstreamModel, hints)
      return Buffer.from(JSON.stringify(this.webSearch === null ? encoded : withWebSearch(dialect, candidate.channel.provider, encoded, this.webSearch)))
    } catch (error) {
      throw asClientError(error)
    }
  }

  streamHeaders(account: RequestAccount, contentType: string): Record<string, string> {
    const headers: Record<string, string> = { ...STREAM_HEADERS, 'content-type': contentType, 'x-request-id': account.requestId }
    // Anthropic's API names it request-id; its SDKs read that one (`_request_id`, Claude Code's error lines).
    if (this.ingress.name === 'anthropic_messages') headers['request-id'] = account.requestId
    if (this.cache !== null) headers['x-gateway-cache'] = this.#cacheStatus()
    // The cost is not known when a stream's headers go out (LiteLLM leaves it out too).
    if (this.litellmHeaders) addLiteLLMHeaders(headers, account, this.call.model, null, this.deploymentHeaders ? this.answeredBy : null)
    return headers
  }

  /** Gives back what readAnswer took from the budget of answers (the request is over: its answer written or dropped). */
  releaseAnswerCopies() {
    answerBudget.used -= this.#answerCopies
    this.#answerCopies = 0
  }

  /** Headers of a whole JSON answer; `costPico`: what the row bills, for LiteLLM's x-litellm-response-cost (null: unknown). */
  jsonHeaders(account: RequestAccount, costPico: bigint | null): Record<string, string> {
    const headers: Record<string, string> = { 'content-type': 'application/json', 'x-request-id': account.requestId }
    if (this.ingress.name === 'anthropic_messages') headers['request-id'] = account.requestId
    if (this.cache !== null) headers['x-gateway-cache'] = this.#cacheStatus()
    if (this.litellmHeaders) addLiteLLMHeaders(headers, account, this.call.model, costPico, this.deploymentHeaders ? this.answeredBy : null)
    return headers
  }

  #cacheStatus() {
    return this.cachedAnswer ? 'HIT' : this.cache!.refresh ? 'REFRESH' : 'MISS'
  }

  /**
   * Completion text of a same-dialect JSON answer (for counting when it had
   * no usage): every choice's, for chat's `n` > 1 (the decoder reads the
   * first only), as a stream of the same answer is counted (its chunks carry
   * each choice under its index) and as legacy completions count.
   */
  passThroughText(parsed: any): string {
    try {
      const choices = parsed?.choices
      if (this.call.ingress === 'openai_chat' && Array.isArray(choices) && choices.length > 1) {
        let text = ''
        for (const choice of choices) text += responseText(this.ingress.decodeResponse({ ...parsed, choices: [choice] }))
        return text
      }
      return responseText(this.ingress.decodeResponse(parsed))
    } catch {
      return ''
    }
  }

  /** The stream's usage; a partial count (cut stream) is completed with the tokenizer. */
  async usageOfStream(outcome: StreamOutcome): Promise<TokenUsage> {
    if (outcome.usage && outcome.usageFinal) return toTokenUsage(outcome.usage)
    const completion = outcome.completionText()
    const estimated = await this.estimate(completion.text, completion.chars)
    if (!outcome.usage) return estimated
    const partial: CanonicalUsage = {
      ...outcome.usage,
      inputTokens: outcome.usage.inputTokens || estimated.promptTokens,
      outputTokens: Math.max(outcome.usage.outputTokens, estimated.completionTokens),
    }
    return { ...toTokenUsage(partial), estimated: true }
  }

  /** The tokenizer's count; `completionChars`: the completion's whole length when `completion` is only its start (a stream's kept text). */
  async estimate(completion: string, completionChars = completion.length): Promise<TokenUsage> {
    let promptTokens: number
    try {
      promptTokens =
        this.call.ingress === 'openai_chat' && !this.#sentPrompt
          ? await countChatPromptTokens(this.#body().messages)
          : await countCanonicalPrompt(this.canonical())
    } catch {
      // A pass-through body the decoder cannot read was still served: bill it by its size.
      promptTokens = Math.ceil((this.#sentPrompt?.bytes ?? this.call.rawBody).length / 4)
    }
    const completionTokens = await countTokens(completion, completionChars)
    return {
      promptTokens,
      completionTokens,
      totalTokens: promptTokens + completionTokens,
      cachedTokens: 0,
      reasoningTokens: 0,
      estimated: true,
    }
  }
}

/**
 * What a request asks that no translation can give, so that answering it
 * translated would silently answer something else: several choices (chat's
 * `n`, Gemini's candidateCount). LiteLLM and OpenAI refuse such a request
 * rather than drop the field. (Responses' `previous_response_id` is served on
 * every channel: responses_store/.)
 */
function untranslatable(call: GenerateCall): string | null {
  const { body, model } = call
  const elsewhere = `'${model}': it is served through another API format here`
  if (call.ingress === 'openai_responses' && asksCompactionV2(body)) {
    // Reached only on a route that mixes formats (a model served only elsewhere is emulated: generate()).
    return `a compaction_trigger item (Codex's remote compaction v2) is not supported for ${elsewhere}; POST /v1/responses/compact is served for every model`
  }
  if (call.ingress === 'openai_chat' && typeof body.n === 'number' && body.n > 1) {
    return `n > 1 is not supported for ${elsewhere}, which answers with one choice; send n: 1`
  }
  // Gemini's own n (also inside a batch-style generateContentRequest, as decodeGeminiRequest reads it)
  const inner = body.generateContentRequest ?? body.generate_content_request ?? body
  const config = inner.generationConfig ?? inner.generation_config
  const candidates = config?.candidateCount ?? config?.candidate_count
  if (call.ingress === 'gemini' && typeof candidates === 'number' && candidates > 1) {
    return `generationConfig.candidateCount > 1 is not supported for ${elsewhere}, which answers with one candidate; send candidateCount: 1`
  }
  return null
}

/** MAX_INFLIGHT reached: the request is refused before its upstream call */
function tooManyInFlight() {
  return new GatewayError(503, 'overloaded', 'Too many requests in flight; retry shortly', 'service_unavailable')
}

/** Counts tokens against TPM windows (only principals that have any). */
function onAccountClosed(account: RequestAccount, usage: TokenUsage) {
  if (hasLimits(account.principal)) addTokens(account.principal, usage.totalTokens)?.catch(() => {})
  // An end user with a tpm (end_user_policies.ts): one null test for every other request.
  if (account.endUserPolicy !== null) addEndUserTokens(account.endUserPolicy, usage.totalTokens)?.catch(() => {})
  // The key's tpm for this model (model_limits.ts): one null test for every other request.
  if (account.modelLimit !== null) addModelTokens(account.modelLimit, usage.totalTokens)?.catch(() => {})
}

/** pico-USD as the JSON number of USD OpenRouter's `usage.cost` is */
function usdOf(pico: bigint): number {
  return Number(fromPico(pico))
}

function isEventStream(contentType: string | string[] | undefined): boolean {
  return typeof contentType === 'string' && contentType.includes('text/event-stream')
}

/** At most this many fallback models a request may name. */
const MAX_REQUEST_FALLBACKS = 5

/**
 * The fallback models a request names: OpenRouter's `models` (the models to
 * try in order, the asked one among them) or LiteLLM's `fallbacks` (model
 * names); null when it names none. Anything else in those fields is a 400.
 */
export function requestFallbacks(body: Record<string, any>, model: string): string[] | null {
  const list = body.models ?? body.fallbacks
  if (list === undefined) return null
  const field = body.models !== undefined ? 'models' : 'fallbacks'
  if (!Array.isArray(list) || !list.every((m) => typeof m === 'string' && m.length > 0)) {
    throw GatewayError.invalidRequest(`'${field}' must be a list of model names`, 'invalid_fallbacks')
  }
  // A fallback that serves names the usage row and the answer: the same rules as the model's own name.
  for (const name of list as string[]) {
    const problem = modelNameProblem(name)
    if (problem !== null) throw GatewayError.invalidRequest(`'${field}': each model name ${problem}`, 'invalid_fallbacks')
  }
  const models = [...new Set(list as string[])].filter((m) => m !== model)
  if (models.length > MAX_REQUEST_FALLBACKS) {
    throw GatewayError.invalidRequest(`'${field}' may name at most ${MAX_REQUEST_FALLBACKS} models besides '${model}'`, 'invalid_fallbacks')
  }
  return models
}

/**
 * Request fields only OpenRouter reads, which apps written against it send
 * (the openai SDK with OpenRouter's base URL): provider routing
 * preferences, message transforms, plugins (web search, file parser), its
 * usage accounting switch, and `route` (its fallback strategy for
 * `models`). An `openrouter` channel gets them as sent; every other vendor
 * never sees them (OpenAI: 400 "Unrecognized request argument"). `models`
 * (and `route` with it) is the gateway's own fallback list and goes to no
 * one: the gateway's model names need not be OpenRouter's, and a second
 * fallback upstream would answer with a model the gateway did not bill.
 * `usage` is read by the gateway itself (usage accounting: the cost it
 * bills). `reasoning` is the chat dialect's business (openai_chat/index.ts).
 */
const OPENROUTER_FIELDS = ['provider', 'transforms', 'plugins', 'usage'] as const

/**
 * Does the body carry fields that are the gateway's, not the provider's: a
 * request's own fallbacks, LiteLLM's own fields, OpenRouter's, or LiteLLM-style
 * `metadata.tags` as a list (OpenAI takes only string values in `metadata`
 * and refuses a list: LiteLLM keeps its metadata from the provider too). A
 * string `metadata.tags` is valid OpenAI metadata and stays.
 */
function carriesGatewayFields(body: Record<string, any>, fallbacks: string[] | null): boolean {
  if (fallbacks !== null || body.route !== undefined || Array.isArray(body.metadata?.tags)) return true
  if (carriesLiteLLMFields(body)) return true
  for (const field of OPENROUTER_FIELDS) if (body[field] !== undefined) return true
  return false
}

/**
 * The client's body without the gateway's fields (a shallow copy): routing
 * fields, LiteLLM's fields, list tags, and OpenRouter's unless the channel
 * is OpenRouter (`openRouter`). The body itself when nothing goes (an
 * OpenRouter channel and only OpenRouter's fields): its bytes can go as sent.
 */
function withoutRoutingFields(body: Record<string, any>, openRouter: boolean): Record<string, any> {
  if (openRouter && body.models === undefined && body.fallbacks === undefined && body.route === undefined && !Array.isArray(body.metadata?.tags) && !carriesLiteLLMFields(body)) return body
  const { models: _models, fallbacks: _fallbacks, route: _route, ...rest } = body
  deleteLiteLLMFields(rest)
  if (!openRouter) for (const field of OPENROUTER_FIELDS) delete rest[field]
  const metadata = rest.metadata
  if (metadata !== null && typeof metadata === 'object' && Array.isArray(metadata.tags)) {
    const { tags: _tags, ...others } = metadata
    if (Object.keys(others).length > 0) rest.metadata = others
    else delete rest.metadata
  }
  return rest
}
