import type { ServerResponse } from 'node:http'
import { GatewayError } from '#exceptions/gateway_error'
import type { RequestAccount } from '#gateway/metering/request_account'
import type { ChannelInfo, TokenUsage } from '#gateway/types'
import { toTokenUsage } from '#gateway/dialects/dialect'
import { decodeResponsesUsage } from '#gateway/dialects/openai_responses/response'
import { dispatch } from '#gateway/upstream/dispatcher'
import { jsonAnswer } from '#gateway/batches/upstream_calls'
import { responsesRequest } from '#gateway/responses_store/upstream_responses'
import { DetachedResponse } from '#gateway/responses_store/detached_response'
import { inputItemsOf } from '#gateway/responses_store/conversation'
import type { ResponseStore } from '#gateway/responses_store/response_store'
import { STREAM_HEADERS } from '#gateway/relay/client_stream'

export interface BackgroundOptions {
  /** Background responses one user may have running at once (RESPONSES_BACKGROUND_MAX, default 16) */
  perUser: number
  /** First wait between polls of an upstream's background response, ms (doubles up to 30 s) */
  pollMs: number
  /** Longest an upstream's background response is polled before it is cancelled there and billed, ms */
  maxMs: number
  /** This instance's id (background_sweeper.ts): written on the rows of the runs it runs itself */
  instanceId: string
  /** Bytes of events all runs of this instance keep at most (RESPONSES_BACKGROUND_EVENTS_MB, default 256) */
  eventsMaxBytes: number
  log: (message: string) => void
}

/** Bytes of a gateway run's events kept for streams that start late or resume (beyond: later events are not kept) */
const RUN_EVENT_BYTES = 8 * 1024 * 1024
/** A finished run stays in memory this long, so a stream that resumes right after its end replays it */
const FINISHED_KEPT_MS = 60_000
/**
 * A follower past the kept events (a run over its bytes) gets the live ones
 * as they come; one whose connection holds more than this unsent is too slow
 * for them and is ended (no event is kept for it to wait for).
 */
const FOLLOWER_UNSENT_BYTES = 256 * 1024
/** Upstream polls at once (the rest wait their turn) */
const POLLS_AT_ONCE = 8

export type BackgroundStatus = 'queued' | 'in_progress' | 'completed' | 'incomplete' | 'failed' | 'cancelled'

const TERMINAL = new Set(['completed', 'incomplete', 'failed', 'cancelled'])

export function terminal(status: unknown): boolean {
  return typeof status === 'string' && TERMINAL.has(status)
}

/** What a translated background run keeps of its request for its stored row */
export interface RunRequest {
  input: unknown
  instructions: string | null
  previousId: string | null
  model: string
  apiKeyId: number | null
}

/**
 * A background response the gateway runs itself (a translated channel):
 * generate() relays the answer as a stream into its DetachedResponse, and
 * this keeps the events (a stream that starts late or resumes replays them,
 * `starting_after`), the output items done so far and the status, writes
 * the stored row when it is accepted (queued) and when it ends, and ends the
 * streams that follow it. The account stays open while it runs: the hold
 * taken at creation is settled at the end (generate() closes it).
 */
export class BackgroundRun {
  status: BackgroundStatus = 'queued'
  readonly res: DetachedResponse
  readonly createdAt = new Date()
  /** The events written so far, by sequence number (until RUN_EVENT_BYTES or the instance's bound: `truncated`, and emptied) */
  readonly events: string[] = []
  truncated = false
  #eventBytes = 0
  /** Events written so far (kept or not): the next one's sequence number */
  #sequence = 0
  /** What followers get last once it ended ('' or its response.failed) */
  #last = ''
  /** The latest response object an event carried; the terminal one once it ended */
  #latest: Record<string, any> | null = null
  #output: unknown[] = []
  #followers = new Set<Follower>()
  #cancelled = false
  deleted = false
  ended = false
  /** The channel that answered (set once dispatch returns) */
  channelId: number | null = null
  #endedHooks: Array<() => void> = []

  constructor(
    readonly id: string,
    readonly userId: number,
    readonly request: RunRequest,
    private runs: BackgroundRuns
  ) {
    this.res = new DetachedResponse((text, data) => this.#onEvent(text, data))
    this.res.once('close', () => queueMicrotask(() => this.#end(null)))
  }

  /** The response object as GET answers it now */
  view(): Record<string, any> {
    const base = this.#latest ?? {}
    const output = terminal(base.status) && Array.isArray(base.output) && this.status !== 'cancelled' ? base.output : this.#output
    return {
      ...base,
      id: this.id,
      object: 'response',
      created_at: Math.floor(this.createdAt.getTime() / 1000),
      status: this.status,
      background: true,
      model: this.request.model,
      output,
      usage: this.status === 'cancelled' ? null : (base.usage ?? null),
      error: base.error ?? null,
      incomplete_details: base.incomplete_details ?? null,
      instructions: this.request.instructions,
      previous_response_id: this.request.previousId,
      store: true,
      metadata: base.metadata ?? {},
    }
  }

  /** Cancels the run: the relay stops as for a client gone (billed what the upstream used so far, as a cut stream is). */
  cancel() {
    // Its last event is in (completed, failed...): it ended as that, and is billed so; only its close is pending.
    if (this.ended || this.#cancelled || terminal(this.status)) return
    this.#cancelled = true
    this.status = 'cancelled'
    this.res.destroy()
  }

  /** The run failed before or without a stream (every channel failed): its error on the response. */
  fail(error: unknown) {
    if (this.ended) return
    const message = error instanceof GatewayError ? error.message : 'The response could not be completed'
    const code = error instanceof GatewayError ? error.code : 'server_error'
    this.#end({ code, message })
  }

  /**
   * A client's stream of it: the events after `after` (a sequence number; -1:
   * all), then the rest as they come, until it ends. False when the events
   * asked for were not kept.
   */
  follow(res: ServerResponse, after: number): boolean {
    if (this.truncated) return false
    res.writeHead(200, { ...STREAM_HEADERS })
    const follower: Follower = { res, next: Math.max(0, after + 1), waiting: false }
    this.#followers.add(follower)
    res.once('close', () => this.#followers.delete(follower))
    this.#pump(follower)
    return true
  }

  /**
   * A follower's events from its place on, while its connection takes them;
   * at a full buffer it waits for 'drain'. Written all at once, a client that
   * did not read held every event's write in memory: 200 streams of one 8 MB
   * run took 3 GB (heap +1.4 GB), the rest of the process waiting meanwhile.
   */
  #pump(follower: Follower) {
    if (follower.waiting) return
    const { res } = follower
    while (follower.next < this.events.length) {
      if (!res.write(this.events[follower.next++])) {
        follower.waiting = true
        res.once('drain', () => {
          follower.waiting = false
          this.#pump(follower)
        })
        return
      }
    }
    if (this.ended) {
      this.#followers.delete(follower)
      res.end(this.#last)
    }
  }

  /**
   * Its events let go (past its bytes or the instance's, or out of memory
   * after its end): no stream may start from them, and a follower still
   * behind in them is ended. Answers the bytes given back.
   */
  drop(): number {
    this.truncated = true
    for (const follower of this.#followers) {
      if (follower.next < this.events.length) {
        this.#followers.delete(follower)
        follower.res.destroy()
      }
    }
    this.events.length = 0
    const bytes = this.#eventBytes
    this.#eventBytes = 0
    return bytes
  }

  onEnded(hook: () => void) {
    if (this.ended) hook()
    else this.#endedHooks.push(hook)
  }

  #onEvent(text: string, data: Record<string, any> | null) {
    if (data?.response !== undefined && data.response !== null && typeof data.response === 'object') this.#latest = data.response
    const type = data?.type
    if (type === 'response.created' || type === 'response.in_progress') {
      if (this.status === 'queued') this.status = 'in_progress'
    } else if (type === 'response.output_item.done') {
      this.#output.push(data!.item)
    } else if (terminal(data?.response?.status)) {
      this.status = data!.response.status
    }
    this.#sequence++
    if (!this.truncated) {
      if (this.#eventBytes + text.length <= RUN_EVENT_BYTES && this.runs.keep(text.length)) {
        this.#eventBytes += text.length
        this.events.push(text)
        for (const follower of this.#followers) this.#pump(follower)
        return
      }
      this.runs.release(this.drop())
    }
    // Not kept: live to the followers that keep up.
    for (const follower of this.#followers) {
      if (follower.res.writableLength > FOLLOWER_UNSENT_BYTES) {
        this.#followers.delete(follower)
        follower.res.destroy()
      } else follower.res.write(text)
    }
  }

  /** Its end (the relay ended its stream, a cancel, a failure before any stream): the row written, followers ended. */
  #end(error: { code: string; message: string } | null) {
    if (this.ended) return
    this.ended = true
    if (!terminal(this.status)) {
      // Cut without a last event (shut down, the upstream gone): failed, with what it made so far.
      this.status = 'failed'
      this.#latest = { ...(this.#latest ?? {}), error: error ?? { code: 'server_error', message: 'The response ended before it was complete' } }
    } else if (error !== null) this.#latest = { ...(this.#latest ?? {}), error }
    if (error !== null && !this.#cancelled) this.status = 'failed'
    // A stream cut without its last event (failed before any stream, shut down): its response.failed. A cancel's just ends.
    this.#last = this.status === 'failed' && !terminal(this.#latest?.status) ? failedEvent(this.#sequence, this.view()) : ''
    // Those still behind are ended by their pump once they caught up.
    for (const follower of this.#followers) this.#pump(follower)
    this.runs.ended(this)
    for (const hook of this.#endedHooks) hook()
  }
}

interface Follower {
  res: ServerResponse
  /** The next event it gets (its index in `events`) */
  next: number
  /** Its connection's buffer is full: it goes on at 'drain' */
  waiting: boolean
}

function failedEvent(sequence: number, response: Record<string, any>): string {
  return `event: response.failed\ndata: ${JSON.stringify({ type: 'response.failed', sequence_number: sequence, response })}\n\n`
}

/** An upstream's background response the gateway bills when it ends (Responses-native channels) */
interface UpstreamRun {
  id: string
  userId: number
  account: RequestAccount
  channel: ChannelInfo
  model: string
  deadline: number
  wait: number
  nextAt: number
  polling: boolean
  /** Gives the user's place back (once billed) */
  release: () => void
}

/**
 * Background responses of this instance: the gateway's own runs (translated
 * channels) and the upstreams' (Responses-native channels), each held in
 * flight with its account until it ends, at most `perUser` per user.
 */
export class BackgroundRuns {
  #runs = new Map<string, BackgroundRun>()
  #upstream = new Map<string, UpstreamRun>()
  #perUser = new Map<number, number>()
  #timer: NodeJS.Timeout | null = null
  #polls = 0
  #finals = new Set<Promise<void>>()
  /** Bytes of events the runs in #runs keep (at most options.eventsMaxBytes) */
  #keptBytes = 0

  constructor(
    readonly options: BackgroundOptions,
    private store: ResponseStore,
    private channelOf: (id: number | null) => ChannelInfo | undefined
  ) {}

  /**
   * Takes one of the user's places (the per-user bound), or refuses with a
   * 429: each background response holds an in-flight place, its balance
   * hold, an upstream connection or poll and, run here, its events, for as
   * long as it runs, without a client connection to bound it.
   */
  admit(userId: number): () => void {
    const running = this.#perUser.get(userId) ?? 0
    if (running >= this.options.perUser) {
      throw new GatewayError(
        429,
        'too_many_background_responses',
        `At most ${this.options.perUser} background responses may run at once; wait for one to end or cancel one`,
        'rate_limit_error'
      )
    }
    this.#perUser.set(userId, running + 1)
    let released = false
    return () => {
      if (released) return
      released = true
      const left = (this.#perUser.get(userId) ?? 1) - 1
      if (left <= 0) this.#perUser.delete(userId)
      else this.#perUser.set(userId, left)
    }
  }

  /** A gateway run accepted: kept, and its row saved queued (a GET from another instance finds it). */
  start(run: BackgroundRun, release: () => void) {
    this.#runs.set(run.id, run)
    run.onEnded(release)
    this.#save(run)
  }

  get(id: string): BackgroundRun | undefined {
    return this.#runs.get(id)
  }

  /** A run ended: its row written with how it ended; kept a minute for streams that resume. */
  ended(run: BackgroundRun) {
    this.#save(run)
    setTimeout(() => {
      if (this.#runs.get(run.id) === run) this.#forget(run)
    }, FINISHED_KEPT_MS).unref()
  }

  /**
   * May a run keep `bytes` more of its events? Within the instance's bound,
   * runs that ended are let go first, oldest first (a GET reads their row);
   * past it with none left, no: the run stops keeping events (its streams
   * cannot start late or resume, as one past RUN_EVENT_BYTES). Without it,
   * finished runs kept 8 MB each for a minute, however many a client ended.
   */
  keep(bytes: number): boolean {
    const max = this.options.eventsMaxBytes
    if (this.#keptBytes + bytes > max) {
      for (const run of this.#runs.values()) {
        if (this.#keptBytes + bytes <= max) break
        if (run.ended) this.#forget(run)
      }
      if (this.#keptBytes + bytes > max) return false
    }
    this.#keptBytes += bytes
    return true
  }

  release(bytes: number) {
    this.#keptBytes -= bytes
  }

  /** Bytes of events kept now (tests, metrics) */
  get keptBytes(): number {
    return this.#keptBytes
  }

  #forget(run: BackgroundRun) {
    this.#runs.delete(run.id)
    this.#keptBytes -= run.drop()
  }

  #save(run: BackgroundRun) {
    if (run.deleted) return
    const view = run.view()
    this.store.save({
      id: run.id,
      kind: 'gateway',
      userId: run.userId,
      apiKeyId: run.request.apiKeyId,
      channelId: run.channelId,
      model: run.request.model,
      previousResponseId: run.request.previousId,
      inputItems: inputItemsOf(run.request.input),
      instructions: run.request.instructions,
      outputItems: view.output,
      usage: view.usage,
      status: run.status,
      background: true,
      instanceId: this.options.instanceId,
      error: view.error,
      createdAt: run.createdAt,
    })
  }

  /**
   * An upstream's background response, answered queued or in progress: its
   * account stays open (the hold) and it is polled until it ends, then billed
   * the usage the upstream reports, once (a client's GET or cancel that sees
   * it ended bills it first). Shutdown (the account aborted at the grace's
   * end): asked once more, cancelled upstream when still running, billed.
   */
  adopt(id: string, userId: number, account: RequestAccount, channel: ChannelInfo, model: string, release: () => void) {
    const now = Date.now()
    const wait = this.options.pollMs
    const run: UpstreamRun = { id, userId, account, channel, model, deadline: now + this.options.maxMs, wait, nextAt: now + wait, polling: false, release }
    this.#upstream.set(id, run)
    account.abort.signal.addEventListener('abort', () => this.#track(this.#finish(run)), { once: true })
    this.#schedule()
  }

  /** A relayed answer about an upstream response (a client's GET, a cancel): billed now if it ended. */
  seen(id: string, response: Record<string, any>) {
    const run = this.#upstream.get(id)
    if (run !== undefined && terminal(response.status)) this.#bill(run, response)
  }

  /**
   * An upstream's background response its owner deletes while it is polled
   * here: asked once more, cancelled upstream when still running, billed
   * what the upstream reports (as a cancel is), before the delete takes it
   * away (polled after it, it was a 404, billed its prompt's estimate).
   */
  async endBeforeDelete(id: string, userId: number) {
    const run = this.#upstream.get(id)
    if (run === undefined || run.userId !== userId) return
    const work = this.#finish(run)
    this.#track(work)
    await work
  }

  #schedule() {
    if (this.#timer !== null || this.#upstream.size === 0) return
    let soonest = Infinity
    for (const run of this.#upstream.values()) soonest = Math.min(soonest, run.nextAt)
    this.#timer = setTimeout(() => {
      this.#timer = null
      this.#tick()
    }, Math.max(0, soonest - Date.now()))
    this.#timer.unref()
  }

  #tick() {
    const now = Date.now()
    for (const run of this.#upstream.values()) {
      if (this.#polls >= POLLS_AT_ONCE) break
      if (run.polling || run.nextAt > now) continue
      this.#polls++
      run.polling = true
      void this.#poll(run).finally(() => {
        this.#polls--
        run.polling = false
        run.wait = Math.min(run.wait * 2, 30_000)
        run.nextAt = Date.now() + run.wait
        this.#schedule()
      })
    }
    this.#schedule()
  }

  async #poll(run: UpstreamRun) {
    if (run.account.abort.signal.aborted) return
    if (Date.now() > run.deadline) {
      this.options.log(`background responses: ${run.id} still running after ${Math.round(this.options.maxMs / 60_000)} min; cancelled upstream`)
      return this.#track(this.#finish(run))
    }
    try {
      const response = await this.#call(run, 'GET', '')
      if (terminal(response.status)) this.#bill(run, response)
    } catch (error) {
      // Gone upstream (deleted there): nothing more can be learned; billed what its creation held for the prompt.
      if (error instanceof GatewayError && error.status === 404) this.#bill(run, null)
    }
  }

  /** Asked once more, cancelled upstream if still running, billed what it reports (else its prompt, as held). */
  async #finish(run: UpstreamRun) {
    if (!this.#upstream.has(run.id)) return
    let response: Record<string, any> | null = null
    try {
      response = await this.#call(run, 'GET', '', 2000)
      if (!terminal(response.status)) response = await this.#call(run, 'POST', '/cancel', 2000)
    } catch {}
    this.#bill(run, response !== null && (terminal(response.status) || response.usage) ? response : null)
  }

  #track(work: Promise<void>) {
    this.#finals.add(work)
    void work.finally(() => this.#finals.delete(work))
  }

  #call(run: UpstreamRun, method: 'GET' | 'POST', suffix: string, timeoutMs = 30_000) {
    const candidate = { channel: this.channelOf(run.channel.id) ?? run.channel, upstreamModel: run.model }
    const path = `/responses/${encodeURIComponent(run.id)}${suffix}`
    return dispatch([candidate], () => responsesRequest(candidate.channel, method, path), AbortSignal.timeout(timeoutMs), undefined, jsonAnswer).then((r) => r.answer)
  }

  /** Once: the account closed with the usage the upstream reported (none: the prompt its creation held, estimated). */
  #bill(run: UpstreamRun, response: Record<string, any> | null) {
    if (this.#upstream.get(run.id) !== run) return
    this.#upstream.delete(run.id)
    run.release()
    const usage = response === null ? null : decodeResponsesUsage(response.usage, response.output)
    const tokens: TokenUsage = usage !== null ? toTokenUsage(usage) : heldPrompt(run.account, response === null)
    const status = response?.status
    if (status === 'completed' || status === 'incomplete') run.account.close(200, null, tokens)
    else if (status === 'cancelled') run.account.close(499, 'cancelled', tokens)
    else if (status === 'failed') run.account.close(200, 'background_failed', tokens)
    else run.account.close(200, 'background_unfinished', tokens)
  }

  /** Waits (bounded) for the last polls and cancels a shutdown started, before the meter's last write. */
  async settled(timeoutMs = 5000) {
    if (this.#finals.size === 0) return
    await Promise.race([Promise.all([...this.#finals]), new Promise((resolve) => setTimeout(resolve, timeoutMs).unref())])
  }

  stop() {
    if (this.#timer) clearTimeout(this.#timer)
    this.#timer = null
  }
}

/** Nothing reported: the prompt the request held (estimated), unless the upstream said it used nothing. */
function heldPrompt(account: RequestAccount, unknown: boolean): TokenUsage {
  const prompt = unknown ? account.promptTokenHold : 0
  return { promptTokens: prompt, completionTokens: 0, totalTokens: prompt, cachedTokens: 0, reasoningTokens: 0, estimated: true }
}
