/**
 * Per-channel circuit breaker, in memory (each instance judges the upstreams
 * it talks to). Consecutive failures open the circuit for a cool-down that
 * doubles each time it re-opens; after it, one trial request is let through
 * (half-open): success closes the circuit, failure re-opens it. A 429 with
 * Retry-After cools the channel down for exactly that long.
 *
 * Transitions are reported (`onTransition`) so they can be mirrored into the
 * channels table for admins.
 */
export type CircuitState = 'closed' | 'open' | 'half_open'

export interface HealthOptions {
  failureThreshold: number
  baseCooldownMs: number
  maxCooldownMs: number
}

interface Circuit {
  state: CircuitState
  failures: number
  openUntil: number
  cooldownMs: number
  trialInFlight: boolean
  lastError: string | null
}

export interface HealthTransition {
  channelId: number
  state: CircuitState
  until: number | null
  error: string | null
}

export class ChannelHealth {
  #circuits = new Map<number, Circuit>()

  constructor(
    public options: HealthOptions,
    private onTransition: (transition: HealthTransition) => void = () => {}
  ) {}

  /** May a request be sent to this channel now? Claims the half-open trial slot when it is one. */
  tryAcquire(channelId: number, now = Date.now()): boolean {
    const circuit = this.#circuits.get(channelId)
    if (!circuit || circuit.state === 'closed') return true
    if (circuit.state === 'open') {
      if (now < circuit.openUntil) return false
      circuit.state = 'half_open'
      circuit.trialInFlight = true
      this.onTransition({ channelId, state: 'half_open', until: null, error: circuit.lastError })
      return true
    }
    // half-open: one trial at a time
    if (circuit.trialInFlight) return false
    circuit.trialInFlight = true
    return true
  }

  /** Without claiming anything: is the channel usable now? */
  isAvailable(channelId: number, now = Date.now()): boolean {
    const circuit = this.#circuits.get(channelId)
    if (!circuit || circuit.state === 'closed') return true
    if (circuit.state === 'open') return now >= circuit.openUntil
    return !circuit.trialInFlight
  }

  success(channelId: number) {
    const circuit = this.#circuits.get(channelId)
    if (!circuit) return
    const wasOpen = circuit.state !== 'closed'
    this.#circuits.delete(channelId)
    if (wasOpen) this.onTransition({ channelId, state: 'closed', until: null, error: null })
  }

  /** Records a failure; `cooldownMs` (from Retry-After) opens the circuit at once for that long. */
  failure(channelId: number, error: string, cooldownMs?: number, now = Date.now()) {
    let circuit = this.#circuits.get(channelId)
    if (!circuit) {
      circuit = { state: 'closed', failures: 0, openUntil: 0, cooldownMs: 0, trialInFlight: false, lastError: null }
      this.#circuits.set(channelId, circuit)
    }
    circuit.failures++
    circuit.lastError = error
    circuit.trialInFlight = false
    const trialFailed = circuit.state === 'half_open'
    if (cooldownMs !== undefined || trialFailed || circuit.failures >= this.options.failureThreshold) {
      circuit.cooldownMs =
        cooldownMs ??
        (trialFailed
          ? Math.min(this.options.maxCooldownMs, Math.max(circuit.cooldownMs, this.options.baseCooldownMs) * 2)
          : this.options.baseCooldownMs)
      circuit.state = 'open'
      circuit.openUntil = now + circuit.cooldownMs
      this.onTransition({ channelId, state: 'open', until: circuit.openUntil, error })
    }
  }

  /** Releases a half-open trial slot that ended neither way (client abort). */
  release(channelId: number) {
    const circuit = this.#circuits.get(channelId)
    if (circuit) circuit.trialInFlight = false
  }

  stateOf(channelId: number): { state: CircuitState; until: number | null; failures: number } {
    const circuit = this.#circuits.get(channelId)
    if (!circuit) return { state: 'closed', until: null, failures: 0 }
    return { state: circuit.state, until: circuit.state === 'open' ? circuit.openUntil : null, failures: circuit.failures }
  }

  reset() {
    this.#circuits.clear()
  }
}
