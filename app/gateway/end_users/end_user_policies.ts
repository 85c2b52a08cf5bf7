import db from '@adonisjs/lucid/services/db'
import { GatewayError } from '#exceptions/gateway_error'
import { toPico, fromPico } from '#gateway/metering/money'
import { periodBounds, rollSpendPeriod } from '#gateway/metering/spend_period'
import { SharedReload } from '#gateway/shared_reload'

/**
 * What an owner (a gateway user) set for one of their end users (table
 * end_users, migration 998): blocked, a monthly spend limit, and what the
 * end user spent this UTC month, kept live here as the meter records.
 */
export interface EndUserPolicy {
  id: number
  userId: number
  endUser: string
  blocked: boolean
  /** pico-USD a UTC month; null = no limit */
  monthlyLimitPico: bigint | null
  /** Spent in the period below (committed + recorded, not held) */
  spentPico: bigint
  /** Always 'month' (rollSpendPeriod's shape) */
  spendPeriod: 'month'
  periodStartsAt: number
  periodEndsAt: number
  /** What requests in flight hold against the limit (survives a reload: the object is kept) */
  heldPico: bigint
}

/** The meter's uncommitted cost per end user (PendingTotals), added to what a load reads. */
export interface EndUserPendingSource {
  pendingEndUserCost(userId: number, endUser: string, sinceMs: number): bigint
  readonly settledCount: number
}

const NOTHING_PENDING: EndUserPendingSource = { pendingEndUserCost: () => 0n, settledCount: 0 }

/** Other instances' spend reaches here by `charged:` notifications; without a listener, by this TTL. */
const TTL_MS = 60_000
/** As Catalog's reads of rows the meter writes: read again if the meter settled records meanwhile. */
const SETTLE_RETRIES = 3

/**
 * The end_users table in memory, by owner then end user. The hot path asks
 * only for a request that names an end user: one Map lookup on the owner
 * (most owners have no policies: done), one on the end user. Loaded whole
 * (operators write these rows, a few per customer of a reseller), again on
 * `end_users:<id>` notifications (settings changed anywhere), on another
 * instance's charge of an owner listed here, and after TTL_MS.
 */
export class EndUserPolicies {
  #byOwner = new Map<number, Map<string, EndUserPolicy>>()
  #pending: EndUserPendingSource = NOTHING_PENDING
  #loadedAt = 0
  #reloads = new SharedReload(() => this.#load())

  setPendingSource(source: EndUserPendingSource) {
    this.#pending = source
  }

  /** The owner's policy for this end user, if any. */
  policyOf(userId: number, endUser: string): EndUserPolicy | undefined {
    return this.#byOwner.get(userId)?.get(endUser)
  }

  /** Does this owner have any policies? (another instance's charge of theirs re-reads) */
  hasOwner(userId: number): boolean {
    return this.#byOwner.has(userId)
  }

  /**
   * Admission of a request that names an end user: 403 end_user_blocked,
   * 402 end_user_budget_exceeded when this month's spend plus what requests
   * in flight hold reached the limit (as a key's cap counts holds). Returns
   * the policy when it has a limit (the request then holds its estimate on
   * it), else null.
   */
  admit(userId: number, endUser: string): EndUserPolicy | null {
    // Stale: read again in the background, once (not queued behind a read already out).
    if (!this.#reloads.running && Date.now() - this.#loadedAt > TTL_MS) this.reload().catch(() => {})
    const policy = this.#byOwner.get(userId)?.get(endUser)
    if (policy === undefined) return null
    if (policy.blocked) {
      throw new GatewayError(403, 'end_user_blocked', `End user '${endUser}' is blocked on this account`, 'permission_error')
    }
    if (policy.monthlyLimitPico === null) return null
    assertWithinLimit(policy)
    return policy
  }

  /** A recorded request's cost (the meter's onRecord), in the month its call began. */
  applySpend(userId: number, endUser: string, costPico: bigint, createdAtMs: number) {
    if (costPico === 0n) return
    const policy = this.#byOwner.get(userId)?.get(endUser)
    if (policy === undefined) return
    rollSpendPeriod(policy, Date.now())
    if (createdAtMs >= policy.periodStartsAt) policy.spentPico += costPico
  }

  /** Reads the table again; concurrent callers share a read, and a call during one gets one more after it. */
  reload(): Promise<void> {
    return this.#reloads.run()
  }

  async #load() {
    let rows: any[] = []
    for (let attempt = 0; ; attempt++) {
      const settled = this.#pending.settledCount
      rows = await db.from('end_users').select('id', 'user_id', 'end_user', 'blocked', 'monthly_limit', 'period_spent', 'period_start')
      if (this.#pending.settledCount === settled || attempt >= SETTLE_RETRIES) break
    }
    const now = Date.now()
    const { start, end } = periodBounds('month', now)
    const byOwner = new Map<number, Map<string, EndUserPolicy>>()
    for (const row of rows) {
      const userId = Number(row.user_id)
      const endUser = String(row.end_user)
      const rowStart = row.period_start ? dayStartMs(row.period_start) : null
      const loaded: EndUserPolicy = {
        id: Number(row.id),
        userId,
        endUser,
        blocked: row.blocked === true,
        monthlyLimitPico: row.monthly_limit === null ? null : toPico(String(row.monthly_limit)),
        spentPico:
          (rowStart === start ? toPico(String(row.period_spent ?? '0')) : 0n) + this.#pending.pendingEndUserCost(userId, endUser, start),
        spendPeriod: 'month',
        periodStartsAt: start,
        periodEndsAt: end,
        heldPico: 0n,
      }
      // The same object as before: requests in flight hold on it and release there.
      const previous = this.policyOf(userId, endUser)
      const policy = previous ? Object.assign(previous, loaded, { heldPico: previous.heldPico }) : loaded
      let owned = byOwner.get(userId)
      if (!owned) byOwner.set(userId, (owned = new Map()))
      owned.set(endUser, policy)
    }
    this.#byOwner = byOwner
    this.#loadedAt = now
  }
}

/**
 * 402 end_user_budget_exceeded when the end user's spend this month plus
 * what requests in flight hold reached its limit. Checked at admission and
 * again where the request's hold is taken (access_policy.ts authorizeAndHold),
 * in the same synchronous step as the hold, so concurrent requests see each other.
 */
export function assertWithinLimit(policy: EndUserPolicy) {
  if (policy.monthlyLimitPico === null) return
  rollSpendPeriod(policy, Date.now())
  if (policy.spentPico + policy.heldPico >= policy.monthlyLimitPico) {
    throw new GatewayError(
      402,
      'end_user_budget_exceeded',
      `End user '${policy.endUser}' reached its monthly spend limit of $${fromPico(policy.monthlyLimitPico).replace(/\.?0+$/, '')}; it resets at ${new Date(policy.periodEndsAt).toISOString()}`,
      'insufficient_quota'
    )
  }
}

/** A `date` column as node-pg returns it (a Date at local midnight, or a string) -> epoch ms of that UTC day. */
function dayStartMs(value: Date | string): number {
  if (typeof value === 'string') return Date.parse(`${value.slice(0, 10)}T00:00:00Z`)
  return Date.UTC(value.getFullYear(), value.getMonth(), value.getDate())
}
