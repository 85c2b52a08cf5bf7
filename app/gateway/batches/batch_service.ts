import type { Logger } from '@adonisjs/core/logger'
import { eachAtMost } from '#gateway/each_at_most'
import type { Catalog } from '#gateway/catalog'
import type { UsageMeter } from '#gateway/metering/usage_meter'
import { fromPico, toPico } from '#gateway/metering/money'
import { priceForPlan } from '#gateway/metering/pricing'
import { BatchHolds } from '#gateway/batches/batch_holds'
import { batchCost } from '#gateway/batches/batch_pricing'
import {
  billedUsage,
  noUsage,
  sumGeminiEmbedInlined,
  sumGeminiEmbedResultsFile,
  sumGeminiInlined,
  sumGeminiResultsFile,
  sumOutputUsage,
  sumResultsUsage,
  tokenUsageOf,
  type OutputUsage,
} from '#gateway/batches/batch_output'
import {
  GEMINI_FINISHED_STATES,
  geminiBatchEnd,
  geminiBatchState,
  inlinedResponsesOf,
  registerResultsFile,
  responsesFileOf,
  withoutInlined,
} from '#gateway/batches/gemini_batch_objects'
import {
  billsWithoutRow,
  claimBilling,
  isGeminiBatch,
  isGeminiEmbedBatch,
  isMessageBatch,
  recordSeen,
  registerBatchFile,
  storedCustomIds,
  storedInputTokens,
  unbilledBatches,
  type BatchObjectRow,
} from '#gateway/batches/batch_store'
import {
  BATCH_CHANNEL_KINDS,
  callChannel,
  GEMINI_BATCH_CHANNEL_KINDS,
  holdingChannel,
  MESSAGE_BATCH_CHANNEL_KINDS,
  messageBatchPath,
  sendToChannel,
} from '#gateway/batches/upstream_calls'
import type { RouteCandidate } from '#gateway/routing/channel_router'
import { withinReadDeadline } from '#gateway/batches/read_deadline'
import { BilledOnce } from '#gateway/batches/custom_ids'
import { recordJobBill } from '#gateway/batches/job_usage_row'

/** A batch's statuses after which nothing more runs upstream: it is billed then. */
export const FINISHED_STATUSES: ReadonlySet<string> = new Set(['completed', 'failed', 'expired', 'cancelled'])

/** How a finished batch ended that is no error on its usage row (OpenAI's `completed`, a message batch that `ended` whole) */
const CLEAN_ENDS: ReadonlySet<string> = new Set(['completed', 'ended'])

/**
 * How an ended message batch ended, for its usage row's error code:
 * `canceled` once a cancel was asked, `expired` when requests expired (the 24
 * hours ran out), else `ended` (no error).
 */
function messageBatchEnd(upstream: Record<string, any>): string {
  if (upstream.cancel_initiated_at) return 'canceled'
  if (Number(upstream.request_counts?.expired) > 0) return 'expired'
  return 'ended'
}

/** Batches looked at per sweep (the rest wait for the next one, longest unpolled first) */
const SWEEP_LIMIT = 100
/**
 * Batches a sweep looks at at once. Not one: a batch whose upstream is slow
 * (a results file dripping in) held every other one behind it, billed only
 * when that read ended. A few: each look is an upstream call, a few writes,
 * and for a finished batch a results file read, bounded in memory per line.
 */
const SWEEP_CONCURRENCY = 4
/** A bill older than this without its usage row lost it (the meter writes within milliseconds, or spills) */
const REPAIR_AFTER_MS = 10 * 60_000

/**
 * The Batch API's life after creation: what the gateway learns of a batch
 * (a client's GET or cancel, or the sweep), the output and error files it
 * names registered as its owner's, and, once it is finished (completed,
 * failed, expired, cancelled), its bill: the usage summed from its output
 * file at the batch price (batch_pricing.ts), written as ONE usage row
 * (endpoint `batch`, request id the batch's `request_id`) through the meter,
 * like any request's, then its hold released. Billed once: the row's
 * billed_at claim (batch_store.ts claimBilling) lets one caller, in any
 * instance, write it; this process also runs one bill per batch at a time.
 *
 * Anthropic's message batches (message_batches_api.ts) live the same life:
 * settleMessageBatch instead of settle, billed once `processing_status` is
 * `ended` from their results' usage (endpoint `messages.batch`); so do
 * Gemini's batches (gemini_batches_api.ts): settleGeminiBatch, billed once
 * their state is final from their inline answers or results file (endpoint
 * `gemini.batchGenerateContent`, or `gemini.asyncBatchEmbedContent` for an
 * embedding batch, its tokens the answers' or the gateway's count).
 */
export class BatchService {
  readonly holds: BatchHolds
  /** Bills under way in this process, by batch row id */
  #billing = new Map<number, Promise<void>>()
  /** Aborted at shutdown: the looks and results reads under way end (read_deadline.ts), retried after the restart */
  #reads = new AbortController()

  constructor(
    private catalog: Catalog,
    private meter: UsageMeter,
    private logger: Logger
  ) {
    this.holds = new BatchHolds(catalog)
  }

  /**
   * The upstream's batch object as the client sees it (the gateway's ids:
   * its own, its input file's, its output and error files' once registered
   * as the owner's), kept as the row's object; a finished batch is billed
   * before this returns.
   */
  async settle(row: BatchObjectRow, upstream: Record<string, any>): Promise<Record<string, any>> {
    // Stored and written on the usage row: without the NUL a hostile upstream could put in it (jsonb and text refuse it).
    const status = typeof upstream.status === 'string' ? upstream.status.replaceAll('\0', '') : row.status
    const output = isId(upstream.output_file_id) ? await registerBatchFile(row, upstream.output_file_id, 'batch_output') : null
    const errors = isId(upstream.error_file_id) ? await registerBatchFile(row, upstream.error_file_id, 'batch_output') : null
    const view = {
      ...upstream,
      id: row.public_id,
      object: 'batch',
      // The client's (`/v1/chat/completions`), not Azure's echo of its own form (`/chat/completions`)
      endpoint: row.endpoint ?? upstream.endpoint,
      input_file_id: row.input_file_id,
      output_file_id: output,
      error_file_id: errors,
    }
    await recordSeen(row.id, status, view)
    if (FINISHED_STATUSES.has(status) && row.billed_at === null) {
      // A bill that cannot be made now (the output file's download failed) is made at the next look or sweep:
      // the client still gets the batch as the upstream described it.
      await this.bill(row, status, upstream).catch((error) =>
        this.logger.warn({ err: error, batch: row.public_id }, 'batch finished but not billed yet: tried again at the next look')
      )
    }
    return view
  }

  /**
   * The upstream's message batch kept as the row's object (its ids the
   * upstream's: the client's view is made from it per answer); an ended one is
   * billed before this returns.
   */
  async settleMessageBatch(row: BatchObjectRow, upstream: Record<string, any>): Promise<void> {
    const status = typeof upstream.processing_status === 'string' ? upstream.processing_status : row.status
    await recordSeen(row.id, status, upstream)
    row.status = status
    // The row's object is what the bill reads how it ended from (and a repaired bill, from the table).
    row.object = upstream
    if (status === 'ended' && row.billed_at === null) {
      await this.bill(row, status, upstream).catch((error) =>
        this.logger.warn({ err: error, batch: row.public_id }, 'message batch ended but not billed yet: tried again at the next look')
      )
    }
  }

  /**
   * Gemini's batch Operation kept as the row's object (without its inline
   * answers: withoutInlined), its results file recorded as the owner's; a
   * finished one (succeeded, failed, cancelled, expired) is billed before
   * this returns, from `upstream` (its inline answers) or its results file.
   */
  async settleGeminiBatch(row: BatchObjectRow, upstream: Record<string, any>): Promise<void> {
    const state = geminiBatchState(upstream) ?? row.status
    const file = responsesFileOf(upstream)
    if (file !== null) await registerResultsFile(row, file)
    const kept = withoutInlined(upstream)
    await recordSeen(row.id, state, kept)
    row.status = state
    row.object = kept
    if (GEMINI_FINISHED_STATES.has(state) && row.billed_at === null) {
      await this.bill(row, state, upstream).catch((error) =>
        this.logger.warn({ err: error, batch: row.public_id }, 'Gemini batch finished but not billed yet: tried again at the next look')
      )
    }
  }

  /** Bills a finished batch (once; a bill of it already under way here is waited for). */
  bill(row: BatchObjectRow, status: string, upstream: Record<string, any> | null): Promise<void> {
    let running = this.#billing.get(row.id)
    if (!running) {
      running = this.#billOnce(row, status, upstream).finally(() => this.#billing.delete(row.id))
      this.#billing.set(row.id, running)
    }
    return running
  }

  async #billOnce(row: BatchObjectRow, status: string, upstream: Record<string, any> | null) {
    // Read before the claim: a download that fails leaves the batch unbilled, for the next look.
    const sums = upstream === null ? noUsage() : await this.#usageOf(row, upstream)
    // The owner's plan prices it now, as a request is priced when it runs.
    const user = await this.catalog.user(row.user_id)
    const plan = user?.planId ? (this.catalog.plans.get(user.planId) ?? (await this.catalog.unheardPlan(user.planId)) ?? null) : null
    const price = priceForPlan(this.catalog.priceFor(row.model ?? ''), plan)
    const cost = batchCost(price, billedUsage(sums), sums.requests)
    const billedAt = new Date()
    const claimed = await claimBilling(row.id, {
      status,
      billedAt,
      cost: fromPico(cost),
      promptTokens: sums.promptTokens,
      completionTokens: sums.completionTokens,
      cachedTokens: sums.cachedTokens,
      reasoningTokens: sums.reasoningTokens,
      cacheWriteTokens: sums.cacheWriteTokens,
      estimated: sums.estimated,
    })
    if (claimed) {
      this.#record(row, status, billedAt, cost, sums)
      this.logger.info({ batch: row.public_id, status, cost: fromPico(cost) }, 'batch billed')
    }
    // Billed, here or (the claim found it billed) elsewhere: the caller's row says so.
    row.billed_at ??= billedAt
    // Billed here or elsewhere: nothing is held for it any more.
    this.holds.release(row.id)
  }

  /**
   * What a finished batch used, read as it streams: an OpenAI batch's output
   * file, a message batch's results (the channel's own path for them, never a
   * URL the upstream named).
   */
  async #usageOf(row: BatchObjectRow, upstream: Record<string, any>): Promise<OutputUsage> {
    if (isGeminiBatch(row)) return this.#geminiUsage(row, upstream)
    if (isMessageBatch(row)) {
      if (!upstream.results_url) return noUsage()
      const path = messageBatchPath(row.upstream_id, '/results')
      return this.#readUsage(row, path, sumResultsUsage)
    }
    if (!isId(upstream.output_file_id)) {
      // Answered requests are in the output file, failed ones in the error file, a file only when it has lines: a
      // batch all of whose requests failed (or that failed validation) names none and answered nothing. One that
      // counts answers but names no output file (yet) is not billed now: the next look or sweep bills it.
      if (Number(upstream.request_counts?.completed) > 0) throw new Error('the finished batch counts answered requests but names no output file')
      return noUsage()
    }
    return this.#readUsage(row, `/files/${encodeURIComponent(upstream.output_file_id)}/content`, sumOutputUsage)
  }

  /**
   * A finished Gemini batch's usage: its inline answers (in the answer
   * itself), or its results file read from the channel's download path
   * (never a URL the upstream named) as it streams. A batch that succeeded
   * with neither in its answer is not billed now (an answer without its
   * output: the next look bills it); one that failed, was cancelled or
   * expired with no output answered nothing, and is billed nothing.
   */
  async #geminiUsage(row: BatchObjectRow, upstream: Record<string, any>): Promise<OutputUsage> {
    const inlined = inlinedResponsesOf(upstream)
    const file = responsesFileOf(upstream)
    if (isGeminiEmbedBatch(row) && (inlined !== null || file !== null)) {
      // An embedding batch's requests' counts at its creation: what an answer without its tokenCount is billed.
      const counts = await storedInputTokens(row.id)
      if (inlined !== null) return sumGeminiEmbedInlined(inlined, Number(row.lines ?? 0), counts)
      return this.#readUsage(row, `/${file}:download?alt=media`, (body, once) => sumGeminiEmbedResultsFile(body, once, counts), '/download')
    }
    if (inlined !== null) return sumGeminiInlined(inlined, Number(row.lines ?? 0))
    if (file !== null) return this.#readUsage(row, `/${file}:download?alt=media`, sumGeminiResultsFile, '/download')
    if (geminiBatchState(upstream) === 'BATCH_STATE_SUCCEEDED') throw new Error('the succeeded batch answered without its output')
    return noUsage()
  }

  /**
   * A results or output file read and summed within the read deadline
   * (read_deadline.ts): a dripping upstream ends there. Each custom id the
   * batch was created with is billed once (its first line); repeated lines
   * and lines of ids it never had are left out, and logged.
   */
  async #readUsage(
    row: BatchObjectRow,
    path: string,
    sum: (body: AsyncIterable<Buffer>, once: BilledOnce) => Promise<OutputUsage>,
    prefix?: string
  ): Promise<OutputUsage> {
    const once = new BilledOnce(await storedCustomIds(row.id), Number(row.lines ?? 0))
    const sums = await withinReadDeadline(
      `Reading the results of batch ${row.public_id} for its bill`,
      async (signal) => sum((await sendToChannel(this.holdingChannelOf(row), { method: 'GET', path, prefix }, signal)).body, once),
      this.#reads.signal
    )
    if (once.repeated > 0 || once.unknown > 0) {
      this.logger.warn(
        { batch: row.public_id, repeated: once.repeated, unknown: once.unknown },
        "batch results repeat custom ids or name ones the batch never had: those lines are not billed"
      )
    }
    return sums
  }

  /**
   * Ends the looks at batches and the results reads under way, and any made
   * after (shutdown: a dripping upstream would hold it for the read deadline,
   * 300 s). The batches stay unbilled and held, looked at again after the
   * restart. `resumeReads` undoes it for a server that stays up (tests).
   */
  stopReads() {
    this.#reads.abort()
  }

  resumeReads() {
    if (this.#reads.signal.aborted) this.#reads = new AbortController()
  }

  /** The channel a batch lives on, of the kinds its API is on (refused when gone, disabled or of another kind now). */
  holdingChannelOf(row: BatchObjectRow): RouteCandidate {
    const kinds = isMessageBatch(row) ? MESSAGE_BATCH_CHANNEL_KINDS : isGeminiBatch(row) ? GEMINI_BATCH_CHANNEL_KINDS : BATCH_CHANNEL_KINDS
    return holdingChannel(this.catalog.channels, row.channel_id, row.served_model, kinds)
  }

  /** The upstream's word on a batch now, settled (a finished one billed): what a client's look and the sweep do. */
  async poll(row: BatchObjectRow, signal: AbortSignal): Promise<Record<string, any>> {
    const candidate = this.holdingChannelOf(row)
    if (isGeminiBatch(row)) {
      const upstream = await callChannel(candidate, { method: 'GET', path: `/${row.upstream_id}` }, signal)
      await this.settleGeminiBatch(row, upstream)
      return upstream
    }
    if (isMessageBatch(row)) {
      const upstream = await callChannel(candidate, { method: 'GET', path: messageBatchPath(row.upstream_id) }, signal)
      await this.settleMessageBatch(row, upstream)
      return upstream
    }
    const upstream = await callChannel(candidate, { method: 'GET', path: `/batches/${encodeURIComponent(row.upstream_id)}` }, signal)
    return this.settle(row, upstream)
  }

  /**
   * Asks the upstream to cancel a batch and settles its answer (billed when
   * that answer says it has ended): what `POST /v1/batches/{id}/cancel`, `POST
   * /v1/messages/batches/{id}/cancel` and the panel's Cancel button all do.
   * Returns the upstream's answer (an OpenAI batch's with the gateway's ids).
   */
  async cancel(row: BatchObjectRow, signal: AbortSignal): Promise<Record<string, any>> {
    const candidate = this.holdingChannelOf(row)
    if (isGeminiBatch(row)) {
      // Google answers a cancel with an empty object: the batch's state is asked for after it (and billed once it ended).
      await callChannel(candidate, { method: 'POST', path: `/${row.upstream_id}:cancel`, body: '{}' }, signal)
      return this.poll(row, signal)
    }
    if (isMessageBatch(row)) {
      const upstream = await callChannel(candidate, { method: 'POST', path: messageBatchPath(row.upstream_id, '/cancel') }, signal)
      await this.settleMessageBatch(row, upstream)
      return upstream
    }
    const upstream = await callChannel(candidate, { method: 'POST', path: `/batches/${encodeURIComponent(row.upstream_id)}/cancel`, body: '{}' }, signal)
    return this.settle(row, upstream)
  }

  /** The batch's one usage row (job_usage_row.ts). */
  #record(row: BatchObjectRow, status: string, billedAt: Date, cost: bigint, sums: OutputUsage) {
    // A message batch is `ended` however it ended (and `deleted` after): its last upstream object says how.
    const end =
      status === 'channel_deleted' ? status : isMessageBatch(row) ? messageBatchEnd(row.object ?? {}) : isGeminiBatch(row) ? geminiBatchEnd(status) : status
    recordJobBill(this.meter, this.catalog, row, {
      model: row.model ?? '(none)',
      endpoint: isMessageBatch(row) ? 'messages.batch' : isGeminiBatch(row) ? `gemini.${row.endpoint}` : 'batch',
      // A batch that did not complete is billed for what it answered; the row says how it ended.
      errorCode: CLEAN_ENDS.has(end) ? null : `batch_${end}`.slice(0, 64),
      usage: tokenUsageOf(sums),
      costPico: cost,
      billedAt,
      // The key's budget the batch was admitted under (its own name: batch_holds.ts batchBudgetOf), else the
      // model's (a budget set later; MODEL_BUDGET_SPEND_EFFECT keeps it only when the key has one).
      budgetModel: row.budget_model ?? row.model,
    })
  }

  /**
   * A bill whose usage row a crash lost (the claim committed, the process
   * ended within the meter's flush window): written again from the figures
   * the claim kept, at its billing time. Only while this meter has nothing
   * waiting for the database (a spilled row of its own is not lost, and
   * would be applied to the cached balance twice); the row's unique
   * request id makes a row that appeared meanwhile a no-op in the database.
   * The meter's queue is written first: a row this process repaired (or
   * billed) moments ago and still holds is then in the table, not written a
   * second time (the database would drop it, but the cached balance and
   * counters would be charged twice).
   */
  async repairBills(olderThanMs = REPAIR_AFTER_MS): Promise<number> {
    await this.meter.drain()
    if (this.meter.degraded || this.meter.spilledPending > 0) return 0
    const rows = await billsWithoutRow(olderThanMs, SWEEP_LIMIT)
    for (const row of rows) {
      const sums: OutputUsage = {
        ...noUsage(),
        promptTokens: Number(row.prompt_tokens ?? 0),
        completionTokens: Number(row.completion_tokens ?? 0),
        cachedTokens: Number(row.cached_tokens ?? 0),
        reasoningTokens: Number(row.reasoning_tokens ?? 0),
        cacheWriteTokens: Number(row.cache_write_tokens ?? 0),
        requests: 0,
        estimated: row.estimated === true,
      }
      this.#record(row, row.status, new Date(row.billed_at!), toPico(String(row.billed_cost ?? '0')), sums)
      this.logger.warn({ batch: row.public_id }, 'batch billed before a crash without its usage row: the row is written now')
    }
    return rows.length
  }

  /**
   * One sweep: the holds made what the table says, then the unbilled
   * batches polled longest ago (at most SWEEP_LIMIT, SWEEP_CONCURRENCY at
   * once) asked for upstream and billed when finished. Errors are logged,
   * never thrown: the next sweep tries again. Returns how many batches were
   * looked at.
   */
  async sweep(): Promise<number> {
    await this.holds.sync()
    const rows = await unbilledBatches(SWEEP_LIMIT)
    await eachAtMost(rows, SWEEP_CONCURRENCY, (row) => this.#sweepOne(row))
    await this.repairBills().catch((error) => this.logger.warn({ err: error }, 'batch sweep: could not check bills for lost usage rows'))
    return rows.length
  }

  /** The sweep's look at one batch; never throws. Its upstream call ends at the read deadline, as its bill's read does. */
  async #sweepOne(row: BatchObjectRow) {
    // Its channel was deleted: nothing can say how it ended. Closed with a row billing nothing, so its hold ends.
    if (row.channel_id === null) {
      await this.bill(row, 'channel_deleted', null).catch((error) =>
        this.logger.warn({ err: error, batch: row.public_id }, 'batch sweep: could not close a batch whose channel was deleted')
      )
      return
    }
    try {
      await withinReadDeadline(`Asking the upstream about batch ${row.public_id}`, (signal) => this.poll(row, signal), this.#reads.signal)
    } catch (error) {
      // Polled all the same: a batch that keeps failing goes behind the others.
      await recordSeen(row.id, row.status, row.object ?? {}).catch(() => {})
      this.logger.warn({ err: error, batch: row.public_id }, 'batch sweep: could not look at the batch upstream')
    }
  }
}

function isId(value: unknown): value is string {
  return typeof value === 'string' && value !== '' && value.length <= 255 && !value.includes('\0')
}
