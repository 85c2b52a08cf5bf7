import { GatewayError } from '#exceptions/gateway_error'
import { describeNotFound } from '#gateway/providers/base_url'
import { CredentialsRefused, type AttemptClock, type UpstreamRequest } from '#gateway/providers/provider_adapter'
import type { RouteCandidate } from '#gateway/routing/channel_router'
import { poolFor, waitingForConnection } from '#gateway/upstream/upstream_pool'
import type { ChannelHealth } from '#gateway/routing/channel_health'
import type { ChannelTimeouts } from '#gateway/types'
import { DEFAULT_TIMEOUTS } from '#gateway/upstream/timeouts'
import { UpstreamBody, type ChunkSink } from '#gateway/upstream/upstream_body'
import { answerLimits, UpstreamAnswersOverBudget, UpstreamAnswerTooLarge } from '#gateway/upstream/answer_limits'
import { retryAfterHeaders } from '#gateway/http/retry_after'
import { timedOut as bodyTimedOut } from '#gateway/http/raw_body'
import { concealChannel } from '#gateway/upstream/channel_secrets'
import { ACCOUNT_PROBLEM_REASON, accountProblem, requestOverCredit } from '#gateway/upstream/account_problems'

export { UpstreamBody }

/**
 * What the dispatcher returns: the channel that answered and its response
 * (status < 400; the body unread unless an AnswerCheck read it).
 */
export interface DispatchResult<A = undefined> {
  candidate: RouteCandidate
  /** Status and headers */
  response: Pick<UpstreamBody, 'statusCode' | 'headers'>
  /** The body, under the channel's idle and total timeouts and the client's disconnect (the same object as response) */
  body: UpstreamBody
  /** What the AnswerCheck made of the 2xx answer (undefined without one) */
  answer: A
}

/**
 * Reads and checks a 2xx answer inside its attempt, before anything reaches
 * the client: an answer that is no answer (readBody's cut or oversized body,
 * parseAnswer's not-JSON or error body, no content, a shape the dialect
 * cannot take; a stream that fails before its first event: stream_opening.ts)
 * is thrown as a GatewayError and fails the attempt as a 5xx would: the
 * channel's health counts it, the next candidate is tried. What it returns
 * (a whole answer parsed once) is handed on in DispatchResult.answer; a
 * stream's bytes stay in the body for the relay.
 */
export type AnswerCheck<A> = (body: UpstreamBody, candidate: RouteCandidate) => Promise<A>

/** Ends an upstream request whose 2xx answer an AnswerCheck refused (the next candidate is tried). */
class AnswerRefused extends Error {
  constructor() {
    super('the gateway refused the answer and tried another channel')
  }
}

/** Thrown when the client went away while waiting for the upstream. */
export class ClientGoneError extends Error {
  constructor() {
    super('client closed the connection')
  }
}

/**
 * Thrown by a request's builder when no further attempt can be made: its
 * body was a stream the attempt before took bytes of (streamed_upload.ts).
 * The dispatch ends with that attempt's failure.
 */
export class NoFurtherAttempt extends Error {
  constructor() {
    super('the request body was streamed to the attempt before: no other channel can be tried')
  }
}

/** One try against one channel, kept for the request's record. */
export interface AttemptRecord {
  attempt: number
  channelId: number
  status: number | null
  /**
   * invalid_answer: a 2xx whose body is no answer (not JSON, an error body, no content, cut off);
   * account_error: the channel's upstream account cannot serve (out of credit, billing, deactivated: account_problems.ts)
   */
  outcome:
    | 'ok'
    | 'http_error'
    | 'invalid_answer'
    | 'rate_limited'
    | 'auth_error'
    | 'account_error'
    | 'network_error'
    | 'timeout'
    | 'client_error'
    | 'overloaded'
  error: string | null
  latencyMs: number
}

/** What the dispatcher needs from the gateway (one instance, built at boot). */
export interface DispatchPolicy {
  health: ChannelHealth
  /** Shows an answer to admins as the channel's last error without judging its health (a 404: maybe a wrong base URL) */
  noteChannelError?: (channelId: number, message: string) => void
  /** At most this many channels are tried per request */
  maxAttempts: number
  /** Upper bound of the pause between two attempts (ms); the n-th waits min(bound, 25 x 2^n) */
  maxBackoffMs: number
  /**
   * Evidence the channel's key is bad (a 401, or 403s across models) or its upstream account cannot
   * serve (`cause` 'account': out of credit, billing, deactivated): take the channel out of rotation
   */
  disableChannel: (channelId: number, reason: string, cause?: 'key' | 'account') => void
  /** The operator's extra phrases (lowercase) that mark an upstream 4xx as an account problem */
  accountProblemKeywords?: () => readonly string[]
}

export interface DispatchHooks {
  /** Before each attempt (the request's account records the channel) */
  onAttempt?: (candidate: RouteCandidate) => void
  /** After each attempt, success or not */
  onAttemptResult?: (record: AttemptRecord) => void
}

let policy: DispatchPolicy | null = null

/** Installs the failover policy (at boot). Without one, a single attempt is made. */
export function setDispatchPolicy(next: DispatchPolicy) {
  policy = next
}

/**
 * Sends a request to the route's candidates and returns the first usable
 * response. Owns everything about *getting* an answer; relaying it belongs to
 * the caller's dialect.
 *
 * Before any byte reaches the client, a network error, a timeout, a 5xx or a
 * 429 moves on to the next candidate (bounded attempts, short backoff); so
 * does a 2xx the caller's AnswerCheck finds no answer (counted as a 5xx).
 * Network errors, timeouts and 5xx feed the channel's circuit breaker; a 429
 * cools down only that (channel, upstream model), for its Retry-After:
 * providers rate-limit per model. An upstream 401 disables the channel (bad
 * upstream key); a 403 cools that (channel, model) down, and disables the
 * channel only when it answers 403 for a second model too (see
 * ChannelHealth.forbidden). A 4xx that says the channel's upstream account
 * cannot serve (out of credit, billing, deactivated: account_problems.ts)
 * disables the channel and moves on, whatever its status (an OpenAI 429
 * `insufficient_quota` is no rate limit); with no candidate left the client
 * gets 503 no_available_channel in the gateway's words, never the provider's
 * (the operator's billing is not the client's business). Other 4xx are the
 * client's problem: returned as GatewayError with the upstream's status and
 * message.
 *
 * When nothing could be tried (every candidate cooling down), with
 * Retry-After = the soonest a candidate may be tried again: 429
 * upstream_rate_limited when every candidate cools down after a 429 of its
 * own (the provider rate-limits the model: what a client of LiteLLM or
 * OpenRouter expects), else 503 no_available_channel (an open circuit, a 403
 * cool-down, or a mix of reasons: the gateway's channels, not the provider's
 * limit). When everything tried failed: the last failure (429 with
 * Retry-After, else 502 provider_error).
 */
export async function dispatch<A = undefined>(
  candidates: RouteCandidate[],
  build: (candidate: RouteCandidate) => UpstreamRequest,
  clientSignal: AbortSignal,
  hooksOrOnAttempt?: DispatchHooks | ((candidate: RouteCandidate) => void),
  check?: AnswerCheck<A>
): Promise<DispatchResult<A>> {
  const hooks: DispatchHooks =
    typeof hooksOrOnAttempt === 'function' ? { onAttempt: hooksOrOnAttempt } : (hooksOrOnAttempt ?? {})
  const health = policy?.health
  const maxAttempts = policy?.maxAttempts ?? 1
  let attempts = 0
  let lastFailure: GatewayError | null = null
  /** Soonest moment a skipped (cooling) candidate may be tried again */
  let soonest = Infinity
  /** Candidates skipped (cooling), and how many of them only after a 429 of their own */
  let skipped = 0
  let skippedRateLimited = 0
  /** Fallback models (operator-set) get their own attempt budget: the group is the candidate's public model */
  let group: string | undefined
  let groupAttempts = 0

  for (const candidate of candidates) {
    if (candidate.publicModel !== group) {
      group = candidate.publicModel
      groupAttempts = 0
    }
    if (groupAttempts >= maxAttempts) {
      if (group === undefined && candidates[candidates.length - 1].publicModel === undefined) break
      continue
    }
    const channelId = candidate.channel.id
    if (health && (!health.modelAvailable(channelId, candidate.upstreamModel) || !health.tryAcquire(channelId))) {
      soonest = Math.min(soonest, health.retryAt(channelId, candidate.upstreamModel) ?? Date.now() + 1000)
      skipped++
      if (health.onlyRateLimited(channelId, candidate.upstreamModel)) skippedRateLimited++
      continue
    }
    if (attempts > 0 && policy) await pause(Math.min(policy.maxBackoffMs, 25 * 2 ** attempts), clientSignal)
    if (clientSignal.aborted) {
      health?.release(channelId)
      throw new ClientGoneError()
    }
    attempts++
    groupAttempts++
    hooks.onAttempt?.(candidate)
    const guard = new AttemptGuard(clientSignal, candidate.channel.timeouts ?? DEFAULT_TIMEOUTS)
    const started = performance.now()
    const record = (outcome: AttemptRecord['outcome'], status: number | null, error: string | null) =>
      hooks.onAttemptResult?.({
        attempt: attempts,
        channelId,
        status,
        outcome,
        error,
        latencyMs: Math.round(performance.now() - started),
      })

    let response: UpstreamBody
    let request: UpstreamRequest
    try {
      request = buildRequest(build, candidate)
      // Credentials fetched first (Vertex's access token when none is cached): the attempt's own time.
      if (request.prepare) await guard.before(request.prepare())
      response = await send(request, guard, candidate.channel.timeouts)
    } catch (error) {
      if (error instanceof RequestRefused) {
        guard.dispose()
        health?.release(channelId)
        throw error.refusal
      }
      if (error instanceof NoFurtherAttempt) {
        guard.dispose()
        health?.release(channelId)
        if (clientSignal.aborted) throw new ClientGoneError()
        throw lastFailure ?? GatewayError.providerError('Upstream request failed')
      }
      guard.dispose()
      if (clientSignal.aborted) {
        health?.release(channelId)
        record('client_error', null, 'client closed the connection')
        throw new ClientGoneError()
      }
      if (guard.expiredOnClient) {
        // The total limit ran out while the gateway still waited on the client for its streamed body: the
        // client's slowness, not the channel's failure (three slow uploads opened its circuit for everyone).
        health?.release(channelId)
        record('client_error', null, `${guard.describeTimeout()} while the client was still sending the body`)
        throw bodyTimedOut(guard.totalMs)
      }
      if (error instanceof CredentialsRefused) {
        // As an upstream 401: the channel's key is wrong, out of rotation; the next candidate is tried.
        const message = concealChannel(GatewayError.providerError(error.message), candidate.channel).message
        record('auth_error', 401, message)
        health?.release(channelId)
        policy?.disableChannel(channelId, `the channel's credentials were refused: ${message}`.slice(0, 500))
        lastFailure = GatewayError.providerError(`Upstream rejected the channel's credentials (HTTP 401)`)
        continue
      }
      const timedOut = guard.timedOut !== null || isTimeout(error)
      const message = guard.timedOut ? guard.describeTimeout() : timedOut ? `timeout (${describe(error)})` : describe(error)
      record(timedOut ? 'timeout' : 'network_error', null, message)
      health?.failure(channelId, message)
      lastFailure = concealChannel(GatewayError.providerError(`Upstream request failed: ${message}`), candidate.channel)
      continue
    }

    const status = response.statusCode
    if (status >= 200 && status < 300) {
      guard.headersArrived()
      let answer = undefined as A
      if (check) {
        try {
          answer = await check(response, candidate)
        } catch (error) {
          guard.dispose()
          // A refused stream opening leaves its body open (and, its timers gone, unwatched): ended here.
          response.abort(new AnswerRefused())
          if (error instanceof ClientGoneError || clientSignal.aborted) {
            health?.release(channelId)
            record('client_error', status, 'client closed the connection')
            throw error instanceof ClientGoneError ? error : new ClientGoneError()
          }
          if (!(error instanceof GatewayError) || isOverBudget(error)) {
            health?.release(channelId)
            if (isOverBudget(error)) record('overloaded', status, (error as GatewayError).message)
            throw error
          }
          // The upstream's failure as much as a 502 of its own: counted so, and the next candidate tried.
          // Its words (an error body sent with 2xx) may repeat the channel's key or address.
          concealChannel(error, candidate.channel)
          const timedOut = guard.timedOut !== null
          const message = timedOut ? `${guard.describeTimeout()} while the answer was read` : error.message
          record(timedOut ? 'timeout' : 'invalid_answer', status, message)
          health?.failure(channelId, `HTTP ${status}: ${message}`)
          lastFailure = error
          continue
        }
      }
      health?.success(channelId, candidate.upstreamModel)
      record('ok', status, null)
      // 201, 206, 299...: no provider answers a generation so; relayed, the client would get a
      // status its SDK does not expect (and a 205's body would not reach it at all).
      if (status !== 200) return { candidate, response: { statusCode: 200, headers: response.headers }, body: response, answer }
      return { candidate, response, body: response, answer }
    }
    if (status < 400) {
      // A redirect (3xx; undici follows none): never followed with the channel's key to wherever
      // it points, and its body is no answer. The channel's base URL is wrong (http for https, a
      // moved endpoint): the attempt and the channel's last error say where it pointed, not the client.
      response.abort(new Error('redirect not followed'))
      guard.dispose()
      const location = headerValue(response.headers.location)
      const detail = `upstream answered HTTP ${status} (a redirect${location ? ` to ${location.slice(0, 300)}` : ''}); redirects are not followed: check the channel's base URL`
      record('http_error', status, detail)
      health?.failure(channelId, detail)
      policy?.noteChannelError?.(channelId, detail)
      lastFailure = GatewayError.providerError(`Upstream answered HTTP ${status} (a redirect, not followed)`)
      continue
    }

    const bytes = await response.collectPrefix(answerLimits.errorBytes).catch(() => Buffer.alloc(0))
    guard.dispose()
    // The upstream's message goes to the client (a 4xx as it said it): never with the channel's key or address.
    const failure = concealChannel(upstreamFailure(status, bytes), candidate.channel)
    const problem = status < 500 ? accountProblem(status, bytes, policy?.accountProblemKeywords?.()) : null
    if (problem !== null && requestOverCredit(status, bytes)) {
      // The account is short for this request only (OpenRouter's "can only afford N tokens"): next channel, this one kept.
      record('account_error', status, failure.message)
      health?.release(channelId)
      policy?.noteChannelError?.(channelId, `upstream account short of credit for a request: HTTP ${status}: ${failure.message}`.slice(0, 500))
      lastFailure = channelsUnusable(candidate.upstreamModel)
      continue
    }
    if (problem !== null) {
      record('account_error', status, failure.message)
      health?.release(channelId)
      policy?.disableChannel(channelId, `${ACCOUNT_PROBLEM_REASON} (${problem}): HTTP ${status}: ${failure.message}`.slice(0, 500), 'account')
      lastFailure = channelsUnusable(candidate.upstreamModel)
      continue
    }
    if (status === 401 || status === 403) {
      record('auth_error', status, failure.message)
      health?.release(channelId)
      const reason = `upstream answered HTTP ${status}: ${failure.message}`.slice(0, 500)
      if (status === 401) {
        policy?.disableChannel(channelId, reason)
      } else if (health?.forbidden(channelId, candidate.upstreamModel, reason) === 'disable') {
        policy?.disableChannel(channelId, `upstream answered HTTP 403 for several models; last: ${reason}`.slice(0, 500))
      }
      lastFailure = GatewayError.providerError(
        status === 401
          ? `Upstream rejected the channel's credentials (HTTP 401)`
          : `Upstream refused the request for this model (HTTP 403)`
      )
      continue
    }
    if (status === 429) {
      const retryAfterMs = parseRetryAfter(response.headers['retry-after'], response.headers['retry-after-ms'])
      record('rate_limited', status, failure.message)
      health?.release(channelId)
      health?.rateLimited(channelId, candidate.upstreamModel, `HTTP 429: ${failure.message}`.slice(0, 500), retryAfterMs)
      lastFailure = rateLimitedFor(candidate.upstreamModel, retryAfterMs)
      continue
    }
    if (status >= 500) {
      record('http_error', status, failure.message)
      health?.failure(channelId, `HTTP ${status}: ${failure.message}`)
      lastFailure = failure
      continue
    }
    if (status === 404) {
      // Also what a wrong base URL answers, to every call: the attempt and the channel's last error
      // say which URL was called and the form expected. (The request sent: a streamed body cannot be
      // built twice, a rebuild threw NoFurtherAttempt and the client got a 500.)
      const detail = describeNotFound(candidate.channel, request, failure.message)
      policy?.noteChannelError?.(channelId, detail)
      health?.success(channelId)
      record('client_error', status, detail)
      throw failure
    }
    // Another 4xx: the request itself is wrong; another channel would say the same.
    health?.success(channelId)
    record('client_error', status, failure.message)
    throw failure
  }

  if (attempts === 0) {
    const model = candidates[0]?.upstreamModel ?? 'model'
    const wait = retryAfterHeaders(Number.isFinite(soonest) ? soonest - Date.now() : 1000)
    const waitSeconds = Number(wait['retry-after'])
    let error: GatewayError
    if (skipped > 0 && skippedRateLimited === skipped) {
      error = GatewayError.upstreamRateLimited(model, waitSeconds)
    } else {
      error = GatewayError.noAvailableChannel(model)
      error.message = `No available upstream channel for '${model}': every channel is cooling down; retry in ${waitSeconds} s`
    }
    error.headers = wait
    throw error
  }
  throw lastFailure ?? GatewayError.providerError('Upstream request failed')
}

/** A request the adapter would not build for the client's reasons (a 4xx GatewayError) */
class RequestRefused extends Error {
  constructor(public refusal: GatewayError) {
    super(refusal.message)
  }
}

/**
 * The candidate's request. One this upstream cannot take (Bedrock's Converse:
 * an image by URL) is the client's 4xx, answered as such: not the channel's
 * failure, no other channel tried.
 */
function buildRequest(build: (candidate: RouteCandidate) => UpstreamRequest, candidate: RouteCandidate): UpstreamRequest {
  try {
    return build(candidate)
  } catch (error) {
    if (error instanceof GatewayError && error.status < 500) throw new RequestRefused(error)
    throw error
  }
}

function send(request: UpstreamRequest, guard: AttemptGuard, timeouts?: ChannelTimeouts): Promise<UpstreamBody> {
  const pool = poolFor(request.origin, timeouts?.connect)
  // The first-byte clock is already running: time spent queued counts against it.
  guard.queuedForConnection = waitingForConnection(pool)
  request.bodyProgress?.(guard)
  return UpstreamBody.send(
    pool,
    {
      method: request.method ?? 'POST',
      path: request.path,
      headers: request.headers,
      body: request.method === 'GET' || request.method === 'DELETE' ? undefined : request.body,
      // The guard's timers own the first-byte, idle and total limits (on time, and
      // visible in the attempt's record); undici's would be a second pair of timers
      // per request, set and cleared for nothing.
      headersTimeout: 0,
      bodyTimeout: 0,
    },
    guard,
    request.answer
  )
}

/**
 * One attempt's abort switch: the client's disconnect, and the channel's
 * first-byte, idle and total timeouts, on plain timers. (undici's own
 * header/body timeouts run on a coarse clock, up to ~1 s late;
 * AbortSignal.any/timeout cost a lot per request.) It aborts the exchange
 * it watches directly: no AbortController of its own.
 */
class AttemptGuard implements AttemptClock {
  /** Which limit expired, if one did */
  timedOut: string | null = null
  /** A streamed body's: whether the gateway waits on the client for more of it (AttemptClock) */
  clientSending: (() => boolean) | null = null
  /** The total limit expired while the client was still sending the body */
  expiredOnClient = false
  /** The request had to wait for a free connection (the origin's pool was at its cap) */
  queuedForConnection = false
  #exchange: UpstreamBody | null = null
  #phase: NodeJS.Timeout
  #total: NodeJS.Timeout
  #disposed = false

  constructor(
    private client: AbortSignal,
    private timeouts: ChannelTimeouts
  ) {
    client.addEventListener('abort', this.#onClientAbort)
    this.#phase = setTimeout(this.#expireFirstByte, timeouts.firstByte).unref()
    this.#total = setTimeout(this.#expireTotal, timeouts.total).unref()
  }

  /** The exchange this attempt's limits end (called as it is sent). */
  watch(exchange: UpstreamBody) {
    this.#exchange = exchange
  }

  /** The response head arrived: from now on, silence longer than the idle limit aborts. */
  headersArrived() {
    // A short answer can end (and dispose of the timers) before the head's await returns.
    if (this.#disposed) return
    clearTimeout(this.#phase)
    this.#phase = setTimeout(this.#expireIdle, this.timeouts.idle).unref()
  }

  /** A body chunk arrived. */
  touch() {
    this.#phase.refresh()
  }

  dispose() {
    if (this.#disposed) return
    this.#disposed = true
    clearTimeout(this.#phase)
    clearTimeout(this.#total)
    this.client.removeEventListener('abort', this.#onClientAbort)
  }

  /** What the attempt's record and the client's error say about an expired limit. */
  describeTimeout(): string {
    const base = `${this.timedOut} timeout`
    if (this.timedOut !== 'first byte' || !this.queuedForConnection) return base
    // Outside the parentheses: the client's copy of the message keeps it (client_message.ts).
    return `${base} while waiting for a free upstream connection (every connection allowed by UPSTREAM_MAX_CONNECTIONS was busy)`
  }

  /**
   * Waits for what the request needs before it is sent (prepare(): credentials), under the
   * attempt's limits: the client's disconnect and an expired limit end the wait as they end an exchange.
   */
  before(work: Promise<void>): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (this.timedOut !== null) return reject(new Error(`upstream ${this.timedOut} timeout`))
      if (this.client.aborted) return reject(new ClientGoneError())
      this.#waiting = reject
      work.then(resolve, reject).finally(() => (this.#waiting = null))
    })
  }

  /** Ends the wait of before() */
  #waiting: ((error: Error) => void) | null = null

  #onClientAbort = () => {
    this.#waiting?.(new ClientGoneError())
    this.#exchange?.abort(new ClientGoneError())
  }
  #expireFirstByte = () => {
    // The client is still sending its body: the upstream has nothing to answer yet (BODY_TIMEOUT_MS bounds the client).
    if (this.clientSending?.()) return void this.#phase.refresh()
    this.#expire('first byte')
  }
  #expireIdle = () => {
    // Paused because the client is not reading (back-pressure): the upstream is silent because the
    // gateway stopped reading it. Not its idle time; the total limit still bounds a client that never reads.
    if (this.#exchange?.waitingOnReader) {
      this.#phase.refresh()
      return
    }
    this.#expire('idle')
  }
  #expireTotal = () => {
    this.expiredOnClient = this.clientSending?.() ?? false
    this.#expire('total')
  }

  get totalMs(): number {
    return this.timeouts.total
  }

  #expire(which: string) {
    this.timedOut = which
    this.#waiting?.(new Error(`upstream ${which} timeout`))
    this.#exchange?.abort(new Error(`upstream ${which} timeout`))
  }
}

function isTimeout(error: unknown): boolean {
  const code = (error as any)?.code ?? (error as any)?.name
  return (
    code === 'UND_ERR_HEADERS_TIMEOUT' ||
    code === 'UND_ERR_BODY_TIMEOUT' ||
    code === 'UND_ERR_CONNECT_TIMEOUT' ||
    code === 'TimeoutError'
  )
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value
}

/**
 * An upstream's wait -> ms (capped at 10 minutes): its `retry-after-ms` when
 * it sends one (Azure OpenAI's does; exact), else Retry-After in seconds or as
 * an HTTP date.
 */
export function parseRetryAfter(value: string | string[] | undefined, exactMs?: string | string[]): number | undefined {
  if (typeof exactMs === 'string' && exactMs) {
    const ms = Number(exactMs)
    if (Number.isFinite(ms) && ms > 0) return Math.min(ms, 600_000)
  }
  if (typeof value !== 'string' || !value) return undefined
  const seconds = Number(value)
  const ms = Number.isFinite(seconds) ? seconds * 1000 : Date.parse(value) - Date.now()
  if (!Number.isFinite(ms) || ms < 0) return undefined
  return Math.min(ms, 600_000)
}

function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms)
    function done() {
      clearTimeout(timer)
      signal.removeEventListener('abort', done)
      resolve()
    }
    signal.addEventListener('abort', done, { once: true })
  })
}

/**
 * Hands each chunk of an upstream body to `sink` (a promise: wait before the
 * next; false: stop, ending the upstream request). An upstream answer is read
 * by callback (`UpstreamBody.forEach`: nothing held between chunks); any
 * other body (a test's, a replay's) by iteration.
 */
export async function forEachChunk(upstream: AsyncIterable<Buffer>, sink: ChunkSink): Promise<void> {
  if (upstream instanceof UpstreamBody) return upstream.forEach(sink)
  for await (const chunk of upstream) {
    const next = sink(chunk)
    if (next === false) break
    if (next && (await next) === false) break
  }
}

/**
 * A whole (non-streamed) answer's body, up to answerLimits.bodyBytes. Past
 * it, or when the upstream fails while sending it (the connection cut
 * mid-answer, a timeout), a provider_error (read in an AnswerCheck: the
 * attempt fails over); the client going away stays what it is.
 */
export async function readBody(upstream: AsyncIterable<Buffer>): Promise<Buffer> {
  try {
    if (upstream instanceof UpstreamBody) return await upstream.collect()
    const chunks: Buffer[] = []
    let bytes = 0
    for await (const chunk of upstream) {
      bytes += chunk.length
      if (bytes > answerLimits.bodyBytes) throw new UpstreamAnswerTooLarge("The upstream's answer", answerLimits.bodyBytes)
      chunks.push(chunk)
    }
    return chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)
  } catch (error) {
    if (error instanceof UpstreamAnswerTooLarge) throw GatewayError.providerError(error.message)
    if (error instanceof UpstreamAnswersOverBudget) throw answersOverBudget(error)
    if (error instanceof ClientGoneError || error instanceof GatewayError) throw error
    throw GatewayError.providerError(`Upstream answer failed before its end: ${describe(error)}`)
  }
}

/**
 * The gateway's own memory bound on answers read at once (answer_limits.ts):
 * a 503 `overloaded` like the request bodies' budget, never the channel's
 * failure (dispatch() neither counts it nor tries another channel, which
 * would read one more such answer).
 */
export function answersOverBudget(error: UpstreamAnswersOverBudget): GatewayError {
  const refusal = new GatewayError(503, 'overloaded', error.message, 'service_unavailable')
  refusal.headers = { 'retry-after': '1' }
  return refusal
}

function isOverBudget(error: unknown): boolean {
  return error instanceof GatewayError && error.status === 503 && error.code === 'overloaded'
}

/** How much of an upstream's error message is kept */
const MAX_MESSAGE = 1000

/**
 * Upstream 4xx reach the client with their status and message; 5xx become 502
 * provider_error, but 529 (overloaded) 503 upstream_overloaded (529 to an
 * Anthropic-format client).
 */
export function upstreamFailure(status: number, bytes: Buffer): GatewayError {
  let message = ''
  let code: string | null = null
  try {
    const parsed = JSON.parse(bytes.toString('utf8'))
    const detail = Array.isArray(parsed) ? parsed[0] : parsed
    // AWS's services answer {"message"} or {"Message"} (Bedrock's auth errors)
    message = detail?.error?.message ?? detail?.message ?? detail?.Message ?? ''
    if (typeof message !== 'string') message = JSON.stringify(message) ?? ''
    // The client's message, the attempt's record and the channel's last error: not a 300 KB text each.
    if (message.length > MAX_MESSAGE) message = `${message.slice(0, MAX_MESSAGE)}...`
    if (typeof detail?.error?.code === 'string') code = detail.error.code
    else if (typeof detail?.error?.type === 'string') code = detail.error.type
  } catch {
    message = bytes.toString('utf8').slice(0, 500)
  }
  if (status === 529) {
    return GatewayError.upstreamOverloaded(`Upstream provider is overloaded (HTTP 529)${message ? `: ${message}` : ''}`)
  }
  if (status >= 500) {
    return GatewayError.providerError(`Upstream provider returned HTTP ${status}${message ? `: ${message}` : ''}`)
  }
  const error = new GatewayError(status, code ?? upstreamCode(status), message || `Upstream returned HTTP ${status}`)
  error.upstreamBody = bytes
  if (status === 429) error.type = 'rate_limit_error'
  return error
}

/**
 * The client's error for an upstream 429: the gateway's words and the wait,
 * not the provider's message, which describes the operator's account
 * (OpenAI: "Rate limit reached for gpt-4o in organization org-… on tokens
 * per min (TPM): Limit 30000, Used 29500"; "You exceeded your current quota,
 * please check your plan and billing details"; Anthropic: "…the rate limit
 * for your organization (…) of 50,000 input tokens per minute"). That stays
 * in the attempt's record and the cool-down's reason, for the operator; the
 * request log keeps the gateway's error, not the provider's body.
 */
export function rateLimitedFor(model: string, retryAfterMs: number | undefined): GatewayError {
  const wait = retryAfterMs === undefined ? null : retryAfterHeaders(retryAfterMs)
  const error = new GatewayError(
    429,
    'upstream_rate_limited',
    `The upstream provider is rate limiting '${model}'${wait ? `; retry in ${wait['retry-after']} s` : ''}`,
    'rate_limit_error'
  )
  if (wait) error.headers = wait
  return error
}

/**
 * The client's error when the channel's upstream account could not serve (out of credit, billing,
 * deactivated) and no other channel did: "no available channel", as when every channel is out of
 * rotation, and nothing of the provider's words ("Your credit balance is too low", "check your plan
 * and billing details"), which describe the operator's account. They stay in the attempt's record
 * and the channel's disabled reason.
 */
function channelsUnusable(model: string): GatewayError {
  const error = GatewayError.noAvailableChannel(model)
  error.message = `No available upstream channel for model '${model}': the channels that serve it cannot take requests now`
  return error
}

function upstreamCode(status: number): string {
  if (status === 429) return 'upstream_rate_limited'
  if (status === 401 || status === 403) return 'upstream_auth_error'
  return 'upstream_error'
}

export function describe(error: unknown): string {
  const e = error as any
  return e?.code ? `${e.code}${e.message ? ` (${e.message})` : ''}` : String(e?.message ?? e)
}
