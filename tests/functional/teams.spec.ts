import { test } from '@japa/runner'
import ace from '@adonisjs/core/services/ace'
import TeamCreate from '#commands/team_create'
import KeyTeam from '#commands/key_team'
import { PanelClient, textOf } from '#tests/panel_client'
import db from '@adonisjs/lucid/services/db'
import pg from 'pg'
import { createUser } from '#actions/create_user'
import { createApiKey } from '#actions/issue_api_key'
import { createTeam, setKeyTeam } from '#actions/teams'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { estimateCostPico } from '#gateway/metering/reservation'
import { fromPico, toPico } from '#gateway/metering/money'
import { baseUrl, gateway, post, refreshCaches, resetDatabase, seedChannel, seedPrice, seedUser, startMock, usageRows, type SeededUser } from '#tests/helpers'

/**
 * Teams: a policy over a set of keys (LiteLLM's /team/*). Two users' keys in
 * one team share its budget, models, rpm and block; billing stays on each
 * owner. Driven through LiteLLM's paths and the management API with plain
 * fetch, as scripts written against a LiteLLM proxy call them.
 */
let adminKey = ''

async function call(method: string, path: string, body?: unknown, headers: Record<string, string> = { authorization: `Bearer ${adminKey}` }) {
  const response = await fetch(`${baseUrl()}${path}`, {
    method,
    headers: { ...headers, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  const text = await response.text()
  try {
    return { status: response.status, body: JSON.parse(text) as any }
  } catch {
    throw new Error(`${method} ${path}: ${response.status} ${text.slice(0, 3000)}`)
  }
}

async function chat(key: string, model = 'team-model', extra: Record<string, unknown> = {}) {
  const response = await post('/v1/chat/completions', { model, messages: [{ role: 'user', content: 'hi' }], ...extra }, { authorization: `Bearer ${key}` })
  return { status: response.status, body: (await response.json()) as any }
}

/** The gateway hears of changes through NOTIFY: wait for the expected answer (no refresh by hand). */
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

/** A team made through /team/new, and a key of each of two users put in it through /key/update */
async function teamOfTwo(settings: Record<string, unknown>): Promise<{ teamId: string; a: SeededUser; b: SeededUser }> {
  const made = await call('POST', '/team/new', { team_alias: `team-${Math.random().toString(36).slice(2, 8)}`, ...settings })
  if (made.status !== 200) throw new Error(JSON.stringify(made.body))
  const a = await seedUser({ balance: '10' })
  const b = await seedUser({ balance: '10' })
  for (const user of [a, b]) {
    const updated = await call('POST', '/key/update', { key: String(user.keyId), team_id: made.body.team_id })
    if (updated.status !== 200) throw new Error(JSON.stringify(updated.body))
  }
  await refreshCaches()
  return { teamId: made.body.team_id, a, b }
}

test.group('Teams on the request path', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'mock', baseUrl: mock.url, models: ['*'] })
    // 12 prompt and 5 completion tokens a call (the mock's usage): $0.012 + $0.010 = $0.022.
    await seedPrice('team-model', '1000', '2000')
    await seedPrice('team-capped', '1', '1')
    await createUser({ email: 'ops@teams.local', password: 'password123', role: 'admin' })
    adminKey = (await createApiKey({ userRef: 'ops@teams.local', name: 'litellm-master', manage: true })).key
    await refreshCaches()
    return () => mock.stop()
  })

  test('two keys of two users share the team budget: the second is refused once the first spent it; each owner pays their own', async ({ assert }) => {
    const { teamId, a, b } = await teamOfTwo({ max_budget: 0.02, budget_duration: '1d' })
    assert.equal((await chat(a.key)).status, 200)
    const refused = await chat(b.key)
    assert.equal(refused.status, 402, JSON.stringify(refused.body))
    assert.equal(refused.body.error.code, 'spend_limit_exceeded')
    assert.match(refused.body.error.message, /team '.*' reached its budget for this day/)
    // In Anthropic's format too, as a key's cap.
    const anthropic = await post('/v1/messages', { model: 'team-model', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] }, { 'x-api-key': a.key })
    assert.equal(anthropic.status, 402)
    assert.equal(((await anthropic.json()) as any).type, 'error')

    // The meter's statement keeps the team's spend; the bill stays on the key's owner.
    assert.lengthOf(await usageRows(a.userId), 2)
    const team = await db.from('teams').where('id', teamId).first()
    assert.equal(toPico(String(team.spent)), toPico('0.022'))
    assert.equal(toPico(String(team.period_spent)), toPico('0.022'))
    const info = await call('GET', `/team/info?team_id=${teamId}`)
    assert.equal(info.body.team_info.spend, 0.022)
    assert.equal((await db.from('users').where('id', b.userId).first()).balance, '10.000000000000')

    // Raising the budget serves again (the change reaches the cache through NOTIFY).
    assert.equal((await call('POST', '/team/update', { team_id: teamId, max_budget: 1 })).status, 200)
    assert.isTrue(await eventually(async () => (await chat(b.key)).status === 200))
    // A reload reads the committed spend back (no charge forgotten, none counted twice).
    await (await gateway()).meter.drain()
    await (await gateway()).catalog.teams.reload()
    assert.equal((await gateway()).catalog.teams.get(Number(teamId))!.spentPico, toPico('0.044'))
  })

  test('exact under concurrency: 50 calls through two keys on a $0.0001 team budget spend at most the budget plus one estimate; holds released', async ({ assert }) => {
    const { teamId, a, b } = await teamOfTwo({ max_budget: 0.0001 })
    const body = { model: 'team-capped', messages: [{ role: 'user', content: 'hi' }], max_tokens: 10, mock: { latency_ms: 50 } }
    const statuses = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        post('/v1/chat/completions', body, { authorization: `Bearer ${i % 2 ? a.key : b.key}` }).then(async (r) => {
          const answer: any = await r.json()
          if (r.status === 402) assert.equal(answer.error.code, 'spend_limit_exceeded')
          return r.status
        })
      )
    )
    const served = statuses.filter((s) => s === 200).length
    assert.equal(served + statuses.filter((s) => s === 402).length, 50)
    assert.isAtLeast(served, 1)
    assert.isBelow(served, 50)
    const { catalog } = await gateway()
    const estimate = estimateCostPico(catalog.priceFor('team-capped'), Buffer.byteLength(JSON.stringify(body)), body)
    const rows = [...(await usageRows(a.userId)), ...(await usageRows(b.userId))]
    const spent = rows.reduce((sum, r) => sum + toPico(r.cost), 0n)
    assert.isTrue(spent <= toPico('0.0001') + estimate, `spent ${fromPico(spent)}, budget 0.0001 + estimate ${fromPico(estimate)}`)
    assert.equal(toPico(String((await db.from('teams').where('id', teamId).first()).spent)), spent)
    assert.equal(catalog.teams.get(Number(teamId))!.heldPico, 0n)
  })

  test('a reload while a metering batch is committed but not yet settled counts its cost once (not from the row and the pending totals both)', async ({ assert }) => {
    const { teamId, a } = await teamOfTwo({ max_budget: 10 })
    const gw = await gateway()
    await gw.meter.drain()
    // The meter's next batch statement answers only once released: committed in Postgres, its records still pending here.
    const original = pg.Pool.prototype.query
    let release!: () => void
    const released = new Promise<void>((resolve) => (release = resolve))
    let committed!: () => void
    const committedSeen = new Promise<void>((resolve) => (committed = resolve))
    let caught = false
    pg.Pool.prototype.query = function (this: any, config: any, ...rest: any[]) {
      const result = (original as any).call(this, config, ...rest)
      if (!caught && typeof config === 'object' && String(config?.name ?? '').startsWith('gateway_meter_batch')) {
        caught = true
        return result.then(async (value: unknown) => {
          committed()
          await released
          return value
        })
      }
      return result
    } as any
    try {
      assert.equal((await chat(a.key)).status, 200)
      await committedSeen
      const reload = gw.catalog.teams.reload()
      setTimeout(release, 100)
      await reload
    } finally {
      pg.Pool.prototype.query = original
      release()
    }
    await gw.meter.drain()
    assert.equal((await db.from('teams').where('id', teamId).first()).spent, '0.022000000000')
    assert.equal(gw.catalog.teams.get(Number(teamId))!.spentPico, toPico('0.022'))
  })

  test('a blocked team refuses its keys (401 in each wire format, as a blocked key); unblocked, they are served', async ({ assert }) => {
    const { teamId, a, b } = await teamOfTwo({})
    assert.equal((await chat(a.key)).status, 200)
    const blocked = await call('POST', '/team/block', { team_id: teamId })
    assert.equal(blocked.status, 200)
    assert.isTrue(blocked.body.blocked)
    assert.isTrue(await eventually(async () => (await chat(b.key)).status === 401))
    const refused = await chat(a.key)
    assert.equal(refused.body.error.code, 'invalid_api_key')
    assert.match(refused.body.error.message, /team '.*' is blocked/)
    const anthropic = await post('/v1/messages', { model: 'team-model', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] }, { 'x-api-key': a.key })
    assert.equal(anthropic.status, 401)
    assert.equal(((await anthropic.json()) as any).error.type, 'authentication_error')
    const google = await post('/v1beta/models/team-model:generateContent', { contents: [{ parts: [{ text: 'hi' }] }] }, { 'x-goog-api-key': a.key })
    assert.equal(google.status, 401)
    assert.equal(((await google.json()) as any).error.status, 'UNAUTHENTICATED')
    assert.equal((await call('POST', '/team/unblock', { team_id: teamId })).status, 200)
    assert.isTrue(await eventually(async () => (await chat(a.key)).status === 200))
    assert.equal((await chat(b.key)).status, 200)
  })

  test('the team\'s models: a model outside its globs is refused as the key\'s own globs refuse it', async ({ assert }) => {
    const { a } = await teamOfTwo({ models: ['team-*'] })
    assert.equal((await chat(a.key, 'team-model')).status, 200)
    const refused = await chat(a.key, 'other-model')
    assert.equal(refused.status, 403)
    assert.equal(refused.body.error.code, 'model_not_allowed')
  })

  test('the team\'s rpm is one window shared by its keys', async ({ assert }) => {
    const { a, b } = await teamOfTwo({ rpm_limit: 2 })
    assert.equal((await chat(a.key)).status, 200)
    assert.equal((await chat(b.key)).status, 200)
    const refused = await chat(a.key)
    assert.equal(refused.status, 429, JSON.stringify(refused.body))
    assert.equal(refused.body.error.code, 'rate_limit_exceeded')
    assert.equal((await chat(b.key)).status, 429)
    // A key of no team is not counted in it.
    const other = await seedUser({ balance: '1' })
    assert.equal((await chat(other.key)).status, 200)
  })

  test('another instance\'s charge through a team\'s key (charged:<user>:<key>) reads the team\'s spend again', async ({ assert }) => {
    const { teamId, a } = await teamOfTwo({ max_budget: 1 })
    assert.equal((await chat(a.key)).status, 200)
    const { catalog, meter } = await gateway()
    await meter.drain()
    // What another instance's meter would have committed: the team's spend grows in the table only.
    await db.from('teams').where('id', teamId).update({ spent: db.raw('spent + 5') })
    assert.equal(catalog.teams.get(Number(teamId))!.spentPico, toPico('0.022'))
    await catalog.handleChange(`charged:${a.userId}:${a.keyId}`)
    assert.isTrue(await eventually(async () => catalog.teams.get(Number(teamId))!.spentPico === toPico('5.022')))
    const refused = await chat(a.key)
    assert.equal(refused.status, 402)
  })

  test('a deleted team leaves its keys working, in no team', async ({ assert }) => {
    const { teamId, a } = await teamOfTwo({ models: ['nothing-*'] })
    assert.equal((await chat(a.key)).status, 403)
    const deleted = await call('POST', '/team/delete', { team_ids: [teamId] })
    assert.deepEqual(deleted.body, { deleted_teams: [teamId] })
    assert.isTrue(await eventually(async () => (await chat(a.key)).status === 200))
    assert.isNull((await db.from('api_keys').where('id', a.keyId).first()).team_id)
  })
})

test.group('LiteLLM /team/* and team_id on /key/*', (group) => {
  let mock: MockUpstream
  let alice: SeededUser
  let bob: SeededUser

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'mock', baseUrl: mock.url, models: ['*'] })
    await seedPrice('team-model', '1000', '2000')
    await createUser({ email: 'ops@teams.local', password: 'password123', role: 'admin' })
    adminKey = (await createApiKey({ userRef: 'ops@teams.local', name: 'litellm-master', manage: true })).key
    alice = await seedUser({ balance: '10', email: 'alice@teams.local' })
    bob = await seedUser({ balance: '10', email: 'bob@teams.local' })
    return () => mock.stop()
  })

  test('/team/new, /info, /list, /update, /member_add, /member_delete, /delete: LiteLLM\'s fields and shapes, audited', async ({ assert }) => {
    const made = await call('POST', '/team/new', {
      team_alias: 'QA Prod Bot',
      max_budget: 25.5,
      budget_duration: '30d',
      models: ['gpt-*'],
      tpm_limit: 1000,
      rpm_limit: 10,
      metadata: { cost_center: 'qa' },
      members_with_roles: [{ role: 'admin', user_id: String(alice.userId) }],
    })
    assert.equal(made.status, 200, JSON.stringify(made.body))
    assert.deepInclude(made.body, {
      team_alias: 'QA Prod Bot',
      max_budget: 25.5,
      budget_duration: '1mo',
      spend: 0,
      models: ['gpt-*'],
      tpm_limit: 1000,
      rpm_limit: 10,
      blocked: false,
      admins: [String(alice.userId)],
    })
    assert.deepEqual(made.body.metadata, { cost_center: 'qa' })
    assert.deepEqual(made.body.members_with_roles, [{ user_id: String(alice.userId), user_email: 'alice@teams.local', role: 'admin' }])
    assert.isString(made.body.budget_reset_at)
    const teamId = made.body.team_id
    assert.equal((await db.from('audit_log').where('action', 'team.create').first()).source, 'api')

    // A key generated into the team (its owner, bob, is no member: LiteLLM's master key needs none).
    const key = await call('POST', '/key/generate', { user_id: bob.email, team_id: teamId, key_alias: 'bob-team' })
    assert.equal(key.status, 200, JSON.stringify(key.body))
    assert.equal(key.body.team_id, teamId)
    const keyInfo = await call('GET', `/key/info?key=${key.body.token}`)
    assert.equal(keyInfo.body.info.team_id, teamId)
    const listed = await call('GET', '/key/list?return_full_object=true&key_alias=bob-team')
    assert.equal(listed.body.keys[0].team_id, teamId)

    const added = await call('POST', '/team/member_add', { team_id: teamId, member: [{ user_email: 'bob@teams.local', role: 'user' }] })
    assert.equal(added.status, 200, JSON.stringify(added.body))
    assert.deepEqual(added.body.updated_users, [{ user_id: String(bob.userId), user_email: 'bob@teams.local' }])
    assert.deepEqual(added.body.members, [String(bob.userId)])

    const userInfo = await call('GET', `/user/info?user_id=${bob.userId}`)
    assert.deepEqual(userInfo.body.user_info.teams, [teamId])
    assert.deepEqual(userInfo.body.teams.map((t: any) => t.team_alias), ['QA Prod Bot'])

    const info = await call('GET', `/team/info?team_id=${teamId}`)
    assert.equal(info.status, 200)
    assert.equal(info.body.team_id, teamId)
    assert.equal(info.body.team_info.team_alias, 'QA Prod Bot')
    assert.deepEqual(info.body.keys.map((k: any) => k.token), [key.body.token])
    assert.lengthOf(info.body.team_memberships, 2)

    const updated = await call('POST', '/team/update', { team_id: teamId, team_alias: 'QA', max_budget: null, rpm_limit: null })
    assert.equal(updated.status, 200, JSON.stringify(updated.body))
    assert.equal(updated.body.team_id, teamId)
    assert.deepInclude(updated.body.data, { team_alias: 'QA', max_budget: null, budget_duration: null, rpm_limit: null, tpm_limit: 1000 })

    const removed = await call('POST', '/team/member_delete', { team_id: teamId, user_email: 'alice@teams.local' })
    assert.equal(removed.status, 200)
    assert.deepEqual(removed.body.members_with_roles.map((m: any) => m.user_email), ['bob@teams.local'])

    const list = await call('GET', '/team/list')
    assert.deepEqual(list.body.map((t: any) => t.team_id), [teamId])
    assert.deepEqual((await call('GET', `/team/list?user_id=${bob.email}`)).body.map((t: any) => t.team_id), [teamId])
    assert.deepEqual((await call('GET', `/team/list?user_id=${alice.userId}`)).body, [])
    assert.deepEqual((await call('GET', `/key/list?team_id=${teamId}`)).body.keys, [key.body.token])

    // /key/update team_id: null takes the key out.
    const out = await call('POST', '/key/update', { key: key.body.token, team_id: null })
    assert.isNull(out.body.team_id)

    const deleted = await call('POST', '/team/delete', { team_ids: [teamId] })
    assert.deepEqual(deleted.body, { deleted_teams: [teamId] })
    assertLiteLLMError(assert, await call('GET', `/team/info?team_id=${teamId}`), 404)
    assert.deepEqual(
      (await db.from('audit_log').where('subject_type', 'team').orderBy('id').select('action')).map((r) => r.action),
      ['team.create', 'team.member_add', 'team.member_add', 'team.update', 'team.member_delete', 'team.delete']
    )
  })

  test('/global/spend/report?group_by=team: per day, each team\'s spend with its models', async ({ assert }) => {
    const made = await call('POST', '/team/new', { team_alias: 'Reporting' })
    const key = await call('POST', '/key/generate', { user_id: alice.email, team_id: made.body.team_id })
    await refreshCaches()
    assert.equal((await chat(key.body.key)).status, 200)
    assert.equal((await chat(bob.key)).status, 200, 'a key in no team is left out')
    const report = await call('GET', '/global/spend/report?group_by=team')
    assert.equal(report.status, 200)
    assert.lengthOf(report.body, 1)
    assert.deepEqual(report.body[0].teams, [
      { team_name: 'Reporting', team_id: made.body.team_id, total_spend: 0.022, metadata: [{ model: 'team-model', spend: 0.022, total_tokens: 17 }] },
    ])
  })

  test('validation: 400 naming LiteLLM\'s field; unknown ids 404 and change nothing', async ({ assert }) => {
    const teamsBefore = (await db.from('teams')).length
    assertLiteLLMError(assert, await call('POST', '/team/new', {}), 400, 'team_alias')
    assertLiteLLMError(assert, await call('POST', '/team/new', { team_alias: 'x', budget_duration: '3d' }), 400, 'budget_duration')
    assertLiteLLMError(assert, await call('POST', '/team/new', { team_alias: 'x', max_budget: -1 }), 400, 'max_budget')
    assertLiteLLMError(assert, await call('POST', '/team/new', { team_alias: 'x', rpm_limit: 0 }), 400, 'rpm_limit')
    assertLiteLLMError(assert, await call('POST', '/team/new', { team_alias: 'x', members_with_roles: [{ role: 'owner', user_id: '1' }] }), 400, 'members_with_roles')
    assertLiteLLMError(assert, await call('POST', '/team/delete', { team_ids: 'x' }), 400, 'team_ids')
    assertLiteLLMError(assert, await call('GET', '/team/info'), 400, 'team_id')
    assert.lengthOf(await db.from('teams'), teamsBefore)

    const made = await call('POST', '/team/new', { team_alias: 'Real' })
    assertLiteLLMError(assert, await call('POST', '/team/member_add', { team_id: made.body.team_id }), 400, 'member')
    assertLiteLLMError(assert, await call('GET', '/team/info?team_id=999999'), 404)
    assertLiteLLMError(assert, await call('POST', '/team/update', { team_id: '999999', team_alias: 'y' }), 404)
    assertLiteLLMError(assert, await call('POST', '/team/block', { team_id: 'nope' }), 404)
    assertLiteLLMError(assert, await call('POST', '/team/member_add', { team_id: '999999', member: { user_id: String(bob.userId) } }), 404)
    assertLiteLLMError(assert, await call('POST', '/team/member_add', { team_id: made.body.team_id, member: { user_email: 'nobody@teams.local' } }), 404)
    assertLiteLLMError(assert, await call('POST', '/team/member_delete', { team_id: made.body.team_id, user_id: String(bob.userId) }), 404)
    assertLiteLLMError(assert, await call('POST', '/team/delete', { team_ids: [made.body.team_id, '999999'] }), 404)
    assert.lengthOf(await db.from('teams'), teamsBefore + 1, 'one unknown id deletes none')
    const keysBefore = (await db.from('api_keys').count('* as n'))[0].n
    assertLiteLLMError(assert, await call('POST', '/key/generate', { user_id: bob.email, team_id: '999999' }), 404)
    assert.equal((await db.from('api_keys').count('* as n'))[0].n, keysBefore, 'no key made for an unknown team')
    assertLiteLLMError(assert, await call('POST', '/key/update', { key: String(bob.keyId), team_id: '999999' }), 404)
    assertLiteLLMError(assert, await call('POST', '/key/update', { key: String(bob.keyId), team_id: { id: 1 } }), 400, 'team_id')
  })

  test('auth: no key 401, a user\'s key 403 on every /team/* path, in LiteLLM\'s shape', async ({ assert }) => {
    const paths: Array<[string, string]> = [
      ['POST', '/team/new'], ['GET', '/team/info?team_id=1'], ['GET', '/team/list'], ['POST', '/team/update'], ['POST', '/team/delete'],
      ['POST', '/team/block'], ['POST', '/team/unblock'], ['POST', '/team/member_add'], ['POST', '/team/member_delete'],
    ]
    const before = (await db.from('teams').count('* as n'))[0].n
    for (const [method, path] of paths) {
      const body = method === 'POST' ? { team_alias: 'sneaky', team_id: '1', team_ids: ['1'] } : undefined
      const anonymous = await call(method, path, body, {})
      assertLiteLLMError(assert, anonymous, 401)
      assert.equal(anonymous.body.error.type, 'auth_error')
      assertLiteLLMError(assert, await call(method, path, body, { authorization: `Bearer ${alice.key}` }), 403)
    }
    assert.equal((await db.from('teams').count('* as n'))[0].n, before)
  })
})

test.group('Teams over the management API (/api/admin/teams)', (group) => {
  group.setup(async () => {
    await resetDatabase()
    await createUser({ email: 'ops@teams.local', password: 'password123', role: 'admin' })
    adminKey = (await createApiKey({ userRef: 'ops@teams.local', name: 'manager', manage: true })).key
    await refreshCaches()
  })

  test('create, read, change, members, a key into the team, delete; the same actions as LiteLLM\'s paths', async ({ assert }) => {
    const carol = await seedUser({ email: 'carol@teams.local' })
    const made = await call('POST', '/api/admin/teams', { alias: 'Search', max_budget: '12.5', budget_period: 'week', models: ['gpt-*'], rpm: 30 })
    assert.equal(made.status, 201, JSON.stringify(made.body))
    assert.deepInclude(made.body, { object: 'team', alias: 'Search', max_budget: '12.5', budget_period: 'week', budget_spent: '0', rpm: 30, tpm: null, blocked: false })
    const id = made.body.id

    const member = await call('POST', `/api/admin/teams/${id}/members`, { user: 'carol@teams.local', role: 'admin' })
    assert.equal(member.status, 200, JSON.stringify(member.body))
    assert.deepEqual(member.body.members, [
      { user_id: carol.userId, email: 'carol@teams.local', role: 'admin', max_budget: null, budget_period: null, budget_spent: '0', budget_resets_at: null, rpm: null, tpm: null },
    ])

    const key = await call('PATCH', `/api/admin/keys/${carol.keyId}`, { team_id: id })
    assert.equal(key.status, 200, JSON.stringify(key.body))
    assert.equal(key.body.team_id, id)
    const shown = await call('GET', `/api/admin/teams/${id}`)
    assert.deepEqual(shown.body.keys.map((k: any) => k.id), [carol.keyId])

    const changed = await call('PATCH', `/api/admin/teams/${id}`, { blocked: true, max_budget: null })
    assert.deepInclude(changed.body, { blocked: true, max_budget: null, budget_period: null })
    assert.equal((await call('GET', '/api/admin/teams')).body.data[0].id, id)

    const invalid = await call('PATCH', `/api/admin/teams/${id}`, { budget_period: 'year' })
    assert.equal(invalid.status, 400)
    assert.equal(invalid.body.error.param, 'budgetPeriod')
    assert.equal((await call('GET', '/api/admin/teams/999999')).status, 404)
    assert.equal((await call('PATCH', `/api/admin/keys/${carol.keyId}`, { team_id: 999999 })).status, 404)

    const removed = await call('DELETE', `/api/admin/teams/${id}/members?user=${carol.userId}`)
    assert.deepEqual(removed.body.members, [])
    const gone = await call('DELETE', `/api/admin/teams/${id}`)
    assert.deepEqual(gone.body, { object: 'team', id, deleted: true })
    assert.isNull((await db.from('api_keys').where('id', carol.keyId).first()).team_id)
  })

  test('a user\'s key is refused (403)', async ({ assert }) => {
    const dave = await seedUser()
    const refused = await call('GET', '/api/admin/teams', undefined, { authorization: `Bearer ${dave.key}` })
    assert.equal(refused.status, 403)
  })

  test('setKeyTeam and createTeam are the actions behind every path (ace, panel)', async ({ assert }) => {
    const erin = await seedUser()
    const team = await createTeam({ alias: 'Direct', rpm: 5 })
    const key = await setKeyTeam(String(erin.keyId), team.id)
    assert.equal(key.teamId, team.id)
    assert.equal((await db.from('audit_log').where('action', 'key.team').orderBy('id', 'desc').first()).subject_id, erin.keyId)
  })
})

test.group('Teams: team:create and key:team', (group) => {
  group.setup(() => resetDatabase())

  async function run(command: typeof TeamCreate | typeof KeyTeam, args: string[]) {
    const made = await ace.create(command, args)
    ace.ui.switchMode('raw')
    await made.exec()
    return made
  }

  test('creates a team and puts a key in it (audited as cli); bad input fails with a clear line', async ({ assert }) => {
    const frank = await seedUser()
    const created = await run(TeamCreate, ['Ops', '--budget', '20', '--period', 'month', '--models', 'gpt-*, claude-*', '--rpm', '60'])
    created.assertSucceeded()
    const team = await db.from('teams').where('alias', 'Ops').first()
    assert.deepInclude(team, { max_budget: '20.000000000000', budget_period: 'month', rpm: 60 })
    assert.deepEqual(team.allowed_models, ['gpt-*', 'claude-*'])
    ;(await run(KeyTeam, [String(frank.keyId), String(team.id)])).assertSucceeded()
    assert.equal((await db.from('api_keys').where('id', frank.keyId).first()).team_id, team.id)
    ;(await run(KeyTeam, [String(frank.keyId), 'none'])).assertSucceeded()
    assert.isNull((await db.from('api_keys').where('id', frank.keyId).first()).team_id)
    const bad = await run(TeamCreate, ['Bad', '--budget', 'ten'])
    bad.assertFailed()
    assert.match(JSON.stringify(bad.ui.logger.getLogs()), /--budget/)
    const unknown = await run(KeyTeam, [String(frank.keyId), '999999'])
    unknown.assertFailed()
    unknown.assertLog('[ red(error) ] No team "999999"', 'stderr')
    const audit = await db.from('audit_log').whereIn('action', ['team.create', 'key.team']).orderBy('id').select('action', 'source')
    assert.deepEqual(audit.map((a) => [a.action, a.source]), [['team.create', 'cli'], ['key.team', 'cli'], ['key.team', 'cli']])
  })
})

test.group('Teams in the admin panel', (group) => {
  group.setup(() => resetDatabase())

  /** The text of a field's error (form/field.edge: <small id="f-NAME-error">). */
  function fieldError(html: string, name: string) {
    const match = html.match(new RegExp(`id="f-${name}-error">([^<]*)<`))
    return match ? textOf(match[1]).trim() : null
  }

  test('create (field errors beside the field), edit, a key put in the team from its form, members, block and unblock; audited as the admin', async ({ assert }) => {
    await createUser({ email: 'panel@teams.local', password: 'admin-password', role: 'admin' })
    const owner = await seedUser({ email: 'keyowner@teams.local' })
    const client = new PanelClient()
    await client.login('panel@teams.local', 'admin-password')

    const empty = await client.get('/admin/teams')
    assert.equal(empty.status, 200)
    assert.include(textOf(empty.html), 'No teams yet')

    await client.get('/admin/teams/new')
    const refused = await client.follow(await client.post('/admin/teams', { alias: 'Research', maxBudget: '1,5', budgetPeriod: 'month' }))
    assert.equal(fieldError(refused.html, 'maxBudget'), 'Budget must be an amount in USD such as 5 or 0.50, with at most 6 decimals.')
    assert.lengthOf(await db.from('teams'), 0)

    const created = await client.post('/admin/teams', { alias: 'Research', maxBudget: '50', budgetPeriod: 'month', models: 'gpt-*, claude-*', rpm: '100', tpm: '' })
    assert.equal(created.status, 302)
    const team = await db.from('teams').where('alias', 'Research').first()
    assert.deepInclude(team, { max_budget: '50.000000000000', budget_period: 'month', rpm: 100, tpm: null })
    const page = await client.follow(created)
    assert.include(textOf(page.html), 'Team Research created')
    assert.match(textOf(page.html), /\$0(\.00)? of \$50(\.00)? this month/)

    // The key form's team select puts the key in the team.
    const edit = await client.get(`/admin/keys/${owner.keyId}/edit`)
    assert.include(edit.html, `<option value="${team.id}"`)
    const saved = await client.post(`/admin/keys/${owner.keyId}`, { name: 'owner key', teamId: String(team.id) })
    assert.equal(saved.status, 302, saved.html.slice(0, 500))
    assert.equal((await db.from('api_keys').where('id', owner.keyId).first()).team_id, team.id)
    const keyPage = await client.follow(saved)
    assert.include(keyPage.html, `href="/admin/teams/${team.id}">Research</a>`)

    const added = await client.follow(await client.post(`/admin/teams/${team.id}/members`, { user: 'keyowner@teams.local', role: 'admin' }))
    assert.include(textOf(added.html), 'keyowner@teams.local is in team Research (admin)')
    assert.include(added.html, `/admin/keys/${owner.keyId}`)
    const unknownMember = await client.follow(await client.post(`/admin/teams/${team.id}/members`, { user: 'nobody@teams.local' }))
    assert.include(textOf(unknownMember.html), 'No user')

    await client.follow(await client.post(`/admin/teams/${team.id}/block`))
    assert.isNotNull((await db.from('teams').where('id', team.id).first()).blocked_at)
    await client.follow(await client.post(`/admin/teams/${team.id}/unblock`))
    assert.isNull((await db.from('teams').where('id', team.id).first()).blocked_at)

    await client.get(`/admin/teams/${team.id}/edit`)
    await client.follow(await client.post(`/admin/teams/${team.id}`, { alias: 'Research', maxBudget: '', budgetPeriod: '', models: '', rpm: '', tpm: '' }))
    assert.deepInclude(await db.from('teams').where('id', team.id).first(), { max_budget: null, budget_period: null, allowed_models: null, rpm: null })

    await client.follow(await client.post(`/admin/teams/${team.id}/members/remove`, { user: String(owner.userId) }))
    assert.lengthOf(await db.from('team_members').where('team_id', team.id), 0)
    const gone = await client.post(`/admin/teams/${team.id}/delete`)
    assert.equal(gone.location, '/admin/teams')
    assert.isNull((await db.from('api_keys').where('id', owner.keyId).first()).team_id)
    assert.equal((await client.get('/admin/teams/999999')).status, 404)

    const audit = await db.from('audit_log').where('subject_type', 'team').orWhere('action', 'key.team').orderBy('id').select('action', 'source', 'actor')
    assert.deepEqual(
      audit.map((a) => a.action),
      ['team.create', 'key.team', 'team.member_add', 'team.update', 'team.update', 'team.update', 'team.member_delete', 'team.delete']
    )
    assert.isTrue(audit.every((a) => a.source === 'panel' && a.actor === 'panel@teams.local'))
  })
})
