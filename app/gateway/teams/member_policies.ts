import { GatewayError } from '#exceptions/gateway_error'
import { toPico } from '#gateway/metering/money'
import { rollSpendPeriod, type SpendPeriod } from '#gateway/metering/spend_period'
import { budgetSpend } from '#gateway/teams/budget_group_policy'

/**
 * A member's limits inside one team (team_members, migration 1039; LiteLLM's
 * `max_budget_in_team`) as the hot path sees them: a budget on what the
 * member spends through the team's keys they own, per UTC day, week or
 * month or for the membership's life, with what their requests in flight
 * hold, and rpm/tpm windows of their own. Held by the team
 * (TeamPolicy.members, only members with a limit) and reached once per
 * request in resolvePrincipal (Principal.member).
 */
export interface MemberPolicy {
  /** `${teamId} ${userId}`: the meter's pending totals and the rate windows know it by this */
  id: string
  teamId: number
  userId: number
  /** pico-USD per period (or for the membership's life without one); null = no budget (only rpm/tpm) */
  maxBudgetPico: bigint | null
  /** Spent in the current period (committed + recorded, not held), as a team's */
  spentPico: bigint
  spendPeriod: SpendPeriod | null
  periodStartsAt: number
  periodEndsAt: number
  /** What the member's requests in flight through the team's keys hold (survives a reload: the object is kept) */
  heldPico: bigint
  rpm: number | null
  tpm: number | null
}

/** The team_members columns a policy is read from (rows with a limit only: MEMBERS_WITH_LIMITS). */
export const MEMBER_COLUMNS = ['team_id', 'user_id', 'max_budget', 'budget_period', 'spent', 'period_spent', 'period_start', 'rpm', 'tpm'] as const

/** Which memberships the hot path holds: those with a budget or a window. */
export const MEMBERS_WITH_LIMITS = 'max_budget IS NOT NULL OR rpm IS NOT NULL OR tpm IS NOT NULL'

export function memberPolicyId(teamId: number, userId: number): string {
  return `${teamId} ${userId}`
}

/** A row read with MEMBER_COLUMNS -> its policy, kept as the object loaded before when there is one. */
export function memberPolicy(row: Record<string, any>, previous: MemberPolicy | undefined, pendingSince: (id: string, sinceMs: number) => bigint, now: number): MemberPolicy {
  const teamId = Number(row.team_id)
  const userId = Number(row.user_id)
  const id = memberPolicyId(teamId, userId)
  const loaded: MemberPolicy = {
    id,
    teamId,
    userId,
    maxBudgetPico: row.max_budget === null ? null : toPico(String(row.max_budget)),
    ...budgetSpend(row, (since) => pendingSince(id, since), now),
    heldPico: 0n,
    rpm: row.rpm ?? null,
    tpm: row.tpm ?? null,
  }
  // The same object as before: requests in flight hold on it and release there.
  return previous ? Object.assign(previous, loaded, { heldPico: previous.heldPico }) : loaded
}

/**
 * 402 spend_limit_exceeded, as the team's budget, when what the member spent
 * in the team this period plus what their requests in flight hold reached
 * their budget in it. Nothing is allocated unless it refuses.
 */
export function assertMemberBudget(member: MemberPolicy, teamAlias: string) {
  if (member.maxBudgetPico === null) return
  if (member.spendPeriod !== null) rollSpendPeriod(member, Date.now())
  if (member.spentPico + member.heldPico >= member.maxBudgetPico) {
    const message =
      member.spendPeriod === null
        ? `This API key's owner reached their member budget in team '${teamAlias}'`
        : `This API key's owner reached their member budget in team '${teamAlias}' for this ${member.spendPeriod} (UTC); it resets at ${new Date(member.periodEndsAt).toISOString()}`
    throw new GatewayError(402, 'spend_limit_exceeded', message, 'insufficient_quota')
  }
}

/** What the member's budget still has beyond every hold (null: no budget). */
export function memberRoom(member: MemberPolicy): bigint | null {
  if (member.maxBudgetPico === null) return null
  if (member.spendPeriod !== null) rollSpendPeriod(member, Date.now())
  return member.maxBudgetPico - member.spentPico - member.heldPico
}
