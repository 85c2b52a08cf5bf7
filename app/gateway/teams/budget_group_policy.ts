import { GatewayError } from '#exceptions/gateway_error'
import { toPico } from '#gateway/metering/money'
import { isSpendPeriod, periodBounds, rollSpendPeriod, type SpendPeriod } from '#gateway/metering/spend_period'

/**
 * A budget group (a team, an organization: app/actions/budget_group.ts) as
 * the hot path sees it: a block, model globs, rpm/tpm windows and a budget
 * with what requests in flight hold on it. TeamPolicy adds its organization;
 * OrgPolicy is this alone.
 */
export interface BudgetGroupPolicy {
  id: number
  alias: string
  blocked: boolean
  /** Model globs; null: every model the key and plan allow */
  allowedModels: string[] | null
  rpm: number | null
  tpm: number | null
  /** pico-USD per period (or for the group's whole life without one); null = no budget */
  maxBudgetPico: bigint | null
  /** Spent in the current period (committed + recorded, not held), as a key's spentPico */
  spentPico: bigint
  spendPeriod: SpendPeriod | null
  periodStartsAt: number
  periodEndsAt: number
  /** What requests in flight through its keys hold (survives a reload: the object is kept) */
  heldPico: bigint
}

/** The columns a policy is read from (each level's table has them; a team adds organization_id). */
export const BUDGET_GROUP_COLUMNS = ['id', 'alias', 'blocked_at', 'allowed_models', 'rpm', 'tpm', 'max_budget', 'budget_period', 'spent', 'period_spent', 'period_start'] as const

/** A row read with BUDGET_GROUP_COLUMNS -> its policy, nothing held yet. */
export function budgetGroupPolicy(row: Record<string, any>, pendingSince: (sinceMs: number) => bigint, now: number): BudgetGroupPolicy {
  return {
    id: Number(row.id),
    alias: row.alias,
    blocked: row.blocked_at !== null,
    allowedModels: Array.isArray(row.allowed_models) && row.allowed_models.length > 0 ? row.allowed_models : null,
    rpm: row.rpm ?? null,
    tpm: row.tpm ?? null,
    maxBudgetPico: row.max_budget === null ? null : toPico(String(row.max_budget)),
    ...budgetSpend(row, pendingSince, now),
    heldPico: 0n,
  }
}

/**
 * The policy a reload keeps: the object loaded before, updated in place with
 * what was read (requests in flight hold on it and release there), or the
 * one read when it is new.
 */
export function keptPolicy<P extends BudgetGroupPolicy>(previous: P | undefined, loaded: P): P {
  return previous ? Object.assign(previous, loaded, { heldPico: previous.heldPico }) : loaded
}

/**
 * What a group's budget counts, from its row (as catalog.ts keySpend): the
 * whole spend, or the current period's, plus what the meter holds
 * uncommitted of calls begun in it.
 */
export function budgetSpend(row: Record<string, any>, pendingSince: (sinceMs: number) => bigint, now: number) {
  if (!isSpendPeriod(row.budget_period)) {
    return {
      spentPico: toPico(String(row.spent ?? '0')) + pendingSince(-Infinity),
      spendPeriod: null,
      periodStartsAt: -Infinity,
      periodEndsAt: Infinity,
    }
  }
  const { start, end } = periodBounds(row.budget_period, now)
  const rowStart = row.period_start ? dayStartMs(row.period_start) : null
  return {
    spentPico: (rowStart === start ? toPico(String(row.period_spent ?? '0')) : 0n) + pendingSince(start),
    spendPeriod: row.budget_period as SpendPeriod,
    periodStartsAt: start,
    periodEndsAt: end,
  }
}

/**
 * 402 spend_limit_exceeded, the key cap's code and wording, when the group's
 * spend plus what requests in flight hold reached its budget. Per request:
 * `level` is a literal ('team', 'organization'), nothing is allocated unless
 * it refuses.
 */
export function assertGroupBudget(group: BudgetGroupPolicy, level: string) {
  if (group.maxBudgetPico === null) return
  if (group.spendPeriod !== null) rollSpendPeriod(group, Date.now())
  if (group.spentPico + group.heldPico >= group.maxBudgetPico) {
    const message =
      group.spendPeriod === null
        ? `This API key's ${level} '${group.alias}' reached its budget`
        : `This API key's ${level} '${group.alias}' reached its budget for this ${group.spendPeriod} (UTC); it resets at ${new Date(group.periodEndsAt).toISOString()}`
    throw new GatewayError(402, 'spend_limit_exceeded', message, 'insufficient_quota')
  }
}

/** What the group's budget still has beyond every hold (null: no budget). */
export function budgetRoom(group: BudgetGroupPolicy): bigint | null {
  if (group.maxBudgetPico === null) return null
  if (group.spendPeriod !== null) rollSpendPeriod(group, Date.now())
  return group.maxBudgetPico - group.spentPico - group.heldPico
}

/** A `date` column as node-pg returns it (a Date at local midnight, or a string) -> epoch ms of that UTC day. */
function dayStartMs(value: Date | string): number {
  if (typeof value === 'string') return Date.parse(`${value.slice(0, 10)}T00:00:00Z`)
  return Date.UTC(value.getFullYear(), value.getMonth(), value.getDate())
}
