import type { KeyInfo } from '#gateway/types'
import type { EndUserPolicy } from '#gateway/end_users/end_user_policies'
import type { CommittedRow } from '#gateway/metering/usage_meter'
import { rollSpendPeriod } from '#gateway/metering/spend_period'

/** 0: the soft budget; 80 and 100: that share of the spend cap. */
export type BudgetThreshold = 0 | 80 | 100

/** A crossing the cache sees and has not been told: budget_alerts.ts claims it. */
export interface BudgetCrossing {
  kind: 'key' | 'end_user'
  /** api_keys.id or end_users.id */
  id: number
  threshold: BudgetThreshold
}

/**
 * After a metering batch commits (and after another instance's charge was
 * read again): which of its keys and end users the cache sees at or past a
 * budget threshold (a key's soft budget, 80 % and 100 % of its spend cap; an
 * end user's shared budget's soft budget) and not yet told for this period
 * and this amount. Only those go to `claim` (budget_alerts.ts: one
 * conditional INSERT decides the one instance that sends); the usual row, of
 * a key without a cap or below it, costs a map lookup and a comparison, and
 * no statement. Per-request work is untouched.
 */
export class BudgetWatch {
  /** `${kind}:${id}:${threshold}` -> `${periodStart}:${amountPico}` it was told for (a new period or amount asks again) */
  #told = new Map<string, string>()
  /** Crossings whose claim is out: a batch committing meanwhile does not ask again */
  #asking = new Set<string>()
  /**
   * Crossings a batch saw while their claim was out: asked again after it when it did not tell them. That claim
   * may have read the committed spend before this batch's commit (not past the line yet: not told), and this
   * batch is the one that was to ask again: without this, a crossing reached by overlapping commits was never told.
   */
  #again = new Map<string, { crossing: BudgetCrossing; mark: string }>()
  #pending: Promise<void> = Promise.resolve()

  constructor(
    private keyOf: (keyId: number) => KeyInfo | undefined,
    private endUserOf: (userId: number, endUser: string) => EndUserPolicy | undefined,
    private claim: (crossings: BudgetCrossing[]) => Promise<{ told: BudgetCrossing[] }>,
    private onError: (error: unknown) => void,
    /** The clock periods roll by (a test moves it to the next period) */
    private now: () => number = Date.now
  ) {}

  /** A batch of these rows committed. */
  committed(rows: readonly CommittedRow[]) {
    let due: Array<{ crossing: BudgetCrossing; mark: string }> | null = null
    const now = this.now()
    for (const row of rows) {
      if (row.apiKeyId != null) {
        const key = this.keyOf(row.apiKeyId)
        if (key !== undefined && (key.spendLimitPico !== null || key.softBudgetPico !== null)) {
          rollSpendPeriod(key, now)
          if (key.spendLimitPico !== null && key.spendLimitPico > 0n) {
            const spent100 = key.spentPico * 100n
            if (spent100 >= key.spendLimitPico * 80n) due = this.#due(due, 'key', key.id, 80, key.periodStartsAt, key.spendLimitPico)
            if (spent100 >= key.spendLimitPico * 100n) due = this.#due(due, 'key', key.id, 100, key.periodStartsAt, key.spendLimitPico)
          }
          if (key.softBudgetPico !== null && key.softBudgetPico > 0n && key.spentPico >= key.softBudgetPico) {
            due = this.#due(due, 'key', key.id, 0, key.periodStartsAt, key.softBudgetPico)
          }
        }
      }
      if (row.endUser) {
        const policy = this.endUserOf(row.userId, row.endUser)
        if (policy !== undefined && policy.softBudgetPico !== null && policy.softBudgetPico > 0n) {
          rollSpendPeriod(policy, now)
          if (policy.spentPico >= policy.softBudgetPico) {
            due = this.#due(due, 'end_user', policy.id, 0, policy.periodStartsAt, policy.softBudgetPico)
          }
        }
      }
    }
    if (due !== null) this.#ask(due)
  }

  /** Forgets what was told (tests: the database's ids restart with every file). */
  forget() {
    this.#told.clear()
  }

  /** Resolves when no claim is out, one asked again after another included (tests). */
  async idle(): Promise<void> {
    let seen: Promise<void>
    do {
      seen = this.#pending
      await seen
    } while (seen !== this.#pending)
  }

  #due(
    due: Array<{ crossing: BudgetCrossing; mark: string }> | null,
    kind: BudgetCrossing['kind'],
    id: number,
    threshold: BudgetThreshold,
    periodStart: number,
    amountPico: bigint
  ) {
    const name = `${kind}:${id}:${threshold}`
    const mark = `${periodStart}:${amountPico}`
    if (this.#told.get(name) === mark) return due
    if (this.#asking.has(name)) {
      this.#again.set(name, { crossing: { kind, id, threshold }, mark })
      return due
    }
    this.#asking.add(name)
    ;(due ??= []).push({ crossing: { kind, id, threshold }, mark })
    return due
  }

  #ask(due: Array<{ crossing: BudgetCrossing; mark: string }>) {
    const run = this.claim(due.map((d) => d.crossing))
      .then(({ told }) => {
        // Bounded: one entry per key or end user with a budget that was crossed; forgotten wholesale past this.
        if (this.#told.size > 50_000) this.#told.clear()
        const marks = new Map(due.map((d) => [nameOf(d.crossing), d.mark]))
        for (const crossing of told) {
          const name = nameOf(crossing)
          const mark = marks.get(name)
          if (mark !== undefined) this.#told.set(name, mark)
        }
      })
      .catch(this.onError)
      .finally(() => {
        let again: Array<{ crossing: BudgetCrossing; mark: string }> | null = null
        for (const d of due) {
          const name = nameOf(d.crossing)
          this.#asking.delete(name)
          const seen = this.#again.get(name)
          if (seen === undefined) continue
          this.#again.delete(name)
          if (this.#told.get(name) === seen.mark) continue
          this.#asking.add(name)
          ;(again ??= []).push(seen)
        }
        if (again !== null) this.#ask(again)
      })
    this.#pending = Promise.all([this.#pending, run]).then(() => {})
  }
}

const nameOf = (c: BudgetCrossing) => `${c.kind}:${c.id}:${c.threshold}`
