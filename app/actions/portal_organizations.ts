import db from '@adonisjs/lucid/services/db'
import type { TransactionClientContract } from '@adonisjs/lucid/types/database'
import { AdminInputError } from '#actions/admin_input_error'
import type { Actor } from '#actions/audit'
import { addOrganizationMembers, removeOrganizationMember, updateOrganizationMember } from '#actions/organizations'
import { PortalInputError } from '#actions/portal_input_error'
import { addTeamMembers, createTeam, deleteTeams, type TeamRow } from '#actions/teams'
import type { SpendPeriod } from '#gateway/metering/spend_period'
import { toPico } from '#gateway/metering/money'
import { portalOrganizations, type PortalOrganization } from '#services/portal_organizations'
import type { OrganizationRole } from '#validators/organization'

/**
 * What an org_admin changes from the portal (README "User portal",
 * Organizations): members (add by e-mail with a role, change a role, take
 * one out) and a new team in the organization. Each goes through the same
 * action as the panel, the management API and LiteLLM's
 * /organization/member_* and /team/new (app/actions/organizations.ts,
 * teams.ts), audited with the portal actor.
 *
 * The portal's own rules sit here, checked first: the acting user must be an
 * org_admin of that organization now (anyone else: PortalInputError
 * `org_not_found` when not a member, whether it exists or not, so the answer
 * tells nothing of other organizations; `org_admin_only` for a member), and
 * an organization keeps at least one org_admin (neither a removal nor a
 * role change takes the last one). Both are read under a transaction-level
 * advisory lock on the organization's members, held until the action has
 * committed: two admins demoting each other at once are taken in turn, and
 * the second sees the first's change. The actions open their own
 * transactions (they take the organization's row lock; this lock is taken
 * before any, and only here: no wait can turn around).
 *
 * Such a change holds two pooled connections at once (the lock's and the
 * action's), so a process runs one at a time (`oneAtATime`): the others wait
 * in memory, holding none. Waiting on the advisory lock with a connection
 * each, a burst of changes (one org_admin's script, 12 at once) took the
 * whole pool while the holder waited for its second: every request of the
 * process stalled until knex's acquire timeout. Other instances wait on the
 * advisory lock with their own pool's connection only.
 */

export interface PortalTeamInput {
  name: string
  /** USD as a decimal string; null: none (the organization's budget still caps it) */
  maxBudget: string | null
  budgetPeriod: SpendPeriod | null
}

/** Adds a user (by e-mail, as the account has it) with a role; one already in it is refused (its role is changed in the list). */
export async function addPortalOrganizationMember(orgId: number, email: string, role: OrganizationRole, actor: Actor) {
  return asOrgAdmin(orgId, actor, async (trx) => {
    const user = await trx.from('users').whereRaw('lower(email) = lower(?)', [email]).select('id', 'email').first()
    if (!user) throw new PortalInputError('org_member_no_account', 'email')
    const already = await trx.from('organization_members').where('organization_id', orgId).where('user_id', user.id).first()
    if (already) throw new PortalInputError('org_member_exists', 'email', { email: user.email })
    const { added } = await addOrganizationMembers(orgId, [{ user: String(user.id), role }], actor)
    return added[0]
  })
}

/** Changes a member's role; the last org_admin keeps theirs. */
export async function changePortalOrganizationMemberRole(orgId: number, memberId: number, role: OrganizationRole, actor: Actor) {
  return asOrgAdmin(orgId, actor, async (trx) => {
    const current = await memberRole(trx, orgId, memberId)
    if (current === 'org_admin' && role !== 'org_admin') await keepAnAdmin(trx, orgId, memberId)
    const { member } = await updateOrganizationMember(orgId, String(memberId), role, actor)
    return member
  })
}

/** Takes a member out (their teams and keys stay); not the last org_admin. */
export async function removePortalOrganizationMember(orgId: number, memberId: number, actor: Actor) {
  return asOrgAdmin(orgId, actor, async (trx) => {
    const current = await memberRole(trx, orgId, memberId)
    if (current === 'org_admin') await keepAnAdmin(trx, orgId, memberId)
    const { member } = await removeOrganizationMember(orgId, String(memberId), actor)
    return member
  })
}

/**
 * A team in the organization, its budget within the organization's (at
 * most its max_budget, when it has one: LiteLLM's check on /team/new in an
 * organization); the creator becomes its admin. Two actions (createTeam, then
 * addTeamMembers): if the second fails, the team is deleted again, so no team
 * is left that nobody administers.
 */
export async function createPortalOrganizationTeam(orgId: number, input: PortalTeamInput, actor: Actor): Promise<TeamRow> {
  return asOrgAdmin(orgId, actor, async (_trx, entry) => {
    const orgBudget = entry.org.max_budget
    if (input.maxBudget !== null && orgBudget !== null && toPico(input.maxBudget) > toPico(orgBudget)) {
      throw new PortalInputError('org_team_budget', 'team_budget', { max: Number(orgBudget) })
    }
    const team = await createTeam(
      { alias: input.name, maxBudget: input.maxBudget, budgetPeriod: input.maxBudget === null ? null : input.budgetPeriod, organization: orgId },
      actor
    )
    try {
      await addTeamMembers(team.id, [{ user: String(actor.id), role: 'admin' }], actor)
    } catch (error) {
      await deleteTeams([team.id], actor)
      throw error
    }
    return team
  })
}

/**
 * Runs `change` under the organization's members lock once the acting user
 * is found to be an org_admin of it (read inside the lock: a role taken away
 * a moment before is seen). An action's refusal of a field the portal does
 * not have (none expected after the checks above) is rethrown as it is.
 */
async function asOrgAdmin<T>(orgId: number, actor: Actor, change: (trx: TransactionClientContract, entry: PortalOrganization) => Promise<T>): Promise<T> {
  if (typeof actor.id !== 'number') throw new PortalInputError('org_not_found')
  const userId = actor.id
  return oneAtATime(() => db.transaction(async (trx) => {
    await trx.rawQuery('SELECT pg_advisory_xact_lock(hashtext(?))', [`organization_members:${orgId}`])
    const [entry] = await portalOrganizations(userId, orgId, trx)
    if (!entry) throw new PortalInputError('org_not_found')
    if (entry.role !== 'org_admin') throw new PortalInputError('org_admin_only')
    try {
      return await change(trx, entry)
    } catch (error) {
      if (!(error instanceof AdminInputError && error.kind === 'not_found')) throw error
      // The organization deleted meanwhile (by the panel or an API): as any organization the user is not in;
      // else a member the panel took out meanwhile.
      const still = await trx.from('organizations').where('id', orgId).select('id').first()
      throw new PortalInputError(still ? 'org_member_not_found' : 'org_not_found')
    }
  }))
}

/** The tail of this process's queue of member and team changes (asOrgAdmin): each starts when the one before settled. */
let queueTail: Promise<unknown> = Promise.resolve()

function oneAtATime<T>(work: () => Promise<T>): Promise<T> {
  const run = queueTail.then(work, work)
  queueTail = run.catch(() => undefined)
  return run
}

async function memberRole(trx: TransactionClientContract, orgId: number, memberId: number): Promise<OrganizationRole> {
  const row = await trx.from('organization_members').where('organization_id', orgId).where('user_id', memberId).select('role').first()
  if (!row) throw new PortalInputError('org_member_not_found', `member.${memberId}`)
  return row.role
}

/** Refuses a change that would leave the organization without an org_admin. */
async function keepAnAdmin(trx: TransactionClientContract, orgId: number, leaving: number) {
  const other = await trx
    .from('organization_members')
    .where('organization_id', orgId)
    .where('role', 'org_admin')
    .whereNot('user_id', leaving)
    .select('user_id')
    .first()
  if (!other) throw new PortalInputError('org_last_admin', `member.${leaving}`)
}
