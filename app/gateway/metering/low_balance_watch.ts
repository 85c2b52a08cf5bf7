import type { UserState } from '#gateway/types'

/**
 * After a metering batch commits: which of its users the cache sees below
 * their low-balance threshold and not yet told. Only those go to `claim`
 * (app/services/mail/low_balance_notice.ts: one conditional UPDATE, then the
 * e-mail); the usual batch, of users with no threshold or above it, costs a
 * map lookup per row and no statement. Per-request work is untouched.
 */
export class LowBalanceWatch {
  /** Users whose claim is out: a batch committing meanwhile does not ask again */
  #asking = new Set<number>()

  constructor(
    private userOf: (userId: number) => UserState | undefined,
    private claim: (userIds: number[]) => Promise<{ told: number[] }>,
    private onError: (error: unknown) => void
  ) {}

  /** A batch of these users' rows committed. */
  committed(rows: readonly { userId: number }[]) {
    let due: number[] | null = null
    for (const { userId } of rows) {
      const user = this.userOf(userId)
      if (user === undefined || user.lowBalancePico === null || user.lowBalanceNotified) continue
      if (user.balancePico >= user.lowBalancePico || this.#asking.has(userId)) continue
      this.#asking.add(userId)
      ;(due ??= []).push(userId)
    }
    if (due !== null) this.#ask(due)
  }

  /** Resolves when no claim is out (tests). */
  idle(): Promise<void> {
    return this.#pending
  }

  #pending: Promise<void> = Promise.resolve()

  #ask(userIds: number[]) {
    const run = this.claim(userIds)
      .then(({ told }) => {
        for (const id of told) {
          const user = this.userOf(id)
          if (user) user.lowBalanceNotified = true
        }
      })
      .catch(this.onError)
      .finally(() => {
        for (const id of userIds) this.#asking.delete(id)
      })
    this.#pending = Promise.all([this.#pending, run]).then(() => {})
  }
}
