/**
 * Spend caps that reset (LiteLLM's `budget_duration`): a key's cap counts
 * what it spent in the current UTC calendar day, week (from Monday, as
 * Postgres's date_trunc('week')) or month. The meter's statement keeps the
 * same periods in api_keys.period_spent/period_start.
 */
export const SPEND_PERIODS = ['day', 'week', 'month'] as const
export type SpendPeriod = (typeof SPEND_PERIODS)[number]

const DAY_MS = 86_400_000

/** Start and end (epoch ms, UTC) of the period holding `ms`. */
export function periodBounds(period: SpendPeriod, ms: number): { start: number; end: number } {
  const dayStart = Math.floor(ms / DAY_MS) * DAY_MS
  if (period === 'day') return { start: dayStart, end: dayStart + DAY_MS }
  if (period === 'week') {
    const sinceMonday = (new Date(dayStart).getUTCDay() + 6) % 7
    const start = dayStart - sinceMonday * DAY_MS
    return { start, end: start + 7 * DAY_MS }
  }
  const date = new Date(ms)
  return {
    start: Date.UTC(date.getUTCFullYear(), date.getUTCMonth(), 1),
    end: Date.UTC(date.getUTCFullYear(), date.getUTCMonth() + 1, 1),
  }
}

/** What rollSpendPeriod needs of a cached key (KeyInfo). */
interface PeriodicSpend {
  spendPeriod: SpendPeriod | null
  spentPico: bigint
  periodStartsAt: number
  periodEndsAt: number
}

/**
 * A new period has begun since the key's spend was counted: start it at 0.
 * Keys without a period never roll (their period never ends).
 */
export function rollSpendPeriod(key: PeriodicSpend, now: number) {
  if (key.spendPeriod === null || now < key.periodEndsAt) return
  const { start, end } = periodBounds(key.spendPeriod, now)
  key.spentPico = 0n
  key.periodStartsAt = start
  key.periodEndsAt = end
}

/**
 * A recorded request's cost (the meter's onRecord) on a key's, team's, end
 * user's or model budget's spend in memory: in the period its call began (a
 * call begun before midnight and metered after it counts in the day before,
 * as the meter's statement and a reload count it). True when it counted.
 */
export function addSpendInPeriod(target: PeriodicSpend, costPico: bigint, createdAtMs: number): boolean {
  rollSpendPeriod(target, Date.now())
  if (createdAtMs < target.periodStartsAt) return false
  target.spentPico += costPico
  return true
}

export function isSpendPeriod(value: unknown): value is SpendPeriod {
  return typeof value === 'string' && (SPEND_PERIODS as readonly string[]).includes(value)
}
