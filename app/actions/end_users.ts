import db from '@adonisjs/lucid/services/db'
import { AdminInputError } from '#actions/admin_input_error'
import { cliActor, writeAudit, type Actor } from '#actions/audit'
import { findUser } from '#actions/post_ledger_entry'
import { isEndUser, MAX_END_USER_LENGTH } from '#gateway/end_users/end_user_id'
import { parseDecimal, PICO_DECIMALS } from '#gateway/metering/money'
import { periodBounds, type SpendPeriod } from '#gateway/metering/spend_period'
import { endUserLimitsValidator } from '#validators/budget'
import type { TransactionClientContract } from '@adonisjs/lucid/types/database'

/**
 * An owner's settings for one of their end users (LiteLLM's customers):
 * blocked, and a monthly spend limit in USD (null: none). The panel, the
 * management API and `enduser:set` share these; the gateways' caches hear
 * of a change through NOTIFY (end_users_notify_change, migration 998).
 */
export interface EndUserSettings {
  /** The owner: a user's id or e-mail */
  userRef: string
  endUser: string
  /** Left as it is when undefined (a new row: false) */
  blocked?: boolean
  /** USD per budgetPeriod as a decimal string; null removes the limit; undefined leaves it (a new row: none) */
  monthlyLimit?: string | null
  /** The limit's period; null: the end user's whole life; undefined leaves it (a new row: month) */
  budgetPeriod?: SpendPeriod | null
  /** Requests / tokens a minute; null: none; undefined leaves it */
  rpm?: number | null
  tpm?: number | null
  /** A shared budget's budget_id to link to (its limits replace these); null unlinks; undefined leaves it */
  budgetId?: string | null
  /** Refused (a conflict on `endUser`) when the owner already lists it: LiteLLM's /customer/new, checked under the owner's lock */
  mustBeNew?: boolean
}

export interface EndUserRow {
  id: number
  user_id: number
  end_user: string
  blocked: boolean
  monthly_limit: string | null
  budget_period: SpendPeriod | null
  rpm: number | null
  tpm: number | null
  budget_id: number | null
  spent: string
  period_spent: string
  period_start: string | null
}

/** Creates the owner's end user or changes what is given of it. */
export async function setEndUser(input: EndUserSettings, actor: Actor = cliActor()) {
  const endUser = checkedName(input.endUser)
  const limit = input.monthlyLimit === undefined || input.monthlyLimit === null ? input.monthlyLimit : checkedLimit(input.monthlyLimit)
  const limits = await endUserLimitsValidator.validate({ budgetPeriod: input.budgetPeriod, rpm: input.rpm, tpm: input.tpm, budgetId: input.budgetId })
  // A change that finds its end user made meanwhile starts again (once is enough: the row then exists).
  for (let attempt = 0; ; attempt++) {
    try {
      return await setEndUserOnce(input, endUser, limit, limits, actor)
    } catch (error) {
      if (!(error instanceof MadeMeanwhile) || attempt >= 2) throw error
    }
  }
}

/** The end user appeared while the change waited on its owner: locking it then would take the rows out of order. */
class MadeMeanwhile extends Error {}

async function setEndUserOnce(
  input: EndUserSettings,
  endUser: string,
  limit: string | null | undefined,
  limits: { budgetPeriod?: SpendPeriod | null; rpm?: number | null; tpm?: number | null; budgetId?: string | null },
  actor: Actor
) {
  return db.transaction(async (trx) => {
    const owner = await findUser(input.userRef, trx)
    let budget: { id: number; budget_period: SpendPeriod | null } | null | undefined
    if (limits.budgetId !== undefined && limits.budgetId !== null) {
      // Locked: a budget being deleted is not linked meanwhile, nor one whose period is changing. Before the
      // owner's row: updateBudget locks the budget, then the linked owners; the other order deadlocked (a 500).
      budget = await trx.from('budgets').where('budget_id', limits.budgetId).forShare().select('id', 'budget_period').first()
      if (!budget) throw AdminInputError.notFound(`No budget "${limits.budgetId}": create it first (/budget/new)`)
    } else if (limits.budgetId === null) budget = null
    // The end user's row, then the owner's, as the meter's statement takes them (architecture.md "Row locks and
    // their order": the owner's first deadlocked with a batch that had updated the end user and waited on the owner).
    const endUserRow = () => trx.from('end_users').where('user_id', owner.id).where('end_user', endUser).forUpdate().first()
    let before = await endUserRow()
    // The owner's row locked: a batch that committed its charges to them is in the sum below, one started later
    // sees this row. (One whose statement began before and commits after is in neither: architecture.md "End users".)
    await trx.from('users').where('id', owner.id).forUpdate().select('id')
    const exists = () => new AdminInputError(`user_id: customer "${endUser}" already exists: change it with /customer/update`, 'user_id')
    if (before && input.mustBeNew) throw exists()
    // None yet: another change may have made it while this one waited on the owner. Read again without a lock (locking
    // it now, after the owner, deadlocked with a change that had locked it and waited on the owner: ten concurrent
    // /customer/new, a 500); made meanwhile: refused when it must be new, else the change starts again in order.
    if (!before && (await trx.from('end_users').where('user_id', owner.id).where('end_user', endUser).select('id').first())) {
      if (input.mustBeNew) throw exists()
      throw new MadeMeanwhile()
    }
    const changes: Record<string, unknown> = { updated_at: new Date() }
    if (input.blocked !== undefined) changes.blocked = input.blocked
    if (limit !== undefined) changes.monthly_limit = limit
    if (limits.budgetPeriod !== undefined) changes.budget_period = limits.budgetPeriod
    if (limits.rpm !== undefined) changes.rpm = limits.rpm
    if (limits.tpm !== undefined) changes.tpm = limits.tpm
    if (budget !== undefined) changes.budget_id = budget === null ? null : budget.id
    // The period its limit counts in: its budget's when linked, else its own.
    const ownPeriod = changes.budget_period !== undefined ? (changes.budget_period as SpendPeriod | null) : before ? before.budget_period : 'month'
    const linkedTo = budget !== undefined ? budget : before?.budget_id ? await trx.from('budgets').where('id', before.budget_id).select('id', 'budget_period').first() : null
    const period: SpendPeriod | null = linkedTo ? linkedTo.budget_period : ownPeriod
    const beforePeriod: SpendPeriod | null | undefined = before
      ? before.budget_id
        ? (await trx.from('budgets').where('id', before.budget_id).select('budget_period').first())?.budget_period
        : before.budget_period
      : undefined
    // A new row, or a new period: its spend in the period, from its usage rows (the meter adds from here on).
    if (!before || period !== beforePeriod) Object.assign(changes, await periodSpent(trx, owner.id, endUser, period))
    // The period the meter counts in, on the row it updates (migration 1016: a join's would be a waiting batch's snapshot).
    changes.spend_period = period
    const [row] = before
      ? await trx.from('end_users').where('id', before.id).update(changes).returning('*')
      : await trx
          .table('end_users')
          .insert({
            user_id: owner.id,
            end_user: endUser,
            blocked: false,
            monthly_limit: null,
            budget_period: 'month',
            ...changes,
            ...(await lifetimeSpent(trx, owner.id, endUser)),
          })
          .returning('*')
    await writeAudit(trx, actor, {
      action: before ? 'end_user.update' : 'end_user.create',
      subjectType: 'user',
      subjectId: owner.id,
      summary: `end user ${endUser} of ${owner.email}: ${row.blocked ? 'blocked' : 'allowed'}, ${limitText(row, linkedTo ? limits.budgetId ?? null : null)}`,
      before: before ? settingsOf(before) : null,
      after: settingsOf(row),
    })
    return { owner, endUser: row as EndUserRow, created: !before }
  })
}

function limitText(row: Record<string, any>, budgetId: string | null): string {
  if (row.budget_id !== null) return budgetId ? `linked to budget ${budgetId}` : 'linked to a budget'
  if (row.monthly_limit === null) return 'no limit'
  return `limit $${plain(row.monthly_limit)} ${row.budget_period === null ? 'in all' : `a ${row.budget_period}`}`
}

/** Removes the owner's settings for the end user (its usage rows stay). */
export async function deleteEndUser(userRef: string, endUser: string, actor: Actor = cliActor()) {
  // No such name can be set (a NUL, which the text column refuses, was a 500): refused as setEndUser refuses it.
  checkedName(endUser)
  return db.transaction(async (trx) => {
    const owner = await findUser(userRef, trx)
    const removed = await trx.from('end_users').where('user_id', owner.id).where('end_user', endUser).delete().returning('*')
    if (removed.length === 0) throw AdminInputError.notFound(`No end user "${endUser}" set for ${owner.email}`)
    await writeAudit(trx, actor, {
      action: 'end_user.delete',
      subjectType: 'user',
      subjectId: owner.id,
      summary: `end user ${endUser} of ${owner.email} removed`,
      before: settingsOf(removed[0]),
    })
  })
}

/**
 * What the end user spent in the current `period` before it was listed or
 * its period changed: a limit set mid-period counts it (from then on the
 * meter's statement adds each charge). Without a period, only the lifetime
 * spend counts (lifetimeSpent).
 */
async function periodSpent(trx: TransactionClientContract, userId: number, endUser: string, period: SpendPeriod | null) {
  if (period === null) return { period_spent: '0', period_start: null }
  const start = new Date(periodBounds(period, Date.now()).start)
  const row = await trx
    .from('usage_records')
    .where('end_user', endUser)
    .where('user_id', userId)
    .where('created_at', '>=', start)
    .select(db.raw('coalesce(sum(cost), 0)::text AS spent'))
    .first()
  return { period_spent: row?.spent ?? '0', period_start: start.toISOString().slice(0, 10) }
}

/** Everything the end user spent before it was listed (a lifetime limit counts it). */
async function lifetimeSpent(trx: TransactionClientContract, userId: number, endUser: string) {
  const row = await trx
    .from('usage_records')
    .where('end_user', endUser)
    .where('user_id', userId)
    .select(db.raw('coalesce(sum(cost), 0)::text AS spent'))
    .first()
  return { spent: row?.spent ?? '0' }
}

function settingsOf(row: Record<string, any>) {
  return {
    end_user: row.end_user,
    blocked: row.blocked,
    monthly_limit: row.monthly_limit,
    budget_period: row.budget_period,
    rpm: row.rpm,
    tpm: row.tpm,
    budget_id: row.budget_id,
  }
}

function checkedName(value: string): string {
  if (typeof value !== 'string' || !isEndUser(value)) {
    throw new AdminInputError(`An end user id is 1 to ${MAX_END_USER_LENGTH} characters without control characters`, 'end_user')
  }
  return value
}

/** A monthly limit: a non-negative USD amount the numeric(24,12) column holds, as a decimal string. */
function checkedLimit(value: string): string {
  const text = String(value).trim()
  if (!/^\d{1,12}(\.\d{1,12})?$/.test(text)) {
    throw new AdminInputError('The monthly limit is an amount in USD such as 25 or 0.50 (at most 12 decimals)', 'monthly_limit')
  }
  parseDecimal(text, PICO_DECIMALS)
  return text
}

/** 25.000000000000 -> 25, 0.500000000000 -> 0.5 */
export function plain(amount: string | null): string {
  if (amount === null) return ''
  return String(amount).includes('.') ? String(amount).replace(/\.?0+$/, '') : String(amount)
}
