import { test } from '@japa/runner'
import db from '@adonisjs/lucid/services/db'
import { createUser } from '#actions/create_user'
import { createApiKey } from '#actions/issue_api_key'
import { PanelClient, textOf } from '#tests/panel_client'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { baseUrl, gateway, post, refreshCaches, resetDatabase, seedChannel, seedPrice, seedUser, startMock, type SeededUser } from '#tests/helpers'

/**
 * LiteLLM's budgets (/budget/*) and customers linked to them, customers'
 * budget periods and rpm/tpm, as a LiteLLM script calls them (plain fetch,
 * the management key). Changes reach the gateway by NOTIFY only.
 */
let adminKey = ''

async function litellm(method: string, path: string, body?: unknown) {
  const response = await fetch(`${baseUrl()}${path}`, {
    method,
    headers: { authorization: `Bearer ${adminKey}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  const text = await response.text()
  try {
    return { status: response.status, body: JSON.parse(text) as any }
  } catch {
    throw new Error(`${method} ${path}: ${response.status} ${text.slice(0, 2000)}`)
  }
}

async function chat(key: string, user: string) {
  const response = await post('/v1/chat/completions', { model: 'bud-model', user, messages: [{ role: 'user', content: 'hi' }] }, { authorization: `Bearer ${key}` })
  return { status: response.status, body: (await response.json()) as any, headers: response.headers }
}

async function anthropic(key: string, user: string) {
  const response = await post(
    '/v1/messages',
    { model: 'bud-model', max_tokens: 5, metadata: { user_id: user }, messages: [{ role: 'user', content: 'hi' }] },
    { 'x-api-key': key, 'anthropic-version': '2023-06-01' }
  )
  return { status: response.status, body: (await response.json()) as any }
}

/** The gateway's cache holds this end user's policy as `ready` says (NOTIFY reached it). */
async function loaded(ownerId: number, endUser: string, ready: (policy: any) => boolean) {
  const gw = await gateway()
  return eventually(async () => {
    const policy = gw.catalog.endUsers.policyOf(ownerId, endUser)
    return policy !== undefined && ready(policy)
  })
}

async function eventually(check: () => Promise<boolean>) {
  for (let i = 0; i < 80; i++) {
    if (await check()) return true
    await new Promise((r) => setTimeout(r, 50))
  }
  return false
}

test.group('LiteLLM budgets (/budget/*) and customer limits', (group) => {
  let mock: MockUpstream
  let owner: SeededUser

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'mock', baseUrl: mock.url, models: ['bud-*'] })
    // 12 prompt and 5 completion tokens a call (the mock's usage): $0.012 + $0.010 = $0.022.
    await seedPrice('bud-model', '1000', '2000')
    await createUser({ email: 'ops@bud.local', password: 'password123', role: 'admin' })
    adminKey = (await createApiKey({ userRef: 'ops@bud.local', name: 'litellm-master', manage: true })).key
    owner = await seedUser({ balance: '10' })
    await refreshCaches()
    return () => mock.stop()
  })

  test('budget CRUD in LiteLLM shapes; a linked budget is not deleted', async ({ assert }) => {
    const made = await litellm('POST', '/budget/new', { budget_id: 'free-tier', max_budget: 4, budget_duration: '1d', rpm_limit: 10, tpm_limit: 1000 })
    assert.equal(made.status, 200, JSON.stringify(made.body))
    assert.deepInclude(made.body, { budget_id: 'free-tier', max_budget: 4, budget_duration: '1d', rpm_limit: 10, tpm_limit: 1000 })
    const dup = await litellm('POST', '/budget/new', { budget_id: 'free-tier' })
    assert.equal(dup.status, 400)
    const updated = await litellm('POST', '/budget/update', { budget_id: 'free-tier', max_budget: 5, budget_duration: '7d' })
    assert.deepInclude(updated.body, { max_budget: 5, budget_duration: '7d', rpm_limit: 10 })
    const info = await litellm('POST', '/budget/info', { budgets: ['free-tier'] })
    assert.equal(info.body[0].budget_id, 'free-tier')
    const list = await litellm('GET', '/budget/list')
    assert.deepEqual(list.body.map((b: any) => b.budget_id), ['free-tier'])
    const settings = await litellm('GET', '/budget/settings?budget_id=free-tier')
    assert.equal(settings.body.find((f: any) => f.field_name === 'max_budget').field_value, 5)

    const linked = await litellm('POST', '/customer/new', { user_id: 'linked-1', owner: owner.userId, budget_id: 'free-tier' })
    assert.equal(linked.status, 200, JSON.stringify(linked.body))
    assert.deepInclude(linked.body.litellm_budget_table, { budget_id: 'free-tier', max_budget: 5, budget_duration: '7d', rpm_limit: 10, tpm_limit: 1000 })
    assert.isString(linked.body.litellm_budget_table.budget_reset_at)

    const refused = await litellm('POST', '/budget/delete', { id: 'free-tier' })
    assert.equal(refused.status, 400)
    assert.include(refused.body.error.message, 'linked to 1 customer')
    await litellm('POST', '/customer/update', { user_id: 'linked-1', owner: owner.userId, budget_id: null })
    const deleted = await litellm('POST', '/budget/delete', { id: 'free-tier' })
    assert.equal(deleted.status, 200, JSON.stringify(deleted.body))
    assert.equal((await litellm('POST', '/budget/info', { budgets: ['free-tier'] })).status, 404)
  })

  test('hostile input: unknown budget, NUL, negative, odd whole numbers', async ({ assert }) => {
    const unknown = await litellm('POST', '/customer/new', { user_id: 'h-1', owner: owner.userId, budget_id: 'nope' })
    assert.equal(unknown.status, 404)
    assert.include(unknown.body.error.message, 'nope')
    assert.equal((await litellm('POST', '/budget/update', { budget_id: 'nope', max_budget: 1 })).status, 404)
    assert.equal((await litellm('POST', '/budget/new', { budget_id: 'a\u0000b' })).status, 400)
    // Looked up with a NUL (a Postgres error if it reached the query): 400 on every path that names a budget.
    assert.equal((await litellm('POST', '/budget/info', { budgets: ['a\u0000b'] })).status, 400)
    assert.equal((await litellm('POST', '/budget/delete', { id: 'a\u0000b' })).status, 400)
    assert.equal((await litellm('POST', '/budget/update', { budget_id: 'a\u0000b', max_budget: 1 })).status, 400)
    assert.equal((await litellm('GET', '/budget/settings?budget_id=a%00b')).status, 400)
    assert.equal((await litellm('GET', '/api/admin/budgets/a%00b')).status, 400)
    assert.equal((await litellm('POST', '/customer/new', { user_id: 'h-4', owner: owner.userId, budget_id: 'a\u0000b' })).status, 400)
    assert.equal((await litellm('POST', '/budget/new', { budget_id: 'neg', max_budget: -1 })).status, 400)
    for (const bad of ['0x10', '1e3', true, [5], 1.5, -3, 0]) {
      const answer = await litellm('POST', '/budget/new', { budget_id: 'odd', rpm_limit: bad })
      assert.equal(answer.status, 400, `rpm_limit ${JSON.stringify(bad)}: ${JSON.stringify(answer.body)}`)
      const customer = await litellm('POST', '/customer/new', { user_id: 'h-2', owner: owner.userId, tpm_limit: bad })
      assert.equal(customer.status, 400, `tpm_limit ${JSON.stringify(bad)}`)
    }
    assert.equal((await litellm('POST', '/customer/new', { user_id: 'h-3', owner: owner.userId, max_budget: 1, budget_duration: '2d' })).status, 400)
    assert.equal((await db.from('budgets').count('* as n').first())?.n, '0')
  })

  test('a budget change reaches every linked customer at once (NOTIFY), in each wire format', async ({ assert }) => {
    await litellm('POST', '/budget/new', { budget_id: 'shared', max_budget: 100, budget_duration: '1mo' })
    for (const id of ['s-1', 's-2']) await litellm('POST', '/customer/new', { user_id: id, owner: owner.userId, budget_id: 'shared' })
    assert.equal((await chat(owner.key, 's-1')).status, 200)
    assert.equal((await chat(owner.key, 's-2')).status, 200)
    // $0.022 each spent: a budget of $0.02 refuses both, with no request to either customer's settings.
    await litellm('POST', '/budget/update', { budget_id: 'shared', max_budget: 0.02 })
    // Neither customer's row changed: the budget's notice alone reloads them (no chat meanwhile: each would spend).
    for (const id of ['s-1', 's-2']) assert.isTrue(await loaded(owner.userId, id, (p) => p.maxBudgetPico === 20_000_000_000n))
    assert.equal((await chat(owner.key, 's-1')).status, 402)
    const openai = await chat(owner.key, 's-2')
    assert.equal(openai.status, 402)
    assert.equal(openai.body.error.code, 'end_user_budget_exceeded')
    assert.include(openai.body.error.message, "budget 'shared'")
    const claude = await anthropic(owner.key, 's-2')
    assert.equal(claude.status, 402)
    assert.equal(claude.body.type, 'error')
    // A daily budget: this month's spend was today's, still over.
    const daily = await litellm('POST', '/budget/update', { budget_id: 'shared', max_budget: 0.03, budget_duration: '1d' })
    assert.equal(daily.status, 200, JSON.stringify(daily.body))
    assert.isTrue(await loaded(owner.userId, 's-1', (p) => p.spendPeriod === 'day' && p.maxBudgetPico === 30_000_000_000n))
    assert.equal((await chat(owner.key, 's-1')).status, 200)
    const info = await litellm('GET', `/customer/info?end_user_id=s-1&owner=${owner.userId}`)
    assert.deepInclude(info.body.litellm_budget_table, { budget_id: 'shared', budget_duration: '1d', max_budget: 0.03 })
  })

  test('inline customer budget per day and lifetime; holds exact under concurrency', async ({ assert }) => {
    // $0.05 a day: two calls of $0.022 fit, a third does not, however many are sent at once.
    await litellm('POST', '/customer/new', { user_id: 'daily', owner: owner.userId, max_budget: 0.05, budget_duration: '24h' })
    assert.isTrue(await loaded(owner.userId, 'daily', (p) => p.spendPeriod === 'day' && p.maxBudgetPico !== null))
    assert.equal((await chat(owner.key, 'daily')).status, 200)
    // Each admitted call holds its estimate until metered, as a key's cap: the burst cannot all pass.
    const burst = await Promise.all(Array.from({ length: 8 }, () => chat(owner.key, 'daily')))
    assert.isAtMost(burst.filter((r) => r.status === 200).length, 2, JSON.stringify(burst.map((r) => r.status)))
    assert.isTrue(burst.filter((r) => r.status !== 200).every((r) => r.status === 402))
    assert.isTrue(await eventually(async () => (await chat(owner.key, 'daily')).status === 402))
    // The meter's statement keeps the day's spend (not the month's) and the lifetime spend on the row.
    await (await gateway()).meter.drain()
    const row = await db.from('end_users').where('end_user', 'daily').first()
    const today = new Date().toISOString().slice(0, 10)
    assert.equal(new Date(Date.UTC(row.period_start.getFullYear(), row.period_start.getMonth(), row.period_start.getDate())).toISOString().slice(0, 10), today)
    assert.equal(Number(row.period_spent), Number(row.spent))
    assert.isAbove(Number(row.spent), 0.04)
    // Lifetime (no budget_duration): counts the spend before it was listed.
    await chat(owner.key, 'lifer')
    const lifer = await litellm('POST', '/customer/new', { user_id: 'lifer', owner: owner.userId, max_budget: 0.03 })
    assert.equal(lifer.body.litellm_budget_table.budget_duration, null)
    assert.isNull(lifer.body.litellm_budget_table.budget_reset_at)
    assert.isTrue(await loaded(owner.userId, 'lifer', (p) => p.spendPeriod === null && p.maxBudgetPico !== null))
    assert.equal((await chat(owner.key, 'lifer')).status, 200)
    assert.isTrue(await eventually(async () => (await chat(owner.key, 'lifer')).status === 402))
  })

  test('customer rpm: 429 with retry-after; other customers and no customer unaffected', async ({ assert }) => {
    await litellm('POST', '/customer/new', { user_id: 'slow', owner: owner.userId, rpm_limit: 2 })
    assert.isTrue(await eventually(async () => (await chat(owner.key, 'slow')).headers.get('x-ratelimit-limit-requests') === '2'))
    let refused = await chat(owner.key, 'slow')
    if (refused.status === 200) refused = await chat(owner.key, 'slow')
    assert.equal(refused.status, 429)
    assert.equal(refused.body.error.code, 'rate_limit_exceeded')
    assert.isNotNull(refused.headers.get('retry-after'))
    assert.equal((await chat(owner.key, 'other')).status, 200)
    const none = await post('/v1/chat/completions', { model: 'bud-model', messages: [{ role: 'user', content: 'hi' }] }, { authorization: `Bearer ${owner.key}` })
    assert.equal(none.status, 200)
  })

  test('management API: /api/admin/budgets CRUD, end users link and show period, rpm, tpm; hostile input refused', async ({ assert }) => {
    const made = await litellm('POST', '/api/admin/budgets', { budget_id: 'team/pro tier', max_budget: '12.5', budget_period: 'week', rpm: 30, tpm: '5000' })
    assert.equal(made.status, 201, JSON.stringify(made.body))
    assert.deepInclude(made.body, { budget_id: 'team/pro tier', max_budget: '12.5', budget_period: 'week', rpm: 30, tpm: 5000, end_users: 0 })
    const path = `/api/admin/budgets/${encodeURIComponent('team/pro tier')}`
    for (const [field, bad] of [['rpm', '0x10'], ['rpm', '1e3'], ['tpm', true], ['tpm', [5]], ['max_budget', -2], ['budget_period', 'year'], ['rpm', -1]] as const) {
      const answer = await litellm('PATCH', path, { [field]: bad })
      assert.equal(answer.status, 400, `${field} ${JSON.stringify(bad)}: ${JSON.stringify(answer.body)}`)
      assert.isObject(answer.body.error)
    }
    assert.equal((await litellm('POST', '/api/admin/budgets', { budget_id: 'x\u0000' })).status, 400)
    const patched = await litellm('PATCH', path, { rpm: null, max_budget: 20 })
    assert.deepInclude(patched.body, { rpm: null, max_budget: '20', budget_period: 'week' })

    const linked = await litellm('POST', '/api/admin/end-users', { user: owner.userId, end_user: 'mgmt-1', budget_id: 'team/pro tier' })
    assert.equal(linked.status, 201, JSON.stringify(linked.body))
    assert.deepInclude(linked.body, { budget_id: 'team/pro tier', budget_period: 'week', tpm: 5000, monthly_limit: '20' })
    const own = await litellm('POST', '/api/admin/end-users', { user: owner.userId, end_user: 'mgmt-2', monthly_limit: '3', budget_period: 'day', rpm: '7' })
    assert.deepInclude(own.body, { budget_id: null, budget_period: 'day', rpm: 7, monthly_limit: '3' })
    for (const bad of [{ rpm: '0x10' }, { tpm: true }, { budget_period: 'hour' }, { budget_id: 'missing' }, { monthly_limit: '-1' }]) {
      const answer = await litellm('POST', '/api/admin/end-users', { user: owner.userId, end_user: 'mgmt-2', ...bad })
      assert.oneOf(answer.status, [400, 404], JSON.stringify(bad))
    }
    assert.equal((await litellm('POST', '/api/admin/end-users', { user: owner.userId, end_user: 'mgmt-2', budget_id: 'missing' })).status, 404)
    const listed = await litellm('GET', `/api/admin/end-users?user=${owner.userId}`)
    assert.deepInclude(listed.body.data.find((e: any) => e.end_user === 'mgmt-2'), { rpm: 7, budget_period: 'day' })

    assert.equal((await litellm('DELETE', path)).status, 400)
    await litellm('POST', '/api/admin/end-users', { user: owner.userId, end_user: 'mgmt-1', budget_id: null })
    assert.equal((await litellm('DELETE', path)).status, 200)
    assert.equal((await litellm('GET', path)).status, 404)
  })

  test('the panel: Budgets page creates, edits, deletes; End users form sets period, rpm, tpm and links a budget', async ({ assert }) => {
    await createUser({ email: 'panel@bud.local', password: 'password123', role: 'admin' })
    const admin = new PanelClient()
    await admin.login('panel@bud.local', 'password123')
    const made = await admin.post('/admin/budgets', { budget_id: 'panel-tier', max_budget: '7.5', budget_period: 'week', rpm: '20', tpm: '' })
    assert.include(textOf((await admin.follow(made)).html), 'Created budget panel-tier.')
    const bad = await admin.post('/admin/budgets/update', { budget_id: 'panel-tier', max_budget: '-1', budget_period: 'week', rpm: '0x10', tpm: '' })
    assert.equal(bad.status, 302)
    assert.deepInclude(await db.from('budgets').where('budget_id', 'panel-tier').first(), { max_budget: '7.500000000000', rpm: 20 })
    const edited = await admin.post('/admin/budgets/update', { budget_id: 'panel-tier', max_budget: '9', budget_period: 'day', rpm: '', tpm: '900' })
    assert.include(textOf((await admin.follow(edited)).html), 'Saved budget panel-tier')

    const linked = await admin.post(`/admin/users/${owner.userId}/end-users`, { end_user: 'panel-1', monthly_limit: '', budget_period: 'week', rpm: '', tpm: '', budget_id: 'panel-tier' })
    assert.include(textOf((await admin.follow(linked)).html), 'Added end user panel-1: allowed, the limits of its budget.')
    const own = await admin.post(`/admin/users/${owner.userId}/end-users`, { end_user: 'panel-2', monthly_limit: '4', budget_period: 'day', rpm: '12', tpm: '', budget_id: '' })
    assert.include(textOf((await admin.follow(own)).html), 'a limit of $4 a day')
    // The table's Set with the field emptied removes the limit (the form's empty text arrives as null).
    await admin.post(`/admin/users/${owner.userId}/end-users`, { end_user: 'panel-2', monthly_limit: '' })
    assert.deepInclude(await db.from('end_users').where('end_user', 'panel-2').first(), { monthly_limit: null, rpm: 12, budget_period: 'day' })
    const page = await admin.get(`/admin/users/${owner.userId}/end-users`)
    assert.include(textOf(page.html), 'budget panel-tier')
    assert.include(textOf(page.html), '12 rpm')
    assert.notInclude(textOf(page.html), '@end')

    const budgets = await admin.get('/admin/budgets')
    assert.include(budgets.html, 'data-budget="panel-tier"')
    const refused = await admin.post('/admin/budgets/remove', { budget_id: 'panel-tier' })
    assert.include(textOf((await admin.follow(refused)).html), 'linked to 1 customer')
    const unlinked = await admin.post(`/admin/users/${owner.userId}/end-users`, { end_user: 'panel-1', budget_id: '' })
    assert.include(textOf((await admin.follow(unlinked)).html), 'Saved end user panel-1: allowed, no limit.')
    const removed = await admin.post('/admin/budgets/remove', { budget_id: 'panel-tier' })
    assert.include(textOf((await admin.follow(removed)).html), 'Deleted budget panel-tier.')
  })
})
