import db from '@adonisjs/lucid/services/db'
import type { TransactionClientContract } from '@adonisjs/lucid/types/database'
import { AdminInputError } from '#actions/admin_input_error'
import { describeChanges, writeAudit, type Actor } from '#actions/audit'
import { periodBounds, type SpendPeriod } from '#gateway/metering/spend_period'
import { recordId } from '#services/record_id'
import { holdsNul, teamSettingsValidator } from '#validators/team'

/**
 * A budget group: a policy with a budget per UTC day/week/month or for its
 * life, model globs, rpm/tpm and a block over what is put in it. Teams (over
 * keys, app/actions/teams.ts) and organizations (over teams,
 * app/actions/organizations.ts) are the two levels; each is a
 * BudgetGroupKind plus what only it has (a team's organization, the
 * members). Here: the settings checked and turned into columns, create,
 * update (with a new period's recount of spend) and delete, and their audit
 * entries. A third level is a table with these columns, a kind and its
 * usage_records column.
 */
export interface BudgetGroupSettings {
  alias?: string
  /** USD as a decimal string; null: no budget */
  maxBudget?: string | null
  budgetPeriod?: SpendPeriod | null
  /** Model globs; null or []: every model the key and plan allow */
  models?: string[] | null
  rpm?: number | null
  tpm?: number | null
  blocked?: boolean
  /** Kept and answered back (LiteLLM's metadata); the gateway reads nothing in it */
  metadata?: Record<string, unknown> | null
}

/** The columns every budget group's table has (teams, organizations). */
export interface BudgetGroupRow {
  id: number
  alias: string
  max_budget: string | null
  budget_period: SpendPeriod | null
  spent: string
  period_spent: string
  period_start: string | Date | null
  allowed_models: string[] | null
  rpm: number | null
  tpm: number | null
  blocked_at: Date | null
  metadata: Record<string, unknown>
  created_at: Date
  updated_at: Date
}

/** The budget columns (budgetSpentNow, budgetResetsAt). */
export type BudgetColumns = Pick<BudgetGroupRow, 'budget_period' | 'spent' | 'period_spent' | 'period_start'>

/** One level of budget groups: where its rows live and how it is named in messages and the audit log. */
export interface BudgetGroupKind<Row extends BudgetGroupRow> {
  table: string
  /** The audit subject, its actions' prefix (`team.create`) and the word in summaries */
  subject: string
  /** usage_records' column naming the group each request was admitted under (a new period's recount) */
  usageColumn: string
  /** The members' table and its column naming the group (team_members.team_id) */
  membersTable: string
  memberColumn: string
  /** Refused create without an alias */
  aliasRequired: string
  /** The 404's message for a ref no row has */
  notFound(ref: unknown): string
  normalised(row: Record<string, any>): Row
  /** What the audit entries keep and compare (describeChanges) */
  snapshot(row: Row): Record<string, unknown>
}

export type CheckedSettings = Awaited<ReturnType<typeof checkedSettings>>

/** A group by id (a number or its digits); 404 otherwise. Locked when read in a transaction. */
export async function findGroup<Row extends BudgetGroupRow>(kind: BudgetGroupKind<Row>, ref: unknown, trx?: TransactionClientContract): Promise<Row> {
  const id = recordId(ref)
  const query = (trx ?? db).from(kind.table).where('id', id ?? 0)
  const row = id === null ? null : await (trx ? query.forUpdate() : query).first()
  if (!row) throw AdminInputError.notFound(kind.notFound(ref))
  return kind.normalised(row)
}

/**
 * Creates a group. `extraColumns` (in the transaction, before the insert)
 * adds what only this level has (a team's organization).
 */
export async function createGroup<Row extends BudgetGroupRow>(
  kind: BudgetGroupKind<Row>,
  input: BudgetGroupSettings,
  actor: Actor,
  extraColumns?: (trx: TransactionClientContract) => Promise<Record<string, unknown> | null>
): Promise<Row> {
  const settings = await checkedSettings(input)
  if (!settings.alias) throw new AdminInputError(kind.aliasRequired, 'alias')
  return db.transaction(async (trx) => {
    const extra = extraColumns ? await extraColumns(trx) : null
    const [row] = await trx
      .table(kind.table)
      .insert({
        alias: settings.alias,
        ...settingsColumns(settings),
        ...extra,
        blocked_at: settings.blocked ? new Date() : null,
        metadata: JSON.stringify(input.metadata ?? {}),
      })
      .returning('*')
    const group = kind.normalised(row)
    await writeAudit(trx, actor, {
      action: `${kind.subject}.create`,
      subjectType: kind.subject,
      subjectId: group.id,
      summary: `${kind.subject} ${group.alias} created: ${describeGroup(group)}`,
      after: kind.snapshot(group),
    })
    return group
  })
}

/**
 * Changes the settings given (the rest kept); null clears a budget or limit.
 * `lockedFirst` adds what only this level has, read (and locked) in the
 * transaction before the group's row: a parent's row (a team's
 * organization) is locked before its child's, as the meter's statement
 * takes them (architecture.md "Row locks and their order"). An unknown
 * group is then said first, as without it.
 */
export async function updateGroup<Row extends BudgetGroupRow>(
  kind: BudgetGroupKind<Row>,
  ref: unknown,
  input: BudgetGroupSettings,
  actor: Actor,
  lockedFirst?: (trx: TransactionClientContract) => Promise<Record<string, unknown>>
): Promise<Row> {
  const settings = await checkedSettings(input)
  if (lockedFirst) await findGroup(kind, ref)
  return db.transaction(async (trx) => {
    const extra = lockedFirst ? await lockedFirst(trx) : null
    const before = await findGroup(kind, ref, trx)
    const changes: Record<string, unknown> = { ...settingsColumns(settings), updated_at: new Date() }
    if (settings.alias !== undefined) changes.alias = settings.alias
    if (extra) Object.assign(changes, extra)
    if (settings.blocked !== undefined && settings.blocked !== (before.blocked_at !== null)) {
      changes.blocked_at = settings.blocked ? new Date() : null
    }
    if (input.metadata !== undefined) changes.metadata = JSON.stringify(input.metadata ?? {})
    // Clearing the budget clears its period (a period alone means nothing).
    if (settings.maxBudget === null && settings.budgetPeriod === undefined) changes.budget_period = null
    const period = changes.budget_period === undefined ? before.budget_period : (changes.budget_period as SpendPeriod | null)
    if (period !== before.budget_period && period !== null) {
      // A new period starts with what was spent under the group in it so far (then the meter adds each charge).
      Object.assign(changes, await periodSpent(trx, kind.usageColumn, before.id, before.spent, period))
    }
    const [row] = await trx.from(kind.table).where('id', before.id).update(changes).returning('*')
    const group = kind.normalised(row)
    const described = describeChanges(kind.snapshot(before), kind.snapshot(group))
    if (described !== '') {
      await writeAudit(trx, actor, {
        action: `${kind.subject}.update`,
        subjectType: kind.subject,
        subjectId: group.id,
        summary: `${kind.subject} ${group.alias}: ${described}`,
        before: kind.snapshot(before),
        after: kind.snapshot(group),
      })
    }
    return group
  })
}

/**
 * Deletes groups: every ref read first (one unknown deletes none), then
 * `leftBehind` for each (what the audit summary adds, or a refusal that
 * deletes none), then the rows.
 */
export async function deleteGroups<Row extends BudgetGroupRow>(
  kind: BudgetGroupKind<Row>,
  refs: unknown[],
  actor: Actor,
  leftBehind: (trx: TransactionClientContract, group: Row) => Promise<string>
): Promise<Row[]> {
  return db.transaction(async (trx) => {
    // Locked in id order (findGroup locks each): two deletes naming the same groups in other orders
    // queue instead of deadlocking. Answered and audited in the order given.
    const byId = new Map<number, Row>()
    const inIdOrder = [...refs].sort((a, b) => (recordId(a) ?? 0) - (recordId(b) ?? 0))
    for (const ref of inIdOrder) {
      const id = recordId(ref)
      if (id === null || !byId.has(id)) {
        const group = await findGroup(kind, ref, trx)
        byId.set(group.id, group)
      }
    }
    const groups: Row[] = []
    for (const ref of refs) {
      const group = byId.get(recordId(ref)!)!
      if (!groups.includes(group)) groups.push(group)
    }
    const notes: string[] = []
    for (const group of groups) notes.push(await leftBehind(trx, group))
    for (const [index, group] of groups.entries()) {
      await trx.from(kind.table).where('id', group.id).delete()
      await writeAudit(trx, actor, {
        action: `${kind.subject}.delete`,
        subjectType: kind.subject,
        subjectId: group.id,
        summary: `${kind.subject} ${group.alias} deleted${notes[index]}`,
        before: kind.snapshot(group),
      })
    }
    return groups
  })
}

/** A level's groups, newest first (operators have a few to hundreds). */
export async function listGroups<Row extends BudgetGroupRow>(kind: BudgetGroupKind<Row>): Promise<Row[]> {
  const rows = await db.from(kind.table).orderBy('id', 'desc').limit(1000)
  return rows.map(kind.normalised)
}

/** The groups of a level a user is a member of, oldest membership first. */
export async function groupsOfUser<Row extends BudgetGroupRow>(kind: BudgetGroupKind<Row>, userId: number): Promise<Row[]> {
  const rows = await db
    .from(`${kind.table} as g`)
    .join(`${kind.membersTable} as m`, `m.${kind.memberColumn}`, 'g.id')
    .where('m.user_id', userId)
    .orderBy('m.created_at')
    .select('g.*')
  return rows.map(kind.normalised)
}

/** The settings checked (the metadata's NUL first, then the values); the same rules for every level. */
export async function checkedSettings(input: BudgetGroupSettings) {
  if (holdsNul(input.metadata)) throw new AdminInputError('metadata: text in it cannot hold a NUL character', 'metadata')
  return teamSettingsValidator.validate({
    alias: input.alias,
    maxBudget: input.maxBudget,
    budgetPeriod: input.budgetPeriod,
    models: input.models,
    rpm: input.rpm,
    tpm: input.tpm,
    blocked: input.blocked,
  })
}

/** The settings' columns (given ones only). */
export function settingsColumns(settings: CheckedSettings) {
  const columns: Record<string, unknown> = {}
  if (settings.maxBudget !== undefined) columns.max_budget = settings.maxBudget
  if (settings.budgetPeriod !== undefined) columns.budget_period = settings.budgetPeriod
  if (settings.models !== undefined) columns.allowed_models = settings.models && settings.models.length > 0 ? JSON.stringify(settings.models) : null
  if (settings.rpm !== undefined) columns.rpm = settings.rpm
  if (settings.tpm !== undefined) columns.tpm = settings.tpm
  return columns
}

/** A row as node-pg returns it -> the group's shape (numeric id, no empty globs, metadata an object). */
export function normalisedGroup(row: Record<string, any>): BudgetGroupRow {
  return {
    ...row,
    id: Number(row.id),
    allowed_models: Array.isArray(row.allowed_models) && row.allowed_models.length > 0 ? row.allowed_models : null,
    metadata: row.metadata ?? {},
  } as BudgetGroupRow
}

/** The settings an audit entry keeps (a level adds its own after them). */
export function groupSnapshot(group: BudgetGroupRow) {
  return {
    alias: group.alias,
    max_budget: group.max_budget,
    budget_period: group.budget_period,
    models: group.allowed_models,
    rpm: group.rpm,
    tpm: group.tpm,
    blocked: group.blocked_at !== null,
    metadata: group.metadata,
  }
}

/** A created group's settings in words (its audit summary). */
function describeGroup(group: BudgetGroupRow) {
  const parts = [group.max_budget === null ? 'no budget' : `budget $${plain(group.max_budget)}${group.budget_period ? ` a ${group.budget_period}` : ''}`]
  if (group.allowed_models) parts.push(`models ${group.allowed_models.join(', ')}`)
  if (group.rpm) parts.push(`${group.rpm} rpm`)
  if (group.tpm) parts.push(`${group.tpm} tpm`)
  if (group.blocked_at) parts.push('blocked')
  return parts.join(', ')
}

function plain(amount: string) {
  return amount.includes('.') ? amount.replace(/\.?0+$/, '') : amount
}

/**
 * A new period's start: what was spent under the group in the current
 * `period`, from the usage rows made under it (`usage_records.<column>`: the
 * team, or organization, each request was admitted under). A key that joined
 * from another team brings none of its spend there; one that left keeps what
 * it spent here counted here. Under the group's row lock: a metering batch
 * committing meanwhile waits for it, then adds its own cost
 * (TEAM_SPEND_EFFECT, ORG_SPEND_EFFECT).
 */
export async function periodSpent(trx: TransactionClientContract, column: string, id: number, lifetimeSpent: string, period: SpendPeriod) {
  const start = new Date(periodBounds(period, Date.now()).start)
  const row = await trx
    .from('usage_records')
    .where(column, id)
    .where('created_at', '>=', start)
    // Never above the lifetime spend: rows from before migration 1011 got their key's team as it is now.
    .select(db.raw('least(coalesce(sum(cost), 0), ?::numeric)::text AS spent', [lifetimeSpent]))
    .first()
  return { period_spent: row?.spent ?? '0', period_start: start.toISOString().slice(0, 10) }
}

/** What the group's budget counts now: this period's spend (0 when the row's period is an older one), or the whole. */
export function budgetSpentNow(group: BudgetColumns): string {
  if (!group.budget_period) return group.spent
  const start = new Date(periodBounds(group.budget_period, Date.now()).start).toISOString().slice(0, 10)
  return dayText(group.period_start) === start ? group.period_spent : '0'
}

/** When the group's budget resets (null without a period). */
export function budgetResetsAt(group: BudgetColumns): string | null {
  return group.budget_period ? new Date(periodBounds(group.budget_period, Date.now()).end).toISOString() : null
}

function dayText(value: string | Date | null): string | null {
  if (value === null) return null
  if (typeof value === 'string') return value.slice(0, 10)
  return `${value.getFullYear()}-${String(value.getMonth() + 1).padStart(2, '0')}-${String(value.getDate()).padStart(2, '0')}`
}
