import db from '@adonisjs/lucid/services/db'
import { AdminInputError } from '#actions/admin_input_error'
import { cliActor, writeAudit, type Actor } from '#actions/audit'
import {
  createGroup,
  deleteGroups,
  findGroup,
  groupSnapshot,
  groupsOfUser,
  listGroups,
  normalisedGroup,
  updateGroup,
  type BudgetGroupKind,
  type BudgetGroupRow,
  type BudgetGroupSettings,
} from '#actions/budget_group'
import { findUser } from '#actions/post_ledger_entry'
import type { TransactionClientContract } from '@adonisjs/lucid/types/database'
import { organizationMemberValidator, type OrganizationRole } from '#validators/organization'

/**
 * Organizations (LiteLLM's /organization/*): teams grouped under one
 * organization with a budget per UTC day/week/month or for its life, model
 * globs its teams cannot widen, rpm/tpm shared by every key of its teams,
 * and a block. Billing stays on each key's owner. A team joins one with
 * `organization` in the team's settings (app/actions/teams.ts). Members are
 * users with LiteLLM's roles: a record, as team members are.
 *
 * The one implementation behind the panel, the management API
 * (/api/admin/organizations), LiteLLM's /organization/* and
 * `organization:create`; every change is audited (subject `organization`).
 * The gateways hear of a change through the organizations and teams
 * triggers (migration 1024).
 */
export type OrganizationSettings = BudgetGroupSettings

export type OrganizationRow = BudgetGroupRow

export interface OrganizationMember {
  user_id: number
  email: string
  role: OrganizationRole
  created_at: Date
}

/** Organizations as a budget group (app/actions/budget_group.ts): the settings alone. */
const ORGANIZATIONS: BudgetGroupKind<OrganizationRow> = {
  table: 'organizations',
  subject: 'organization',
  usageColumn: 'organization_id',
  membersTable: 'organization_members',
  memberColumn: 'organization_id',
  aliasRequired: 'An organization needs an alias (its name)',
  notFound: (ref) => `No organization "${String(ref ?? '').slice(0, 100)}"`,
  normalised: normalisedGroup,
  snapshot: groupSnapshot,
}

/** An organization by id (a number or its digits); 404 otherwise. Locked when read in a transaction. */
export async function findOrganization(ref: unknown, trx?: TransactionClientContract): Promise<OrganizationRow> {
  return findGroup(ORGANIZATIONS, ref, trx)
}

export async function createOrganization(input: OrganizationSettings, actor: Actor = cliActor()): Promise<OrganizationRow> {
  return createGroup(ORGANIZATIONS, input, actor)
}

/**
 * Changes the settings given (the rest kept); null clears a budget or limit.
 * A new period starts with what was spent under the organization in it (its usage rows), as a team's.
 */
export async function updateOrganization(ref: unknown, input: OrganizationSettings, actor: Actor = cliActor()): Promise<OrganizationRow> {
  return updateGroup(ORGANIZATIONS, ref, input, actor)
}

/**
 * Deletes organizations (every id checked first: one unknown, or one with
 * teams in it, deletes none). Refused while teams are in it (LiteLLM deletes
 * the teams and their keys with it; here an operator moves or deletes them
 * first, and nothing a customer uses vanishes by a side effect). Usage rows
 * keep its id.
 */
export async function deleteOrganizations(refs: unknown[], actor: Actor = cliActor()): Promise<OrganizationRow[]> {
  return deleteGroups(ORGANIZATIONS, refs, actor, async (trx, org) => {
    const teams = await trx.from('teams').where('organization_id', org.id).count('* as n').first()
    const count = Number(teams?.n ?? 0)
    if (count > 0) {
      throw new AdminInputError(`Organization ${org.alias} still has ${count} team(s): move them to another organization or delete them first`)
    }
    return ''
  })
}

/** Adds users to the organization, or changes their role when already in it. */
export async function addOrganizationMembers(ref: unknown, members: Array<{ user: string; role?: OrganizationRole }>, actor: Actor = cliActor()) {
  if (members.length === 0) throw new AdminInputError('Give at least one member (a user id or e-mail)', 'user')
  const checkedMembers: Array<{ user: string; role?: OrganizationRole }> = []
  for (const member of members) checkedMembers.push(await organizationMemberValidator.validate(member))
  return db.transaction(async (trx) => {
    const org = await findOrganization(ref, trx)
    const added: OrganizationMember[] = []
    for (const member of checkedMembers) {
      const user = await findUser(member.user, trx)
      const role = member.role ?? 'internal_user'
      const result = await trx.rawQuery(
        `INSERT INTO organization_members (organization_id, user_id, role) VALUES (?, ?, ?)
         ON CONFLICT (organization_id, user_id) DO UPDATE SET role = EXCLUDED.role RETURNING created_at`,
        [org.id, user.id, role]
      )
      const entry = { user_id: user.id, email: user.email, role, created_at: result.rows[0].created_at }
      // The same user twice in one call: the last role, listed once.
      const index = added.findIndex((m) => m.user_id === user.id)
      if (index >= 0) added[index] = entry
      else added.push(entry)
    }
    await writeAudit(trx, actor, {
      action: 'organization.member_add',
      subjectType: 'organization',
      subjectId: org.id,
      summary: `organization ${org.alias}: ${added.map((m) => `${m.email} (${m.role})`).join(', ')} added`,
      after: { members: added.map((m) => ({ user_id: m.user_id, role: m.role })) },
    })
    return { org, added }
  })
}

/** Changes a member's role (404 when the user is not a member). */
export async function updateOrganizationMember(ref: unknown, userRef: string, role: unknown, actor: Actor = cliActor()) {
  const member = await organizationMemberValidator.validate({ user: userRef, role })
  return db.transaction(async (trx) => {
    const org = await findOrganization(ref, trx)
    const user = await findUser(member.user, trx)
    const membership = trx.from('organization_members').where('organization_id', org.id).where('user_id', user.id)
    // No role given (LiteLLM's member_update with only a budget field): the member keeps theirs (it demoted them).
    const [row] = member.role === undefined ? await membership.select('*') : await membership.update({ role: member.role }).returning('*')
    if (!row) throw AdminInputError.notFound(`${user.email} is not a member of organization ${org.alias}`)
    if (member.role === undefined) {
      return { org, member: { user_id: user.id, email: user.email, role: row.role as OrganizationRole, created_at: row.created_at } }
    }
    await writeAudit(trx, actor, {
      action: 'organization.member_update',
      subjectType: 'organization',
      subjectId: org.id,
      summary: `organization ${org.alias}: ${user.email} is now ${row.role}`,
      after: { user_id: user.id, role: row.role },
    })
    return { org, member: { user_id: user.id, email: user.email, role: row.role as OrganizationRole, created_at: row.created_at } }
  })
}

/** Takes a user out of the organization (404 when not a member). Their teams and keys stay. */
export async function removeOrganizationMember(ref: unknown, userRef: string, actor: Actor = cliActor()) {
  return db.transaction(async (trx) => {
    const org = await findOrganization(ref, trx)
    const user = await findUser(userRef, trx)
    const [row] = await trx.from('organization_members').where('organization_id', org.id).where('user_id', user.id).delete().returning('*')
    if (!row) throw AdminInputError.notFound(`${user.email} is not a member of organization ${org.alias}`)
    await writeAudit(trx, actor, {
      action: 'organization.member_delete',
      subjectType: 'organization',
      subjectId: org.id,
      summary: `organization ${org.alias}: ${user.email} removed`,
      before: { user_id: user.id, role: row.role },
    })
    return { org, member: { user_id: user.id, email: user.email, role: row.role as OrganizationRole, created_at: row.created_at } }
  })
}

/** The organizations' members, oldest first. */
export async function organizationMembers(orgIds: number[]): Promise<Map<number, OrganizationMember[]>> {
  const byOrg = new Map<number, OrganizationMember[]>()
  if (orgIds.length === 0) return byOrg
  const rows = await db
    .from('organization_members as m')
    .join('users as u', 'u.id', 'm.user_id')
    .whereIn('m.organization_id', orgIds)
    .orderBy('m.created_at')
    .select('m.organization_id', 'm.user_id', 'u.email', 'm.role', 'm.created_at')
  for (const row of rows) {
    const list = byOrg.get(Number(row.organization_id)) ?? []
    list.push({ user_id: Number(row.user_id), email: row.email, role: row.role, created_at: row.created_at })
    byOrg.set(Number(row.organization_id), list)
  }
  return byOrg
}

/** Organizations, newest first (operators have a few to hundreds). */
export async function listOrganizations(): Promise<OrganizationRow[]> {
  return listGroups(ORGANIZATIONS)
}

/** The organizations a user is a member of, oldest membership first. */
export async function organizationsOfUser(userId: number): Promise<OrganizationRow[]> {
  return groupsOfUser(ORGANIZATIONS, userId)
}
