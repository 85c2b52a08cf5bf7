import { test } from '@japa/runner'
import db from '@adonisjs/lucid/services/db'
import type { TransactionClientContract } from '@adonisjs/lucid/types/database'
import { createOrganization, type OrganizationRow } from '#actions/organizations'
import { addTeamMembers, createTeam, deleteTeams, removeTeamMembers, setKeyTeam, updateTeam, type TeamRow } from '#actions/teams'
import { setEndUser } from '#actions/end_users'
import { createBudget, updateBudget } from '#actions/budgets'
import { updateUserApiKey } from '#actions/update_user_api_key'
import { setReferralTerms } from '#actions/referrals'
import { postLedgerEntry } from '#actions/post_ledger_entry'
import { cliActor } from '#actions/audit'
import { updateTeamMember } from '#actions/team_member_budgets'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { gateway, post, refreshCaches, resetDatabase, seedChannel, seedPrice, seedUser, startMock, type SeededUser } from '#tests/helpers'

/**
 * The row locks of the meter's batch statement and of the admin actions that
 * change the same rows, taken in one order (architecture.md "Row locks and
 * their order"). Each deadlock test makes the old order's deadlock happen
 * every time: a blocker holds the row the action locks first, the action
 * queues on it, then a metered call's batch locks its earlier rows and queues
 * behind the action; the blocker lets go, the action takes its first row and
 * asks for one the batch holds. Postgres breaks that only after
 * deadlock_timeout (1 s) by failing one side: the action (a 500, the change
 * lost) or the batch (retried).
 */
const hello = [{ role: 'user', content: 'hi' }]
/** $0.001 a call: the mock's usage (12 in, 5 out) at 50/80 per million. */
const CALL = '0.001000000000'

async function call(key: string, extra: Record<string, unknown> = {}, model = 'lo-model') {
  const answer = await post('/v1/chat/completions', { model, messages: hello, ...extra }, { authorization: `Bearer ${key}` })
  await answer.arrayBuffer()
  return answer.status
}

async function drained() {
  await (await gateway()).meter.drain()
}

/** Statements of this database waiting on a lock (the action, the meter's batch). */
async function lockWaiters() {
  const rows = await db.rawQuery(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()`)
  return rows.rows[0].n as number
}

async function untilLockWaiters(n: number) {
  for (let i = 0; i < 100; i++) {
    if ((await lockWaiters()) >= n) return
    await new Promise((r) => setTimeout(r, 20))
  }
  throw new Error(`fewer than ${n} statements waiting on a lock`)
}

async function deadlockTimeoutMs() {
  return Number((await db.rawQuery(`SELECT setting FROM pg_settings WHERE name = 'deadlock_timeout'`)).rows[0].setting)
}

/** A transaction holding one row FOR UPDATE: the row the action locks first. */
async function blocker(table: string, where: string) {
  const trx = await db.transaction()
  await trx.rawQuery(`SELECT 1 FROM ${table} WHERE ${where} FOR UPDATE`)
  return trx
}

/**
 * The race: the blocker holds the action's first row, the action queues on
 * it, a call's batch locks what it locks before that row and queues behind
 * the action, the blocker lets go. The action must finish well before
 * deadlock_timeout (no deadlock), without an error.
 */
async function raceWithMeter(held: TransactionClientContract, action: () => Promise<unknown>, metered: () => Promise<number>) {
  const change = action().then(
    () => null,
    (error: any) => error
  )
  await untilLockWaiters(1)
  if ((await metered()) !== 200) throw new Error('the metered call failed')
  await untilLockWaiters(2)
  const released = performance.now()
  await held.commit()
  const error = await change
  const took = performance.now() - released
  await drained()
  return { error, took }
}

test.group('Row locks: one order for the meter and the actions', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'mock', baseUrl: mock.url, models: ['*'] })
    for (const model of ['lo-model', 'lo-budgeted']) await seedPrice(model, '50', '80')
    return () => mock.stop()
  })

  /** A user with $10 whose key is in a team of an organization, with an end user listed. */
  async function seedTeamKey(options: { modelBudget?: boolean; teamAdmin?: boolean; memberBudget?: boolean } = {}) {
    const user = await seedUser({
      balance: '10',
      key: options.modelBudget ? { modelLimits: { 'lo-budgeted': { budget: '5', budget_period: 'day' } } } : {},
    })
    const org = await createOrganization({ alias: `lo-org-${user.userId}`, maxBudget: '100' })
    const team = await createTeam({ alias: `lo-team-${user.userId}`, organization: org.id, maxBudget: '100', budgetPeriod: 'month' })
    if (options.teamAdmin) await addTeamMembers(team.id, [{ user: user.email, role: 'admin' }])
    // The owner's budget inside the team (team_members): its batches carry MEMBER_SPEND_EFFECT.
    if (options.memberBudget) await addTeamMembers(team.id, [{ user: user.email, role: 'user' }], undefined, { maxBudget: '100', budgetPeriod: 'month' })
    await setKeyTeam(String(user.keyId), team.id)
    await setEndUser({ userRef: user.email, endUser: 'lo-cust', monthlyLimit: '100' })
    await refreshCaches()
    return { user, org, team }
  }

  /** Which rows a probe cannot lock at once (the waiting batch holds them). */
  async function heldRows(rows: Array<[string, string]>) {
    const held: string[] = []
    for (const [table, where] of rows) {
      const probe = await db.transaction()
      try {
        await probe.rawQuery(`SELECT 1 FROM ${table} WHERE ${where} FOR UPDATE NOWAIT`)
      } catch (error: any) {
        if (error.code !== '55P03') throw error
        held.push(table)
      } finally {
        await probe.rollback()
      }
    }
    return held
  }

  async function lockOrderOf(user: SeededUser, org: OrganizationRow, team: TeamRow, model: string, rows: string[]) {
    const where: Record<string, string> = {
      organizations: `id = ${org.id}`,
      teams: `id = ${team.id}`,
      team_members: `team_id = ${team.id} AND user_id = ${user.userId}`,
      end_users: `user_id = ${user.userId} AND end_user = 'lo-cust'`,
      api_keys: `id = ${user.keyId}`,
      api_key_model_spend: `api_key_id = ${user.keyId}`,
      monthly_usage: `user_id = ${user.userId} AND model = '${model}'`,
      users: `id = ${user.userId}`,
    }
    // Every row exists (the first call made the counters and the model's spend).
    assert200(await call(user.key, { user: 'lo-cust' }, model))
    await drained()
    const seen: Record<string, string[]> = {}
    for (const table of rows) {
      const held = await blocker(table, where[table])
      try {
        assert200(await call(user.key, { user: 'lo-cust' }, model))
        await untilLockWaiters(1)
        seen[table] = await heldRows(rows.filter((other) => other !== table).map((other) => [other, where[other]]))
      } finally {
        await held.commit()
      }
      await drained()
    }
    return seen
  }

  function assert200(status: number) {
    if (status !== 200) throw new Error(`the call answered ${status}`)
  }

  /** What the batch must hold while it waits on each table's row: every table before it in the order. */
  function expectedFor(order: string[]) {
    return Object.fromEntries(order.map((table, i) => [table, order.slice(0, i)]))
  }

  test("the meter's statement locks organizations, teams, end users, keys, the keys' model spend, the monthly counters, then users, for every kind of batch", async ({ assert }) => {
    const plain = await seedTeamKey()
    const order = ['organizations', 'teams', 'end_users', 'api_keys', 'monthly_usage', 'users']
    assert.deepEqual(await lockOrderOf(plain.user, plain.org, plain.team, 'lo-model', order), expectedFor(order))
    // A batch with a row under a key's budget for a model locked the key before the team and the end user.
    const budgeted = await seedTeamKey({ modelBudget: true })
    const withSpend = ['organizations', 'teams', 'end_users', 'api_keys', 'api_key_model_spend', 'monthly_usage', 'users']
    assert.deepEqual(await lockOrderOf(budgeted.user, budgeted.org, budgeted.team, 'lo-budgeted', withSpend), expectedFor(withSpend))
  }).timeout(60_000)

  test("a batch with a row under a member's budget in a team locks the team's member right after the team", async ({ assert }) => {
    const member = await seedTeamKey({ memberBudget: true })
    const order = ['organizations', 'teams', 'team_members', 'end_users', 'api_keys', 'monthly_usage', 'users']
    assert.deepEqual(await lockOrderOf(member.user, member.org, member.team, 'lo-model', order), expectedFor(order))
  }).timeout(60_000)

  test("a member's budget changed while a batch of theirs is metered: no deadlock, the change and the charges exact", async ({ assert }) => {
    const { user, team } = await seedTeamKey({ memberBudget: true })
    assert.equal(await call(user.key, { user: 'lo-cust' }), 200)
    await drained()
    // The member's row held: the change locks the team and queues on it; the batch locks the organization and
    // queues on the team. Locking the member first (then the team, which the batch holds) deadlocked.
    const held = await blocker('team_members', `team_id = ${team.id} AND user_id = ${user.userId}`)
    const { error, took } = await raceWithMeter(
      held,
      () => updateTeamMember(team.id, user.email, { maxBudget: '50', budgetPeriod: 'week' }),
      () => call(user.key, { user: 'lo-cust' })
    )
    assert.isNull(error)
    assert.isBelow(took, (await deadlockTimeoutMs()) * 0.9)
    const row = await db.from('team_members').where('team_id', team.id).where('user_id', user.userId).first()
    assert.equal(row.max_budget, '50.000000000000')
    assert.equal(row.budget_period, 'week')
    // The week's recount (the first call) plus the waiting batch's call.
    assert.equal(row.spent, '0.002000000000')
    assert.equal(row.period_spent, '0.002000000000')
    assert.equal((await db.from('teams').where('id', team.id).first()).spent, '0.002000000000')
  }).timeout(30_000)

  test("an end user's limit changed while a batch of theirs is metered: no deadlock, the change and the charges exact", async ({ assert }) => {
    const { user } = await seedTeamKey()
    assert.equal(await call(user.key, { user: 'lo-cust' }), 200)
    await drained()
    const held = await blocker('users', `id = ${user.userId}`)
    const { error, took } = await raceWithMeter(
      held,
      () => setEndUser({ userRef: user.email, endUser: 'lo-cust', monthlyLimit: '50' }),
      () => call(user.key, { user: 'lo-cust' })
    )
    assert.isNull(error)
    assert.isBelow(took, (await deadlockTimeoutMs()) * 0.9)
    const row = await db.from('end_users').where('user_id', user.userId).where('end_user', 'lo-cust').first()
    assert.equal(row.monthly_limit, '50.000000000000')
    assert.equal(row.spent, '0.002000000000')
    assert.equal(row.period_spent, '0.002000000000')
    const owner = await db.from('users').where('id', user.userId).first()
    assert.equal(owner.balance, '9.998000000000')
  }).timeout(30_000)

  test("a shared budget's period changed while a batch of a linked end user is metered: no deadlock, the recount and the batch both counted", async ({ assert }) => {
    const { user } = await seedTeamKey()
    const budget = await createBudget({ budgetId: `lo-budget-${user.userId}`, maxBudget: '100', budgetPeriod: 'day' })
    await setEndUser({ userRef: user.email, endUser: 'lo-cust', budgetId: budget.budget_id })
    await refreshCaches()
    assert.equal(await call(user.key, { user: 'lo-cust' }), 200)
    await drained()
    const held = await blocker('users', `id = ${user.userId}`)
    const { error, took } = await raceWithMeter(
      held,
      () => updateBudget(budget.budget_id, { budgetPeriod: 'month' }),
      () => call(user.key, { user: 'lo-cust' })
    )
    assert.isNull(error)
    assert.isBelow(took, (await deadlockTimeoutMs()) * 0.9)
    const row = await db.from('end_users').where('user_id', user.userId).where('end_user', 'lo-cust').first()
    assert.equal(row.spend_period, 'month')
    // The month's recount (the first call) plus the waiting batch's call.
    assert.equal(row.period_spent, '0.002000000000')
    assert.equal(row.spent, '0.002000000000')
  }).timeout(30_000)

  test('a key put in the team it is in while a batch of the key is metered (an API update naming the team): no deadlock', async ({ assert }) => {
    const { user, team } = await seedTeamKey()
    const held = await blocker('api_keys', `id = ${user.keyId}`)
    const { error, took } = await raceWithMeter(
      held,
      () => setKeyTeam(String(user.keyId), team.id),
      () => call(user.key, { user: 'lo-cust' })
    )
    assert.isNull(error)
    assert.isBelow(took, (await deadlockTimeoutMs()) * 0.9)
    const teamRow = await db.from('teams').where('id', team.id).first()
    assert.equal(teamRow.spent, CALL)
    const key = await db.from('api_keys').where('id', user.keyId).first()
    assert.equal(key.spent, CALL)
    assert.equal(Number(key.team_id), team.id)
  }).timeout(30_000)

  test('a user moves their key out of its team in the portal while a batch of the key is metered: no deadlock, the team keeps the call', async ({ assert }) => {
    const { user, team } = await seedTeamKey({ teamAdmin: true })
    const key = await db.from('api_keys').where('id', user.keyId).first()
    const held = await blocker('api_keys', `id = ${user.keyId}`)
    const { error, took } = await raceWithMeter(
      held,
      () => updateUserApiKey(user.userId, null, user.keyId, { name: key.name, team: null }, { id: user.userId, label: user.email, source: 'portal' }),
      () => call(user.key, { user: 'lo-cust' })
    )
    assert.isNull(error)
    assert.isBelow(took, (await deadlockTimeoutMs()) * 0.9)
    const moved = await db.from('api_keys').where('id', user.keyId).first()
    assert.isNull(moved.team_id)
    assert.equal(moved.spent, CALL)
    // Admitted under the team: counted there.
    assert.equal((await db.from('teams').where('id', team.id).first()).spent, CALL)
  }).timeout(30_000)

  test("a team saved with its organization (the panel's form) while a batch of its keys is metered: no deadlock", async ({ assert }) => {
    const { user, team, org } = await seedTeamKey()
    const held = await blocker('teams', `id = ${team.id}`)
    const { error, took } = await raceWithMeter(
      held,
      () => updateTeam(team.id, { alias: `${team.alias}-renamed`, organization: String(org.id) }),
      () => call(user.key, { user: 'lo-cust' })
    )
    assert.isNull(error)
    assert.isBelow(took, (await deadlockTimeoutMs()) * 0.9)
    const teamRow = await db.from('teams').where('id', team.id).first()
    assert.equal(teamRow.alias, `${team.alias}-renamed`)
    assert.equal(teamRow.spent, CALL)
    assert.equal((await db.from('organizations').where('id', org.id).first()).spent, CALL)
  }).timeout(30_000)

  test('an end user made while a change of it waited on its owner, and changed again meanwhile: no deadlock, both changes kept', async ({ assert }) => {
    const user = await seedUser({ balance: '10' })
    // The owner held (FOR NO KEY UPDATE: the end user's insert below checks its foreign key with a key-share lock,
    // which that leaves free; the action's FOR UPDATE still queues): the first change finds no end user and waits.
    const held = await db.transaction()
    await held.rawQuery(`SELECT 1 FROM users WHERE id = ${user.userId} FOR NO KEY UPDATE`)
    const outcome = (promise: Promise<unknown>) => promise.then(() => 'saved', (error: any) => error)
    const first = outcome(setEndUser({ userRef: user.email, endUser: 'lo-late', monthlyLimit: '7' }))
    await untilLockWaiters(1)
    // Meanwhile the end user is made (committed) and a second change locks it and queues on the owner too.
    await db.table('end_users').insert({ user_id: user.userId, end_user: 'lo-late', blocked: false, budget_period: 'month', spend_period: 'month' })
    const second = outcome(setEndUser({ userRef: user.email, endUser: 'lo-late', blocked: true }))
    await untilLockWaiters(2)
    // The first takes the owner and read the end user again FOR UPDATE, held by the second, which waited on the owner.
    const released = performance.now()
    await held.commit()
    const [one, other] = await Promise.all([first, second])
    assert.isBelow(performance.now() - released, (await deadlockTimeoutMs()) * 0.9)
    assert.equal(one, 'saved', String(one))
    assert.equal(other, 'saved', String(other))
    const row = await db.from('end_users').where('user_id', user.userId).where('end_user', 'lo-late').firstOrFail()
    assert.equal(Number(row.monthly_limit), 7)
    assert.isTrue(row.blocked)
  }).timeout(30_000)

  test('two deletes naming the same teams in opposite orders (LiteLLM\'s /team/delete takes a list): they queue, no deadlock', async ({ assert }) => {
    const a = await createTeam({ alias: 'lo-del-a' })
    const b = await createTeam({ alias: 'lo-del-b' })
    // The first delete queues on a; the second, naming b first, took b before queuing on a: then a, released,
    // went to the first, which asked for b. Locked in id order, the second queues on a holding nothing.
    const held = await blocker('teams', `id = ${a.id}`)
    const outcome = (promise: Promise<unknown>) => promise.then(() => 'deleted', (error: any) => error)
    const first = outcome(deleteTeams([a.id, b.id]))
    await untilLockWaiters(1)
    const second = outcome(deleteTeams([b.id, a.id]))
    await untilLockWaiters(2)
    const released = performance.now()
    await held.commit()
    const [one, other] = await Promise.all([first, second])
    assert.isBelow(performance.now() - released, (await deadlockTimeoutMs()) * 0.9)
    assert.equal(one, 'deleted')
    // The second finds them gone: not found (the API's 404), not a deadlock's 500.
    assert.equal(other?.kind, 'not_found', String(other?.code ?? other))
    assert.lengthOf(await db.from('teams').whereIn('id', [a.id, b.id]), 0)
  }).timeout(30_000)
  test('members removed together are locked in user id order, whatever order they are named in and the rows lie in', async ({ assert }) => {
    const team = await createTeam({ alias: 'lo-remove' })
    // A team of 200: the delete's plan is then a scan of the table in the rows' order, not of the key's index.
    const stamp = Date.now()
    const users = await db
      .table('users')
      .insert(Array.from({ length: 200 }, (_, i) => ({ email: `lo-member-${stamp}-${i}@test.local`, password: 'x' })))
      .returning(['id', 'email'])
    const [low, high] = [users[0], users[users.length - 1]]
    // The highest id's row first in the table, the lowest's last.
    const order = [high, ...users.slice(1, -1), low]
    await db.table('team_members').insert(order.map((u) => ({ team_id: team.id, user_id: u.id, role: 'user' })))
    await db.rawQuery('ANALYZE team_members')
    // Another transaction holds the lowest member's row (as a batch under a member budget, or a user's delete, would).
    const held = await blocker('team_members', `team_id = ${team.id} AND user_id = ${low.id}`)
    const removal = removeTeamMembers(team.id, order.map((u) => u.email)).then(
      () => 'removed',
      (error: any) => error
    )
    await untilLockWaiters(1)
    // Waiting on the lowest member's row, the removal holds no other member's: the highest one's is free.
    const probe = await db.transaction()
    let highestFree = true
    try {
      await probe.rawQuery(`SELECT 1 FROM team_members WHERE team_id = ${team.id} AND user_id = ${high.id} FOR UPDATE NOWAIT`)
    } catch (error: any) {
      if (error.code !== '55P03') throw error
      highestFree = false
    } finally {
      await probe.rollback()
    }
    await held.commit()
    assert.equal(await removal, 'removed')
    assert.isTrue(highestFree, "the removal locked the highest id's row before the lowest one's")
    assert.lengthOf(await db.from('team_members').where('team_id', team.id), 0)
  }).timeout(30_000)

  test("an invitee's first top-up (the inviter's reward) while another transaction locks both users in id order: they queue, no deadlock", async ({ assert }) => {
    await setReferralTerms({ inviterCredit: '2', inviteeCredit: '0' }, cliActor())
    const inviter = await seedUser()
    const invitee = await seedUser()
    await db.from('users').where('id', invitee.userId).update({ referred_by: inviter.userId })
    // The top-up queues on the invitee; the other transaction takes the inviter (id order) and queues on the
    // invitee behind it. Released, the top-up locked the invitee, then the inviter for its reward: held by the
    // other, which waited on the invitee. Locked in id order first, the top-up holds the inviter while it waits.
    const held = await blocker('users', `id = ${invitee.userId}`)
    const topUp = postLedgerEntry({ userRef: invitee.email, kind: 'topup', amount: '5' }).then(
      () => null,
      (error: any) => error
    )
    await untilLockWaiters(1)
    const other = await db.transaction()
    const both = other
      .rawQuery(`SELECT id FROM users WHERE id IN (?, ?) ORDER BY id FOR NO KEY UPDATE`, [inviter.userId, invitee.userId])
      .then(
        async () => {
          await other.commit()
          return null
        },
        async (error: any) => {
          await other.rollback()
          return error
        }
      )
    await untilLockWaiters(2)
    const released = performance.now()
    await held.commit()
    const [error, otherError] = await Promise.all([topUp, both])
    assert.isBelow(performance.now() - released, (await deadlockTimeoutMs()) * 0.9)
    assert.isNull(error, String(error?.message))
    assert.isNull(otherError, String(otherError?.message))
    const balances = await db.from('users').whereIn('id', [inviter.userId, invitee.userId]).orderBy('id').select('balance')
    assert.deepEqual(balances.map((row) => Number(row.balance)), [2, 5])
    await setReferralTerms({ inviterCredit: '0', inviteeCredit: '0' }, cliActor())
  }).timeout(30_000)
})
