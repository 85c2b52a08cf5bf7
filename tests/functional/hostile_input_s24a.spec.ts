import { test } from '@japa/runner'
import db from '@adonisjs/lucid/services/db'
import { createUser } from '#actions/create_user'
import { createApiKey } from '#actions/issue_api_key'
import { createPlan } from '#actions/create_plan'
import { createTeam } from '#actions/teams'
import { PanelClient, textOf } from '#tests/panel_client'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { toPico } from '#gateway/metering/money'
import { adminApi, baseUrl, gateway, post, refreshCaches, resetDatabase, seedChannel, seedPrice, seedUser, startMock } from '#tests/helpers'

/**
 * Hostile and sloppy input against channel groups and teams (both on the
 * request path): values of the wrong type are refused in the endpoint's
 * format, never taken for something else, and never a 500.
 */
let adminKey = ''

async function litellm(path: string, body: unknown) {
  const response = await fetch(`${baseUrl()}${path}`, {
    method: 'POST',
    headers: { 'authorization': `Bearer ${adminKey}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  })
  return { status: response.status, body: (await response.json()) as any }
}

test.group('Hostile input (s24a): channel groups and teams', (group) => {
  let planId = 0

  group.setup(async () => {
    await resetDatabase()
    planId = (await createPlan({ name: 'vip-s24a' })).id
    await createUser({ email: 'ops-s24a@test.local', password: 'admin-password', role: 'admin' })
    adminKey = (await createApiKey({ userRef: 'ops-s24a@test.local', name: 'ops', manage: true })).key
    await refreshCaches()
  })

  test('plan_ids that are no plan ids (true, [1], "0x1") are refused, not read as plan 1', async ({ assert }) => {
    assert.equal(planId, 1, 'the plan these values would be read as')
    const base = { provider: 'custom', base_url: 'http://127.0.0.1:9', models: ['s24a-*'] }
    for (const [i, planIds] of [[true], [[1]], ['0x1'], [1.5], [{}]].entries()) {
      const refused = await adminApi('POST', '/channels', adminKey, { ...base, name: `typed-${i}`, plan_ids: planIds })
      assert.equal(refused.status, 400, JSON.stringify(planIds))
      assert.equal(refused.body.error.code, 'invalid_field')
      assert.equal(refused.body.error.param, 'planIds')
    }
    assert.lengthOf(await db.from('channels').whereLike('name', 'typed-%'), 0)
    // Ids as numbers or as their digits stay accepted (a form's values are text).
    const created = await adminApi('POST', '/channels', adminKey, { ...base, name: 'typed-ok', plan_ids: [planId, String(planId)] })
    assert.equal(created.status, 201, JSON.stringify(created.body))
    assert.deepEqual(created.body.plan_ids, [planId])
    const patched = await adminApi('PATCH', `/channels/${created.body.id}`, adminKey, { plan_ids: [true] })
    assert.equal(patched.status, 400)
  })

  test('a team rpm/tpm of true or a list is refused on /team/* and /api/admin/teams, not read as 1', async ({ assert }) => {
    for (const [field, value] of [['rpm_limit', true], ['tpm_limit', true], ['rpm_limit', [5]], ['tpm_limit', { n: 5 }]] as const) {
      const refused = await litellm('/team/new', { team_alias: `typed-${field}`, [field]: value })
      assert.equal(refused.status, 400, `${field}: ${JSON.stringify(value)} -> ${JSON.stringify(refused.body)}`)
      assert.equal(refused.body.error.param, field)
    }
    const team = await createTeam({ alias: 'typed-update' })
    const update = await litellm('/team/update', { team_id: String(team.id), rpm_limit: true })
    assert.equal(update.status, 400)
    for (const field of ['rpm', 'tpm']) {
      const refused = await adminApi('POST', '/teams', adminKey, { alias: `typed-api-${field}`, [field]: true })
      assert.equal(refused.status, 400, JSON.stringify(refused.body))
      assert.equal(refused.body.error.param, field)
    }
    assert.lengthOf(await db.from('teams').whereLike('alias', 'typed-%').whereNot('alias', 'typed-update'), 0)
    // Numbers and numeric text stay accepted (LiteLLM's clients send both).
    const made = await litellm('/team/new', { team_alias: 'limits-ok', rpm_limit: '10', tpm_limit: 2000 })
    assert.equal(made.status, 200)
    assert.equal(made.body.rpm_limit, 10)
    assert.equal(made.body.tpm_limit, 2000)
  })

  test('a positive max_budget below a micro-dollar is refused, not stored as a budget of 0 that refuses every call', async ({ assert }) => {
    for (const tiny of [1e-7, 1e-13, 5e-324]) {
      const refused = await litellm('/team/new', { team_alias: 'tiny', max_budget: tiny })
      assert.equal(refused.status, 400, `${tiny} -> ${JSON.stringify(refused.body)}`)
      assert.equal(refused.body.error.param, 'max_budget')
    }
    assert.lengthOf(await db.from('teams').where('alias', 'tiny'), 0)
    // A key's budget reads the same amounts.
    const key = await litellm('/key/generate', { user_id: 'ops-s24a@test.local', max_budget: 1e-7 })
    assert.equal(key.status, 400, JSON.stringify(key.body))
    // 0 stays a budget of 0, and a float sum is rounded to the micro-dollar as before.
    assert.equal((await litellm('/team/new', { team_alias: 'zero', max_budget: 0 })).body.max_budget, 0)
    assert.equal((await litellm('/team/new', { team_alias: 'sum', max_budget: 0.1 + 0.2 })).body.max_budget, 0.3)
  })

  test("a NUL in a panel team form goes back to the form with a message, not a 500", async ({ assert }) => {
    const client = new PanelClient()
    await client.login('ops-s24a@test.local', 'admin-password')
    await client.get('/admin/teams/new')
    const refused = await client.post('/admin/teams', { alias: 'a\u0000b' })
    assert.equal(refused.status, 302, refused.html.slice(0, 300))
    assert.equal(new URL(refused.location!, baseUrl()).pathname, '/admin/teams/new')
    const form = await client.follow(refused)
    assert.include(textOf(form.html), 'Name cannot hold control characters')
    assert.lengthOf(await db.from('teams').whereLike('alias', 'a%b'), 0)

    const team = await createTeam({ alias: 'nul-members' })
    await client.get(`/admin/teams/${team.id}`)
    const member = await client.post(`/admin/teams/${team.id}/members`, { user: 'x\u0000' })
    assert.equal(member.status, 302)
    assert.equal(new URL(member.location!, baseUrl()).pathname, `/admin/teams/${team.id}`)
  })

  test('POST /api/admin/teams/:id/members with an empty list is refused, not an audited change of nobody', async ({ assert }) => {
    const team = await createTeam({ alias: 'no-members' })
    const audits = (await db.from('audit_log').where('subject_type', 'team')).length
    const refused = await adminApi('POST', `/teams/${team.id}/members`, adminKey, { members: [] })
    assert.equal(refused.status, 400, JSON.stringify(refused.body))
    assert.equal(refused.body.error.param, 'user')
    assert.equal((await db.from('audit_log').where('subject_type', 'team')).length, audits)
  })

  test('/key/generate into a team another admin deletes meanwhile: 404 and no key made (the key and its team are one change)', async ({ assert }) => {
    const team = await createTeam({ alias: 'deleted-meanwhile' })
    const keysBefore = (await db.from('api_keys')).length
    // Another admin's delete holds the team's row while /key/generate runs, and commits once the key is being put in it.
    const trx = await db.transaction()
    await trx.from('teams').where('id', team.id).forUpdate().first()
    const generating = litellm('/key/generate', { user_id: 'ops-s24a@test.local', key_alias: 'into-deleted', team_id: String(team.id) })
    await new Promise((resolve) => setTimeout(resolve, 300))
    await trx.from('teams').where('id', team.id).delete()
    await trx.commit()
    const answer = await generating
    assert.equal(answer.status, 404, JSON.stringify(answer.body))
    assert.lengthOf(await db.from('api_keys').where('name', 'into-deleted'), 0, 'no key made that the client never got')
    assert.equal((await db.from('api_keys')).length, keysBefore)

    // The management API's POST /api/admin/keys alike.
    const other = await createTeam({ alias: 'deleted-meanwhile-api' })
    const trx2 = await db.transaction()
    await trx2.from('teams').where('id', other.id).forUpdate().first()
    const creating = adminApi('POST', '/keys', adminKey, { user: 'ops-s24a@test.local', name: 'into-deleted-api', team_id: other.id })
    await new Promise((resolve) => setTimeout(resolve, 300))
    await trx2.from('teams').where('id', other.id).delete()
    await trx2.commit()
    assert.equal((await creating).status, 404)
    assert.lengthOf(await db.from('api_keys').where('name', 'into-deleted-api'), 0)
  })
})

test.group('Hostile input (s24a): a team budget on the request path', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'mock', baseUrl: mock.url, models: ['*'] })
    // 12 prompt and 5 completion tokens a call (the mock's usage): $0.012 + $0.010 = $0.022.
    await seedPrice('s24a-model', '1000', '2000')
    await createUser({ email: 'ops-s24a-budget@test.local', password: 'admin-password', role: 'admin' })
    adminKey = (await createApiKey({ userRef: 'ops-s24a-budget@test.local', name: 'ops', manage: true })).key
    await refreshCaches()
    return () => mock.stop()
  })

  function chat(key: string) {
    return post('/v1/chat/completions', { model: 's24a-model', messages: [{ role: 'user', content: 'hi' }] }, { authorization: `Bearer ${key}` })
  }

  test("a period set on a team does not count what a key spent today before it joined (another team's spend)", async ({ assert }) => {
    const before = await litellm('/team/new', { team_alias: 'joined-later' })
    const earlier = await litellm('/team/new', { team_alias: 'spent-in' })
    const owner = await seedUser({ balance: '10' })
    await litellm('/key/update', { key: String(owner.keyId), team_id: earlier.body.team_id })
    await refreshCaches()
    assert.equal((await chat(owner.key)).status, 200)
    await (await gateway()).meter.drain()

    // The key moves to a team that has spent nothing, which then gets a daily budget below what the key spent in the other.
    await litellm('/key/update', { key: String(owner.keyId), team_id: before.body.team_id })
    const updated = await litellm('/team/update', { team_id: before.body.team_id, max_budget: 0.03, budget_duration: '1d' })
    assert.equal(updated.status, 200)
    assert.equal(updated.body.data.spend, 0, 'the new period holds none of the other team\'s spend')
    const team = await db.from('teams').where('id', before.body.team_id).first()
    assert.equal(toPico(String(team.period_spent)), 0n)
    await refreshCaches()
    assert.equal((await chat(owner.key)).status, 200, 'the team budget has room: its keys spent nothing in it')
    // The team it was spent in keeps it.
    assert.equal(toPico(String((await db.from('teams').where('id', earlier.body.team_id).first()).spent)), toPico('0.022'))
  })

  test('a key in a team the gateway has not heard of yet (its NOTIFY lost or late) is held to the team, not served without it', async ({ assert }) => {
    const owner = await seedUser({ balance: '10' })
    await refreshCaches()
    // A blocked team written with its trigger (and so its NOTIFY) off: as on an instance whose listener missed it.
    const team = await db.transaction(async (trx) => {
      await trx.rawQuery("SET LOCAL session_replication_role = 'replica'")
      const [row] = await trx.table('teams').insert({ alias: 'unheard', blocked_at: new Date(), metadata: '{}' }).returning('id')
      return Number(row.id)
    })
    // The key's change is heard (its row is read again on its next call); the team's is not.
    await db.from('api_keys').where('id', owner.keyId).update({ team_id: team })
    await new Promise((resolve) => setTimeout(resolve, 200))
    assert.isUndefined((await gateway()).catalog.teams.get(team))
    const refused = await chat(owner.key)
    assert.equal(refused.status, 401, 'the blocked team refuses its key')
    assert.include(((await refused.json()) as any).error.message, "team 'unheard' is blocked")
  })
})
