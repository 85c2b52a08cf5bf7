import { test } from '@japa/runner'
import db from '@adonisjs/lucid/services/db'
import ace from '@adonisjs/core/services/ace'
import OrganizationCreate from '#commands/organization_create'
import TeamCreate from '#commands/team_create'
import { createUser } from '#actions/create_user'
import { createApiKey } from '#actions/issue_api_key'
import { createOrganization } from '#actions/organizations'
import { createTeam, setKeyTeam } from '#actions/teams'
import { toFile } from 'openai'
import { PanelClient, textOf } from '#tests/panel_client'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { estimateCostPico } from '#gateway/metering/reservation'
import { fromPico, toPico } from '#gateway/metering/money'
import { baseUrl, gateway, openai, post, refreshCaches, resetDatabase, seedChannel, seedPrice, seedUser, startMock, usageRows, type SeededUser } from '#tests/helpers'

/**
 * Organizations (LiteLLM's /organization/*): teams grouped under one
 * organization whose block, models, budget and rpm/tpm apply to every key of
 * every team in it. Driven through LiteLLM's paths and the management API
 * with plain fetch, as scripts written against a LiteLLM proxy call them.
 */
let adminKey = ''

async function call(method: string, path: string, body?: unknown) {
  const response = await fetch(`${baseUrl()}${path}`, {
    method,
    headers: { authorization: `Bearer ${adminKey}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  const text = await response.text()
  try {
    return { status: response.status, body: JSON.parse(text) as any }
  } catch {
    throw new Error(`${method} ${path}: ${response.status} ${text.slice(0, 3000)}`)
  }
}

async function chat(key: string, model = 'org-model', extra: Record<string, unknown> = {}) {
  const response = await post('/v1/chat/completions', { model, messages: [{ role: 'user', content: 'hi' }], ...extra }, { authorization: `Bearer ${key}` })
  return { status: response.status, body: (await response.json()) as any }
}

async function eventually(check: () => Promise<boolean>) {
  for (let i = 0; i < 60; i++) {
    if (await check()) return true
    await new Promise((r) => setTimeout(r, 50))
  }
  return false
}

function assertLiteLLMError(assert: any, answer: { status: number; body: any }, status: number, param?: string) {
  assert.equal(answer.status, status, JSON.stringify(answer.body))
  assert.deepEqual(Object.keys(answer.body.error).sort(), ['code', 'message', 'param', 'type'])
  assert.equal(answer.body.error.code, String(status))
  if (param !== undefined) assert.equal(answer.body.error.param, param)
}

const name = (prefix: string) => `${prefix}-${Math.random().toString(36).slice(2, 8)}`

/** An organization made through /organization/new, two teams in it (/team/new organization_id), one user's key in each */
async function orgOfTwoTeams(settings: Record<string, unknown>, teamSettings: Record<string, unknown> = {}) {
  const org = await call('POST', '/organization/new', { organization_alias: name('org'), ...settings })
  if (org.status !== 200) throw new Error(JSON.stringify(org.body))
  const orgId: string = org.body.organization_id
  const teams: string[] = []
  const users: SeededUser[] = []
  for (let i = 0; i < 2; i++) {
    const team = await call('POST', '/team/new', { team_alias: name('team'), organization_id: orgId, ...teamSettings })
    if (team.status !== 200) throw new Error(JSON.stringify(team.body))
    const user = await seedUser({ balance: '10' })
    const updated = await call('POST', '/key/update', { key: String(user.keyId), team_id: team.body.team_id })
    if (updated.status !== 200) throw new Error(JSON.stringify(updated.body))
    teams.push(team.body.team_id)
    users.push(user)
  }
  await refreshCaches()
  return { orgId, teams, a: users[0], b: users[1] }
}

test.group('Organizations on the request path', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'mock', baseUrl: mock.url, models: ['*'] })
    // 12 prompt and 5 completion tokens a call (the mock's usage): $0.012 + $0.010 = $0.022.
    await seedPrice('org-model', '1000', '2000')
    await seedPrice('org-capped', '1', '1')
    await seedPrice('other-model', '1000', '2000')
    await createUser({ email: 'ops@orgs.local', password: 'password123', role: 'admin' })
    adminKey = (await createApiKey({ userRef: 'ops@orgs.local', name: 'litellm-master', manage: true })).key
    await refreshCaches()
    return () => mock.stop()
  })

  test('the organization\'s budget is shared by its teams\' keys: the second team is refused once the first spent it', async ({ assert }) => {
    const { orgId, teams, a, b } = await orgOfTwoTeams({ max_budget: 0.02, budget_duration: '1d' })
    assert.equal((await chat(a.key)).status, 200)
    const refused = await chat(b.key)
    assert.equal(refused.status, 402, JSON.stringify(refused.body))
    assert.equal(refused.body.error.code, 'spend_limit_exceeded')
    assert.match(refused.body.error.message, /organization '.*' reached its budget for this day/)
    // The meter's statement keeps the organization's spend and each row's organization.
    const rows = await usageRows(a.userId)
    assert.equal(String(rows[0].organization_id), orgId)
    assert.equal(String(rows[0].team_id), teams[0])
    const org = await db.from('organizations').where('id', orgId).first()
    assert.equal(toPico(String(org.spent)), toPico('0.022'))
    assert.equal(toPico(String(org.period_spent)), toPico('0.022'))
    const info = await call('GET', `/organization/info?organization_id=${orgId}`)
    assert.equal(info.body.spend, 0.022)
    // Raising the budget serves again (NOTIFY), and a reload reads the committed spend back.
    assert.equal((await call('PATCH', '/organization/update', { organization_id: orgId, max_budget: 1 })).status, 200)
    assert.isTrue(await eventually(async () => (await chat(b.key)).status === 200))
    const { catalog, meter } = await gateway()
    await meter.drain()
    await catalog.teams.reload()
    assert.equal(catalog.teams.organization(Number(orgId))!.spentPico, toPico('0.044'))
  })

  test('exact under concurrency: 30 calls through two teams\' keys on a $0.0001 organization budget spend at most the budget plus one estimate', async ({ assert }) => {
    const { orgId, a, b } = await orgOfTwoTeams({ max_budget: 0.0001 })
    const body = { model: 'org-capped', messages: [{ role: 'user', content: 'hi' }], max_tokens: 10, mock: { latency_ms: 50 } }
    const statuses = await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        post('/v1/chat/completions', body, { authorization: `Bearer ${i % 2 ? a.key : b.key}` }).then(async (r) => {
          const answer: any = await r.json()
          if (r.status === 402) assert.equal(answer.error.code, 'spend_limit_exceeded')
          return r.status
        })
      )
    )
    const served = statuses.filter((s) => s === 200).length
    assert.equal(served + statuses.filter((s) => s === 402).length, 30)
    assert.isAtLeast(served, 1)
    assert.isBelow(served, 30)
    const { catalog } = await gateway()
    const estimate = estimateCostPico(catalog.priceFor('org-capped'), Buffer.byteLength(JSON.stringify(body)), body)
    const rows = [...(await usageRows(a.userId)), ...(await usageRows(b.userId))]
    const spent = rows.reduce((sum, r) => sum + toPico(r.cost), 0n)
    assert.isTrue(spent <= toPico('0.0001') + estimate, `spent ${fromPico(spent)}, budget 0.0001 + estimate ${fromPico(estimate)}`)
    assert.equal(toPico(String((await db.from('organizations').where('id', orgId).first()).spent)), spent)
    assert.equal(catalog.teams.organization(Number(orgId))!.heldPico, 0n)
  })

  test('a blocked organization refuses its teams\' keys (401 in each wire format); unblocked, they are served', async ({ assert }) => {
    const { orgId, a, b } = await orgOfTwoTeams({})
    assert.equal((await chat(a.key)).status, 200)
    assert.equal((await call('PATCH', '/organization/update', { organization_id: orgId, blocked: true })).status, 200)
    assert.isTrue(await eventually(async () => (await chat(b.key)).status === 401))
    const refused = await chat(a.key)
    assert.equal(refused.body.error.code, 'invalid_api_key')
    assert.match(refused.body.error.message, /organization '.*' is blocked/)
    const anthropic = await post('/v1/messages', { model: 'org-model', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] }, { 'x-api-key': a.key })
    assert.equal(anthropic.status, 401)
    assert.equal(((await anthropic.json()) as any).error.type, 'authentication_error')
    const google = await post('/v1beta/models/org-model:generateContent', { contents: [{ parts: [{ text: 'hi' }] }] }, { 'x-goog-api-key': a.key })
    assert.equal(google.status, 401)
    assert.equal(((await google.json()) as any).error.status, 'UNAUTHENTICATED')
    assert.equal((await call('PATCH', '/organization/update', { organization_id: orgId, blocked: false })).status, 200)
    assert.isTrue(await eventually(async () => (await chat(a.key)).status === 200))
  })

  test('the organization\'s models: a team cannot widen them (both globs must allow a model)', async ({ assert }) => {
    // The teams allow everything; the organization only org-*.
    const { a } = await orgOfTwoTeams({ models: ['org-*'] }, { models: ['*'] })
    assert.equal((await chat(a.key, 'org-model')).status, 200)
    const refused = await chat(a.key, 'other-model')
    assert.equal(refused.status, 403)
    assert.equal(refused.body.error.code, 'model_not_allowed')
    // A key in no team is not held to it.
    const other = await seedUser({ balance: '1' })
    assert.equal((await chat(other.key, 'other-model')).status, 200)
  })

  test('the organization\'s rpm is one window shared by the keys of all its teams', async ({ assert }) => {
    const { a, b } = await orgOfTwoTeams({ rpm_limit: 2 })
    assert.equal((await chat(a.key)).status, 200)
    assert.equal((await chat(b.key)).status, 200)
    const refused = await chat(a.key)
    assert.equal(refused.status, 429, JSON.stringify(refused.body))
    assert.equal(refused.body.error.code, 'rate_limit_exceeded')
    assert.equal((await chat(b.key)).status, 429)
  })

  test('a team moved to another organization leaves its past spend with the first; the second counts from the move', async ({ assert }) => {
    const { orgId, teams, a } = await orgOfTwoTeams({ max_budget: 10, budget_duration: '1mo' })
    const second = await call('POST', '/organization/new', { organization_alias: name('second') })
    assert.equal((await chat(a.key)).status, 200)
    const moved = await call('POST', '/team/update', { team_id: teams[0], organization_id: second.body.organization_id })
    assert.equal(moved.status, 200, JSON.stringify(moved.body))
    assert.equal(moved.body.data.organization_id, second.body.organization_id)
    const { catalog } = await gateway()
    assert.isTrue(await eventually(async () => catalog.teams.get(Number(teams[0]))?.org?.id === Number(second.body.organization_id)))
    assert.equal((await chat(a.key)).status, 200)
    const rows = await usageRows(a.userId)
    assert.deepEqual(
      rows.map((r) => String(r.organization_id)),
      [orgId, second.body.organization_id]
    )
    const first = await db.from('organizations').where('id', orgId).first()
    const other = await db.from('organizations').where('id', second.body.organization_id).first()
    assert.equal(toPico(String(first.spent)), toPico('0.022'))
    assert.equal(toPico(String(other.spent)), toPico('0.022'))
    // A period set later on the second starts from what was spent under it (its rows), not the team's older spend.
    assert.equal((await call('PATCH', '/organization/update', { organization_id: second.body.organization_id, budget_duration: '1d', max_budget: 5 })).status, 200)
    const after = await db.from('organizations').where('id', second.body.organization_id).first()
    assert.equal(toPico(String(after.period_spent)), toPico('0.022'))
    // Taken out of any organization: its keys are held to none.
    assert.equal((await call('POST', '/team/update', { team_id: teams[0], organization_id: null })).status, 200)
    assert.isTrue(await eventually(async () => catalog.teams.get(Number(teams[0]))?.org === null))
  })
})

test.group('Organizations: LiteLLM\'s /organization/*', (group) => {
  let alice: SeededUser
  let bob: SeededUser

  group.setup(async () => {
    await resetDatabase()
    await createUser({ email: 'ops@orgs.local', password: 'password123', role: 'admin' })
    adminKey = (await createApiKey({ userRef: 'ops@orgs.local', name: 'litellm-master', manage: true })).key
    alice = await seedUser({ email: 'alice@orgs.local' })
    bob = await seedUser({ email: 'bob@orgs.local' })
    await refreshCaches()
  })

  test('/organization/new, /info, /list, /update, /member_add, /member_update, /member_delete, /delete: LiteLLM\'s fields and shapes, audited', async ({ assert }) => {
    const made = await call('POST', '/organization/new', {
      organization_alias: 'Acme',
      models: ['gpt-*'],
      max_budget: 100,
      budget_duration: '30d',
      tpm_limit: 5000,
      rpm_limit: 50,
      metadata: { region: 'eu' },
    })
    assert.equal(made.status, 200, JSON.stringify(made.body))
    assert.deepInclude(made.body, { organization_alias: 'Acme', models: ['gpt-*'], spend: 0, blocked: false, members: [], teams: [] })
    assert.deepEqual(made.body.metadata, { region: 'eu' })
    assert.deepInclude(made.body.litellm_budget_table, { max_budget: 100, budget_duration: '1mo', tpm_limit: 5000, rpm_limit: 50 })
    assert.isString(made.body.litellm_budget_table.budget_reset_at)
    const orgId = made.body.organization_id
    assert.isString(orgId)
    assert.equal((await db.from('audit_log').where('action', 'organization.create').first()).source, 'api')

    // A team made into it (/team/new organization_id), shown by /team/info and in the organization's teams.
    const team = await call('POST', '/team/new', { team_alias: 'Acme Prod', organization_id: orgId })
    assert.equal(team.status, 200, JSON.stringify(team.body))
    assert.equal(team.body.organization_id, orgId)
    assert.equal((await call('GET', `/team/info?team_id=${team.body.team_id}`)).body.team_info.organization_id, orgId)

    const added = await call('POST', '/organization/member_add', {
      organization_id: orgId,
      member: [{ role: 'org_admin', user_id: String(alice.userId) }, { role: 'internal_user', user_email: bob.email }],
    })
    assert.equal(added.status, 200, JSON.stringify(added.body))
    assert.equal(added.body.organization_id, orgId)
    assert.deepEqual(added.body.updated_users, [{ user_id: String(alice.userId), user_email: alice.email }, { user_id: String(bob.userId), user_email: bob.email }])
    assert.deepInclude(added.body.updated_organization_memberships[0], { user_id: String(alice.userId), organization_id: orgId, user_role: 'org_admin' })

    const updated = await call('PATCH', '/organization/member_update', { organization_id: orgId, user_email: bob.email, role: 'internal_user_viewer' })
    assert.equal(updated.status, 200, JSON.stringify(updated.body))
    assert.deepInclude(updated.body, { user_id: String(bob.userId), organization_id: orgId, user_role: 'internal_user_viewer' })
    // An update naming no role (LiteLLM sends only max_budget_in_organization then) keeps the member's (it demoted them).
    const kept = await call('PATCH', '/organization/member_update', { organization_id: orgId, user_email: bob.email, max_budget_in_organization: 5 })
    assert.equal(kept.status, 200, JSON.stringify(kept.body))
    assert.deepInclude(kept.body, { user_id: String(bob.userId), user_role: 'internal_user_viewer' })

    const info = await call('GET', `/organization/info?organization_id=${orgId}`)
    assert.equal(info.status, 200)
    assert.deepEqual(info.body.members.map((m: any) => [m.user_id, m.user_role]), [[String(alice.userId), 'org_admin'], [String(bob.userId), 'internal_user_viewer']])
    assert.deepEqual(info.body.teams.map((t: any) => t.team_alias), ['Acme Prod'])
    // LiteLLM's older POST /organization/info {organizations}: a list.
    const older = await call('POST', '/organization/info', { organizations: [orgId] })
    assert.equal(older.status, 200)
    assert.equal(older.body[0].organization_id, orgId)

    const list = await call('GET', '/organization/list')
    assert.isArray(list.body)
    assert.equal(list.body[0].organization_id, orgId)
    assert.lengthOf((await call('GET', `/organization/list?user_id=${alice.userId}`)).body, 1)
    assert.lengthOf((await call('GET', `/organization/list?user_id=${encodeURIComponent('ops@orgs.local')}`)).body, 0)

    const changed = await call('PATCH', '/organization/update', { organization_id: orgId, organization_alias: 'Acme EU', max_budget: null, models: [] })
    assert.equal(changed.status, 200, JSON.stringify(changed.body))
    assert.deepInclude(changed.body, { organization_alias: 'Acme EU', models: [] })
    assert.isNull(changed.body.litellm_budget_table.max_budget)
    assert.isNull(changed.body.litellm_budget_table.budget_duration)
    assert.equal((await db.from('audit_log').where('action', 'organization.update').first()).source, 'api')

    const removed = await call('DELETE', '/organization/member_delete', { organization_id: orgId, user_id: String(bob.userId) })
    assert.equal(removed.status, 200, JSON.stringify(removed.body))
    assert.deepInclude(removed.body, { user_id: String(bob.userId), organization_id: orgId })
    assertLiteLLMError(assert, await call('DELETE', '/organization/member_delete', { organization_id: orgId, user_id: String(bob.userId) }), 404)

    // Refused while a team is in it (LiteLLM would delete the team and its keys); nothing deleted.
    const refused = await call('DELETE', '/organization/delete', { organization_ids: [orgId] })
    assertLiteLLMError(assert, refused, 400)
    assert.match(refused.body.error.message, /still has 1 team/)
    assert.lengthOf(await db.from('organizations').where('id', orgId), 1)
    assert.equal((await call('POST', '/team/update', { team_id: team.body.team_id, organization_id: null })).status, 200)
    const deleted = await call('DELETE', '/organization/delete', { organization_ids: [orgId] })
    assert.equal(deleted.status, 200, JSON.stringify(deleted.body))
    assert.equal(deleted.body[0].organization_id, orgId)
    assert.lengthOf(await db.from('organizations').where('id', orgId), 0)
    assert.lengthOf(await db.from('organization_members').where('organization_id', orgId), 0)
    assert.equal((await db.from('audit_log').where('action', 'organization.delete').first()).source, 'api')
  })

  test('hostile input: 400 naming LiteLLM\'s field or 404, and nothing changed', async ({ assert }) => {
    const before = (await db.from('organizations')).length
    const teamsBefore = (await db.from('teams')).length
    assertLiteLLMError(assert, await call('POST', '/organization/new', {}), 400, 'organization_alias')
    assertLiteLLMError(assert, await call('POST', '/organization/new', { organization_alias: 12 }), 400, 'organization_alias')
    assertLiteLLMError(assert, await call('POST', '/organization/new', { organization_alias: 'x'.repeat(10_000) }), 400, 'organization_alias')
    assertLiteLLMError(assert, await call('POST', '/organization/new', { organization_alias: 'a\u0000b', max_budget: true }), 400, 'max_budget')
    assertLiteLLMError(assert, await call('POST', '/organization/new', { organization_alias: 'x', max_budget: -1 }), 400, 'max_budget')
    assertLiteLLMError(assert, await call('POST', '/organization/new', { organization_alias: 'x', rpm_limit: '0x10' }), 400, 'rpm_limit')
    assertLiteLLMError(assert, await call('POST', '/organization/new', { organization_alias: 'x', tpm_limit: '1e3' }), 400, 'tpm_limit')
    assertLiteLLMError(assert, await call('POST', '/organization/new', { organization_alias: 'x', budget_duration: '3d' }), 400, 'budget_duration')
    assertLiteLLMError(assert, await call('POST', '/organization/new', { organization_alias: 'x', models: 'gpt-4o' }), 400, 'models')
    // A NUL cannot be stored in text or jsonb: refused naming the field (Postgres's refusal named none), for teams too.
    assertLiteLLMError(assert, await call('POST', '/organization/new', { organization_alias: 'a\u0000b' }), 400, 'organization_alias')
    assertLiteLLMError(assert, await call('POST', '/organization/new', { organization_alias: 'x', models: ['gpt-\u0000'] }), 400, 'models.0')
    assertLiteLLMError(assert, await call('POST', '/organization/new', { organization_alias: 'x', metadata: { note: ['a\u0000'] } }), 400, 'metadata')
    assertLiteLLMError(assert, await call('POST', '/team/new', { team_alias: 'a\u0000b' }), 400, 'team_alias')
    assertLiteLLMError(assert, await call('POST', '/team/new', { team_alias: 'x', metadata: { 'k\u0000': 1 } }), 400, 'metadata')
    assert.lengthOf(await db.from('organizations'), before)
    assert.lengthOf(await db.from('teams'), teamsBefore)

    const made = await call('POST', '/organization/new', { organization_alias: 'Real' })
    const orgId = made.body.organization_id
    for (const id of ['0x10', '1e3', `${orgId}\u0000`, '-1', '99999999999999999999', 'x'.repeat(10_000)]) {
      assertLiteLLMError(assert, await call('GET', `/organization/info?organization_id=${encodeURIComponent(id)}`), 404)
      assertLiteLLMError(assert, await call('POST', '/team/new', { team_alias: 't', organization_id: id }), 404)
    }
    assertLiteLLMError(assert, await call('POST', '/team/new', { team_alias: 't', organization_id: true }), 400, 'organization_id')
    assertLiteLLMError(assert, await call('POST', '/team/new', { team_alias: 't', organization_id: { id: 1 } }), 400, 'organization_id')
    assertLiteLLMError(assert, await call('GET', '/organization/info'), 400, 'organization_id')
    assertLiteLLMError(assert, await call('PATCH', '/organization/update', { organization_id: '999999', organization_alias: 'y' }), 404)
    assertLiteLLMError(assert, await call('DELETE', '/organization/delete', { organization_ids: 'x' }), 400, 'organization_ids')
    assertLiteLLMError(assert, await call('DELETE', '/organization/delete', { organization_ids: [orgId, '999999'] }), 404)
    assert.lengthOf(await db.from('organizations').where('id', orgId), 1, 'one unknown id deletes none')
    assertLiteLLMError(assert, await call('POST', '/organization/member_add', { organization_id: orgId }), 400, 'member')
    assertLiteLLMError(assert, await call('POST', '/organization/member_add', { organization_id: orgId, member: { user_id: String(bob.userId), role: 'proxy_admin' } }), 400, 'member')
    assertLiteLLMError(assert, await call('POST', '/organization/member_add', { organization_id: orgId, member: { user_email: 'nobody@orgs.local' } }), 404)
    assertLiteLLMError(assert, await call('PATCH', '/organization/member_update', { organization_id: orgId, user_id: String(bob.userId), role: 'owner' }), 400, 'role')

    // Duplicates: one member listed twice is one membership (the last role); one id twice in a delete deletes it once.
    const twice = await call('POST', '/organization/member_add', {
      organization_id: orgId,
      member: [{ user_id: String(bob.userId), role: 'internal_user' }, { user_email: bob.email, role: 'org_admin' }],
    })
    assert.equal(twice.status, 200, JSON.stringify(twice.body))
    assert.lengthOf(twice.body.updated_organization_memberships, 1)
    assert.deepEqual((await db.from('organization_members').where('organization_id', orgId)).map((m) => m.role), ['org_admin'])
    const deleted = await call('DELETE', '/organization/delete', { organization_ids: [orgId, Number(orgId)] })
    assert.equal(deleted.status, 200, JSON.stringify(deleted.body))
    assert.lengthOf(deleted.body, 1)
  })

  test('auth: a user\'s key is refused (403) on /organization/*, in LiteLLM\'s shape', async ({ assert }) => {
    const answer = await fetch(`${baseUrl()}/organization/list`, { headers: { authorization: `Bearer ${alice.key}` } })
    assert.equal(answer.status, 403)
    assert.properties(((await answer.json()) as any).error, ['message', 'type', 'param', 'code'])
  })
})

test.group('Organizations: management API /api/admin/organizations', (group) => {
  group.setup(async () => {
    await resetDatabase()
    await createUser({ email: 'ops@orgs.local', password: 'password123', role: 'admin' })
    adminKey = (await createApiKey({ userRef: 'ops@orgs.local', name: 'admin-api', manage: true })).key
  })

  test('create, read, change, members, a team into it, delete refused while it has teams; hostile input 400', async ({ assert }) => {
    const made = await call('POST', '/api/admin/organizations', { alias: 'Dept A', max_budget: '50', budget_period: 'month', models: ['gpt-*'], rpm: 10 })
    assert.equal(made.status, 201, JSON.stringify(made.body))
    assert.deepInclude(made.body, { object: 'organization', alias: 'Dept A', max_budget: '50', budget_period: 'month', rpm: 10, blocked: false })
    const id = made.body.id
    const team = await call('POST', '/api/admin/teams', { alias: 'A1', organization_id: id })
    assert.equal(team.status, 201, JSON.stringify(team.body))
    assert.equal(team.body.organization_id, id)
    const shown = await call('GET', `/api/admin/organizations/${id}`)
    assert.deepEqual(shown.body.teams, [{ id: team.body.id, alias: 'A1' }])
    const member = await call('POST', `/api/admin/organizations/${id}/members`, { user: 'ops@orgs.local', role: 'org_admin' })
    assert.equal(member.status, 200, JSON.stringify(member.body))
    assert.equal(member.body.members[0].role, 'org_admin')
    const changed = await call('PATCH', `/api/admin/organizations/${id}`, { blocked: true, rpm: null })
    assert.deepInclude(changed.body, { blocked: true, rpm: null })
    assert.equal((await call('GET', '/api/admin/organizations')).body.data[0].id, id)

    for (const body of [{ alias: '' }, { alias: 'x'.repeat(10_000) }, { alias: 'x', max_budget: true }, { alias: 'x', max_budget: '-1' }, { alias: 'x', rpm: '0x10' }, { alias: 'x', tpm: '1e3' }]) {
      const answer = await call('POST', '/api/admin/organizations', body)
      assert.equal(answer.status, 400, JSON.stringify(body))
      assert.properties(answer.body.error, ['message', 'type', 'code'])
    }
    for (const ref of ['0x10', '1e3', 'abc']) {
      assert.equal((await call('PATCH', `/api/admin/teams/${team.body.id}`, { organization_id: ref })).status, 404, ref)
      assert.equal((await call('GET', `/api/admin/organizations/${ref}`)).status, 404, ref)
    }
    const refused = await call('DELETE', `/api/admin/organizations/${id}`)
    assert.equal(refused.status, 400)
    assert.match(refused.body.error.message, /still has 1 team/)
    assert.equal((await call('PATCH', `/api/admin/teams/${team.body.id}`, { organization_id: null })).status, 200)
    assert.deepEqual((await call('DELETE', `/api/admin/organizations/${id}`)).body, { object: 'organization', id, deleted: true })
    assert.lengthOf(await db.from('organizations'), 0)
  })
})

test.group('Organizations in the admin panel', (group) => {
  group.setup(() => resetDatabase())

  function fieldError(html: string, field: string) {
    const match = html.match(new RegExp(`id="f-${field}-error">([^<]*)<`))
    return match ? textOf(match[1]).trim() : null
  }

  test('create (field errors beside the field), edit, a team put in it from the team form, delete refused while it has teams; audited as the admin', async ({ assert }) => {
    await createUser({ email: 'panel@orgs.local', password: 'admin-password', role: 'admin' })
    const client = new PanelClient()
    await client.login('panel@orgs.local', 'admin-password')

    const empty = await client.get('/admin/organizations')
    assert.equal(empty.status, 200)
    assert.include(textOf(empty.html), 'No organizations yet')

    await client.get('/admin/organizations/new')
    const refused = await client.follow(await client.post('/admin/organizations', { alias: 'Acme', maxBudget: '1,5', budgetPeriod: 'month' }))
    assert.equal(fieldError(refused.html, 'maxBudget'), 'Budget must be an amount in USD such as 5 or 0.50, with at most 6 decimals.')
    assert.lengthOf(await db.from('organizations'), 0)

    const created = await client.post('/admin/organizations', { alias: 'Acme', maxBudget: '50', budgetPeriod: 'month', models: 'gpt-*', rpm: '100', tpm: '' })
    assert.equal(created.status, 302)
    const org = await db.from('organizations').where('alias', 'Acme').first()
    assert.deepInclude(org, { max_budget: '50.000000000000', budget_period: 'month', rpm: 100, tpm: null, blocked_at: null })
    const list = await client.follow(created)
    assert.include(textOf(list.html), 'Organization Acme created')

    // The team form's organization select puts the team in it; the team page names it.
    const team = await client.post('/admin/teams', { alias: 'Acme Prod', organization: String(org.id) })
    assert.equal(team.status, 302)
    const teamRow = await db.from('teams').where('alias', 'Acme Prod').first()
    assert.equal(teamRow.organization_id, org.id)
    const teamForm = await client.get(`/admin/teams/${teamRow.id}/edit`)
    assert.match(teamForm.html, new RegExp(`<option value="${org.id}"[^>]*selected`))
    assert.include((await client.follow(team)).html, `/admin/organizations/${org.id}/edit">Acme</a>`)
    // A team form saved without the field leaves it where it is.
    await client.post(`/admin/teams/${teamRow.id}`, { alias: 'Acme Prod' })
    assert.equal((await db.from('teams').where('id', teamRow.id).first()).organization_id, org.id)
    const unknown = await client.follow(await client.post(`/admin/teams/${teamRow.id}`, { alias: 'Acme Prod', organization: '0x10' }))
    assert.include(textOf(unknown.html), 'No organization')

    const editPage = await client.get(`/admin/organizations/${org.id}/edit`)
    assert.include(textOf(editPage.html), 'move its 1 team(s) out first')
    const deleteRefused = await client.follow(await client.post(`/admin/organizations/${org.id}/delete`))
    assert.include(textOf(deleteRefused.html), 'still has 1 team(s)')
    assert.lengthOf(await db.from('organizations'), 1)

    await client.follow(await client.post(`/admin/organizations/${org.id}`, { alias: 'Acme', maxBudget: '', budgetPeriod: '', models: '', rpm: '', tpm: '', blocked: 'on' }))
    const saved = await db.from('organizations').where('id', org.id).first()
    assert.deepInclude(saved, { max_budget: null, budget_period: null, allowed_models: null, rpm: null })
    assert.isNotNull(saved.blocked_at)

    await client.post(`/admin/teams/${teamRow.id}`, { alias: 'Acme Prod', organization: '' })
    assert.isNull((await db.from('teams').where('id', teamRow.id).first()).organization_id)
    const gone = await client.post(`/admin/organizations/${org.id}/delete`)
    assert.equal(gone.location, '/admin/organizations')
    assert.lengthOf(await db.from('organizations'), 0)
    assert.equal((await client.get('/admin/organizations/999999/edit')).status, 404)

    const audit = await db.from('audit_log').where('subject_type', 'organization').orderBy('id').select('action', 'source', 'actor')
    assert.deepEqual(audit.map((a) => a.action), ['organization.create', 'organization.update', 'organization.delete'])
    assert.isTrue(audit.every((a) => a.source === 'panel' && a.actor === 'panel@orgs.local'))
  })
})

test.group('Organizations: organization:create and team:create --organization', (group) => {
  group.setup(() => resetDatabase())

  async function run(command: typeof OrganizationCreate | typeof TeamCreate, args: string[]) {
    const instance = await ace.create(command, args)
    ace.ui.switchMode('raw')
    await instance.exec()
    return instance
  }

  test('creates an organization and a team in it (audited as cli); bad input fails with a clear line', async ({ assert }) => {
    const created = await run(OrganizationCreate, ['Acme', '--budget', '100', '--period', 'week', '--models', 'gpt-*', '--tpm', '5000'])
    created.assertSucceeded()
    const org = await db.from('organizations').where('alias', 'Acme').first()
    assert.deepInclude(org, { max_budget: '100.000000000000', budget_period: 'week', tpm: 5000 })
    ;(await run(TeamCreate, ['Acme Ops', '--organization', String(org.id)])).assertSucceeded()
    assert.equal((await db.from('teams').where('alias', 'Acme Ops').first()).organization_id, org.id)
    const unknown = await run(TeamCreate, ['Lost', '--organization', '999999'])
    unknown.assertFailed()
    unknown.assertLog('[ red(error) ] No organization "999999"', 'stderr')
    ;(await run(OrganizationCreate, ['Bad', '--period', 'year'])).assertFailed()
    const audit = await db.from('audit_log').whereIn('action', ['organization.create', 'team.create']).orderBy('id').select('action', 'source')
    assert.deepEqual(audit.map((a) => [a.action, a.source]), [['organization.create', 'cli'], ['team.create', 'cli']])
  })
})

test.group('Organizations: batches', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'openai', provider: 'openai', baseUrl: mock.url, models: ['gpt-4o-mini'] })
    await seedPrice('gpt-4o-mini', '2', '8')
    return () => mock.stop()
  })

  test("a batch whose hold is more than its team's organization has left is refused (402, naming the organization)", async ({ assert }) => {
    const user = await seedUser({ balance: '10' })
    const org = await createOrganization({ alias: 'tight-org', maxBudget: '0.0001' })
    const team = await createTeam({ alias: 'roomy-team', organization: org.id })
    await setKeyTeam(String(user.keyId), team.id)
    await refreshCaches()
    const client = openai(user.key)
    const lines = ['o-0', 'o-1'].map((id) =>
      JSON.stringify({ custom_id: id, method: 'POST', url: '/v1/chat/completions', body: { model: 'gpt-4o-mini', messages: [{ role: 'user', content: id }], max_tokens: 50 } })
    )
    const file = await client.files.create({ file: await toFile(Buffer.from(`${lines.join('\n')}\n`), 'requests.jsonl'), purpose: 'batch' })
    const refused = await client.batches
      .create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' })
      .then(() => null, (error) => error)
    assert.equal(refused?.status, 402)
    assert.equal(refused?.error?.code, 'spend_limit_exceeded')
    assert.include(refused?.error?.message, "organization 'tight-org'")
    assert.lengthOf(mock.batches.batches, 0, 'nothing made upstream')
  })
})
