import type { Logger } from '@adonisjs/core/logger'
import { eachAtMost } from '#gateway/each_at_most'
import { GatewayError } from '#exceptions/gateway_error'
import { authorizeModel } from '#gateway/access_policy'
import { BatchHolds, batchBudgetOf, refuseUncoveredHold } from '#gateway/batches/batch_holds'
import { channelRequest, holdingChannel, jsonAnswer, NEVER } from '#gateway/batches/upstream_calls'
import { recordJobBill } from '#gateway/batches/job_usage_row'
import type { Catalog } from '#gateway/catalog'
import type { ApiCall } from '#gateway/http/generation_request'
import { admitModel } from '#gateway/limits/rate_limits'
import { limitFor } from '#gateway/limits/model_limits'
import { fromPico } from '#gateway/metering/money'
import { billable, costOf, perRequestCostOf, priceForPlan } from '#gateway/metering/pricing'
import { requestId } from '#gateway/metering/request_id'
import type { UsageMeter } from '#gateway/metering/usage_meter'
import type { RouteCandidate } from '#gateway/routing/channel_router'
import type { PriceInfo, Principal, ProviderKind, TokenUsage } from '#gateway/types'
import { ClientGoneError, dispatch } from '#gateway/upstream/dispatcher'
import { bodyFor, type VideoRequest } from '#gateway/videos/video_request'
import { operationState, pollRequest, safeOperationName, storedOperation, submitRequest, veoBody } from '#gateway/videos/veo'
import { billsWithoutRow, claimBilling, claimDue, finished, insertVideo, recordSeen, type VideoRow, type VideoWire } from '#gateway/videos/video_store'
import { toPico } from '#gateway/metering/money'

/** The channel kinds that make videos: OpenAI's Videos API (openai, custom; azure at its v1 API) and Veo (google, vertex) */
export const VIDEO_CHANNEL_KINDS: ReadonlySet<ProviderKind> = new Set(['openai', 'custom', 'azure', 'google', 'vertex'])
/**
 * The kinds that speak OpenAI's Videos API (a video's `openai` wire): Azure
 * OpenAI serves Sora 2 at `{resource}/openai/v1/videos` in OpenAI's schema,
 * the deployment as the body's model (channelRequest's `azureV1`).
 */
export const OPENAI_VIDEO_KINDS: ReadonlySet<ProviderKind> = new Set(['openai', 'custom', 'azure'])
const VEO_CHANNEL_KINDS: ReadonlySet<ProviderKind> = new Set(['google', 'vertex'])
/** A Gemini client's own operations: the Gemini API (Vertex's predictLongRunning is another client's path) */
export const NATIVE_VEO_KINDS: ReadonlySet<ProviderKind> = new Set(['google'])

/** The unbilled videos' holds, as BatchHolds.sync reads them */
const UNBILLED_VIDEOS = `SELECT id, user_id, api_key_id, team_id, model, budget_model, hold::text AS hold FROM videos
  WHERE billed_at IS NULL AND hold > 0`

/** Videos a sweep looks at, and at once */
const SWEEP_LIMIT = 50
const SWEEP_CONCURRENCY = 4
/** A bill older than this without its usage row lost it (the meter writes within milliseconds, or spills) */
const REPAIR_AFTER_MS = 10 * 60_000
/** An upstream look gives up after this long (the next look or sweep tries again) */
const LOOK_TIMEOUT_MS = 30_000
/**
 * A video is asked about upstream at most once in `everyMs` by this
 * process: a client polling GET in a loop (or listing 100 unfinished videos
 * in one) was one upstream call per video per request, on the channel's key
 * every other user shares (its rate limit, its circuit). Mutable for tests.
 */
export const videoLooks = { everyMs: 2_000 }

export interface VideoOptions {
  /** A video still unfinished this long after its creation is failed, its hold released, nothing billed (VIDEO_MAX_AGE_MINUTES) */
  maxAgeMs: number
}

/**
 * Video generations' life after creation (OpenAI's Videos API, Veo): every
 * look at one (the owner's GET or list, the sweep any instance runs) asks the
 * upstream while it is unbilled, and the first look that finds it finished
 * bills it: ONE usage row (endpoint `videos`, `video_seconds` on it) at the
 * model's price per second of video for the owner's plan, through the meter
 * like any request's, then its hold released. Failed (or expired, or
 * deleted before it finished, on an upstream that cancels it; Veo's delete
 * waits for the end): its row bills nothing. Billed once: the
 * `billed_at` claim (video_store.ts claimBilling) lets one caller, in any
 * instance, write the row; this process also runs one bill per video at a time.
 *
 * The hold (seconds x price, taken before the upstream is asked) lives in
 * `videos.hold` and in every instance's memory (BatchHolds over this table):
 * a video outlives its request by minutes, and its creator's instance may
 * die meanwhile; the table-driven sweep (VideoService.sweep, every
 * VIDEO_POLL_SECONDS) lets any instance finish the job.
 */
export class VideoService {
  readonly holds: BatchHolds
  #billing = new Map<number, Promise<void>>()
  /** Upstream looks under way, by video: every GET, list and sweep of the video meanwhile waits for the same one */
  #looking = new Map<number, Promise<VideoRow>>()
  /** The last look's video, by video, for videoLooks.everyMs */
  #looked = new Map<number, { at: number; row: VideoRow }>()

  constructor(
    private catalog: Catalog,
    private meter: UsageMeter,
    private logger: Logger,
    readonly options: VideoOptions
  ) {
    this.holds = new BatchHolds(catalog, UNBILLED_VIDEOS)
  }

  /**
   * The model authorised as any request's (plan, key, team globs; monthly
   * tokens; spend caps; the key's rpm for the model), its video channels, and
   * the hold (`seconds` x `samples` at its price per second, plus its price
   * per request) refused with a 402 when the balance or a cap cannot cover it.
   */
  async authorize(call: ApiCall, model: string, seconds: number, samples: number) {
    const { principal } = call
    const price = authorizeModel(this.catalog, principal, model)
    await admitKeyModelLimit(principal, model, call)
    const hold = videoHold(price, seconds * samples)
    refuseUncoveredHold(principal, price, hold, 1, model, {
      name: 'This video',
      why: `its ${seconds * samples} seconds at the model's price per second of video`,
    })
    return { hold, budgetModel: batchBudgetOf(principal, model)?.model ?? null }
  }

  /**
   * `POST /v1/videos` (and a remix's new video): held, sent to the model's
   * video channels in turn (failover as any call: an OpenAI-wire channel gets
   * the client's bytes, a Google or Vertex one Veo's request), recorded
   * under a gateway id. Not aborted when the client leaves: a video the
   * upstream started and the gateway never recorded would run unbilled.
   */
  async create(call: ApiCall, candidates: RouteCandidate[], request: VideoRequest, remixOf: VideoRow | null = null): Promise<VideoRow> {
    const { principal } = call
    const { hold, budgetModel } = await this.authorize(call, request.model, request.seconds, 1)
    let veo: string | null = null
    const row = await this.holds.holdWhileCreating(
      principal.user.id,
      principal.key.id,
      principal.team?.id ?? null,
      hold,
      async () => {
        const result = await dispatch(
          candidates,
          (c) => {
            if (VEO_CHANNEL_KINDS.has(c.channel.provider)) return submitRequest(c.channel, c.upstreamModel, (veo ??= veoBody(request)))
            if (remixOf !== null) {
              const body = JSON.stringify({ prompt: request.prompt })
              return channelRequest(c.channel, { method: 'POST', path: `/videos/${encodeURIComponent(remixOf.upstream_id)}/remix`, body, azureV1: true })
            }
            return channelRequest(c.channel, { method: 'POST', path: '/videos', body: bodyFor(request, c.upstreamModel), contentType: request.contentType, azureV1: true })
          },
          NEVER,
          undefined,
          jsonAnswer
        )
        const upstream = result.answer
        const wire: VideoWire = VEO_CHANNEL_KINDS.has(result.candidate.channel.provider) ? 'veo' : 'openai'
        const upstreamId = wire === 'veo' ? upstream.name : upstream.id
        if (wire === 'veo' ? !safeOperationName(upstreamId) : !isId(upstreamId)) {
          throw GatewayError.providerError('The upstream answered the video request without a usable id')
        }
        return insertVideo({
          upstream_id: upstreamId,
          wire,
          user_id: principal.user.id,
          api_key_id: principal.key.id,
          team_id: principal.team?.id ?? null,
          budget_model: budgetModel,
          channel_id: result.candidate.channel.id,
          model: request.model,
          served_model: result.candidate.upstreamModel,
          seconds: request.seconds,
          samples: 1,
          size: request.size,
          status: wire === 'veo' ? 'queued' : openAiStatus(upstream.status, 'queued'),
          object: wire === 'veo' ? { operation: storedOperation(upstream), prompt: request.prompt } : upstream,
          remixed_from: remixOf?.public_id ?? null,
          request_id: requestId(),
          hold: fromPico(hold),
        })
      },
      budgetModel
    )
    return this.#settledAtOnce(row)
  }

  /** A video the creation's answer says is finished already (an upstream that answers at once): billed now. */
  async #settledAtOnce(row: VideoRow): Promise<VideoRow> {
    if (finished(row.status)) await this.settle(row, row.wire === 'openai' ? (row.object ?? {}) : (row.object?.operation ?? {}))
    return row
  }

  /**
   * A Gemini client's own `:predictLongRunning` on a Gemini API channel: its
   * body as sent (the model in the path), held for its durationSeconds (8 when
   * absent) times its sampleCount, the operation recorded under a gateway
   * name (`models/{model}/operations/vop_gw…`) that only its owner's GET reaches.
   */
  async createNative(call: ApiCall, candidates: RouteCandidate[], model: string, rawBody: Buffer, seconds: number, samples: number): Promise<VideoRow> {
    const { principal } = call
    const { hold, budgetModel } = await this.authorize(call, model, seconds, samples)
    const row = await this.holds.holdWhileCreating(
      principal.user.id,
      principal.key.id,
      principal.team?.id ?? null,
      hold,
      async () => {
        const result = await dispatch(candidates, (c) => submitRequest(c.channel, c.upstreamModel, rawBody.toString('utf8')), NEVER, undefined, jsonAnswer)
        const upstream = result.answer
        if (!safeOperationName(upstream.name)) throw GatewayError.providerError('The upstream answered the video request without a usable operation name')
        return insertVideo({
          upstream_id: upstream.name,
          wire: 'veo_native',
          user_id: principal.user.id,
          api_key_id: principal.key.id,
          team_id: principal.team?.id ?? null,
          budget_model: budgetModel,
          channel_id: result.candidate.channel.id,
          model,
          served_model: result.candidate.upstreamModel,
          seconds,
          samples,
          size: null,
          status: upstream.done === true ? operationState(upstream).status : 'queued',
          object: { operation: storedOperation(upstream) },
          remixed_from: null,
          request_id: requestId(),
          hold: fromPico(hold),
        })
      },
      budgetModel
    )
    return this.#settledAtOnce(row)
  }

  /** The channel a video lives on, of its wire's kinds (503 when gone, disabled or of another kind now) */
  holdingChannelOf(row: VideoRow): RouteCandidate {
    const kinds = row.wire === 'openai' ? OPENAI_VIDEO_KINDS : row.wire === 'veo' ? VEO_CHANNEL_KINDS : NATIVE_VEO_KINDS
    return holdingChannel(this.catalog.channels, row.channel_id, row.served_model, kinds)
  }

  /**
   * The video now: asked of the upstream while unbilled (a finished one is
   * billed before this returns), as last seen once billed. `row` is updated.
   * Looks at once share one upstream call, and a look within
   * videoLooks.everyMs of the last is answered by it, unless `fresh` (a
   * delete: a video that finished meanwhile is billed, as it was made).
   */
  async look(row: VideoRow, signal: AbortSignal, fresh = false): Promise<VideoRow> {
    if (row.billed_at !== null) return row
    const recent = fresh ? undefined : this.#looked.get(row.id)
    if (recent !== undefined && Date.now() - recent.at < videoLooks.everyMs) return seenAs(row, recent.row)
    let shared = this.#looking.get(row.id)
    if (shared === undefined) {
      const own = { ...row }
      // Not the first asker's signal: the others wait for the same answer. Bounded as the sweep's are.
      shared = this.#askUpstream(own, AbortSignal.timeout(LOOK_TIMEOUT_MS))
        .then(() => this.#remember(own))
        .finally(() => this.#looking.delete(row.id))
      this.#looking.set(row.id, shared)
      // Every asker may have left before it ends: its failure is theirs to see, never an unhandled rejection.
      shared.catch(() => {})
    }
    return seenAs(row, await untilAborted(shared, signal))
  }

  /** The video as this look left it, answered to the looks of the next videoLooks.everyMs (insertion order is age order) */
  #remember(row: VideoRow): VideoRow {
    this.#looked.delete(row.id)
    this.#looked.set(row.id, { at: Date.now(), row })
    for (const [id, seen] of this.#looked) {
      if (Date.now() - seen.at < videoLooks.everyMs) break
      this.#looked.delete(id)
    }
    return row
  }

  async #askUpstream(row: VideoRow, signal: AbortSignal) {
    const candidate = this.holdingChannelOf(row)
    const upstream =
      row.wire === 'openai'
        ? (await dispatch([candidate], (c) => channelRequest(c.channel, { method: 'GET', path: `/videos/${encodeURIComponent(row.upstream_id)}`, azureV1: true }), signal, undefined, jsonAnswer)).answer
        : (await dispatch([candidate], (c) => pollRequest(c.channel, c.upstreamModel, row.upstream_id), signal, undefined, jsonAnswer)).answer
    await this.settle(row, upstream)
  }

  /** What an upstream answer says of the video, kept; a finished one billed (once). */
  async settle(row: VideoRow, upstream: Record<string, any>) {
    let status: string
    let object: Record<string, any>
    let seconds: number
    if (row.wire === 'openai') {
      status = openAiStatus(upstream.status, row.status)
      object = upstream
      // What the upstream says it made, when it says it believably; else what was asked.
      // Never more than was asked for and held: an upstream that says 12 (or 600) for a 4-second video is billed 4.
      const reported = Number(upstream.seconds)
      seconds = Number.isInteger(reported) && reported > 0 && reported <= row.seconds ? reported : row.seconds
    } else {
      const state = operationState(upstream)
      status = state.status
      object = { ...(row.object ?? {}), operation: storedOperation(upstream) }
      // Each video made, at the length asked (never more videos than asked for).
      seconds = row.seconds * Math.min(state.made, row.samples)
    }
    row.status = status
    row.object = object
    if (finished(status)) await this.bill(row, status, status === 'completed' ? seconds : 0)
    else await recordSeen(row.id, status, object)
  }

  /** Bills the video (once; a bill of it under way here is waited for): `seconds` made, 0 for one that made none. */
  bill(row: VideoRow, status: string, seconds: number): Promise<void> {
    let running = this.#billing.get(row.id)
    if (!running) {
      running = this.#billOnce(row, status, seconds).finally(() => this.#billing.delete(row.id))
      this.#billing.set(row.id, running)
    }
    return running
  }

  async #billOnce(row: VideoRow, status: string, seconds: number) {
    // The owner's plan prices it now, as a batch's bill is priced.
    const user = await this.catalog.user(row.user_id)
    const plan = user?.planId ? (this.catalog.plans.get(user.planId) ?? (await this.catalog.unheardPlan(user.planId)) ?? null) : null
    const price = priceForPlan(this.catalog.priceFor(row.model), plan)
    const usage: TokenUsage = { promptTokens: 0, completionTokens: 0, totalTokens: 0, cachedTokens: 0, reasoningTokens: 0, estimated: false, videoSeconds: seconds }
    let cost = 0n
    if (status === 'completed') {
      cost = costOf(price, usage)
      if (price?.perRequestPico) cost += perRequestCostOf(price, usage)
      cost = billable(cost)
    }
    const billedAt = new Date()
    if (await claimBilling(row.id, status, row.object, fromPico(cost), billedAt, seconds)) {
      this.#record(row, status, billedAt, cost, usage)
      if (status === 'completed') this.logger.info({ video: row.public_id, seconds, cost: fromPico(cost) }, 'video billed')
    }
    // Billed here or elsewhere: nothing is held for it any more.
    row.billed_at ??= billedAt
    this.holds.release(row.id)
  }

  /** The video's one usage row (job_usage_row.ts): its spend counts where a batch's does. */
  #record(row: VideoRow, status: string, billedAt: Date, cost: bigint, usage: TokenUsage) {
    recordJobBill(this.meter, this.catalog, row, {
      model: row.model,
      endpoint: 'videos',
      errorCode: status === 'completed' ? null : `video_${status}`.slice(0, 64),
      usage,
      costPico: cost,
      billedAt,
      budgetModel: row.budget_model,
    })
  }

  /**
   * One sweep (every VIDEO_POLL_SECONDS, in any instance): the holds made
   * what the table says, then the unbilled videos due for a look (claimed
   * for this sweep: two instances do not ask about the same one) asked
   * about upstream, a few at once; one past VIDEO_MAX_AGE_MINUTES failed,
   * nothing billed. Errors are logged, never thrown. Returns how many were looked at.
   */
  async sweep(): Promise<number> {
    await this.holds.sync()
    const rows = await claimDue(SWEEP_LIMIT)
    await eachAtMost(rows, SWEEP_CONCURRENCY, (row) => this.#sweepOne(row))
    await this.repairBills().catch((error) => this.logger.warn({ err: error }, 'video sweep: could not check bills for lost usage rows'))
    return rows.length
  }

  /**
   * A bill whose usage row a crash lost (the claim committed, the process
   * ended within the meter's flush window): written again from the figures
   * the claim kept, as batches' are (batch_service.ts repairBills: only
   * while this meter has nothing waiting for the database; the meter's queue
   * written first; the row's unique request id makes a duplicate a no-op).
   */
  async repairBills(olderThanMs = REPAIR_AFTER_MS): Promise<number> {
    await this.meter.drain()
    if (this.meter.degraded || this.meter.spilledPending > 0) return 0
    const rows = await billsWithoutRow(olderThanMs, SWEEP_LIMIT)
    for (const row of rows) {
      const seconds = Number(row.billed_seconds ?? 0)
      const usage: TokenUsage = { promptTokens: 0, completionTokens: 0, totalTokens: 0, cachedTokens: 0, reasoningTokens: 0, estimated: false, videoSeconds: seconds }
      this.#record(row, row.status, new Date(row.billed_at!), toPico(String(row.billed_cost ?? '0')), usage)
      this.logger.warn({ video: row.public_id }, 'video billed before a crash without its usage row: the row is written now')
    }
    return rows.length
  }

  async #sweepOne(row: VideoRow) {
    try {
      if (Date.now() - new Date(row.created_at).getTime() > this.options.maxAgeMs) {
        this.logger.warn({ video: row.public_id }, 'video still unfinished at VIDEO_MAX_AGE_MINUTES: failed, its hold released, nothing billed')
        row.object = expiredObject(row)
        return await this.bill(row, 'expired', 0)
      }
      // Its channel was deleted: nothing can say how it ended. Closed billing nothing, so its hold ends.
      if (row.channel_id === null) return await this.bill(row, 'failed', 0)
      await this.look(row, AbortSignal.timeout(LOOK_TIMEOUT_MS))
    } catch (error) {
      this.logger.warn({ err: error, video: row.public_id }, 'video sweep: could not look at the video upstream')
    }
  }
}

/** `row` as a look saw the video (what a look changes of it) */
function seenAs(row: VideoRow, seen: VideoRow): VideoRow {
  row.status = seen.status
  row.object = seen.object
  row.billed_at = seen.billed_at
  return row
}

/** The work's result, or ClientGoneError as soon as the client's signal aborts (the work goes on for the others) */
function untilAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(new ClientGoneError())
  return new Promise((resolve, reject) => {
    const gone = () => reject(new ClientGoneError())
    signal.addEventListener('abort', gone, { once: true })
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', gone))
  })
}

/** OpenAI's status of a video, from its answer (an unknown word: as it was; cancelled: failed) */
function openAiStatus(status: unknown, previous: string): string {
  if (status === 'queued' || status === 'in_progress' || status === 'completed' || status === 'failed') return status
  if (status === 'cancelled') return 'failed'
  return previous
}

/** The hold of `seconds` of video at a price: per second, plus its price per request */
export function videoHold(price: PriceInfo | null, seconds: number): bigint {
  if (price === null) return 0n
  return BigInt(seconds) * (price.perVideoSecondPico ?? 0n) + (price.perRequestPico ?? 0n)
}

/** The key's own rpm for the model (limits/model_limits.ts), as the other endpoints admit it */
async function admitKeyModelLimit(principal: Principal, model: string, call: ApiCall) {
  const limits = principal.key.modelLimits
  if (limits === null) return
  const limit = limitFor(limits, model)
  if (limit !== undefined && (limit.rpm !== null || limit.tpm !== null)) await admitModel(limit, call.res)
}

/** The object a video failed for its age keeps (OpenAI's error; a Veo operation's error) */
function expiredObject(row: VideoRow): Record<string, any> {
  const error = { code: 'video_expired', message: 'The video did not finish in time; nothing was billed' }
  return row.wire === 'openai' ? { ...(row.object ?? {}), status: 'failed', error } : { ...(row.object ?? {}), expired: error }
}

function isId(value: unknown): value is string {
  return typeof value === 'string' && value !== '' && value.length <= 255 && /^[A-Za-z0-9._:-]+$/.test(value)
}

/** VIDEO_MAX_AGE_MINUTES in ms (360 by default: Sora and Veo finish in minutes) */
export function videoMaxAgeMs(): number {
  const minutes = Number(process.env.VIDEO_MAX_AGE_MINUTES)
  return (Number.isFinite(minutes) && minutes > 0 ? minutes : 360) * 60_000
}

/** VIDEO_POLL_SECONDS in ms (10 s by default; at least 2 s): how often the sweep looks for videos due a look */
export function videoPollMs(): number {
  const seconds = Number(process.env.VIDEO_POLL_SECONDS)
  return Number.isFinite(seconds) && seconds > 0 ? Math.max(2, seconds) * 1000 : 10_000
}
