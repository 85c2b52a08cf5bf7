import { NO_METER_WRITES, readSettled, type MeterWrites } from '#gateway/metering/settled_read'
import db from '@adonisjs/lucid/services/db'
import { addSpendInPeriod } from '#gateway/metering/spend_period'
import { SharedReload } from '#gateway/shared_reload'
import { loadOrganizations, type OrgPolicy } from '#gateway/teams/organization_policies'
import { MEMBER_COLUMNS, memberPolicy, MEMBERS_WITH_LIMITS, type MemberPolicy } from '#gateway/teams/member_policies'
import {
  assertGroupBudget,
  BUDGET_GROUP_COLUMNS,
  budgetGroupPolicy,
  budgetRoom,
  keptPolicy,
  type BudgetGroupPolicy,
} from '#gateway/teams/budget_group_policy'

/**
 * A team (table teams, migration 1003) as the hot path sees it: a policy over
 * the keys whose api_keys.team_id names it. Billing stays on each key's
 * owner; the team adds a shared budget, model globs, shared rpm/tpm windows
 * and a block (budget_group_policy.ts), and its organization.
 */
export interface TeamPolicy extends BudgetGroupPolicy {
  /** The team's organization (organization_policies.ts), loaded with it; null for a team in none */
  org: OrgPolicy | null
  /**
   * Its members with a budget or rpm/tpm in it (member_policies.ts), by user
   * id; null when none has any (the usual team: resolvePrincipal pays one
   * null test for it)
   */
  members: Map<number, MemberPolicy> | null
}

/** The meter's uncommitted cost per team (PendingTotals), added to what a load reads. */
export interface TeamPendingSource extends MeterWrites {
  pendingTeamCost(teamId: number, sinceMs: number): bigint
  /** The same for an organization (every team's key in it, as admitted) */
  pendingOrgCost(orgId: number, sinceMs: number): bigint
  /** The same for a member in a team (MemberPolicy.id), of calls admitted under their limits */
  pendingMemberCost(memberId: string, sinceMs: number): bigint
}

const NOTHING_PENDING: TeamPendingSource = { pendingTeamCost: () => 0n, pendingOrgCost: () => 0n, pendingMemberCost: () => 0n, ...NO_METER_WRITES }

/** An unknown team id a key names is read for at most this often (unheard) */
const UNKNOWN_RECHECK_MS = 1_000
/** Unknown ids remembered (only ids of teams deleted since, or keys' stale rows: few) */
const UNKNOWN_LIMIT = 1_000

function rememberUnknown(unknown: Map<number, number>, teamId: number) {
  unknown.delete(teamId)
  if (unknown.size >= UNKNOWN_LIMIT) unknown.delete(unknown.keys().next().value!)
  unknown.set(teamId, Date.now())
}

/** Other instances' spend reaches here by `charged:` notifications of a team's key; without a listener, by this TTL. */
const TTL_MS = 60_000
/**
 * The teams table in memory, by id. Loaded whole (operators write these rows:
 * tens or hundreds), again on `teams:<id>` notifications, on another
 * instance's charge through a team's key, and after TTL_MS. A key without a
 * team never reaches here (KeyInfo.teamId null: one test per request).
 */
export class TeamPolicies {
  #byId = new Map<number, TeamPolicy>()
  /** The organizations (table organizations, migration 1024), read with the teams: a team's `org` is one of them */
  #orgsById = new Map<number, OrgPolicy>()
  #pending: TeamPendingSource = NOTHING_PENDING
  #loadedAt = 0
  #reloads = new SharedReload(() => this.#load())
  /** Team ids keys named that a read did not find, and when (unheard) */
  #unknown = new Map<number, number>()

  setPendingSource(source: TeamPendingSource) {
    this.#pending = source
  }

  /** The team of a key that has one (undefined when deleted since: the key then works without it). */
  get(teamId: number): TeamPolicy | undefined {
    // Stale: read again in the background, once (not queued behind a read already out).
    if (!this.#reloads.running && Date.now() - this.#loadedAt > TTL_MS) this.reload().catch(() => {})
    return this.#byId.get(teamId)
  }

  /**
   * The team of a key whose team this map does not hold: created (or the key
   * moved into it) on another instance whose notice has not arrived, or was
   * lost. Read again and held to it, not served without its block, budget
   * or models. An id still unknown after a read (a team deleted, the key's
   * row not read again yet) is read for again at most once a second.
   */
  async unheard(teamId: number): Promise<TeamPolicy | undefined> {
    const checked = this.#unknown.get(teamId)
    if (checked !== undefined && Date.now() - checked < UNKNOWN_RECHECK_MS) return undefined
    await this.reload()
    const team = this.#byId.get(teamId)
    if (team === undefined) rememberUnknown(this.#unknown, teamId)
    return team
  }

  get size() {
    return this.#byId.size
  }

  /** A recorded request's cost (the meter's onRecord), in the period its call began. */
  applySpend(teamId: number, costPico: bigint, createdAtMs: number) {
    if (costPico === 0n) return
    const team = this.#byId.get(teamId)
    if (team === undefined) return
    addSpendInPeriod(team, costPico, createdAtMs)
  }

  /** A recorded request's cost on the organization it was admitted under (the meter's onRecord). */
  applyOrgSpend(orgId: number, costPico: bigint, createdAtMs: number) {
    if (costPico === 0n) return
    const org = this.#orgsById.get(orgId)
    if (org === undefined) return
    addSpendInPeriod(org, costPico, createdAtMs)
  }

  /** A recorded request's cost on the member's budget in the team it was admitted under (the meter's onRecord). */
  applyMemberSpend(teamId: number, userId: number, costPico: bigint, createdAtMs: number) {
    if (costPico === 0n) return
    const member = this.#byId.get(teamId)?.members?.get(userId)
    if (member === undefined) return
    addSpendInPeriod(member, costPico, createdAtMs)
  }

  /** An organization by id, as loaded (batches, tests); undefined when none. */
  organization(orgId: number): OrgPolicy | undefined {
    return this.#orgsById.get(orgId)
  }

  /** Reads the table again; concurrent callers share a read, and a call during one gets one more after it. */
  reload(): Promise<void> {
    return this.#reloads.run()
  }

  async #load() {
    // The meter writes `spent` of both: read when no batch is under way (metering/settled_read.ts). The organizations
    // after the teams: an organization a team row names was committed before that row, so this read has it.
    // Members' limits after the teams: a membership names a team committed before it (a team created since has none here).
    const { rows, orgs, memberRows } = await readSettled(this.#pending, async () => {
      const teamRows: any[] = await db.from('teams').select(...BUDGET_GROUP_COLUMNS, 'organization_id')
      const orgs = await loadOrganizations(this.#orgsById, this.#pending)
      const members: any[] = await db.from('team_members').whereRaw(MEMBERS_WITH_LIMITS).select(...MEMBER_COLUMNS)
      return { rows: teamRows, orgs, memberRows: members }
    })
    const now = Date.now()
    const byId = new Map<number, TeamPolicy>()
    // Each team's member objects of the last load (keptPolicy replaces the kept team's map): their holds stay on them.
    const previousMembers = new Map<number, Map<number, MemberPolicy>>()
    for (const row of rows) {
      const id = Number(row.id)
      const members = this.#byId.get(id)?.members
      if (members) previousMembers.set(id, members)
      const loaded: TeamPolicy = {
        ...budgetGroupPolicy(row, (since) => this.#pending.pendingTeamCost(id, since), now),
        // A team naming an organization deleted between the two reads is in none (ON DELETE RESTRICT: only a race).
        org: row.organization_id === null ? null : (orgs.get(Number(row.organization_id)) ?? null),
        members: null,
      }
      byId.set(id, keptPolicy(this.#byId.get(id), loaded))
    }
    for (const row of memberRows) {
      const team = byId.get(Number(row.team_id))
      if (team === undefined) continue
      const userId = Number(row.user_id)
      const previous = previousMembers.get(team.id)?.get(userId)
      team.members ??= new Map()
      team.members.set(userId, memberPolicy(row, previous, (memberId, since) => this.#pending.pendingMemberCost(memberId, since), now))
    }
    this.#byId = byId
    this.#orgsById = orgs
    this.#loadedAt = now
  }
}

/**
 * 402 spend_limit_exceeded, the key cap's code and wording, when the team's
 * spend plus what requests in flight hold reached its budget. Checked where
 * the key's cap is (access_policy.ts authorizeModel), in the same synchronous
 * step as the request's hold.
 */
export function assertTeamBudget(team: TeamPolicy, org: OrgPolicy | null) {
  // The organization's budget, shared by all its teams' keys, the same way (one null test for a team in none).
  if (org !== null) assertGroupBudget(org, 'organization')
  assertGroupBudget(team, 'team')
}

/** What the team's budget (and its organization's, the tighter) still has beyond every hold (null: no budget). */
export function teamRoom(team: TeamPolicy, org: OrgPolicy | null): bigint | null {
  const ofOrg = org === null ? null : budgetRoom(org)
  const ofTeam = budgetRoom(team)
  return ofTeam === null || (ofOrg !== null && ofOrg < ofTeam) ? ofOrg : ofTeam
}
