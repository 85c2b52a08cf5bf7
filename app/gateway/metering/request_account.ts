import type { ModelLimit } from '#gateway/limits/model_limits'
import { GatewayError } from '#exceptions/gateway_error'
import { billable, costOf, perRequestCostOf } from '#gateway/metering/pricing'
import { saneUsage } from '#gateway/metering/token_counts'
import type { RequestLogWriter } from '#gateway/logs/request_log_writer'
import { holdOnKey, releaseOnKey } from '#gateway/metering/key_reservations'
import { requestId } from '#gateway/metering/request_id'
import type { UsageMeter } from '#gateway/metering/usage_meter'
import { ZERO_USAGE, type PriceInfo, type Principal, type TokenUsage } from '#gateway/types'
import type { AttemptRecord, DispatchHooks } from '#gateway/upstream/dispatcher'
import type { RouteCandidate } from '#gateway/routing/channel_router'
import type { EndUserPolicy } from '#gateway/end_users/end_user_policies'
import type { ModelBudget } from '#gateway/limits/model_budgets'

/**
 * The accounting of one API request, filled in as the request progresses and
 * handed to the meter exactly once, whatever path the request ends on.
 */
export class RequestAccount {
  readonly startedAt = performance.now()
  readonly createdAt = new Date()
  /** Time-ordered (UUIDv7), from the same clock reading as createdAt: see request_id.ts */
  readonly requestId = requestId(this.createdAt.getTime())
  model = ''
  /** The client's model once a fallback model took its place in `model` (null until then) */
  requestedModel: string | null = null
  stream = false
  channelId: number | null = null
  provider: string | null = null
  servedModel: string | null = null
  price: PriceInfo | null = null
  /** Set when the route holds fallback models: the price of one for this principal */
  repricer: ((model: string) => PriceInfo | null) | null = null
  ttftMs: number | null = null
  attempts: AttemptRecord[] = []
  /** Attempts on the model the latest attempt served (LiteLLM's attempted retries + 1) */
  attemptsOnModel = 0
  /** Fallback models tried after the one asked for (LiteLLM's attempted fallbacks) */
  fallbacksTried = 0
  /** The fallback model of the latest attempt (undefined: the model asked for) */
  #attemptModel: string | undefined = undefined
  /** Aborts the upstream call: on client disconnect, or when shutdown's grace period ends */
  readonly abort = new AbortController()
  /** The request's estimated tokens, as held (access_policy.ts): a fallback's hold is them at its price */
  promptTokenHold = 0
  completionTokenHold = 0
  /** The images an images request asks for, held at the per-image price like the tokens */
  imageHold = 0
  /** The request asks for a spoken answer (reservation.ts asksForAudio): its tokens held at the audio output price */
  audioAnswer = false
  /** The answer may be an image (reservation.ts mayAnswerImages): its tokens held at the image output price */
  imageAnswer = false
  /** An image answer without max tokens: at least one image's tokens per choice (reservation.ts imageAnswerTokenHold), for an image model */
  imageAnswerTokenHold = 0
  /** Server-side web searches the request may make (reservation.ts webSearchHold), held at the per-search price */
  searchHold = 0
  /** pico-USD held on the user's balance until the request ends */
  #reservedPico = 0n
  /** This month's tokens held on the user while the request runs (plans with monthly limits only) */
  #heldInput = 0
  #heldOutput = 0
  #closed = false

  constructor(
    private meter: UsageMeter,
    readonly principal: Principal,
    readonly endpoint: string,
    private onClosed?: (account: RequestAccount, usage: TokenUsage) => void
  ) {}

  /** dispatch() hooks (the account is its own hooks object: no per-request closures) */
  get dispatchHooks(): DispatchHooks {
    return this
  }

  /** dispatch() hook: the channel about to be tried */
  onAttempt(candidate: RouteCandidate) {
    this.channelId = candidate.channel.id
    this.provider = candidate.channel.provider
    this.servedModel = candidate.upstreamModel
    if (candidate.publicModel !== this.#attemptModel) {
      this.#attemptModel = candidate.publicModel
      this.attemptsOnModel = 0
      this.fallbacksTried++
    }
    this.attemptsOnModel++
    // A fallback model answers: the row is that model's, at its price, and keeps the model asked for.
    if (candidate.publicModel !== undefined && candidate.publicModel !== this.model && this.repricer) {
      this.requestedModel ??= this.model
      this.model = candidate.publicModel
      this.price = this.repricer(candidate.publicModel)
    }
  }

  /** dispatch() hook: how an attempt ended */
  onAttemptResult(record: AttemptRecord) {
    this.attempts.push(record)
  }

  /**
   * Holds an estimate of the request's cost on the user's balance (and on the
   * key's spend cap, when it has one) while it runs, so concurrent requests
   * see each other (see access_policy.ts).
   * Released exactly once, in close(), on every exit path.
   */
  reserve(estimatePico: bigint) {
    if (estimatePico <= 0n || this.#closed) return
    this.#reservedPico += estimatePico
    this.principal.user.reservedPico += estimatePico
    if (this.principal.key.spendLimitPico !== null) holdOnKey(this.principal.key.id, estimatePico)
    if (this.endUserPolicy !== null) this.endUserPolicy.heldPico += estimatePico
    // Always on the team and its organization (a budget may be set while the request runs: the release must match).
    if (this.principal.team !== null) {
      this.principal.team.heldPico += estimatePico
      if (this.principal.org !== null) this.principal.org.heldPico += estimatePico
      if (this.principal.member !== null) this.principal.member.heldPico += estimatePico
    }
    if (this.modelBudget !== null) this.modelBudget.heldPico += estimatePico
  }

  /**
   * Holds the request's estimated tokens against the plan's monthly limits
   * (access_policy.ts), so concurrent requests see each other; released with
   * the cost hold in close().
   */
  reserveTokens(input: number, output: number) {
    if (this.#closed) return
    this.#heldInput += input
    this.#heldOutput += output
    this.principal.user.reservedInputTokens += input
    this.principal.user.reservedOutputTokens += output
  }

  get reservedPico() {
    return this.#reservedPico
  }

  /** This month's output tokens the request holds (plans with monthly limits only) */
  get heldOutputTokens() {
    return this.#heldOutput
  }

  /** Cost-attribution tags (request_tags.ts); null when the request sent none */
  tags: string[] | null = null
  /** The end user the request named (end_users/end_user_id.ts); null when none */
  endUser: string | null = null
  /** The end user's policy when it has a monthly limit: the request's hold counts against it */
  endUserPolicy: EndUserPolicy | null = null
  /** The key's own rpm/tpm for the model asked for (limits/model_limits.ts); null = none: its tokens count there when metered */
  modelLimit: ModelLimit | null = null
  /**
   * The key's budget for the model asked for (limits/model_budgets.ts), set
   * before any hold; null = none. The hold counts on it, and the row's cost
   * on the model's spend.
   */
  modelBudget: ModelBudget | null = null
  /** Answered from the response cache: no provider call, nothing charged (the row says so) */
  cacheHit = false
  /** Body logging (LOG_BODIES): the writer, the client's request bytes and what it got back; null when off */
  bodyLog: RequestLogWriter | null = null
  loggedRequest: Buffer | null = null
  loggedResponse: Buffer | string | null = null

  markFirstByte() {
    if (this.ttftMs === null) this.ttftMs = Math.round(performance.now() - this.startedAt)
  }

  /** Records the request; later calls are ignored (one row per request). */
  close(status: number, errorCode: string | null, usage: TokenUsage = ZERO_USAGE) {
    if (this.#closed) return
    this.#closed = true
    if (this.#reservedPico > 0n) {
      this.principal.user.reservedPico -= this.#reservedPico
      if (this.principal.key.spendLimitPico !== null) releaseOnKey(this.principal.key.id, this.#reservedPico)
      if (this.endUserPolicy !== null) this.endUserPolicy.heldPico -= this.#reservedPico
      if (this.principal.team !== null) {
        this.principal.team.heldPico -= this.#reservedPico
        if (this.principal.org !== null) this.principal.org.heldPico -= this.#reservedPico
        if (this.principal.member !== null) this.principal.member.heldPico -= this.#reservedPico
      }
      if (this.modelBudget !== null) this.modelBudget.heldPico -= this.#reservedPico
      this.#reservedPico = 0n
    }
    if (this.#heldInput !== 0 || this.#heldOutput !== 0) {
      this.principal.user.reservedInputTokens -= this.#heldInput
      this.principal.user.reservedOutputTokens -= this.#heldOutput
      this.#heldInput = 0
      this.#heldOutput = 0
    }
    // Whatever an upstream reported (or an endpoint read from its answer), the row and the bill
    // get counts the columns hold and the money arithmetic takes: token_counts.ts.
    usage = saneUsage(usage)
    const costPico = this.#costOf(usage, status >= 200 && status < 300 && errorCode === null)
    const cleanPath = this.attempts.length <= 1 && this.attempts.every((a) => a.outcome === 'ok')
    this.meter.record({
      requestId: this.requestId,
      userId: this.principal.user.id,
      apiKeyId: this.principal.key.id,
      channelId: this.channelId,
      provider: this.provider,
      model: this.model || '(none)',
      // A reference, no copy; null when the row's model is the one asked for (a fallback list may name it again).
      requestedModel: this.requestedModel === this.model ? null : this.requestedModel,
      servedModel: this.servedModel,
      endpoint: this.endpoint,
      stream: this.stream,
      status,
      errorCode,
      usage,
      costPico,
      latencyMs: Math.round(performance.now() - this.startedAt),
      ttftMs: this.ttftMs,
      createdAt: this.createdAt,
      attemptCount: this.attempts.length,
      attempts: cleanPath ? null : this.attempts,
      cacheHit: this.cacheHit,
      tags: this.tags,
      endUser: this.endUser,
      teamId: this.principal.team === null ? null : this.principal.team.id,
      // The organization the request was admitted under (Principal.org): its spend counts the cost.
      organizationId: this.principal.org === null ? null : this.principal.org.id,
      // Admitted under the owner's limits in the team (Principal.member): their spend there counts the cost.
      memberBudget: this.principal.member !== null,
      modelBudget: this.modelBudget === null ? null : this.modelBudget.id,
    })
    if (this.loggedRequest !== null) {
      if (this.bodyLog!.wants(status, errorCode)) this.bodyLog!.record(this.requestId, this.createdAt, this.loggedRequest, this.loggedResponse)
      this.loggedRequest = null
      this.loggedResponse = null
    }
    this.onClosed?.(this, usage)
  }

  /**
   * What the request is billed for `usage` if it ends in success: the
   * figure its usage row will hold (OpenRouter's usage accounting tells the
   * client this in the answer, before the row is written). pico-USD.
   */
  successCost(usage: TokenUsage): bigint {
    return this.#costOf(saneUsage(usage), true)
  }

  /** The cost of counts already made sane, at the price of the model that answered. */
  #costOf(usage: TokenUsage, succeeded: boolean): bigint {
    const price = this.price
    let costPico = costOf(price, usage)
    // The per-request price: only a request that succeeded pays it (not an error, a broken stream or a cache hit).
    if (price?.perRequestPico && succeeded && !this.cacheHit) costPico += perRequestCostOf(price, usage)
    return billable(costPico)
  }

  /** Records a request that failed with an error before or without any usage. */
  fail(error: unknown) {
    if (error instanceof GatewayError) this.close(error.status, error.code)
    else this.close(500, 'internal_error')
  }

  get closed() {
    return this.#closed
  }
}
