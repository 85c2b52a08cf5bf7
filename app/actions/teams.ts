import db from '@adonisjs/lucid/services/db'
import type { TransactionClientContract } from '@adonisjs/lucid/types/database'
import { AdminInputError } from '#actions/admin_input_error'
import { cliActor, writeAudit, type Actor } from '#actions/audit'
import {
  budgetResetsAt,
  budgetSpentNow,
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
import { findApiKey, keyLabel } from '#actions/revoke_api_key'
import { toPico } from '#gateway/metering/money'
import { PortalInputError } from '#actions/portal_input_error'
import { recordId } from '#services/record_id'
import type ApiKey from '#models/api_key'
import { teamMemberValidator } from '#validators/team'
import {
  checkedMemberLimits,
  memberColumnsOf,
  memberLimitChanges,
  touchesLimits,
  type MemberLimitColumns,
  type MemberLimits,
} from '#actions/team_member_budgets'

/**
 * Teams (LiteLLM's /team/*): a policy over a set of keys (api_keys.team_id):
 * a shared budget per UTC day/week/month or for the team's life, model
 * globs, rpm/tpm shared by its keys, a block. Billing stays on each key's
 * owner. Members are users with a role; membership is a record (LiteLLM's
 * members_with_roles), it does not decide which keys may join (the master
 * key adds any key to any team in LiteLLM too).
 *
 * The one implementation behind the panel, the management API
 * (/api/admin/teams), LiteLLM's /team/* and `team:create`; every change is
 * audited (subject `team`). The gateways' caches hear of a change through
 * the teams and api_keys triggers (migration 1003).
 */
export interface TeamSettings extends BudgetGroupSettings {
  /** The organization the team is in (an id: 404 when none has it); null: in none */
  organization?: unknown
}

export interface TeamRow extends BudgetGroupRow {
  /** organizations.id (migration 1024); null: in none */
  organization_id: number | null
}

/** A member and their limits in the team (app/actions/team_member_budgets.ts; migration 1039). */
export interface TeamMember extends MemberLimitColumns {
  user_id: number
  email: string
  role: 'admin' | 'user'
}

export type MemberRole = 'admin' | 'user'

/** Teams as a budget group (app/actions/budget_group.ts); a team also names its organization. */
const TEAMS: BudgetGroupKind<TeamRow> = {
  table: 'teams',
  subject: 'team',
  usageColumn: 'team_id',
  membersTable: 'team_members',
  memberColumn: 'team_id',
  aliasRequired: 'A team needs an alias (its name)',
  notFound: (ref) => `No team "${String(ref ?? '')}"`,
  normalised,
  snapshot: (team) => ({ ...groupSnapshot(team), organization_id: team.organization_id }),
}

/** A team by id (a number or its digits); 404 otherwise. Locked when read in a transaction. */
export async function findTeam(ref: unknown, trx?: TransactionClientContract): Promise<TeamRow> {
  return findGroup(TEAMS, ref, trx)
}

export async function createTeam(input: TeamSettings, actor: Actor = cliActor()): Promise<TeamRow> {
  return createGroup(TEAMS, input, actor, async (trx) =>
    input.organization === undefined ? null : { organization_id: await organizationIdOf(trx, input.organization) }
  )
}

/**
 * Changes the settings given (the rest kept); null clears a budget or limit.
 * A team moved to another organization leaves its past spend with the first
 * (usage rows keep theirs). The organization's row is locked before the
 * team's, as the meter's statement takes them: the team's first deadlocked
 * with a batch that had updated the organization and waited on the team (the
 * panel's form sends the organization with every save).
 */
export async function updateTeam(ref: unknown, input: TeamSettings, actor: Actor = cliActor()): Promise<TeamRow> {
  const organization = input.organization
  return updateGroup(
    TEAMS,
    ref,
    input,
    actor,
    organization === undefined ? undefined : async (trx) => ({ organization_id: await organizationIdOf(trx, organization) })
  )
}

/** Blocks the team's keys for now (401 in each wire format, as a blocked key), or lifts it. */
export async function setTeamBlocked(ref: unknown, blocked: boolean, actor: Actor = cliActor()) {
  return updateTeam(ref, { blocked }, actor)
}

/**
 * Deletes teams (every id checked first: one unknown deletes none). Their
 * keys stay, in no team (api_keys.team_id ON DELETE SET NULL); usage rows stay.
 */
export async function deleteTeams(refs: unknown[], actor: Actor = cliActor()): Promise<TeamRow[]> {
  return deleteGroups(TEAMS, refs, actor, async (trx, team) => {
    const keys = await trx.from('api_keys').where('team_id', team.id).count('* as n').first()
    return ` (${Number(keys?.n ?? 0)} key(s) left in no team)`
  })
}

/**
 * Adds users to the team, or changes their role when already in it.
 * `limits` (LiteLLM's max_budget_in_team...) are set on each of them
 * (team_member_budgets.ts), in the same transaction; left out: unchanged.
 */
export async function addTeamMembers(
  ref: unknown,
  members: Array<{ user: string; role?: MemberRole }>,
  actor: Actor = cliActor(),
  limits: MemberLimits = {}
) {
  // None given is a mistake of the caller's, not a change to audit.
  if (members.length === 0) throw new AdminInputError('Give at least one member (a user id or e-mail)', 'user')
  const checkedMembers: Array<{ user: string; role?: MemberRole }> = []
  for (const member of members) checkedMembers.push(await teamMemberValidator.validate(member))
  const checkedLimits = await checkedMemberLimits(limits)
  return db.transaction(async (trx) => {
    // The team's row, then the members' (the meter's order: architecture.md "Row locks and their order").
    const team = await findTeam(ref, trx)
    const added: TeamMember[] = []
    for (const member of checkedMembers) {
      const user = await findUser(member.user, trx)
      const role = member.role ?? 'user'
      let result = await trx.rawQuery(
        `INSERT INTO team_members (team_id, user_id, role) VALUES (?, ?, ?)
         ON CONFLICT (team_id, user_id) DO UPDATE SET role = EXCLUDED.role RETURNING *`,
        [team.id, user.id, role]
      )
      if (touchesLimits(checkedLimits)) {
        const changes = await memberLimitChanges(trx, team.id, user.id, result.rows[0], checkedLimits)
        if (Object.keys(changes).length > 0) {
          const [row] = await trx.from('team_members').where('team_id', team.id).where('user_id', user.id).update(changes).returning('*')
          result = { rows: [row] }
        }
      }
      added.push({ user_id: user.id, email: user.email, ...memberColumnsOf(result.rows[0]) })
    }
    await writeAudit(trx, actor, {
      action: 'team.member_add',
      subjectType: 'team',
      subjectId: team.id,
      summary: `team ${team.alias}: ${added.map((m) => `${m.email} (${m.role}${m.max_budget === null ? '' : `, budget $${Number(m.max_budget)}${m.budget_period ? ` a ${m.budget_period}` : ''}`})`).join(', ')} added`,
      after: {
        members: added.map((m) => ({ user_id: m.user_id, role: m.role, ...(touchesLimits(checkedLimits) ? { max_budget: m.max_budget, budget_period: m.budget_period, rpm: m.rpm, tpm: m.tpm } : null) })),
      },
    })
    return { team, added }
  })
}

/**
 * Takes users out of the team (each must be a member: one who is not removes none). Their keys stay in it.
 * The team's row is locked first, then the members' in user id order (the (team_id, user_id) order of
 * architecture.md "Row locks and their order"), whatever order the caller named them in.
 */
export async function removeTeamMembers(ref: unknown, users: string[], actor: Actor = cliActor()) {
  return db.transaction(async (trx) => {
    const team = await findTeam(ref, trx)
    const removed: Array<{ user_id: number; email: string }> = []
    for (const ref of users) {
      const user = await findUser(ref, trx)
      const row = await trx.from('team_members').where('team_id', team.id).where('user_id', user.id).first()
      if (!row) throw AdminInputError.notFound(`${user.email} is not a member of team ${team.alias}`)
      if (!removed.some((r) => r.user_id === user.id)) removed.push({ user_id: user.id, email: user.email })
    }
    const ids = removed.map((r) => r.user_id)
    // Locked in order before the delete, whose own scan order is the plan's (a sequential scan: the rows' places).
    await trx.from('team_members').where('team_id', team.id).whereIn('user_id', ids).orderBy('user_id').forUpdate().select('user_id')
    await trx.from('team_members').where('team_id', team.id).whereIn('user_id', ids).delete()
    await writeAudit(trx, actor, {
      action: 'team.member_delete',
      subjectType: 'team',
      subjectId: team.id,
      summary: `team ${team.alias}: ${removed.map((r) => r.email).join(', ')} removed`,
      before: { members: removed.map((r) => r.user_id) },
    })
    return { team, removed }
  })
}

/**
 * Puts a key in a team (null: in none). Its owner need not be a member (as
 * with LiteLLM's master key). The spend the key made before stays with the
 * team it was made under (usage rows keep their team); the new team counts
 * the key's requests admitted from now on.
 */
export async function setKeyTeam(keyRef: string, teamRef: unknown, actor: Actor = cliActor()) {
  // An unknown key is said first, as before; its row is locked after the team's (below).
  const found = await findApiKey(keyRef)
  return db.transaction(async (trx) => {
    // The team's row before the key's, as the meter's statement takes them (architecture.md "Row locks and their
    // order"): the key's first deadlocked with a batch of the key that had updated the team and waited on the key.
    const team = teamRef === null || teamRef === undefined || teamRef === '' ? null : await findTeam(teamRef, trx)
    const key = await findApiKey(String(found.id), trx)
    return putKeyInTeam(trx, key, team, actor)
  })
}

/**
 * setKeyTeam in the caller's transaction, the team already read (and locked)
 * in it: a key made into a team (createApiKey) is one change with its team,
 * so a team deleted meanwhile leaves no key behind that the client never got.
 */
export async function putKeyInTeam(trx: TransactionClientContract, key: ApiKey, team: TeamRow | null, actor: Actor) {
  const teamId = team?.id ?? null
  if ((key.teamId ?? null) === teamId) return key
  const before = key.teamId ?? null
  key.teamId = teamId
  key.useTransaction(trx)
  await key.save()
  await writeAudit(trx, actor, {
    action: 'key.team',
    subjectType: 'api_key',
    subjectId: key.id,
    summary: `${await keyLabel(trx, key)} ${team ? `put in team ${team.alias}` : 'taken out of its team'}`,
    before: { team_id: before },
    after: { team_id: teamId },
  })
  return key
}

/** The team's members, oldest first. */
export async function teamMembers(teamIds: number[]): Promise<Map<number, TeamMember[]>> {
  const byTeam = new Map<number, TeamMember[]>()
  if (teamIds.length === 0) return byTeam
  const rows = await db
    .from('team_members as m')
    .join('users as u', 'u.id', 'm.user_id')
    .whereIn('m.team_id', teamIds)
    .orderBy('m.created_at')
    .select('m.*', 'u.email')
  for (const row of rows) {
    const list = byTeam.get(Number(row.team_id)) ?? []
    list.push({ user_id: Number(row.user_id), email: row.email, ...memberColumnsOf(row) })
    byTeam.set(Number(row.team_id), list)
  }
  return byTeam
}

/** The teams in each of these organizations, by name. */
export async function teamsOfOrganizations(orgIds: number[]): Promise<Map<number, TeamRow[]>> {
  const byOrg = new Map<number, TeamRow[]>()
  if (orgIds.length === 0) return byOrg
  const rows = await db.from('teams').whereIn('organization_id', orgIds).orderBy('alias').orderBy('id')
  for (const row of rows) {
    const team = normalised(row)
    const list = byOrg.get(team.organization_id!) ?? []
    list.push(team)
    byOrg.set(team.organization_id!, list)
  }
  return byOrg
}

/** Teams, newest first (operators have tens or hundreds). */
export async function listTeams(): Promise<TeamRow[]> {
  return listGroups(TEAMS)
}

function normalised(row: Record<string, any>): TeamRow {
  const team = normalisedGroup(row) as TeamRow
  team.organization_id = row.organization_id === null || row.organization_id === undefined ? null : Number(row.organization_id)
  return team
}

/**
 * The organization a team is put in (null, '': none), read in the team's
 * transaction and share-locked there, so it cannot be deleted before the
 * team's row names it (the foreign key would refuse it then anyway). The
 * refusal names the field, so the panel says it beside the Organization
 * select (the APIs answer their 404 as before).
 */
async function organizationIdOf(trx: TransactionClientContract, ref: unknown): Promise<number | null> {
  if (ref === null || ref === '') return null
  const id = recordId(ref)
  const row = id === null ? null : await trx.from('organizations').where('id', id).forShare().select('id').first()
  if (!row) {
    const error = AdminInputError.notFound(`No organization "${String(ref).slice(0, 100)}"`)
    error.field = 'organization'
    throw error
  }
  return Number(row.id)
}

/** The teams a user is a member of, oldest membership first. */
export async function teamsOfUser(userId: number): Promise<TeamRow[]> {
  return groupsOfUser(TEAMS, userId)
}

/** One of the user's own keys in a team, as the portal lists it (never another member's). */
export interface PortalTeamKey {
  id: number
  name: string
  masked: string
  spent: string
  lastUsedAt: Date | null
  state: 'active' | 'blocked' | 'expired'
}

/** A team as one of its members (or the owner of a key in it) sees it in the portal. */
export interface PortalTeam {
  team: TeamRow
  /** The user's role; null: not a member, only the owner of a key in it */
  role: MemberRole | null
  /** What the budget counts now (budgetSpentNow) */
  spent: string
  resetsAt: string | null
  /** Its budget is spent: its keys are refused (402) until it resets or is raised */
  budgetReached: boolean
  /** The user's own active keys in it, newest first */
  keys: PortalTeamKey[]
}

/**
 * The teams a user is a member of or owns an active key in, with the user's
 * own keys in each (one query: a team row per key of the user's in it, or
 * one without a key). Another member's keys are not read. `teamId` narrows it
 * to that team (empty when the user is neither member nor owner of a key in it).
 */
export async function portalTeams(userId: number, teamId?: number): Promise<PortalTeam[]> {
  const query = db
    .from('teams as t')
    .leftJoin('team_members as m', (join) => join.on('m.team_id', 't.id').andOnVal('m.user_id', userId))
    .leftJoin('api_keys as k', (join) => join.on('k.team_id', 't.id').andOnVal('k.user_id', userId).andOnNull('k.revoked_at'))
    // Driven from the user's side (index probes), not by scanning every team.
    .whereRaw(
      `t.id IN (SELECT team_id FROM team_members WHERE user_id = ?
                UNION SELECT team_id FROM api_keys WHERE user_id = ? AND team_id IS NOT NULL AND revoked_at IS NULL)`,
      [userId, userId]
    )
    .orderBy('t.alias')
    .orderBy('t.id')
    .orderBy('k.id', 'desc')
    .select(
      't.*',
      'm.role as member_role',
      'k.id as key_id',
      'k.name as key_name',
      'k.prefix as key_prefix',
      'k.last_four as key_last_four',
      'k.spent as key_spent',
      'k.last_used_at as key_last_used_at',
      'k.blocked_at as key_blocked_at',
      'k.expires_at as key_expires_at'
    )
  if (teamId !== undefined) query.where('t.id', teamId)
  const byId = new Map<number, PortalTeam>()
  const now = Date.now()
  for (const row of await query) {
    const id = Number(row.id)
    let entry = byId.get(id)
    if (!entry) {
      const { member_role: role, key_id: _k, key_name: _n, key_prefix: _p, key_last_four: _l, key_spent: _s, key_last_used_at: _u, key_blocked_at: _b, key_expires_at: _e, ...columns } = row
      const team = normalised(columns)
      const spent = budgetSpentNow(team)
      entry = {
        team,
        role: role ?? null,
        spent,
        resetsAt: budgetResetsAt(team),
        budgetReached: team.max_budget !== null && toPico(String(spent)) >= toPico(String(team.max_budget)),
        keys: [],
      }
      byId.set(id, entry)
    }
    if (row.key_id !== null) {
      const expired = row.key_expires_at !== null && new Date(row.key_expires_at).getTime() <= now
      entry.keys.push({
        id: Number(row.key_id),
        name: row.key_name,
        masked: `${row.key_prefix}…${row.key_last_four}`,
        spent: row.key_spent,
        lastUsedAt: row.key_last_used_at,
        state: row.key_blocked_at !== null ? 'blocked' : expired ? 'expired' : 'active',
      })
    }
  }
  return [...byId.values()]
}

/** Whether the portal's nav shows Teams: the user is a member of a team or owns an active key in one (two index probes). */
export async function inAnyTeam(userId: number): Promise<boolean> {
  const result = await db.rawQuery(
    `SELECT EXISTS (SELECT 1 FROM team_members WHERE user_id = ?)
         OR EXISTS (SELECT 1 FROM api_keys WHERE user_id = ? AND team_id IS NOT NULL AND revoked_at IS NULL) AS in_team`,
    [userId, userId]
  )
  return result.rows[0]?.in_team === true
}

/** The teams the user may make keys in from the portal: those they are an `admin` member of, by name. */
export async function teamsAdministeredBy(userId: number): Promise<Array<{ id: number; alias: string }>> {
  const rows = await db
    .from('teams as t')
    .join('team_members as m', 'm.team_id', 't.id')
    .where('m.user_id', userId)
    .where('m.role', 'admin')
    .orderBy('t.alias')
    .select('t.id', 't.alias')
  return rows.map((row) => ({ id: Number(row.id), alias: row.alias }))
}

/**
 * The team a user makes a key in from the portal, read and locked in the
 * key's transaction: only a team the user is an `admin` member of. Anything
 * else (not a member, a plain member, no such team) is the same refusal, so
 * the answer does not tell which teams exist. removeTeamMembers locks the team
 * row first too: a membership taken away meanwhile is seen here.
 */
export async function findTeamAdministeredBy(ref: unknown, userId: number, trx: TransactionClientContract): Promise<TeamRow> {
  const id = recordId(ref)
  const row =
    id === null
      ? null
      : await trx
          .from('teams as t')
          .join('team_members as m', 'm.team_id', 't.id')
          .where('t.id', id)
          .where('m.user_id', userId)
          .where('m.role', 'admin')
          .forUpdate('t')
          .select('t.*')
          .first()
  // Said above the form (not beside a field: a user who administers no team has no team field).
  if (!row) throw new PortalInputError('team_not_allowed')
  return normalised(row)
}

/**
 * A user moves one of their own keys between teams from the portal (`teamId`
 * null: out of its team), in the key's transaction under its row lock. Into
 * a team: the user must be its `admin`; out of one (or from one to another):
 * an `admin` of the team the key leaves too, or a member could take a key out
 * of its team's budget, models and limits. Both teams are read with their
 * membership and locked in id order (two moves crossing each other do not
 * deadlock; removeTeamMembers locks the team first, so a role taken away
 * meanwhile is seen). Any refusal is findTeamAdministeredBy's, the same
 * whether the team exists or not. The key's past spend stays with the team
 * it was made under (usage rows keep their team).
 */
export async function moveOwnKeyToTeam(trx: TransactionClientContract, key: ApiKey, userId: number, teamId: number | null, actor: Actor) {
  const from = key.teamId ?? null
  if (from === teamId) return key
  // Locked already (lockTeamsOfMove, before the key's row) unless the key changed teams meanwhile: then no wait.
  const target = await lockTeamsOfMove(trx, userId, from, teamId)
  return putKeyInTeam(trx, key, target, actor)
}

/**
 * moveOwnKeyToTeam's teams, checked and locked in id order; the target's row
 * (null: none). Called first with the team the key was seen in, before the
 * key's row is locked: the meter's statement locks a team before its keys
 * (architecture.md "Row locks and their order"), and the key's row first
 * deadlocked with a batch of the key that had updated its team.
 */
export async function lockTeamsOfMove(trx: TransactionClientContract, userId: number, from: number | null, teamId: number | null) {
  if (from === teamId) return null
  let target: TeamRow | null = null
  for (const id of [from, teamId].filter((id): id is number => id !== null).sort((a, b) => a - b)) {
    const team = await findTeamAdministeredBy(id, userId, trx)
    if (id === teamId) target = team
  }
  return target
}
