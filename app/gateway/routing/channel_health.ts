/**
 * Channel health, in memory (each instance judges the upstreams it talks to),
 * at two levels:
 *
 * - The channel's circuit breaker, for what is the channel's fault
 *   (connection errors, timeouts, 5xx streaks): consecutive failures open the
 *   circuit for a cool-down that doubles each time it re-opens; after it, one
 *   trial request is let through (half-open): success closes the circuit,
 *   failure re-opens it.
 * - Cool-downs per (channel, upstream model), for what providers decide per
 *   model: a 429 (for its Retry-After, else a short doubling pause) and a 403
 *   on one model (a permission on a model class, a region). Other models of
 *   the channel keep flowing.
 *
 * A 403 is evidence of a bad key only when the channel answers it for more
 * than one model within FORBIDDEN_WINDOW_MS: `forbidden()` says when to
 * disable the channel.
 *
 * Transitions are reported (`onTransition`, `onModelCooldown`) so they can be
 * mirrored into the channels table for admins.
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

/** Why one (channel, model) is cooling down */
export type ModelCooldownKind = 'rate_limited' | 'forbidden'

export interface ModelCooldown {
  until: number
  kind: ModelCooldownKind
  reason: string
  /** Consecutive failures of this kind on this model (the pause doubles with each) */
  strikes: number
}

/** Distinct models answering 403 within this window = the key itself is refused */
export const FORBIDDEN_WINDOW_MS = 10 * 60_000
/**
 * Cool-downs kept per channel. Model names come from clients: a channel that
 * serves a glob, behind an upstream that rate-limits the whole account
 * (429 with a Retry-After of minutes for every model), would otherwise keep
 * one entry per distinct name sent for as long as the pause lasts, each
 * insert scanning them all and each mirror write (gateway.ts) serialising
 * them all. Past the cap, the models cooled longest ago go first: such a
 * model is tried again early, and a 429 cools it again.
 */
export const MAX_MODEL_COOLDOWNS = 256
/** Below this many, expired cool-downs are left to be replaced (no scan) */
const SWEEP_COOLDOWNS_AT = 64

/** First pause after a 429 without Retry-After (doubles per consecutive 429) */
const RATE_LIMIT_BASE_MS = 1000

export class ChannelHealth {
  #circuits = new Map<number, Circuit>()
  #models = new Map<number, Map<string, ModelCooldown>>()
  /** channel -> upstream model -> when it last answered 403 */
  #forbidden = new Map<number, Map<string, number>>()

  constructor(
    public options: HealthOptions,
    private onTransition: (transition: HealthTransition) => void = () => {},
    private onModelCooldown: (channelId: number) => void = () => {}
  ) {}

  /** Is this upstream model of this channel cooling down? (cheap: no allocation when nothing cools) */
  modelAvailable(channelId: number, model: string, now = Date.now()): boolean {
    if (this.#models.size === 0) return true
    const cooldown = this.#models.get(channelId)?.get(model)
    return !cooldown || now >= cooldown.until
  }

  /**
   * When may this candidate be tried again (epoch ms), or null if it may now.
   * The later of the channel's circuit and the model's cool-down.
   */
  retryAt(channelId: number, model: string, now = Date.now()): number | null {
    let at: number | null = null
    const cooldown = this.#models.get(channelId)?.get(model)
    if (cooldown && cooldown.until > now) at = cooldown.until
    const circuit = this.#circuits.get(channelId)
    if (circuit?.state === 'open' && circuit.openUntil > now) at = Math.max(at ?? 0, circuit.openUntil)
    // Half-open with its trial in flight: the trial's answer decides; retry in a moment.
    if (at === null && circuit?.state === 'half_open' && circuit.trialInFlight) at = now + 1000
    return at
  }

  /**
   * Is this candidate unavailable only because its provider rate-limits the
   * model (a 429 cool-down, the channel's circuit closed)? Asked only of a
   * candidate that was skipped.
   */
  onlyRateLimited(channelId: number, model: string, now = Date.now()): boolean {
    const cooldown = this.#models.get(channelId)?.get(model)
    return cooldown !== undefined && cooldown.kind === 'rate_limited' && cooldown.until > now && this.isAvailable(channelId, now)
  }

  /**
   * A 429 on one model: that (channel, model) pauses for Retry-After, or for
   * a short pause that doubles while the model keeps answering 429.
   */
  rateLimited(channelId: number, model: string, reason: string, retryAfterMs?: number, now = Date.now()) {
    const previous = this.#models.get(channelId)?.get(model)
    const strikes = previous?.kind === 'rate_limited' ? previous.strikes + 1 : 1
    const pause =
      retryAfterMs ?? Math.min(this.options.maxCooldownMs, RATE_LIMIT_BASE_MS * 2 ** (strikes - 1))
    this.#coolModel(channelId, model, { until: now + pause, kind: 'rate_limited', reason, strikes }, now)
  }

  /**
   * An upstream 403 for one model. Returns 'disable' when the channel has
   * answered 403 for another model too within FORBIDDEN_WINDOW_MS (the key is
   * refused, not the model); otherwise cools that (channel, model) down for
   * the base cool-down, doubling while it keeps answering 403.
   */
  forbidden(channelId: number, model: string, reason: string, now = Date.now()): 'disable' | 'cooldown' {
    let seen = this.#forbidden.get(channelId)
    if (!seen) this.#forbidden.set(channelId, (seen = new Map()))
    for (const [other, at] of seen) if (now - at > FORBIDDEN_WINDOW_MS) seen.delete(other)
    seen.set(model, now)
    if (seen.size >= 2) {
      this.#forbidden.delete(channelId)
      return 'disable'
    }
    const previous = this.#models.get(channelId)?.get(model)
    const strikes = previous?.kind === 'forbidden' ? previous.strikes + 1 : 1
    const pause = Math.min(this.options.maxCooldownMs, this.options.baseCooldownMs * 2 ** (strikes - 1))
    this.#coolModel(channelId, model, { until: now + pause, kind: 'forbidden', reason, strikes }, now)
    return 'cooldown'
  }

  /** Models of this channel cooling down now (for channel:list, /api/status, the panel). */
  modelCooldowns(channelId: number, now = Date.now()): Array<{ model: string } & ModelCooldown> {
    const models = this.#models.get(channelId)
    if (!models) return []
    const out: Array<{ model: string } & ModelCooldown> = []
    for (const [model, cooldown] of models) if (cooldown.until > now) out.push({ model, ...cooldown })
    return out
  }

  /** Every channel with at least one model cooling down now. */
  channelsWithModelCooldowns(now = Date.now()): number[] {
    const ids: number[] = []
    for (const channelId of this.#models.keys()) if (this.modelCooldowns(channelId, now).length > 0) ids.push(channelId)
    return ids
  }

  #coolModel(channelId: number, model: string, cooldown: ModelCooldown, now: number) {
    let models = this.#models.get(channelId)
    if (!models) this.#models.set(channelId, (models = new Map()))
    // Insertion order is recency: a model cooled again moves to the newest end.
    models.delete(model)
    if (models.size >= SWEEP_COOLDOWNS_AT) {
      for (const [name, c] of models) if (c.until <= now) models.delete(name)
      // Still full of live pauses: drop the oldest quarter at once, so the next inserts scan nothing.
      if (models.size >= MAX_MODEL_COOLDOWNS) {
        let drop = models.size - Math.floor((MAX_MODEL_COOLDOWNS * 3) / 4)
        for (const name of models.keys()) {
          if (drop-- <= 0) break
          models.delete(name)
        }
      }
    }
    models.set(model, cooldown)
    this.onModelCooldown(channelId)
  }

  /** A model answered: its cool-down and its 403 record are over. */
  #clearModel(channelId: number, model: string) {
    this.#forbidden.get(channelId)?.delete(model)
    const models = this.#models.get(channelId)
    if (!models?.delete(model)) return
    if (models.size === 0) this.#models.delete(channelId)
    this.onModelCooldown(channelId)
  }

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

  /** The channel answered (for `model`, when given: that model's cool-down ends too). */
  success(channelId: number, model?: string) {
    if (model !== undefined && (this.#models.size > 0 || this.#forbidden.size > 0)) this.#clearModel(channelId, model)
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
    this.#models.clear()
    this.#forbidden.clear()
  }
}
