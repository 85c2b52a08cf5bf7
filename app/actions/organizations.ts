import db from '@adonisjs/lucid/services/db'
import type { TransactionClientContract } from '@adonisjs/lucid/types/database'
import { AdminInputError } from '#actions/admin_input_error'
import { cliActor, describeChanges, writeAudit, type Actor } from '#actions/audit'
import { findUser } from '#actions/post_ledger_entry'
import { periodSpent, type TeamSettings } from '#actions/teams'
import type { SpendPeriod } from '#gateway/metering/spend_period'
import { recordId } from '#services/record_id'
import { holdsNul, teamSettingsValidator } from '#validators/team'
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
export type OrganizationSettings = Omit<TeamSettings, 'organization'>

export interface OrganizationRow {
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

export interface OrganizationMember {
  user_id: number
  email: string
  role: OrganizationRole
  created_at: Date
}

/** An organization by id (a number or its digits); 404 otherwise. Locked when read in a transaction. */
export async function findOrganization(ref: unknown, trx?: TransactionClientContract): Promise<OrganizationRow> {
  const id = recordId(ref)
  const query = (trx ?? db).from('organizations').where('id', id ?? 0)
  const row = id === null ? null : await (trx ? query.forUpdate() : query).first()
  if (!row) throw AdminInputError.notFound(`No organization "${String(ref ?? '').slice(0, 100)}"`)
  return normalised(row)
}

export async function createOrganization(input: OrganizationSettings, actor: Actor = cliActor()): Promise<OrganizationRow> {
  const settings = await checked(input)
  if (!settings.alias) throw new AdminInputError('An organization needs an alias (its name)', 'alias')
  return db.transaction(async (trx) => {
    const [row] = await trx
      .table('organizations')
      .insert({
        alias: settings.alias,
        ...columnsOf(settings),
        blocked_at: settings.blocked ? new Date() : null,
        metadata: JSON.stringify(input.metadata ?? {}),
      })
      .returning('*')
    const org = normalised(row)
    await writeAudit(trx, actor, {
      action: 'organization.create',
      subjectType: 'organization',
      subjectId: org.id,
      summary: `organization ${org.alias} created: ${describe(org)}`,
      after: snapshot(org),
    })
    return org
  })
}

/** Changes the settings given (the rest kept); null clears a budget or limit. */
export async function updateOrganization(ref: unknown, input: OrganizationSettings, actor: Actor = cliActor()): Promise<OrganizationRow> {
  const settings = await checked(input)
  return db.transaction(async (trx) => {
    const before = await findOrganization(ref, trx)
    const changes: Record<string, unknown> = { ...columnsOf(settings), updated_at: new Date() }
    if (settings.alias !== undefined) changes.alias = settings.alias
    if (settings.blocked !== undefined && settings.blocked !== (before.blocked_at !== null)) {
      changes.blocked_at = settings.blocked ? new Date() : null
    }
    if (input.metadata !== undefined) changes.metadata = JSON.stringify(input.metadata ?? {})
    if (settings.maxBudget === null && settings.budgetPeriod === undefined) changes.budget_period = null
    const period = changes.budget_period === undefined ? before.budget_period : (changes.budget_period as SpendPeriod | null)
    if (period !== before.budget_period && period !== null) {
      // A new period starts with what was spent under the organization in it (its usage rows), as a team's.
      Object.assign(changes, await periodSpent(trx, 'organization_id', before.id, before.spent, period))
    }
    const [row] = await trx.from('organizations').where('id', before.id).update(changes).returning('*')
    const org = normalised(row)
    const described = describeChanges(snapshot(before), snapshot(org))
    if (described !== '') {
      await writeAudit(trx, actor, {
        action: 'organization.update',
        subjectType: 'organization',
        subjectId: org.id,
        summary: `organization ${org.alias}: ${described}`,
        before: snapshot(before),
        after: snapshot(org),
      })
    }
    return org
  })
}

/**
 * Deletes organizations (every id checked first: one unknown, or one with
 * teams in it, deletes none). Refused while teams are in it (LiteLLM deletes
 * the teams and their keys with it; here an operator moves or deletes them
 * first, and nothing a customer uses vanishes by a side effect). Usage rows
 * keep its id.
 */
export async function deleteOrganizations(refs: unknown[], actor: Actor = cliActor()): Promise<OrganizationRow[]> {
  return db.transaction(async (trx) => {
    const orgs: OrganizationRow[] = []
    for (const ref of refs) {
      const org = await findOrganization(ref, trx)
      if (!orgs.some((o) => o.id === org.id)) orgs.push(org)
    }
    for (const org of orgs) {
      const teams = await trx.from('teams').where('organization_id', org.id).count('* as n').first()
      const count = Number(teams?.n ?? 0)
      if (count > 0) {
        throw new AdminInputError(`Organization ${org.alias} still has ${count} team(s): move them to another organization or delete them first`)
      }
    }
    for (const org of orgs) {
      await trx.from('organizations').where('id', org.id).delete()
      await writeAudit(trx, actor, {
        action: 'organization.delete',
        subjectType: 'organization',
        subjectId: org.id,
        summary: `organization ${org.alias} deleted`,
        before: snapshot(org),
      })
    }
    return orgs
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
    const [row] = await trx
      .from('organization_members')
      .where('organization_id', org.id)
      .where('user_id', user.id)
      .update({ role: member.role ?? 'internal_user' })
      .returning('*')
    if (!row) throw AdminInputError.notFound(`${user.email} is not a member of organization ${org.alias}`)
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
  const rows = await db.from('organizations').orderBy('id', 'desc').limit(1000)
  return rows.map(normalised)
}

/** The organizations a user is a member of, oldest membership first. */
export async function organizationsOfUser(userId: number): Promise<OrganizationRow[]> {
  const rows = await db
    .from('organizations as o')
    .join('organization_members as m', 'm.organization_id', 'o.id')
    .where('m.user_id', userId)
    .orderBy('m.created_at')
    .select('o.*')
  return rows.map(normalised)
}

async function checked(input: OrganizationSettings) {
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

function columnsOf(settings: Awaited<ReturnType<typeof checked>>) {
  const columns: Record<string, unknown> = {}
  if (settings.maxBudget !== undefined) columns.max_budget = settings.maxBudget
  if (settings.budgetPeriod !== undefined) columns.budget_period = settings.budgetPeriod
  if (settings.models !== undefined) columns.allowed_models = settings.models && settings.models.length > 0 ? JSON.stringify(settings.models) : null
  if (settings.rpm !== undefined) columns.rpm = settings.rpm
  if (settings.tpm !== undefined) columns.tpm = settings.tpm
  return columns
}

function normalised(row: Record<string, any>): OrganizationRow {
  return {
    ...row,
    id: Number(row.id),
    allowed_models: Array.isArray(row.allowed_models) && row.allowed_models.length > 0 ? row.allowed_models : null,
    metadata: row.metadata ?? {},
  } as OrganizationRow
}

function snapshot(org: OrganizationRow) {
  return {
    alias: org.alias,
    max_budget: org.max_budget,
    budget_period: org.budget_period,
    models: org.allowed_models,
    rpm: org.rpm,
    tpm: org.tpm,
    blocked: org.blocked_at !== null,
    metadata: org.metadata,
  }
}

function describe(org: OrganizationRow) {
  const budget = org.max_budget === null ? 'no budget' : `budget $${plain(org.max_budget)}${org.budget_period ? ` a ${org.budget_period}` : ''}`
  const parts = [budget]
  if (org.allowed_models) parts.push(`models ${org.allowed_models.join(', ')}`)
  if (org.rpm) parts.push(`${org.rpm} rpm`)
  if (org.tpm) parts.push(`${org.tpm} tpm`)
  if (org.blocked_at) parts.push('blocked')
  return parts.join(', ')
}

function plain(amount: string) {
  return amount.includes('.') ? amount.replace(/\.?0+$/, '') : amount
}
