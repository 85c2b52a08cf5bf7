import { DateTime } from 'luxon'
import db from '@adonisjs/lucid/services/db'
import type { TransactionClientContract } from '@adonisjs/lucid/types/database'
import type { OrganizationRow } from '#actions/organizations'
import { budgetResetsAt, budgetSpentNow, type BudgetColumns } from '#actions/budget_group'
import { fromPico, toPico } from '#gateway/metering/money'
import { ensureRollups } from '#services/usage_rollup'
import type { OrganizationRole } from '#validators/organization'

/**
 * The organizations a signed-in user sees in the portal (README "User
 * portal", Organizations): only those they are a member of, each with their
 * role, read from `organization_members` on every request (a member taken
 * out loses the pages at once; being an administrator of the gateway makes
 * nobody an org admin here). The changes are app/actions/portal_organizations.ts.
 */

/** An organization as one of its members sees it. */
export interface PortalOrganization {
  org: OrganizationRow
  role: OrganizationRole
  /** What its budget counts now (this period's spend, or the whole), as the request path counts it */
  spent: string
  resetsAt: string | null
  /** Its budget is spent: its teams' keys are refused (402) until it resets or is raised */
  budgetReached: boolean
}

/** The budget figures of a team or an organization (one place, so both read the same). */
export function budgetFigures(row: BudgetColumns & { max_budget: string | null }) {
  const spent = budgetSpentNow(row)
  return {
    spent,
    resetsAt: budgetResetsAt(row),
    budgetReached: row.max_budget !== null && toPico(String(spent)) >= toPico(String(row.max_budget)),
  }
}

/**
 * The user's organizations, oldest membership first, with their role (an
 * index probe on organization_members.user_id). `orgId` narrows it to that
 * one: empty when the user is not in it, whether it exists or not.
 */
export async function portalOrganizations(userId: number, orgId?: number, trx?: TransactionClientContract): Promise<PortalOrganization[]> {
  const query = (trx ?? db)
    .from('organizations as o')
    .join('organization_members as m', 'm.organization_id', 'o.id')
    .where('m.user_id', userId)
    .orderBy('m.created_at')
    .orderBy('o.id')
    .select('o.*', 'm.role as member_role')
  if (orgId !== undefined) query.where('o.id', orgId)
  return (await query).map(({ member_role: role, ...columns }: Record<string, any>) => {
    const org = {
      ...columns,
      id: Number(columns.id),
      allowed_models: Array.isArray(columns.allowed_models) && columns.allowed_models.length > 0 ? columns.allowed_models : null,
      metadata: columns.metadata ?? {},
    } as OrganizationRow
    return { org, role, ...budgetFigures(org) }
  })
}

/** Whether the portal's nav shows Organizations: the user is a member of one (an index probe). */
export async function inAnyOrganization(userId: number): Promise<boolean> {
  const result = await db.rawQuery('SELECT EXISTS (SELECT 1 FROM organization_members WHERE user_id = ?) AS member', [userId])
  return result.rows[0]?.member === true
}

export interface OrganizationSpendReport {
  /** The UTC days of the range, oldest first, each with its spend (exact decimal) and requests */
  days: Array<{ day: string; cost: string; requests: number }>
  /** Spend per model over the range, the most first */
  models: Array<{ model: string; requests: number; tokens: number; cost: string }>
  /** Spend per team now in the organization over the range (its `team_model` rows), by `teams` order */
  teams: Map<number, string>
  total: string
}

/** The portal's range: the last 30 UTC days, today included. */
export const SPEND_DAYS = 30

/**
 * An organization's spend over the last 30 UTC days, by day and model from
 * the rollups' `org_model` rows (each request counted for the organization it
 * was admitted under), and by team from the `team_model` rows of the teams in
 * it now (a team that joined during the range brings its spend from before
 * it joined; one that left takes its rows with it). Finished days come from
 * the rollups, today live from its rows, filtered by the organization's and
 * its teams' ids in SQL: usage_records is never read beyond today's rows of
 * these ids (the BRIN range of today).
 */
export async function organizationSpend(orgId: number, teamIds: number[], now = DateTime.utc()): Promise<OrganizationSpendReport> {
  const today = now.startOf('day')
  const from = today.minus({ days: SPEND_DAYS - 1 })
  await ensureRollups(from, today)
  const rolledFrom = from.toISODate()!
  const rolledTo = today.minus({ days: 1 }).toISODate()!
  const liveFrom = today.toJSDate()
  const liveTo = today.plus({ days: 1 }).toJSDate()
  const teamKeys = teamIds.map(String)
  const [byDayModel, byTeam] = await Promise.all([
    db.rawQuery(
      `WITH parts AS (
         SELECT day, substr(key, strpos(key, ' ') + 1) AS model, requests, input_tokens + output_tokens AS tokens, cost
           FROM usage_daily WHERE dim = 'org_model' AND day >= ? AND day <= ? AND split_part(key, ' ', 1) = ?
         UNION ALL
         SELECT (created_at AT TIME ZONE 'UTC')::date, model, 1, coalesce(prompt_tokens, 0) + coalesce(completion_tokens, 0), cost
           FROM usage_records WHERE organization_id = ? AND created_at >= ? AND created_at < ?
       )
       SELECT day::text AS day, model, sum(requests)::bigint AS requests, coalesce(sum(tokens), 0)::bigint AS tokens,
              coalesce(sum(cost), 0)::text AS cost
         FROM parts GROUP BY day, model`,
      [rolledFrom, rolledTo, String(orgId), orgId, liveFrom, liveTo]
    ),
    teamKeys.length === 0
      ? { rows: [] }
      : db.rawQuery(
          `WITH parts AS (
             SELECT split_part(key, ' ', 1) AS team_id, cost
               FROM usage_daily WHERE dim = 'team_model' AND day >= ? AND day <= ? AND split_part(key, ' ', 1) = ANY(?::text[])
             UNION ALL
             SELECT team_id::text, cost FROM usage_records WHERE team_id = ANY(?::bigint[]) AND created_at >= ? AND created_at < ?
           )
           SELECT team_id, coalesce(sum(cost), 0)::text AS cost FROM parts GROUP BY team_id`,
          [rolledFrom, rolledTo, teamKeys, teamIds, liveFrom, liveTo]
        ),
  ])
  const days = new Map<string, { cost: bigint; requests: number }>()
  for (let day = from; day <= today; day = day.plus({ days: 1 })) days.set(day.toISODate()!, { cost: 0n, requests: 0 })
  const models = new Map<string, { requests: number; tokens: number; cost: bigint }>()
  let total = 0n
  for (const row of byDayModel.rows as Array<{ day: string; model: string; requests: string; tokens: string; cost: string }>) {
    const cost = toPico(row.cost)
    const day = days.get(String(row.day).slice(0, 10))
    if (day) {
      day.cost += cost
      day.requests += Number(row.requests)
    }
    const model = models.get(row.model) ?? { requests: 0, tokens: 0, cost: 0n }
    model.requests += Number(row.requests)
    model.tokens += Number(row.tokens)
    model.cost += cost
    models.set(row.model, model)
    total += cost
  }
  const teams = new Map<number, string>(teamIds.map((id) => [id, '0']))
  for (const row of byTeam.rows as Array<{ team_id: string; cost: string }>) teams.set(Number(row.team_id), row.cost)
  return {
    days: [...days].map(([day, d]) => ({ day, cost: fromPico(d.cost), requests: d.requests })),
    models: [...models]
      .sort((a, b) => (a[1].cost === b[1].cost ? a[0].localeCompare(b[0]) : a[1].cost > b[1].cost ? -1 : 1))
      .map(([model, m]) => ({ model, requests: m.requests, tokens: m.tokens, cost: fromPico(m.cost) })),
    teams,
    total: fromPico(total),
  }
}
