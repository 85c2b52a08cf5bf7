import { request } from 'undici'
import type { Logger } from '@adonisjs/core/logger'

/**
 * What an operator is told about, as it happens (LiteLLM's Slack alerting,
 * new-api's channel notifications): a channel the gateway took out of
 * rotation, a channel whose circuit opened, a user whose balance ran out, a
 * key at 80 % or 100 % of its spend cap, a key's or customer's soft budget
 * crossed (the budget ones from app/services/budget_alerts.ts).
 */
export type AlertEvent =
  | 'channel.disabled'
  | 'channel.circuit_open'
  | 'channel.low_balance'
  | 'user.balance_exhausted'
  | 'key.spend_cap_reached'
  | 'key.spend_cap_warning'
  | 'key.soft_budget_crossed'
  | 'customer.soft_budget_crossed'
  | 'payment.received'

/** The payload shapes chat webhooks take: Slack (and Mattermost, Google Chat) `text`, Discord `content`, or plain JSON. */
export type AlertFormat = 'slack' | 'discord' | 'json'

export interface AlertOptions {
  url: string
  format: AlertFormat
  /** The same event about the same subject is sent at most once in this window */
  repeatMs: number
  logger: Logger
  /** Alerts waiting to be sent beyond this are dropped (a webhook that is down must not grow memory) */
  maxQueued?: number
  timeoutMs?: number
}

interface Pending {
  event: AlertEvent
  describe: () => Promise<{ text: string; data: Record<string, unknown> }>
}

/**
 * Sends alerts to one webhook, behind everything: notify() is synchronous
 * and cheap (a map lookup for the repeat window), the message is built and
 * posted later, one at a time, with a timeout and one retry; failures are
 * logged and counted, never thrown at a request.
 */
export class AlertSender {
  #last = new Map<string, number>()
  #queue: Pending[] = []
  #sending: Promise<void> | null = null
  sent = 0
  failed = 0
  dropped = 0
  lastError: string | null = null

  constructor(readonly options: AlertOptions) {}

  /** Queues an alert unless the same one (event and subject) went out within the repeat window. */
  notify(event: AlertEvent, subject: string | number, describe: Pending['describe'], now = Date.now()) {
    const key = `${event}:${subject}`
    const last = this.#last.get(key)
    if (last !== undefined && now - last < this.options.repeatMs) return false
    if (this.#last.size > 10_000) this.#forgetOld(now)
    this.#last.set(key, now)
    if (this.#queue.length >= (this.options.maxQueued ?? 100)) {
      this.dropped++
      return false
    }
    this.#queue.push({ event, describe })
    this.#sending ??= this.#drain().finally(() => (this.#sending = null))
    return true
  }

  /** Resolves once every queued alert was sent or given up on (tests, shutdown). */
  async flush() {
    while (this.#sending) await this.#sending
  }

  async #drain() {
    while (this.#queue.length > 0) {
      const next = this.#queue.shift()!
      try {
        const { text, data } = await next.describe()
        await this.#post(this.#payload(next.event, text, data))
        this.sent++
      } catch (error) {
        this.failed++
        this.lastError = (error as Error).message
        this.options.logger.warn({ err: error, event: next.event }, 'alert could not be sent')
      }
    }
  }

  #payload(event: AlertEvent, text: string, data: Record<string, unknown>) {
    switch (this.options.format) {
      case 'discord':
        return { content: text }
      case 'json':
        return { event, text, data, at: new Date().toISOString() }
      default:
        return { text }
    }
  }

  /** One POST, retried once after a second on a network error or a 5xx/429. */
  async #post(payload: unknown) {
    const body = JSON.stringify(payload)
    try {
      await this.#postOnce(body)
    } catch (error) {
      if (!(error instanceof RetryableError)) throw error
      await new Promise((resolve) => setTimeout(resolve, 1000).unref())
      await this.#postOnce(body)
    }
  }

  async #postOnce(body: string) {
    let answer
    try {
      answer = await request(this.options.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
        signal: AbortSignal.timeout(this.options.timeoutMs ?? 5000),
      })
    } catch (error) {
      throw new RetryableError((error as Error).message)
    }
    await answer.body.dump()
    if (answer.statusCode < 300) return
    const message = `webhook answered HTTP ${answer.statusCode}`
    throw answer.statusCode >= 500 || answer.statusCode === 429 ? new RetryableError(message) : new Error(message)
  }

  #forgetOld(now: number) {
    for (const [key, at] of this.#last) if (now - at >= this.options.repeatMs) this.#last.delete(key)
  }
}

/** A failure worth one more try (the network, or the webhook's 5xx / 429). */
class RetryableError extends Error {}
