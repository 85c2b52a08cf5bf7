import db from '@adonisjs/lucid/services/db'
import type { TransactionClientContract } from '@adonisjs/lucid/types/database'
import { AdminInputError } from '#actions/admin_input_error'
import { cliActor, describeChanges, writeAudit, type Actor } from '#actions/audit'
import { findUser } from '#actions/post_ledger_entry'
import { findTeam, type MemberRole } from '#actions/teams'
import { periodBounds, type SpendPeriod } from '#gateway/metering/spend_period'
import { toPico } from '#gateway/metering/money'
import { memberLimitsValidator } from '#validators/team'

/**
 * Member budgets inside a team (team_members, migration 1039; LiteLLM's
 * `max_budget_in_team` on /team/member_add and /team/member_update): a
 * budget in USD on what the member spends through the team's keys they own,
 * per UTC day/week/month or for the membership's life, and rpm/tpm windows
 * of their own. The one implementation behind the panel's team page, the
 * management API, LiteLLM's endpoints and `team:member`; audited (subject
 * `team`, `team.member_update`). The gateways hear of a change through the
 * team_members trigger (`teams:<id>`).
 *
 * Locks: the team's row (findTeam), then the member's, as the meter's
 * statement takes them (architecture.md "Row locks and their order").
 */
export interface MemberLimits {
  /** USD as a decimal string; null: no budget */
  maxBudget?: string | null
  budgetPeriod?: SpendPeriod | null
  rpm?: number | null
  tpm?: number | null
}

export type CheckedMemberLimits = Awaited<ReturnType<typeof checkedMemberLimits>>

/** The member's settings and counters as team_members holds them. */
export interface MemberLimitColumns {
  max_budget: string | null
  budget_period: SpendPeriod | null
  spent: string
  period_spent: string
  period_start: string | Date | null
  rpm: number | null
  tpm: number | null
}

/** Checked once, before any transaction (the same rules as a team's budget and windows). */
export async function checkedMemberLimits(input: MemberLimits & { role?: MemberRole }) {
  return memberLimitsValidator.validate({
    role: input.role,
    maxBudget: input.maxBudget,
    budgetPeriod: input.budgetPeriod,
    rpm: input.rpm,
    tpm: input.tpm,
  })
}

/** Does the checked input change any limit? */
export function touchesLimits(limits: CheckedMemberLimits): boolean {
  return limits.maxBudget !== undefined || limits.budgetPeriod !== undefined || limits.rpm !== undefined || limits.tpm !== undefined
}

/** Does a membership with these columns have a limit (and so its spend kept by the meter)? */
export function hasLimits(row: Pick<MemberLimitColumns, 'max_budget' | 'rpm' | 'tpm'>): boolean {
  return row.max_budget !== null || row.rpm !== null || row.tpm !== null
}

/**
 * The columns a change of a member's limits writes, the member's row locked
 * (after the team's). The meter keeps a member's spend only while they have
 * a limit (MEMBER_SPEND_EFFECT): a limit set where none was starts `spent`
 * from their usage rows in the team, and a new period starts from those of
 * the period, as a team's does (budget_group.ts periodSpent). A batch
 * committing meanwhile waits on the member's row, then adds its own cost.
 * Clearing the budget clears its period.
 */
export async function memberLimitChanges(
  trx: TransactionClientContract,
  teamId: number,
  userId: number,
  before: MemberLimitColumns,
  limits: CheckedMemberLimits
): Promise<Record<string, unknown>> {
  const changes: Record<string, unknown> = {}
  if (limits.maxBudget !== undefined) changes.max_budget = limits.maxBudget
  if (limits.budgetPeriod !== undefined) changes.budget_period = limits.budgetPeriod
  if (limits.rpm !== undefined) changes.rpm = limits.rpm
  if (limits.tpm !== undefined) changes.tpm = limits.tpm
  if (limits.maxBudget === null && limits.budgetPeriod === undefined) changes.budget_period = null
  const after = { ...before, ...changes } as MemberLimitColumns
  const started = !hasLimits(before) && hasLimits(after)
  if (started) changes.spent = await spentInTeam(trx, teamId, userId, null)
  const spent = (changes.spent as string | undefined) ?? before.spent
  if (after.budget_period !== null && (started || after.budget_period !== before.budget_period)) {
    const start = new Date(periodBounds(after.budget_period, Date.now()).start)
    // Never above the kept spend (rows the meter counted before a limit lapsed are all in it).
    const inPeriod = await spentInTeam(trx, teamId, userId, start)
    changes.period_spent = toPico(inPeriod) > toPico(spent) ? spent : inPeriod
    changes.period_start = start.toISOString().slice(0, 10)
  }
  return changes
}

/** The member's usage rows in the team (by the usage rows' user index), from `since` on or all. */
async function spentInTeam(trx: TransactionClientContract, teamId: number, userId: number, since: Date | null): Promise<string> {
  const query = trx.from('usage_records').where('user_id', userId).where('team_id', teamId)
  if (since !== null) query.where('created_at', '>=', since)
  const row = await query.select(db.raw('coalesce(sum(cost), 0)::text AS spent')).first()
  return row?.spent ?? '0'
}

/** What an audit entry keeps of a member's limits. */
export function memberSnapshot(row: Record<string, any>) {
  return { role: row.role, max_budget: row.max_budget, budget_period: row.budget_period, rpm: row.rpm, tpm: row.tpm }
}

/**
 * Changes a member's role or limits in a team (the fields given; null clears
 * a limit). The user must be a member (404 otherwise: LiteLLM's
 * /team/member_update does not add one).
 */
export async function updateTeamMember(teamRef: unknown, userRef: string, input: MemberLimits & { role?: MemberRole }, actor: Actor = cliActor()) {
  const checked = await checkedMemberLimits(input)
  return db.transaction(async (trx) => {
    const team = await findTeam(teamRef, trx)
    const user = await findUser(userRef, trx)
    const before = await trx.from('team_members').where('team_id', team.id).where('user_id', user.id).forUpdate().first()
    if (!before) {
      const error = AdminInputError.notFound(`${user.email} is not a member of team ${team.alias}`)
      error.field = 'user'
      throw error
    }
    const changes = await memberLimitChanges(trx, team.id, user.id, before, checked)
    if (checked.role !== undefined) changes.role = checked.role
    const [row] =
      Object.keys(changes).length === 0
        ? [before]
        : await trx.from('team_members').where('team_id', team.id).where('user_id', user.id).update(changes).returning('*')
    const described = describeChanges(memberSnapshot(before), memberSnapshot(row))
    if (described !== '') {
      await writeAudit(trx, actor, {
        action: 'team.member_update',
        subjectType: 'team',
        subjectId: team.id,
        summary: `team ${team.alias}: ${user.email} ${described}`,
        before: { user_id: user.id, ...memberSnapshot(before) },
        after: { user_id: user.id, ...memberSnapshot(row) },
      })
    }
    return { team, member: { user_id: user.id, email: user.email, ...memberColumnsOf(row) } }
  })
}

/** A team_members row as the surfaces show it (role, limits, counters). */
export function memberColumnsOf(row: Record<string, any>) {
  return {
    role: row.role as MemberRole,
    max_budget: (row.max_budget ?? null) as string | null,
    budget_period: (row.budget_period ?? null) as SpendPeriod | null,
    spent: String(row.spent ?? '0'),
    period_spent: String(row.period_spent ?? '0'),
    period_start: (row.period_start ?? null) as string | Date | null,
    rpm: (row.rpm ?? null) as number | null,
    tpm: (row.tpm ?? null) as number | null,
  }
}
