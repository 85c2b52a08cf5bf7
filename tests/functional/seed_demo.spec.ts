import { test } from '@japa/runner'
import ace from '@adonisjs/core/services/ace'
import db from '@adonisjs/lucid/services/db'
import SeedDemo from '#commands/seed_demo'
import { resetDatabase } from '#tests/helpers'

/**
 * seed:demo writes what the meter writes with each request: a key with
 * requests has spend and a last use, balances drop by the charges, the
 * monthly counters add up to the usage rows, and teams, organizations and
 * listed end users have their rows' spend (the pages read them all).
 */
test.group('seed:demo', (group) => {
  group.setup(() => resetDatabase())

  test('demo usage agrees with the ledger, the keys and the monthly counters', async ({ assert }) => {
    const command = await ace.create(SeedDemo, ['--users', '3', '--usage-rows', '600'])
    ace.ui.switchMode('raw')
    await command.exec()
    command.assertSucceeded()

    const keys = await db.rawQuery(`
      SELECT k.id, k.spent, k.last_used_at, SUM(u.cost) AS cost, MAX(u.created_at) AS last, COUNT(u.id)::int AS requests
        FROM api_keys k JOIN usage_records u ON u.api_key_id = k.id
       GROUP BY k.id`)
    assert.lengthOf(keys.rows, 3)
    for (const key of keys.rows) {
      assert.isAbove(key.requests, 0)
      assert.isAbove(Number(key.spent), 0)
      assert.equal(Number(key.spent).toFixed(9), Number(key.cost).toFixed(9))
      assert.equal(new Date(key.last_used_at).getTime(), new Date(key.last).getTime())
    }

    const users = await db.rawQuery(`
      SELECT us.id, us.balance, COALESCE(SUM(u.cost), 0) AS cost,
             (SELECT SUM(amount) FROM balance_ledger l WHERE l.user_id = us.id) AS ledger
        FROM users us JOIN usage_records u ON u.user_id = us.id
       GROUP BY us.id`)
    for (const user of users.rows) {
      assert.equal(Number(user.balance).toFixed(9), (50 - Number(user.cost)).toFixed(9))
      assert.equal(Number(user.ledger).toFixed(9), Number(user.balance).toFixed(9))
    }
    const charges = await db.rawQuery(`
      SELECT COUNT(*)::int AS n FROM usage_records u
       WHERE u.cost > 0 AND NOT EXISTS (SELECT 1 FROM balance_ledger l WHERE l.usage_record_id = u.id AND l.kind = 'charge')`)
    assert.equal(charges.rows[0].n, 0, 'every priced request has its charge')

    const months = await db.rawQuery(`
      SELECT m.user_id, m.period, m.requests, m.cost, x.requests AS actual_requests, x.cost AS actual_cost
        FROM monthly_usage m
        JOIN (SELECT user_id, date_trunc('month', created_at AT TIME ZONE 'UTC')::date AS period, model,
                     COUNT(*)::int AS requests, SUM(cost) AS cost
                FROM usage_records GROUP BY 1, 2, 3) x
          ON x.user_id = m.user_id AND x.period = m.period AND x.model = m.model`)
    const total = await db.from('usage_records').count('* as n').first()
    assert.equal(months.rows.reduce((sum: number, r: any) => sum + Number(r.requests), 0), Number(total.n))
    for (const row of months.rows) {
      assert.equal(Number(row.requests), Number(row.actual_requests))
      assert.equal(Number(row.cost).toFixed(9), Number(row.actual_cost).toFixed(9))
    }

    // Teams, organizations and listed end users: their spend is their rows' (the meter's effects).
    const teams = await db.rawQuery(`
      SELECT t.id, t.spent, t.organization_id, (SELECT SUM(cost) FROM usage_records u WHERE u.team_id = t.id) AS cost,
             (SELECT COUNT(*)::int FROM api_keys k WHERE k.team_id = t.id) AS keys
        FROM teams t WHERE EXISTS (SELECT 1 FROM usage_records u WHERE u.team_id = t.id)`)
    assert.isAtLeast(teams.rows.length, 1, 'some rows are of a team')
    for (const team of teams.rows) {
      assert.isAbove(Number(team.cost), 0)
      assert.equal(Number(team.spent).toFixed(9), Number(team.cost).toFixed(9))
      assert.isAbove(team.keys, 0)
    }
    const orgs = await db.rawQuery(`
      SELECT o.spent, (SELECT SUM(cost) FROM usage_records u WHERE u.organization_id = o.id) AS cost
        FROM organizations o WHERE EXISTS (SELECT 1 FROM usage_records u WHERE u.organization_id = o.id)`)
    assert.isAtLeast(orgs.rows.length, 1, 'some rows are of an organization')
    for (const org of orgs.rows) assert.equal(Number(org.spent).toFixed(9), Number(org.cost).toFixed(9))
    const listed = await db.rawQuery(`
      SELECT e.spent, (SELECT SUM(cost) FROM usage_records u WHERE u.user_id = e.user_id AND u.end_user = e.end_user) AS cost FROM end_users e`)
    assert.isAtLeast(listed.rows.length, 1, 'some end users are listed')
    for (const e of listed.rows) assert.equal(Number(e.spent).toFixed(9), Number(e.cost).toFixed(9))
    // Each user's rows go through more than one model and channel.
    const spread = await db.rawQuery(`SELECT user_id, COUNT(DISTINCT model)::int AS models, COUNT(DISTINCT channel_id)::int AS channels FROM usage_records GROUP BY user_id`)
    for (const u of spread.rows) {
      assert.equal(u.models, 4, 'gpt-4o-mini, gpt-4o, deepseek-chat, claude-sonnet-4')
      assert.equal(u.channels, 4)
    }
  })
})
