import db from '@adonisjs/lucid/services/db'
import { toPico } from '#gateway/metering/money'
import type { SpendPeriod } from '#gateway/metering/spend_period'
import { budgetSpend, type TeamPendingSource } from '#gateway/teams/team_policies'

/**
 * An organization (table organizations, migration 1024) as the hot path sees
 * it: a policy over its teams, as a team is over its keys. Held by each team
 * in it (TeamPolicy.org) and loaded with the teams (TeamPolicies), so a key
 * whose team is in none pays one null test, and one in an organization
 * reaches it without a lookup. Billing stays on each key's owner.
 */
export interface OrgPolicy {
  id: number
  alias: string
  blocked: boolean
  /** Model globs; a team in it cannot widen them (both must allow a model) */
  allowedModels: string[] | null
  /** One window each, shared by every key of every team in it */
  rpm: number | null
  tpm: number | null
  maxBudgetPico: bigint | null
  spentPico: bigint
  spendPeriod: SpendPeriod | null
  periodStartsAt: number
  periodEndsAt: number
  /** What requests in flight through its teams' keys hold (survives a reload: the object is kept) */
  heldPico: bigint
}

/**
 * Reads the organizations table whole (operators write these rows: a few to
 * hundreds), keeping each loaded object (requests in flight hold on it and
 * release there). Called by TeamPolicies' load, after its teams read.
 */
export async function loadOrganizations(previous: Map<number, OrgPolicy>, pending: TeamPendingSource): Promise<Map<number, OrgPolicy>> {
  const rows = await db
    .from('organizations')
    .select('id', 'alias', 'blocked_at', 'allowed_models', 'rpm', 'tpm', 'max_budget', 'budget_period', 'spent', 'period_spent', 'period_start')
  const now = Date.now()
  const byId = new Map<number, OrgPolicy>()
  for (const row of rows) {
    const id = Number(row.id)
    const loaded: OrgPolicy = {
      id,
      alias: row.alias,
      blocked: row.blocked_at !== null,
      allowedModels: Array.isArray(row.allowed_models) && row.allowed_models.length > 0 ? row.allowed_models : null,
      rpm: row.rpm ?? null,
      tpm: row.tpm ?? null,
      maxBudgetPico: row.max_budget === null ? null : toPico(String(row.max_budget)),
      ...budgetSpend(row, (since) => pending.pendingOrgCost(id, since), now),
      heldPico: 0n,
    }
    const kept = previous.get(id)
    byId.set(id, kept ? Object.assign(kept, loaded, { heldPico: kept.heldPico }) : loaded)
  }
  return byId
}
