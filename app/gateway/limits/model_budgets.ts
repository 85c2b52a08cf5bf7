import { GatewayError } from '#exceptions/gateway_error'
import { fromPico, toPico } from '#gateway/metering/money'
import { isSpendPeriod, periodBounds, addSpendInPeriod, rollSpendPeriod, type SpendPeriod } from '#gateway/metering/spend_period'

/**
 * A key's USD budget for one model (LiteLLM's model_max_budget), as the hot
 * path holds it: the model is the name the client asked for (as the key's
 * rpm/tpm per model, model_limits.ts); a fallback model's cost counts on the
 * name asked for (usage_records.requested_model). Its spend is kept by the
 * meter's statement in api_key_model_spend (MODEL_BUDGET_SPEND_EFFECT), read
 * with the key, and held in memory like a team's budget: requests in flight
 * hold their estimate here, checked in the same synchronous step as the hold.
 */
export interface ModelBudget {
  keyId: number
  model: string
  /** `${keyId} ${model}`: the meter's and the pending totals' name for it */
  id: string
  limitPico: bigint
  spendPeriod: SpendPeriod | null
  /** Spent in the current period (or ever, without one): committed + recorded, not held */
  spentPico: bigint
  periodStartsAt: number
  periodEndsAt: number
  /** What requests in flight hold (survives a reload of the key: the object is kept) */
  heldPico: bigint
}

/**
 * The budgets by id. Module-level, as key_reservations.ts: the key's cached
 * record is replaced when it is reloaded, the budget object (and its holds)
 * is kept. A budget removed from its key stays here (holds still out release on it;
 * one small object per key and model that ever had a budget, never dropped).
 */
const budgets = new Map<string, ModelBudget>()

/** The stored setting of one model: {"budget": "5", "budget_period": "day"} inside api_keys.model_limits. */
export interface StoredModelBudget {
  budget?: string
  budget_period?: SpendPeriod
}

/** What the meter has not committed yet for a budget, of calls begun at or after `sinceMs`. */
export interface ModelBudgetPendingSource {
  pendingModelBudgetCost(id: string, sinceMs: number): bigint
}

/** One api_key_model_spend row as the key's load reads it. */
export interface ModelSpendRow {
  model: string
  spent: string
  period_spent: string
  period_start: Date | string | null
}

/**
 * The key's budget for `model` from its stored setting and its spend row (as
 * catalog.ts keySpend): null when the setting has no budget. The same object
 * as before when the key had it: holds of requests in flight stay on it.
 */
export function modelBudgetOf(
  keyId: number,
  model: string,
  setting: Record<string, unknown>,
  spend: ModelSpendRow | undefined,
  pending: ModelBudgetPendingSource,
  now = Date.now()
): ModelBudget | null {
  const raw = setting.budget
  if (typeof raw !== 'string' && typeof raw !== 'number') return null
  let limitPico: bigint
  try {
    limitPico = toPico(String(raw))
  } catch {
    return null
  }
  const id = `${keyId} ${model}`
  const period = isSpendPeriod(setting.budget_period) ? setting.budget_period : null
  let spentPico: bigint
  let periodStartsAt = -Infinity
  let periodEndsAt = Infinity
  if (period === null) {
    spentPico = (spend ? toPico(String(spend.spent)) : 0n) + pending.pendingModelBudgetCost(id, -Infinity)
  } else {
    const { start, end } = periodBounds(period, now)
    periodStartsAt = start
    periodEndsAt = end
    const rowStart = spend?.period_start ? dayStartMs(spend.period_start) : null
    spentPico = (rowStart === start ? toPico(String(spend!.period_spent)) : 0n) + pending.pendingModelBudgetCost(id, start)
  }
  const loaded = { keyId, model, id, limitPico, spendPeriod: period, spentPico, periodStartsAt, periodEndsAt }
  const previous = budgets.get(id)
  if (previous) return Object.assign(previous, loaded)
  const budget: ModelBudget = { ...loaded, heldPico: 0n }
  budgets.set(id, budget)
  return budget
}

/** A recorded request's cost (the meter's onRecord), in the period its call began. */
export function applyModelBudgetSpend(id: string, costPico: bigint, createdAtMs: number) {
  if (costPico === 0n) return
  const budget = budgets.get(id)
  if (budget === undefined) return
  addSpendInPeriod(budget, costPico, createdAtMs)
}

/** The budget by its id (tests, /key/info). */
export function modelBudgetById(id: string): ModelBudget | undefined {
  return budgets.get(id)
}

/** Forgets every budget (tests: a database reset restarts the key ids). */
export function forgetModelBudgets() {
  budgets.clear()
}

/**
 * 402 budget_exceeded when the model's spend plus what requests in flight
 * hold reached its budget, naming the model and, for a budget that resets,
 * when. Checked beside the key's cap (access_policy.ts), in the same
 * synchronous step as the request's hold.
 */
export function assertModelBudget(budget: ModelBudget) {
  if (budget.spendPeriod !== null) rollSpendPeriod(budget, Date.now())
  if (budget.spentPico + budget.heldPico < budget.limitPico) return
  const spent = `$${trimmed(fromPico(budget.spentPico))} of $${trimmed(fromPico(budget.limitPico))}`
  const message =
    budget.spendPeriod === null
      ? `Budget exceeded: this API key's budget for model '${budget.model}' is spent (${spent})`
      : `Budget exceeded: this API key's budget for model '${budget.model}' is spent for this ${budget.spendPeriod} (${spent}, UTC); it resets at ${new Date(budget.periodEndsAt).toISOString()}`
  throw new GatewayError(402, 'budget_exceeded', message, 'insufficient_quota')
}

/** What the model's budget still has beyond every hold (what a stream may take more: stream_hold.ts). */
export function modelBudgetRoom(budget: ModelBudget): bigint {
  if (budget.spendPeriod !== null) rollSpendPeriod(budget, Date.now())
  return budget.limitPico - budget.spentPico - budget.heldPico
}

function trimmed(amount: string) {
  return amount.includes('.') ? amount.replace(/\.?0+$/, '') : amount
}

/** A `date` column as node-pg returns it (a Date at local midnight, or a string) -> epoch ms of that UTC day. */
function dayStartMs(value: Date | string): number {
  if (typeof value === 'string') return Date.parse(`${value.slice(0, 10)}T00:00:00Z`)
  return Date.UTC(value.getFullYear(), value.getMonth(), value.getDate())
}
