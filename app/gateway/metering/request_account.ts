import { randomUUID } from 'node:crypto'
import { GatewayError } from '#exceptions/gateway_error'
import { costOf } from '#gateway/metering/pricing'
import type { UsageMeter } from '#gateway/metering/usage_meter'
import { ZERO_USAGE, type PriceInfo, type Principal, type TokenUsage } from '#gateway/types'

/**
 * The accounting of one API request, filled in as the request progresses and
 * handed to the meter exactly once, whatever path the request ends on.
 */
export class RequestAccount {
  readonly requestId = randomUUID()
  readonly startedAt = performance.now()
  readonly createdAt = new Date()
  model = ''
  stream = false
  channelId: number | null = null
  provider: string | null = null
  servedModel: string | null = null
  price: PriceInfo | null = null
  ttftMs: number | null = null
  #closed = false

  constructor(
    private meter: UsageMeter,
    readonly principal: Principal,
    readonly endpoint: string
  ) {}

  markFirstByte() {
    if (this.ttftMs === null) this.ttftMs = Math.round(performance.now() - this.startedAt)
  }

  /** Records the request; later calls are ignored (one row per request). */
  close(status: number, errorCode: string | null, usage: TokenUsage = ZERO_USAGE) {
    if (this.#closed) return
    this.#closed = true
    this.meter.record({
      requestId: this.requestId,
      userId: this.principal.user.id,
      apiKeyId: this.principal.key.id,
      channelId: this.channelId,
      provider: this.provider,
      model: this.model || '(none)',
      servedModel: this.servedModel,
      endpoint: this.endpoint,
      stream: this.stream,
      status,
      errorCode,
      usage,
      costPico: costOf(this.price, usage),
      latencyMs: Math.round(performance.now() - this.startedAt),
      ttftMs: this.ttftMs,
      createdAt: this.createdAt,
    })
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
