import { randomUUID } from 'node:crypto'
import db from '@adonisjs/lucid/services/db'
import { AdminInputError } from '#actions/admin_input_error'
import { cliActor, writeAudit, type Actor } from '#actions/audit'
import { periodBounds, type SpendPeriod } from '#gateway/metering/spend_period'
import { budgetSettingsValidator } from '#validators/budget'
import type { TransactionClientContract } from '@adonisjs/lucid/types/database'

/**
 * Shared budgets (table budgets, migration 1012; LiteLLM's /budget/*): limits
 * an admin links end users to. Each linked end user takes the budget's
 * max_budget per budget_period, rpm and tpm, counting its own spend; a change
 * here reaches every gateway's cache by NOTIFY (budgets_notify_change).
 * A budget still linked is not deleted: unlink its end users first.
 */
export interface BudgetSettings {
  /** LiteLLM's budget_id; a new budget without one gets a UUID */
  budgetId?: string
  maxBudget?: string | null
  softBudget?: string | null
  budgetPeriod?: SpendPeriod | null
  rpm?: number | null
  tpm?: number | null
  maxParallel?: number | null
}

export interface BudgetRow {
  id: number
  budget_id: string
  max_budget: string | null
  soft_budget: string | null
  budget_period: SpendPeriod | null
  rpm: number | null
  tpm: number | null
  max_parallel: number | null
  created_at: Date
  updated_at: Date
  /** End users linked to it */
  end_users: number
}

/** A budget_id to look up: as the validator takes them (a NUL in a query is a Postgres error, i.e. a 500), else 400. */
function checkedId(budgetId: string): string {
  if (typeof budgetId !== 'string' || !/^[^\u0000-\u001f\u007f]{1,128}$/.test(budgetId)) {
    throw new AdminInputError('A budget id is 1 to 128 characters without control characters', 'budget_id')
  }
  return budgetId
}

export async function listBudgets(): Promise<BudgetRow[]> {
  const rows = await db
    .from('budgets as b')
    .select('b.*', db.raw('(SELECT COUNT(*)::int FROM end_users e WHERE e.budget_id = b.id) AS end_users'))
    .orderBy('b.budget_id')
  return rows as BudgetRow[]
}

/** The budget named `budgetId`, or a 404-kind error. */
export async function findBudget(budgetId: string, trx?: TransactionClientContract): Promise<BudgetRow> {
  const row = await (trx ?? db)
    .from('budgets as b')
    .where('b.budget_id', checkedId(budgetId))
    .select('b.*', db.raw('(SELECT COUNT(*)::int FROM end_users e WHERE e.budget_id = b.id) AS end_users'))
    .first()
  if (!row) throw AdminInputError.notFound(`No budget "${budgetId}"`)
  return row as BudgetRow
}

export async function createBudget(input: BudgetSettings, actor: Actor = cliActor()): Promise<BudgetRow> {
  const settings = await budgetSettingsValidator.validate(input)
  const budgetId = settings.budgetId ?? randomUUID()
  return db.transaction(async (trx) => {
    // ON CONFLICT: two creates of one id at once both passed a look first, and the second's insert was a 500.
    const [row] = await trx
      .table('budgets')
      .insert({ budget_id: budgetId, ...columnsOf(settings) })
      .onConflict('budget_id')
      .ignore()
      .returning('*')
    if (!row) throw new AdminInputError(`A budget "${budgetId}" already exists: change it with an update`, 'budget_id')
    await writeAudit(trx, actor, {
      action: 'budget.create',
      subjectType: 'budget',
      subjectId: Number(row.id),
      summary: `budget ${budgetId} created`,
      after: row,
    })
    return { ...row, end_users: 0 }
  })
}

export async function updateBudget(budgetId: string, input: BudgetSettings, actor: Actor = cliActor()): Promise<BudgetRow> {
  const settings = await budgetSettingsValidator.validate(input)
  return db.transaction(async (trx) => {
    const before = await trx.from('budgets').where('budget_id', checkedId(budgetId)).forUpdate().first()
    if (!before) throw AdminInputError.notFound(`No budget "${budgetId}"`)
    const changes = columnsOf(settings)
    if (settings.budgetId !== undefined && settings.budgetId !== budgetId) {
      throw new AdminInputError('A budget keeps its budget_id', 'budget_id')
    }
    const [row] = await trx.from('budgets').where('id', before.id).update({ ...changes, updated_at: new Date() }).returning('*')
    // A new period for every linked end user: their spend in it, from their usage rows (as a team's on a period change).
    if (settings.budgetPeriod !== undefined && settings.budgetPeriod !== before.budget_period) {
      await restartLinkedPeriods(trx, Number(before.id), settings.budgetPeriod)
    }
    await writeAudit(trx, actor, {
      action: 'budget.update',
      subjectType: 'budget',
      subjectId: Number(row.id),
      summary: `budget ${budgetId} changed`,
      before,
      after: row,
    })
    return findBudget(budgetId, trx)
  })
}

/** Deletes a budget no end user is linked to (a linked one: 400 naming how many, nothing changed). */
export async function deleteBudget(budgetId: string, actor: Actor = cliActor()): Promise<BudgetRow> {
  return db.transaction(async (trx) => {
    const before = await trx.from('budgets').where('budget_id', checkedId(budgetId)).forUpdate().first()
    if (!before) throw AdminInputError.notFound(`No budget "${budgetId}"`)
    const linked = await trx.from('end_users').where('budget_id', before.id).count('* as n').first()
    const count = Number(linked?.n ?? 0)
    if (count > 0) {
      throw new AdminInputError(
        `Budget "${budgetId}" is linked to ${count} customer${count === 1 ? '' : 's'}: unlink them (budget_id: null) before deleting it`,
        'id'
      )
    }
    await trx.from('budgets').where('id', before.id).delete()
    await writeAudit(trx, actor, {
      action: 'budget.delete',
      subjectType: 'budget',
      subjectId: Number(before.id),
      summary: `budget ${budgetId} deleted`,
      before,
    })
    return { ...before, end_users: 0 }
  })
}

/**
 * The linked end users' spend in the budget's new period, read from their
 * usage rows; their rows, then their owners' rows locked first, as setEndUser
 * does (and the meter's statement: architecture.md "Row locks and their
 * order"), so a batch that committed is in the sum and one started later sees
 * these rows.
 */
async function restartLinkedPeriods(trx: TransactionClientContract, budgetKey: number, period: SpendPeriod | null) {
  // In id order: two budgets changed at once, sharing owners, lock them in the same order (no deadlock). The
  // owners before the end users deadlocked with a batch that had updated an end user and waited on its owner.
  await trx.from('end_users').where('budget_id', budgetKey).orderBy('id').forUpdate().select('id')
  await trx.from('users').whereIn('id', trx.from('end_users').where('budget_id', budgetKey).select('user_id')).orderBy('id').forUpdate().select('id')
  // The period the meter counts in is on each row it updates (migration 1016): a batch waiting on these rows re-reads it.
  if (period === null) {
    await trx.from('end_users').where('budget_id', budgetKey).update({ spend_period: null })
    return
  }
  const start = new Date(periodBounds(period, Date.now()).start)
  await trx.rawQuery(
    `UPDATE end_users e SET spend_period = ?, period_start = ?::date,
       period_spent = (SELECT COALESCE(SUM(u.cost), 0) FROM usage_records u
                        WHERE u.end_user = e.end_user AND u.user_id = e.user_id AND u.created_at >= ?)
     WHERE e.budget_id = ?`,
    [period, start.toISOString().slice(0, 10), start, budgetKey]
  )
}

function columnsOf(settings: Awaited<ReturnType<typeof budgetSettingsValidator.validate>>) {
  const columns: Record<string, unknown> = {}
  if (settings.maxBudget !== undefined) columns.max_budget = settings.maxBudget
  if (settings.softBudget !== undefined) columns.soft_budget = settings.softBudget
  if (settings.budgetPeriod !== undefined) columns.budget_period = settings.budgetPeriod
  if (settings.rpm !== undefined) columns.rpm = settings.rpm
  if (settings.tpm !== undefined) columns.tpm = settings.tpm
  if (settings.maxParallel !== undefined) columns.max_parallel = settings.maxParallel
  return columns
}
