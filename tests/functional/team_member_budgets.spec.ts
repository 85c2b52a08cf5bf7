import { test } from '@japa/runner'
import db from '@adonisjs/lucid/services/db'
import { createUser } from '#actions/create_user'
import { createApiKey } from '#actions/issue_api_key'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { toPico } from '#gateway/metering/money'
import { PanelClient, textOf } from '#tests/panel_client'
import { PageClient, htmlText } from '#tests/page_client'
import { toFile } from 'openai'
import { addTeamMembers, createTeam, setKeyTeam } from '#actions/teams'
import { baseUrl, gateway, openai, post, refreshCaches, resetDatabase, seedChannel, seedPrice, seedUser, startMock, type SeededUser } from '#tests/helpers'

/**
 * Member budgets inside a team (LiteLLM's max_budget_in_team): what one
 * member spends through the team's keys they own is capped, beside the
 * team's budget; the meter keeps it in team_members. Driven through
 * LiteLLM's paths as a script written against LiteLLM calls them.
 */
let adminKey = ''
/** 12 prompt and 5 completion tokens a call (the mock's usage) at 1000/2000 per million */
const CALL = '0.022'

async function call(method: string, path: string, body?: unknown) {
  const response = await fetch(`${baseUrl()}${path}`, {
    method,
    headers: { authorization: `Bearer ${adminKey}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  return { status: response.status, body: (await response.json()) as any }
}

async function chat(key: string) {
  const response = await post('/v1/chat/completions', { model: 'mb-model', messages: [{ role: 'user', content: 'hi' }] }, { authorization: `Bearer ${key}` })
  return { status: response.status, body: (await response.json()) as any }
}

async function eventually(check: () => Promise<boolean>) {
  for (let i = 0; i < 60; i++) {
    if (await check()) return true
    await new Promise((r) => setTimeout(r, 50))
  }
  return false
}

async function drained() {
  await (await gateway()).meter.drain()
}

/** A team (no team budget) with two members, each with their key in it. */
async function teamOfTwo(): Promise<{ teamId: string; a: SeededUser; b: SeededUser }> {
  const a = await seedUser({ balance: '10' })
  const b = await seedUser({ balance: '10' })
  const made = await call('POST', '/team/new', {
    team_alias: `mb-${Math.random().toString(36).slice(2, 8)}`,
    members_with_roles: [{ user_id: String(a.userId), role: 'user' }, { user_email: b.email, role: 'admin' }],
  })
  if (made.status !== 200) throw new Error(JSON.stringify(made.body))
  for (const user of [a, b]) {
    const updated = await call('POST', '/key/update', { key: String(user.keyId), team_id: made.body.team_id })
    if (updated.status !== 200) throw new Error(JSON.stringify(updated.body))
  }
  await refreshCaches()
  return { teamId: made.body.team_id, a, b }
}

function member(teamId: string, user: SeededUser) {
  return db.from('team_members').where('team_id', teamId).where('user_id', user.userId).firstOrFail()
}

test.group('Member budgets in a team', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'mock', baseUrl: mock.url, models: ['*'] })
    await seedPrice('mb-model', '1000', '2000')
    await createUser({ email: 'ops@mb.local', password: 'password123', role: 'admin' })
    adminKey = (await createApiKey({ userRef: 'ops@mb.local', name: 'litellm-master', manage: true })).key
    await refreshCaches()
    return () => mock.stop()
  })

  test('a member over their budget is refused (402 in OpenAI and Anthropic wire) while another member is served; the meter keeps their spend', async ({ assert }) => {
    const { teamId, a, b } = await teamOfTwo()
    const set = await call('POST', '/team/member_update', { team_id: teamId, user_id: String(a.userId), max_budget_in_team: 0.02 })
    assert.equal(set.status, 200, JSON.stringify(set.body))
    assert.deepInclude(set.body, { team_id: teamId, user_id: String(a.userId), max_budget_in_team: 0.02, budget_duration: null, tpm_limit: null, rpm_limit: null, spend: 0 })
    assert.isTrue(await eventually(async () => (await gateway()).catalog.teams.get(Number(teamId))?.members?.get(a.userId) !== undefined))

    assert.equal((await chat(a.key)).status, 200)
    const refused = await chat(a.key)
    assert.equal(refused.status, 402, JSON.stringify(refused.body))
    assert.equal(refused.body.error.code, 'spend_limit_exceeded')
    assert.match(refused.body.error.message, /owner reached their member budget in team 'mb-/)
    const anthropic = await post('/v1/messages', { model: 'mb-model', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] }, { 'x-api-key': a.key })
    assert.equal(anthropic.status, 402)
    const anthropicBody: any = await anthropic.json()
    assert.equal(anthropicBody.type, 'error')
    assert.match(anthropicBody.error.message, /member budget/)
    // The other member has no budget of their own: the team serves them.
    assert.equal((await chat(b.key)).status, 200)

    await drained()
    // Only a's row counts on a's budget (b has no limit: not kept, and the statement did not look).
    assert.equal(toPico(String((await member(teamId, a)).spent)), toPico(CALL))
    assert.equal(toPico(String((await member(teamId, b)).spent)), 0n)
    const info = await call('GET', `/team/info?team_id=${teamId}`)
    const ofA = info.body.team_memberships.find((m: any) => m.user_id === String(a.userId))
    const ofB = info.body.team_memberships.find((m: any) => m.user_id === String(b.userId))
    assert.deepInclude(ofA, { team_id: teamId, role: 'user', spend: 0.022 })
    assert.deepInclude(ofA.litellm_budget_table, { max_budget: 0.02, budget_duration: null, tpm_limit: null, rpm_limit: null })
    assert.isNull(ofB.litellm_budget_table)

    // A reload reads the committed spend back once; nothing is left held.
    const { catalog } = await gateway()
    await catalog.teams.reload()
    const policy = catalog.teams.get(Number(teamId))!.members!.get(a.userId)!
    assert.equal(policy.spentPico, toPico(CALL))
    assert.equal(policy.heldPico, 0n)

    // Raised over LiteLLM's endpoint: served again once the change is heard (NOTIFY).
    assert.equal((await call('POST', '/team/member_update', { team_id: teamId, user_email: a.email, max_budget_in_team: 1 })).status, 200)
    assert.isTrue(await eventually(async () => (await chat(a.key)).status === 200))
    const audit = await db.from('audit_log').where('action', 'team.member_update').orderBy('id')
    assert.lengthOf(audit, 2)
    assert.match(audit[1].summary, /max_budget: 0\.02\d* → 1/)
  })

  test('a budget set on a member who already spent in the team counts that spend (their usage rows); rows of other teams do not', async ({ assert }) => {
    const { teamId, a } = await teamOfTwo()
    assert.equal((await chat(a.key)).status, 200)
    await drained()
    assert.equal((await call('POST', '/team/member_update', { team_id: teamId, user_id: String(a.userId), max_budget_in_team: 0.03, budget_duration: '1mo' })).status, 200)
    const row = await member(teamId, a)
    assert.equal(toPico(String(row.spent)), toPico(CALL))
    assert.equal(toPico(String(row.period_spent)), toPico(CALL))
    assert.equal(row.budget_period, 'month')
    await refreshCaches()
    // $0.022 of $0.03: one more call is admitted, the one after is refused.
    assert.equal((await chat(a.key)).status, 200)
    const refused = await chat(a.key)
    assert.equal(refused.status, 402)
    assert.match(refused.body.error.message, /member budget in team .* for this month \(UTC\); it resets at/)
  })

  test('a new period: the budget counts nothing of the last one, and the meter starts the new one from its own rows', async ({ assert }) => {
    const { teamId, a } = await teamOfTwo()
    assert.equal((await call('POST', '/team/member_update', { team_id: teamId, user_id: String(a.userId), max_budget_in_team: 0.02, budget_duration: '1d' })).status, 200)
    await refreshCaches()
    assert.equal((await chat(a.key)).status, 200)
    assert.equal((await chat(a.key)).status, 402)
    await drained()
    // Yesterday's spend, as a member's row holds it the day after.
    await db.from('team_members').where('team_id', teamId).where('user_id', a.userId).update({ period_start: db.raw(`period_start - 1`) })
    await (await gateway()).catalog.teams.reload()
    assert.equal((await gateway()).catalog.teams.get(Number(teamId))!.members!.get(a.userId)!.spentPico, 0n)
    assert.equal((await chat(a.key)).status, 200)
    await drained()
    const row = await member(teamId, a)
    assert.equal(toPico(String(row.spent)), 2n * toPico(CALL))
    assert.equal(toPico(String(row.period_spent)), toPico(CALL))
    assert.equal(new Date(row.period_start).getDate(), new Date().getDate())
  })

  test("a member's rpm is one window of their own across their keys in the team; other members are not counted in it", async ({ assert }) => {
    const { teamId, a, b } = await teamOfTwo()
    const second = await createApiKey({ userRef: a.email, name: 'second' })
    assert.equal((await call('POST', '/key/update', { key: String(second.apiKey.id), team_id: teamId })).status, 200)
    const set = await call('POST', '/team/member_update', { team_id: teamId, user_id: String(a.userId), rpm_limit: 1, tpm_limit: 100000 })
    assert.deepInclude(set.body, { rpm_limit: 1, tpm_limit: 100000, max_budget_in_team: null })
    await refreshCaches()
    assert.equal((await chat(a.key)).status, 200)
    const limited = await chat(second.key)
    assert.equal(limited.status, 429, JSON.stringify(limited.body))
    assert.equal(limited.body.error.code, 'rate_limit_exceeded')
    assert.equal((await chat(b.key)).status, 200)
  })

  test("LiteLLM's /team/member_add takes max_budget_in_team; /team/member_update refuses a non-member (404) and bad values (400), audited", async ({ assert }) => {
    const { teamId } = await teamOfTwo()
    const c = await seedUser({ balance: '10' })
    const added = await call('POST', '/team/member_add', { team_id: teamId, member: { user_email: c.email, role: 'user' }, max_budget_in_team: 100, budget_duration: '30d' })
    assert.equal(added.status, 200, JSON.stringify(added.body))
    assert.deepInclude(added.body.updated_team_memberships[0], { team_id: teamId, user_id: String(c.userId), spend: 0 })
    assert.deepInclude(added.body.updated_team_memberships[0].litellm_budget_table, { max_budget: 100, budget_duration: '1mo' })
    assert.deepInclude(await member(teamId, c), { max_budget: '100.000000000000', budget_period: 'month' })

    const outsider = await seedUser({ balance: '1' })
    const notMember = await call('POST', '/team/member_update', { team_id: teamId, user_id: String(outsider.userId), max_budget_in_team: 5 })
    assert.equal(notMember.status, 404)
    assert.match(notMember.body.error.message, /is not a member/)
    const negative = await call('POST', '/team/member_update', { team_id: teamId, user_id: String(c.userId), max_budget_in_team: -1 })
    assert.equal(negative.status, 400)
    assert.equal(negative.body.error.param, 'max_budget_in_team')
    const badLimit = await call('POST', '/team/member_update', { team_id: teamId, user_id: String(c.userId), rpm_limit: 'lots' })
    assert.equal(badLimit.status, 400)
    assert.equal(badLimit.body.error.param, 'rpm_limit')
    // Cleared: null takes the budget and its period away.
    const cleared = await call('POST', '/team/member_update', { team_id: teamId, user_id: String(c.userId), max_budget_in_team: null })
    assert.deepInclude(cleared.body, { max_budget_in_team: null, budget_duration: null })
    const audit = await db.from('audit_log').where('subject_type', 'team').where('subject_id', teamId).orderBy('id').select('action', 'source')
    assert.includeMembers(audit.map((a) => a.action), ['team.member_add', 'team.member_update'])
  })

  test('management API: PATCH a member\'s limits; members answered with their budget and spend', async ({ assert }) => {
    const { teamId, a } = await teamOfTwo()
    const patched = await call('PATCH', `/api/admin/teams/${teamId}/members/${a.email}`, { max_budget: '7.5', budget_period: 'week', tpm: 5000 })
    assert.equal(patched.status, 200, JSON.stringify(patched.body))
    const row = patched.body.members.find((m: any) => m.user_id === a.userId)
    assert.deepInclude(row, { max_budget: '7.5', budget_period: 'week', budget_spent: '0', rpm: null, tpm: 5000 })
    assert.isString(row.budget_resets_at)
    const invalid = await call('PATCH', `/api/admin/teams/${teamId}/members/${a.userId}`, { budget_period: 'year' })
    assert.equal(invalid.status, 400)
  })
})

test.group('Member budgets: panel and portal', (group) => {
  group.setup(async () => {
    await resetDatabase()
    await createUser({ email: 'ops@mb.local', password: 'password123', role: 'admin' })
    adminKey = (await createApiKey({ userRef: 'ops@mb.local', name: 'litellm-master', manage: true })).key
    await refreshCaches()
  })

  test("the panel's team page lists each member's budget and spend; its edit form sets them (a bad amount said beside the field)", async ({ assert }) => {
    await createUser({ email: 'panel@mb.local', password: 'admin-password', role: 'admin' })
    const owner = await seedUser({ email: 'dev@mb.local' })
    const client = new PanelClient()
    await client.login('panel@mb.local', 'admin-password')
    await client.follow(await client.post('/admin/teams', { alias: 'Eng', maxBudget: '', budgetPeriod: '', models: '', rpm: '', tpm: '' }))
    const team = await db.from('teams').where('alias', 'Eng').firstOrFail()
    await client.follow(await client.post(`/admin/teams/${team.id}/members`, { user: 'dev@mb.local', role: 'user' }))

    const form = await client.get(`/admin/teams/${team.id}/members/${owner.userId}/edit`)
    assert.equal(form.status, 200)
    const refused = await client.follow(await client.post(`/admin/teams/${team.id}/members/${owner.userId}`, { role: 'user', maxBudget: '1,5', budgetPeriod: 'month', rpm: '', tpm: '' }))
    assert.match(refused.html, /id="f-maxBudget-error">[^<]*amount in USD/)
    assert.isNull((await db.from('team_members').where('user_id', owner.userId).first()).max_budget)

    const saved = await client.post(`/admin/teams/${team.id}/members/${owner.userId}`, { role: 'admin', maxBudget: '100', budgetPeriod: 'month', rpm: '60', tpm: '' })
    assert.equal(saved.status, 302)
    assert.deepInclude(await db.from('team_members').where('user_id', owner.userId).first(), { role: 'admin', max_budget: '100.000000000000', budget_period: 'month', rpm: 60, tpm: null })
    const page = await client.follow(saved)
    const members = textOf(page.html.slice(page.html.indexOf('data-testid="team-members"')))
    assert.match(members, /dev@mb\.local\s+admin\s+\$100(\.00)? a month\s+\$0(\.00)?\s+60 RPM/)
    assert.include(textOf(page.html), "dev@mb.local's limits in team Eng saved.")
    const audit = await db.from('audit_log').where('action', 'team.member_update').firstOrFail()
    assert.equal(audit.source, 'panel')
    assert.equal((await client.get(`/admin/teams/${team.id}/members/999999/edit`)).status, 404)
  })

  test("the portal's team page shows a member their own budget and spend; the team's admins see everyone's", async ({ assert }) => {
    const admin = await seedUser({ balance: '10' })
    const dev = await seedUser({ balance: '10' })
    const other = await seedUser({ balance: '10' })
    const made = await call('POST', '/team/new', { team_alias: 'Portal team' })
    const teamId = made.body.team_id
    await call('POST', '/team/member_add', { team_id: teamId, member: [{ user_id: String(admin.userId), role: 'admin' }, { user_id: String(other.userId), role: 'user' }] })
    await call('POST', '/team/member_add', { team_id: teamId, member: { user_id: String(dev.userId), role: 'user' }, max_budget_in_team: 25 })
    await db.from('team_members').where('user_id', dev.userId).update({ spent: '3.5' })

    const devClient = new PageClient()
    await devClient.login(dev.email)
    const devPage = await devClient.get(`/dashboard/teams/${teamId}`)
    assert.equal(devPage.status, 200)
    assert.match(htmlText(devPage.body), /Your member budget\s+\$3\.50 of \$25(\.00)?/)
    assert.notInclude(devPage.body, 'data-table="team-members"')
    assert.notInclude(devPage.body, other.email)

    const otherClient = new PageClient()
    await otherClient.login(other.email)
    assert.match(htmlText((await otherClient.get(`/dashboard/teams/${teamId}`)).body), /Your member budget\s+None/)

    const adminClient = new PageClient()
    await adminClient.login(admin.email)
    const adminPage = await adminClient.get(`/dashboard/teams/${teamId}`)
    assert.include(adminPage.body, 'data-table="team-members"')
    const table = htmlText(adminPage.body.slice(adminPage.body.indexOf('data-table="team-members"')))
    assert.match(table, new RegExp(`${dev.email.replace(/[.]/g, '\\.')}\\s*Member\\s+\\$3\\.50 of \\$25(\\.00)?\\s+\\$25(\\.00)?\\s+\\$3\\.50`), table.slice(0, 600))
  })
})

test.group('Member budgets: batches', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'openai', provider: 'openai', baseUrl: mock.url, models: ['gpt-4o-mini'] })
    await seedPrice('gpt-4o-mini', '2', '8')
    await refreshCaches()
    // The boot's sync may hold a batch of an earlier run's rows the reset deleted: two syncs forget it (hostile_s30.spec.ts).
    const gw = await gateway()
    await gw.batches.holds.sync()
    await new Promise((r) => setTimeout(r, 2))
    await gw.batches.holds.sync()
    return () => mock.stop()
  })

  test("a member's batches hold on their budget in the team while they run (402 naming it past what is left) and their bills count in its spend", async ({ assert }) => {
    const gw = await gateway()
    const dev = await seedUser({ balance: '10' })
    const team = await createTeam({ alias: 'mb-batch-team' })
    await addTeamMembers(team.id, [{ user: dev.email }], undefined, { maxBudget: '0.0015' })
    await setKeyTeam(String(dev.keyId), team.id)
    await refreshCaches()
    const create = async (ids: string[]) => {
      const client = openai(dev.key)
      const lines = ids.map((id) => JSON.stringify({ custom_id: id, method: 'POST', url: '/v1/chat/completions', body: { model: 'gpt-4o-mini', messages: [{ role: 'user', content: id }], max_tokens: 50 } }))
      const file = await client.files.create({ file: await toFile(Buffer.from(`${lines.join('\n')}\n`), 'requests.jsonl'), purpose: 'batch' })
      return client.batches
        .create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h', metadata: { mock_polls: '1' } })
        .then((batch) => ({ batch, error: null as any }), (error) => ({ batch: null, error }))
    }
    const first = await create(['a-0', 'a-1'])
    assert.isNull(first.error, String(first.error))
    const policy = gw.catalog.teams.get(team.id)!.members!.get(dev.userId)!
    const hold = policy.heldPico
    assert.isAbove(Number(hold), 0, "the batch holds on the member's budget")
    assert.isBelow(Number(2n * hold), Number(toPico('0.0015')) + 1, 'the test needs two holds within the budget')
    const second = await create(['b-0', 'b-1'])
    assert.isNull(second.error, String(second.error))
    const third = await create(['c-0', 'c-1'])
    assert.equal(third.error?.status, 402, 'refused: the other batches hold what the member budget has left')
    assert.include(third.error?.error?.message, "member budget of this API key's owner in team 'mb-batch-team'")

    for (let i = 0; i < 3; i++) {
      await openai(dev.key).batches.retrieve(first.batch!.id)
      await openai(dev.key).batches.retrieve(second.batch!.id)
    }
    await gw.batches.sweep()
    await gw.meter.drain()
    const rows = await db.from('usage_records').where('user_id', dev.userId).where('endpoint', 'batch')
    assert.lengthOf(rows, 2)
    const billed = rows.reduce((sum, row) => sum + toPico(String(row.cost)), 0n)
    assert.isAbove(Number(billed), 0)
    const stored = await db.from('team_members').where('team_id', team.id).where('user_id', dev.userId).first()
    assert.equal(toPico(String(stored.spent)), billed, "the bills are in the member's spend")
    assert.equal(policy.heldPico, 0n, 'released once')
    assert.equal(policy.spentPico, billed)
  }).timeout(60_000)
})
