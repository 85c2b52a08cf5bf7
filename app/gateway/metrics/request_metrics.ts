import type { MeterEvent } from '#gateway/metering/meter_event'
import type { AttemptRecord } from '#gateway/upstream/dispatcher'
import type { ChannelInfo, PriceInfo } from '#gateway/types'
import { isGlob } from '#gateway/glob'
import { ExpositionWriter, labelSet } from '#gateway/metrics/exposition'

/**
 * The per-request metrics of GET /metrics, fed by the meter's record hook
 * (Gateway's onRecord: every metered request of every endpoint and wire
 * format, batches and realtime responses too, exactly once).
 *
 * Recording is number updates only: the event's series is found through
 * nested Maps (endpoint → model → requested model → channel and status) and
 * holds its figures in typed arrays; a series object is made once per label
 * combination, never per request. Strings are built only by the scrape.
 *
 * Label sets are bounded: a model name gets its own series once an upstream
 * answered it, or when a channel lists or maps it or the price table names it
 * exactly; any other name (a client's typo, a flood of made-up names) counts
 * as `(other)`. At most `maxModels` names get one; the rest fold alike. And
 * at most `maxSeries` label combinations: 500 names times every endpoint and
 * status a client can provoke (an upstream that answers any name, then 499s,
 * 400s, 429s...) made tens of thousands, a scrape of tens of MB that held
 * the event loop for seconds; past the cap a new combination counts under
 * `(other)` (whose own combinations are few: endpoints × channels × statuses).
 * No key, user or end-user ever becomes a label.
 */

/** The label value every model name without a series of its own counts under */
export const OTHER_MODEL = '(other)'

/** Bucket bounds, seconds: whole-request latency (long generations and batches go to +Inf) */
export const LATENCY_BOUNDS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600] as const
/** Bucket bounds, seconds: a stream's time to its first byte */
export const TTFT_BOUNDS = [0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60] as const
const LATENCY_MS = LATENCY_BOUNDS.map((s) => s * 1000)
const TTFT_MS = TTFT_BOUNDS.map((s) => s * 1000)

/** How attempts end (dispatcher.ts AttemptRecord.outcome), in a fixed order: the failures' `outcome` label */
const OUTCOMES: readonly AttemptRecord['outcome'][] = [
  'ok',
  'http_error',
  'invalid_answer',
  'rate_limited',
  'auth_error',
  'account_error',
  'network_error',
  'timeout',
  'client_error',
  'overloaded',
]
const OUTCOME_INDEX = new Map<string, number>(OUTCOMES.map((o, i) => [o, i]))

// The figures of a request series, by index in its Float64Array.
const REQUESTS = 0
const INPUT_TOKENS = 1
const OUTPUT_TOKENS = 2
const CACHED_TOKENS = 3
const COST_PICO = 4
const CACHE_HITS = 5
const LATENCY_SUM_MS = 6
const TTFT_SUM_MS = 7
const FIGURES = 8

/** One label combination of requests: its figures and histograms. */
class RequestSeries {
  readonly figures = new Float64Array(FIGURES)
  readonly latency = new Float64Array(LATENCY_MS.length + 1)
  /** Made at the first stream of the series */
  ttft: Float64Array | null = null

  constructor(
    readonly endpoint: string,
    readonly model: string,
    /** '' when the model asked for is the one that answered */
    readonly requestedModel: string,
    /** 0: no channel */
    readonly channelId: number,
    readonly provider: string,
    readonly status: number
  ) {}
}

/** One channel's upstream attempts, and its failures by outcome. */
class ChannelSeries {
  attempts = 0
  readonly outcomes = new Float64Array(OUTCOMES.length)
  constructor(
    readonly channelId: number,
    readonly provider: string
  ) {}
}

/** What the recorder reads of the catalog: the names it serves exactly, and channel names for labels */
export interface MetricsCatalog {
  readonly channels: readonly ChannelInfo[]
  readonly prices: readonly PriceInfo[]
}

function bucketOf(boundsMs: readonly number[], ms: number): number {
  let i = 0
  while (i < boundsMs.length && ms > boundsMs[i]) i++
  return i
}

export class RequestMetrics {
  /** endpoint → model → requested model ('' = same) → channel id × 1000 + status → series */
  #series = new Map<string, Map<string, Map<string, Map<number, RequestSeries>>>>()
  #channels = new Map<number, ChannelSeries>()
  /** Model names with a series of their own (each maps to itself) */
  #models = new Map<string, string>()
  /** Exact names the channels and the price table know, rebuilt when either is reloaded */
  #named: Set<string> | null = null
  #namedFrom: readonly [readonly ChannelInfo[], readonly PriceInfo[]] | null = null
  /** Request series made (label combinations) */
  #seriesCount = 0

  constructor(
    private catalog: MetricsCatalog,
    /** Distinct model names given a series; beyond them every new name is `(other)` */
    readonly maxModels = 500,
    /** Request series (label combinations) with a named model; beyond them a new combination is `(other)`'s */
    readonly maxSeries = 10_000
  ) {}

  /** The meter's record hook: a few Map lookups and number updates. */
  record(event: MeterEvent) {
    const channelId = event.channelId ?? 0
    const answered = event.status >= 200 && event.status < 300 && event.errorCode === null && (channelId !== 0 || event.cacheHit === true)
    let model = this.#modelLabel(event.model, answered)
    let requested = event.requestedModel === null ? '' : this.#modelLabel(event.requestedModel, false)
    // Two names folded into one: the series of the model itself (its label set would be written twice).
    if (requested === model) requested = ''
    const key = channelId * 1000 + event.status
    let series = this.#series.get(event.endpoint)?.get(model)?.get(requested)?.get(key)
    if (series === undefined) {
      if (this.#seriesCount >= this.maxSeries && model !== OTHER_MODEL) {
        model = OTHER_MODEL
        requested = ''
        series = this.#series.get(event.endpoint)?.get(model)?.get(requested)?.get(key)
      }
      series ??= this.#newSeries(event, model, requested, channelId, key)
    }

    const figures = series.figures
    const usage = event.usage
    figures[REQUESTS]++
    figures[INPUT_TOKENS] += usage.promptTokens
    figures[OUTPUT_TOKENS] += usage.completionTokens
    figures[CACHED_TOKENS] += usage.cachedTokens
    if (event.costPico !== 0n) figures[COST_PICO] += Number(event.costPico)
    if (event.cacheHit === true) figures[CACHE_HITS]++
    figures[LATENCY_SUM_MS] += event.latencyMs
    series.latency[bucketOf(LATENCY_MS, event.latencyMs)]++
    if (event.stream && event.ttftMs !== null) {
      const ttft = (series.ttft ??= new Float64Array(TTFT_MS.length + 1))
      ttft[bucketOf(TTFT_MS, event.ttftMs)]++
      figures[TTFT_SUM_MS] += event.ttftMs
    }

    if (event.attemptCount === 0) return
    if (event.attempts === null) {
      // A single clean attempt (request_account.ts keeps no records for it): on the row's channel.
      if (channelId !== 0) this.#channel(channelId, event.provider).attempts++
      return
    }
    for (const attempt of event.attempts) {
      const channel = this.#channel(attempt.channelId, attempt.channelId === channelId ? event.provider : null)
      channel.attempts++
      channel.outcomes[OUTCOME_INDEX.get(attempt.outcome) ?? 1]++
    }
  }

  #newSeries(event: MeterEvent, model: string, requested: string, channelId: number, key: number): RequestSeries {
    let byModel = this.#series.get(event.endpoint)
    if (byModel === undefined) this.#series.set(event.endpoint, (byModel = new Map()))
    let byRequested = byModel.get(model)
    if (byRequested === undefined) byModel.set(model, (byRequested = new Map()))
    let byChannel = byRequested.get(requested)
    if (byChannel === undefined) byRequested.set(requested, (byChannel = new Map()))
    const series = new RequestSeries(event.endpoint, model, requested, channelId, event.provider ?? '', event.status)
    byChannel.set(key, series)
    this.#seriesCount++
    return series
  }

  #channel(channelId: number, provider: string | null): ChannelSeries {
    let channel = this.#channels.get(channelId)
    if (channel === undefined) {
      const known = provider ?? this.catalog.channels.find((c) => c.id === channelId)?.provider ?? ''
      this.#channels.set(channelId, (channel = new ChannelSeries(channelId, known)))
    }
    return channel
  }

  /** The name itself when it has (or may now have) a series; `(other)` otherwise. */
  #modelLabel(name: string, answered: boolean): string {
    const known = this.#models.get(name)
    if (known !== undefined) return known
    if (this.#models.size >= this.maxModels) return OTHER_MODEL
    // '(none)': a request refused before it named a model (request_account.ts).
    if (answered || name === '(none)' || this.#namedExactly(name)) {
      this.#models.set(name, name)
      return name
    }
    return OTHER_MODEL
  }

  #namedExactly(name: string): boolean {
    const channels = this.catalog.channels
    const prices = this.catalog.prices
    if (this.#named === null || this.#namedFrom![0] !== channels || this.#namedFrom![1] !== prices) {
      const named = new Set<string>()
      for (const channel of channels) {
        for (const model of channel.models) if (!isGlob(model)) named.add(model)
        for (const model in channel.modelMapping) if (!isGlob(model)) named.add(model)
      }
      for (const price of prices) if (!isGlob(price.pattern)) named.add(price.pattern)
      this.#named = named
      this.#namedFrom = [channels, prices]
    }
    return this.#named.has(name)
  }

  /** Forgets every figure (tests). */
  reset() {
    this.#series.clear()
    this.#seriesCount = 0
    this.#channels.clear()
    this.#models.clear()
  }

  /** Writes the request families; `channelName` labels a channel id (its current name). */
  write(out: ExpositionWriter, channelName: (id: number) => string) {
    const all: RequestSeries[] = []
    for (const byModel of this.#series.values())
      for (const byRequested of byModel.values()) for (const byChannel of byRequested.values()) for (const s of byChannel.values()) all.push(s)

    const fullNames = ['endpoint', 'model', 'requested_model', 'channel', 'provider', 'status']
    out.family('gateway_requests_total', 'counter', 'Requests metered, by endpoint, model (as billed), model asked for, channel, provider and HTTP status')
    for (const s of all) {
      const labels = labelSet(fullNames, [s.endpoint, s.model, s.requestedModel || s.model, s.channelId === 0 ? '' : channelName(s.channelId), s.provider, String(s.status)])
      out.sample('gateway_requests_total', labels, s.figures[REQUESTS])
    }

    // The other request families leave out the status and the model asked for.
    const groups = new Map<string, { figures: Float64Array; latency: Float64Array; ttft: Float64Array | null }>()
    const names = ['endpoint', 'model', 'channel', 'provider']
    for (const s of all) {
      const labels = labelSet(names, [s.endpoint, s.model, s.channelId === 0 ? '' : channelName(s.channelId), s.provider])
      let group = groups.get(labels)
      if (group === undefined) {
        group = { figures: new Float64Array(FIGURES), latency: new Float64Array(LATENCY_MS.length + 1), ttft: null }
        groups.set(labels, group)
      }
      for (let i = 0; i < FIGURES; i++) group.figures[i] += s.figures[i]
      for (let i = 0; i < s.latency.length; i++) group.latency[i] += s.latency[i]
      if (s.ttft !== null) {
        group.ttft ??= new Float64Array(TTFT_MS.length + 1)
        for (let i = 0; i < s.ttft.length; i++) group.ttft[i] += s.ttft[i]
      }
    }
    const counter = (name: string, help: string, index: number, scale = 1) => {
      out.family(name, 'counter', help)
      for (const [labels, group] of groups) out.sample(name, labels, group.figures[index] / scale)
    }
    counter('gateway_input_tokens_total', 'Prompt (input) tokens billed, cached ones included', INPUT_TOKENS)
    counter('gateway_output_tokens_total', 'Completion (output) tokens billed, reasoning included', OUTPUT_TOKENS)
    counter('gateway_cached_input_tokens_total', "Prompt tokens read from the provider's cache", CACHED_TOKENS)
    counter('gateway_spend_usd_total', 'Cost charged to balances (the usage rows\' cost), USD', COST_PICO, 1e12)
    counter('gateway_cache_hits_total', "Requests answered from the gateway's response cache", CACHE_HITS)

    out.family('gateway_request_duration_seconds', 'histogram', 'Whole-request latency, from admission to the last byte (batches: creation to billing)')
    for (const [labels, group] of groups) {
      out.histogram('gateway_request_duration_seconds', labels, LATENCY_BOUNDS, group.latency, group.figures[LATENCY_SUM_MS] / 1000)
    }
    out.family('gateway_time_to_first_token_seconds', 'histogram', "Streams' time to their first byte")
    for (const [labels, group] of groups) {
      if (group.ttft !== null) out.histogram('gateway_time_to_first_token_seconds', labels, TTFT_BOUNDS, group.ttft, group.figures[TTFT_SUM_MS] / 1000)
    }

    out.family('gateway_upstream_attempts_total', 'counter', 'Upstream calls tried, per channel (failovers included)')
    for (const c of this.#channels.values()) out.sample('gateway_upstream_attempts_total', labelSet(['channel', 'provider'], [channelName(c.channelId), c.provider]), c.attempts)
    out.family('gateway_upstream_failures_total', 'counter', 'Upstream calls that failed, per channel and outcome (rate_limited, timeout, http_error...)')
    for (const c of this.#channels.values()) {
      for (let i = 1; i < OUTCOMES.length; i++) {
        if (c.outcomes[i] === 0) continue
        out.sample('gateway_upstream_failures_total', labelSet(['channel', 'provider', 'outcome'], [channelName(c.channelId), c.provider, OUTCOMES[i]]), c.outcomes[i])
      }
    }
  }
}
