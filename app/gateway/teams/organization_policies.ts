import db from '@adonisjs/lucid/services/db'
import { BUDGET_GROUP_COLUMNS, budgetGroupPolicy, keptPolicy, type BudgetGroupPolicy } from '#gateway/teams/budget_group_policy'
import type { TeamPendingSource } from '#gateway/teams/team_policies'

/**
 * An organization (table organizations, migration 1024) as the hot path sees
 * it: a policy over its teams, as a team is over its keys. Held by each team
 * in it (TeamPolicy.org) and loaded with the teams (TeamPolicies), so a key
 * whose team is in none pays one null test, and one in an organization
 * reaches it without a lookup. Billing stays on each key's owner. Its
 * model globs a team in it cannot widen (both must allow a model); its
 * rpm/tpm are one window each, shared by every key of every team in it.
 */
export type OrgPolicy = BudgetGroupPolicy

/**
 * Reads the organizations table whole (operators write these rows: a few to
 * hundreds), keeping each loaded object (requests in flight hold on it and
 * release there). Called by TeamPolicies' load, after its teams read.
 */
export async function loadOrganizations(previous: Map<number, OrgPolicy>, pending: TeamPendingSource): Promise<Map<number, OrgPolicy>> {
  const rows = await db.from('organizations').select(...BUDGET_GROUP_COLUMNS)
  const now = Date.now()
  const byId = new Map<number, OrgPolicy>()
  for (const row of rows) {
    const id = Number(row.id)
    byId.set(id, keptPolicy(previous.get(id), budgetGroupPolicy(row, (since) => pending.pendingOrgCost(id, since), now)))
  }
  return byId
}
