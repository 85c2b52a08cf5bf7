import { NO_METER_WRITES, readSettled, type MeterWrites } from '#gateway/metering/settled_read'
import db from '@adonisjs/lucid/services/db'
import { GatewayError } from '#exceptions/gateway_error'
import { toPico, fromPico } from '#gateway/metering/money'
import { isSpendPeriod, periodBounds, addSpendInPeriod, rollSpendPeriod, type SpendPeriod } from '#gateway/metering/spend_period'
import { SharedReload } from '#gateway/shared_reload'

/**
 * What an owner (a gateway user) set for one of their end users (table
 * end_users, migrations 998 and 1012): blocked, a spend limit per UTC day,
 * week or month (or for its whole life), rpm/tpm, and what the end user spent
 * in the current period, kept live here as the meter records. An end user
 * linked to a shared budget (table budgets) takes the budget's limit, period,
 * rpm and tpm instead of its own; its spend and windows stay its own.
 */
export interface EndUserPolicy {
  id: number
  userId: number
  endUser: string
  blocked: boolean
  /** pico-USD per period (or for the end user's whole life without one); null = no limit */
  maxBudgetPico: bigint | null
  /** pico-USD: the linked budget's soft budget, crossing it alerts (metering/budget_watch.ts); null = none */
  softBudgetPico: bigint | null
  /** Spent in the period below (committed + recorded, not held) */
  spentPico: bigint
  /** null: the limit covers the whole life (rollSpendPeriod never rolls it) */
  spendPeriod: SpendPeriod | null
  periodStartsAt: number
  periodEndsAt: number
  /** Requests and tokens a minute (rate_limits.ts admitEndUser); null = none */
  rpm: number | null
  tpm: number | null
  /** The LiteLLM budget_id of the shared budget it is linked to, if any */
  budgetId: string | null
  /** What requests in flight hold against the limit (survives a reload: the object is kept) */
  heldPico: bigint
}

/** The meter's uncommitted cost per end user (PendingTotals), added to what a load reads. */
export interface EndUserPendingSource extends MeterWrites {
  pendingEndUserCost(userId: number, endUser: string, sinceMs: number): bigint
}

const NOTHING_PENDING: EndUserPendingSource = { pendingEndUserCost: () => 0n, ...NO_METER_WRITES }

/** Other instances' spend reaches here by `charged:` notifications; without a listener, by this TTL. */
const TTL_MS = 60_000
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
   * 402 end_user_budget_exceeded when this period's spend plus what requests
   * in flight hold reached the limit (as a key's cap counts holds). Returns
   * the policy when it has a limit or rpm/tpm (the request then holds its
   * estimate on it and counts in its windows), else null.
   */
  admit(userId: number, endUser: string): EndUserPolicy | null {
    // Stale: read again in the background, once (not queued behind a read already out).
    if (!this.#reloads.running && Date.now() - this.#loadedAt > TTL_MS) this.reload().catch(() => {})
    const policy = this.#byOwner.get(userId)?.get(endUser)
    if (policy === undefined) return null
    if (policy.blocked) {
      throw new GatewayError(403, 'end_user_blocked', `End user '${endUser}' is blocked on this account`, 'permission_error')
    }
    if (policy.maxBudgetPico === null) return policy.rpm !== null || policy.tpm !== null ? policy : null
    assertWithinLimit(policy)
    return policy
  }

  /** A recorded request's cost (the meter's onRecord), in the period its call began. */
  applySpend(userId: number, endUser: string, costPico: bigint, createdAtMs: number) {
    if (costPico === 0n) return
    const policy = this.#byOwner.get(userId)?.get(endUser)
    if (policy === undefined) return
    addSpendInPeriod(policy, costPico, createdAtMs)
  }

  /** Reads the table again; concurrent callers share a read, and a call during one gets one more after it. */
  reload(): Promise<void> {
    return this.#reloads.run()
  }

  async #load() {
    // The meter writes `spent`: read when no batch is under way (metering/settled_read.ts).
    const rows: any[] = await readSettled(this.#pending, () =>
      db
        .from('end_users as e')
        .leftJoin('budgets as b', 'b.id', 'e.budget_id')
        .select(
          'e.id', 'e.user_id', 'e.end_user', 'e.blocked', 'e.monthly_limit', 'e.budget_period', 'e.rpm', 'e.tpm',
          'e.spent', 'e.period_spent', 'e.period_start', 'b.id as b_id', 'b.budget_id as b_name', 'b.max_budget as b_max_budget',
          'b.budget_period as b_budget_period', 'b.rpm as b_rpm', 'b.tpm as b_tpm', 'b.soft_budget as b_soft_budget'
        )
    )
    const now = Date.now()
    const byOwner = new Map<number, Map<string, EndUserPolicy>>()
    for (const row of rows) {
      const userId = Number(row.user_id)
      const endUser = String(row.end_user)
      // Linked to a shared budget: its limits, all of them (the end user's own are kept for when it is unlinked).
      const linked = row.b_id !== null
      const limit = linked ? row.b_max_budget : row.monthly_limit
      const loaded: EndUserPolicy = {
        id: Number(row.id),
        userId,
        endUser,
        blocked: row.blocked === true,
        maxBudgetPico: limit === null ? null : toPico(String(limit)),
        softBudgetPico: linked && row.b_soft_budget !== null ? toPico(String(row.b_soft_budget)) : null,
        ...endUserSpend(row, linked ? row.b_budget_period : row.budget_period, userId, endUser, this.#pending, now),
        rpm: (linked ? row.b_rpm : row.rpm) ?? null,
        tpm: (linked ? row.b_tpm : row.tpm) ?? null,
        budgetId: linked ? String(row.b_name) : null,
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
 * What an end user's limit counts, from its row (as team_policies.ts
 * teamSpend): its whole spend without a period, else the current period's
 * (0 when the row's period is an older one, or of another length: the
 * budget's period was changed), plus what the meter holds uncommitted.
 */
function endUserSpend(row: Record<string, any>, period: unknown, userId: number, endUser: string, pending: EndUserPendingSource, now: number) {
  if (!isSpendPeriod(period)) {
    return {
      spentPico: toPico(String(row.spent ?? '0')) + pending.pendingEndUserCost(userId, endUser, -Infinity),
      spendPeriod: null,
      periodStartsAt: -Infinity,
      periodEndsAt: Infinity,
    }
  }
  const { start, end } = periodBounds(period, now)
  const rowStart = row.period_start ? dayStartMs(row.period_start) : null
  return {
    spentPico: (rowStart === start ? toPico(String(row.period_spent ?? '0')) : 0n) + pending.pendingEndUserCost(userId, endUser, start),
    spendPeriod: period,
    periodStartsAt: start,
    periodEndsAt: end,
  }
}

const PERIOD_WORDS: Record<SpendPeriod, string> = { day: 'daily', week: 'weekly', month: 'monthly' }

/**
 * 402 end_user_budget_exceeded when the end user's spend this period (or
 * ever, without one) plus what requests in flight hold reached its limit.
 * Checked at admission and again where the request's hold is taken
 * (access_policy.ts authorizeAndHold), in the same synchronous step as the
 * hold, so concurrent requests see each other.
 */
export function assertWithinLimit(policy: EndUserPolicy) {
  if (policy.maxBudgetPico === null) return
  rollSpendPeriod(policy, Date.now())
  if (policy.spentPico + policy.heldPico >= policy.maxBudgetPico) {
    const amount = `$${fromPico(policy.maxBudgetPico).replace(/\.?0+$/, '')}`
    const budget = policy.budgetId === null ? '' : ` (budget '${policy.budgetId}')`
    const message =
      policy.spendPeriod === null
        ? `End user '${policy.endUser}' reached its spend limit of ${amount}${budget}`
        : `End user '${policy.endUser}' reached its ${PERIOD_WORDS[policy.spendPeriod]} spend limit of ${amount}${budget}; it resets at ${new Date(policy.periodEndsAt).toISOString()}`
    throw new GatewayError(402, 'end_user_budget_exceeded', message, 'insufficient_quota')
  }
}

/** A `date` column as node-pg returns it (a Date at local midnight, or a string) -> epoch ms of that UTC day. */
function dayStartMs(value: Date | string): number {
  if (typeof value === 'string') return Date.parse(`${value.slice(0, 10)}T00:00:00Z`)
  return Date.UTC(value.getFullYear(), value.getMonth(), value.getDate())
}
