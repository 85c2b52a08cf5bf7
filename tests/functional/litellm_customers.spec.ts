import { test } from '@japa/runner'
import { DateTime } from 'luxon'
import db from '@adonisjs/lucid/services/db'
import { createUser } from '#actions/create_user'
import { createApiKey } from '#actions/issue_api_key'
import { setEndUser } from '#actions/end_users'
import { pruneUsage } from '#actions/prune_usage'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { baseUrl, gateway, meterEvent, post, refreshCaches, resetDatabase, seedChannel, seedPrice, seedUser, startMock, type SeededUser } from '#tests/helpers'

/**
 * LiteLLM's customer, tag-spend, global-spend, /user/delete and /key/health
 * paths with the management key, as scripts written against a LiteLLM proxy
 * call them (plain fetch).
 */
let adminKey = ''
let adminId = 0

async function litellm(method: string, path: string, body?: unknown, headers: Record<string, string> = { authorization: `Bearer ${adminKey}` }) {
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

async function chat(key: string, headers: Record<string, string> = {}) {
  const response = await post('/v1/chat/completions', { model: 'cust-model', messages: [{ role: 'user', content: 'hi' }] }, { authorization: `Bearer ${key}`, ...headers })
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

test.group('LiteLLM customers (/customer/*) over end users', (group) => {
  let mock: MockUpstream
  let owner: SeededUser

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'mock', baseUrl: mock.url, models: ['cust-*'] })
    // 12 prompt and 5 completion tokens a call (the mock's usage): $0.012 + $0.010 = $0.022.
    await seedPrice('cust-model', '1000', '2000')
    const { user } = await createUser({ email: 'ops@cust.local', password: 'password123', role: 'admin' })
    adminId = user.id
    adminKey = (await createApiKey({ userRef: 'ops@cust.local', name: 'litellm-master', manage: true })).key
    owner = await seedUser({ balance: '10' })
    await refreshCaches()
    return () => mock.stop()
  })

  test('/customer/new, /info, /update, /list: the monthly budget maps to the end user\'s limit; spend is this month\'s', async ({ assert }) => {
    const made = await litellm('POST', '/customer/new', { user_id: 'cust-a', owner: owner.email, max_budget: 5, budget_duration: '30d', alias: 'Alice', default_model: 'x' })
    assert.equal(made.status, 200, JSON.stringify(made.body))
    assert.deepInclude(made.body, { user_id: 'cust-a', blocked: false, spend: 0, alias: null, default_model: null, owner: String(owner.userId) })
    assert.deepInclude(made.body.litellm_budget_table, { max_budget: 5, budget_duration: '1mo' })
    const row = await db.from('end_users').where('user_id', owner.userId).where('end_user', 'cust-a').first()
    assert.equal(row.monthly_limit, '5.000000000000')
    assert.equal((await db.from('audit_log').where('action', 'end_user.create').orderBy('id', 'desc').first()).source, 'api')

    assert.equal((await chat(owner.key, { 'x-litellm-end-user-id': 'cust-a' })).status, 200)
    const info = await litellm('GET', `/customer/info?end_user_id=cust-a&owner=${owner.userId}`)
    assert.equal(info.status, 200)
    assert.deepInclude(info.body, { user_id: 'cust-a', spend: 0.022, requests_this_month: 1 })

    const updated = await litellm('POST', '/customer/update', { user_id: 'cust-a', owner: owner.userId, max_budget: null, blocked: false })
    assert.equal(updated.status, 200)
    assert.isNull(updated.body.litellm_budget_table)
    assert.isNull((await db.from('end_users').where('end_user', 'cust-a').first()).monthly_limit)
    const again = await litellm('POST', '/customer/update', { user_id: 'cust-a', owner: owner.userId, max_budget: 2.5, budget_duration: '1mo' })
    assert.deepInclude(again.body.litellm_budget_table, { max_budget: 2.5, budget_duration: '1mo' })

    // An end user that only sent requests is a customer too (LiteLLM lists those it saw).
    assert.equal((await chat(owner.key, { 'x-litellm-end-user-id': 'cust-seen' })).status, 200)
    const list = await litellm('GET', `/customer/list?owner=${encodeURIComponent(owner.email)}`)
    assert.equal(list.status, 200)
    assert.deepEqual(list.body.map((c: any) => [c.user_id, c.spend]), [['cust-a', 0.022], ['cust-seen', 0.022]])

    // Without `owner`: the management key's own account, where these customers are not.
    assert.deepEqual((await litellm('GET', '/customer/list')).body, [])
    await litellm('POST', '/customer/new', { user_id: 'admin-own' })
    assert.equal((await db.from('end_users').where('end_user', 'admin-own').first()).user_id, adminId)
  })

  test('/customer/block refuses the customer on /v1/chat/completions (x-litellm-end-user-id) as the end-user feature does; /unblock serves it again', async ({ assert }) => {
    const before = await chat(owner.key, { 'x-litellm-end-user-id': 'cust-b' })
    assert.equal(before.status, 200)
    const blocked = await litellm('POST', '/customer/block', { user_ids: ['cust-b', 'cust-c'], owner: owner.userId })
    assert.equal(blocked.status, 200)
    assert.deepEqual(blocked.body, { blocked_users: ['cust-b', 'cust-c'] })
    assert.isTrue(await eventually(async () => (await chat(owner.key, { 'x-litellm-end-user-id': 'cust-b' })).status === 403))
    // Each block is its own change notice: the cache may hear of cust-b's before cust-c's.
    assert.isTrue(await eventually(async () => (await chat(owner.key, { 'x-litellm-end-user-id': 'cust-c' })).status === 403))
    const refused = await chat(owner.key, { 'x-litellm-end-user-id': 'cust-c' })
    assert.equal(refused.status, 403)
    assert.equal(refused.body.error.code, 'end_user_blocked')
    assert.equal((await chat(owner.key, { 'x-litellm-end-user-id': 'cust-other' })).status, 200, 'others are served')
    const info = await litellm('GET', `/customer/info?end_user_id=cust-b&owner=${owner.userId}`)
    assert.isTrue(info.body.blocked)

    const unblocked = await litellm('POST', '/customer/unblock', { user_ids: ['cust-b'], owner: owner.userId })
    assert.deepEqual(unblocked.body, { unblocked_users: ['cust-b'] })
    assert.isTrue(await eventually(async () => (await chat(owner.key, { 'x-litellm-end-user-id': 'cust-b' })).status === 200))
    assert.equal((await chat(owner.key, { 'x-litellm-end-user-id': 'cust-c' })).status, 403, 'still blocked')
  })

  test('/customer/delete removes the settings (the usage rows stay); an unknown id deletes nothing (404)', async ({ assert }) => {
    await setEndUser({ userRef: owner.email, endUser: 'cust-d', blocked: true })
    await setEndUser({ userRef: owner.email, endUser: 'cust-e', monthlyLimit: '3' })
    const unknown = await litellm('POST', '/customer/delete', { user_ids: ['cust-d', 'nobody'], owner: owner.userId })
    assertLiteLLMError(assert, unknown, 404)
    assert.equal(unknown.body.error.type, 'not_found_error')
    assert.include(unknown.body.error.message, 'nobody')
    assert.isNotNull(await db.from('end_users').where('end_user', 'cust-d').first(), 'nothing deleted')
    const deleted = await litellm('POST', '/customer/delete', { user_ids: ['cust-d', 'cust-e'], owner: owner.userId })
    assert.equal(deleted.status, 200)
    assert.equal(deleted.body.deleted_customers, 2)
    assert.lengthOf(await db.from('end_users').whereIn('end_user', ['cust-d', 'cust-e']), 0)
    assert.equal((await db.from('audit_log').where('action', 'end_user.delete').count('* as n').first()).n, '2')
  })

  test('/customer/delete with an id given twice counts and names each customer once (a list a script built with a repeat)', async ({ assert }) => {
    await setEndUser({ userRef: owner.email, endUser: 'cust-twice', blocked: true })
    const deleted = await litellm('POST', '/customer/delete', { user_ids: ['cust-twice', 'cust-twice'], owner: owner.userId })
    assert.equal(deleted.status, 200, JSON.stringify(deleted.body))
    assert.equal(deleted.body.deleted_customers, 1)
    assert.equal(deleted.body.message, 'Deleted customers: cust-twice')
    assert.isNull(await db.from('end_users').where('end_user', 'cust-twice').first())
  })

  test('bad input: 400 in LiteLLM\'s shape naming the field; unknown customers and owners 404', async ({ assert }) => {
    const cases: Array<[string, string, unknown, string]> = [
      ['POST', '/customer/new', { max_budget: 5 }, 'user_id'],
      ['POST', '/customer/new', { user_id: 'x1', owner: owner.userId, max_budget: 5, budget_duration: '2d' }, 'budget_duration'],
      ['POST', '/customer/new', { user_id: 'x1', owner: owner.userId, max_budget: 'lots', budget_duration: '30d' }, 'max_budget'],
      ['POST', '/customer/new', { user_id: 'x1', owner: owner.userId, blocked: 'yes' }, 'blocked'],
      ['POST', '/customer/new', { user_id: 'x'.repeat(129), owner: owner.userId }, 'user_id'],
      ['POST', '/customer/new', { user_id: 'cust-a', owner: owner.userId }, 'user_id'],
      ['POST', '/customer/block', { user_ids: 'cust-a' }, 'user_ids'],
      ['POST', '/customer/block', { user_ids: [] }, 'user_ids'],
      ['POST', '/customer/block', { user_ids: ['x2', 'bad\u0007id'], owner: owner.userId }, 'user_ids'],
      ['POST', '/customer/delete', {}, 'user_ids'],
      ['GET', '/customer/info', undefined, 'end_user_id'],
    ]
    for (const [method, path, body, param] of cases) {
      const answer = await litellm(method, path, body)
      assertLiteLLMError(assert, answer, 400, param)
      assert.equal(answer.body.error.type, 'bad_request_error')
    }
    assert.isNull(await db.from('end_users').whereIn('end_user', ['x1', 'x2']).first(), 'nothing is created, nor blocked before the bad id')
    assertLiteLLMError(assert, await litellm('GET', `/customer/info?end_user_id=nobody&owner=${owner.userId}`), 404)
    assertLiteLLMError(assert, await litellm('POST', '/customer/update', { user_id: 'nobody', owner: owner.userId, blocked: true }), 404)
    assertLiteLLMError(assert, await litellm('POST', '/customer/unblock', { user_ids: ['nobody'], owner: owner.userId }), 404)
    assertLiteLLMError(assert, await litellm('GET', '/customer/list?owner=no-such@cust.local'), 404)
    assert.isNull(await db.from('end_users').where('end_user', 'nobody').first())
  })

  test('auth: no key 401, a user\'s key 403 on every new path, in LiteLLM\'s shape', async ({ assert }) => {
    const paths: Array<[string, string]> = [
      ['POST', '/customer/new'], ['GET', '/customer/info?end_user_id=cust-a'], ['POST', '/customer/update'], ['POST', '/customer/delete'],
      ['POST', '/customer/block'], ['POST', '/customer/unblock'], ['GET', '/customer/list'], ['GET', '/spend/tags'],
      ['GET', '/global/spend/logs'], ['GET', '/global/spend/keys'], ['GET', '/global/spend/models'], ['GET', '/global/spend/report'],
      ['POST', '/user/delete'],
    ]
    for (const [method, path] of paths) {
      const body = method === 'POST' ? { user_id: 'cust-z', user_ids: [String(owner.userId)] } : undefined
      const anonymous = await litellm(method, path, body, {})
      assertLiteLLMError(assert, anonymous, 401)
      assert.equal(anonymous.body.error.type, 'auth_error')
      assertLiteLLMError(assert, await litellm(method, path, body, { authorization: `Bearer ${owner.key}` }), 403)
    }
    assert.isNull(await db.from('end_users').where('end_user', 'cust-z').first())
    assert.isNull((await db.from('users').where('id', owner.userId).first()).disabled_at, 'a user\'s key disabled nobody')
  })
})

test.group('LiteLLM /user/delete and /key/health', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'mock', baseUrl: mock.url, models: ['cust-*'] })
    await seedPrice('cust-model', '1000', '2000')
    const { user } = await createUser({ email: 'ops@cust.local', password: 'password123', role: 'admin' })
    adminId = user.id
    adminKey = (await createApiKey({ userRef: 'ops@cust.local', name: 'litellm-master', manage: true })).key
    await refreshCaches()
    return () => mock.stop()
  })

  test('/user/delete disables the users (as the panel does: rows kept, keys refused at once); unknown ids disable nobody', async ({ assert }) => {
    const a = await seedUser({ balance: '1' })
    const b = await seedUser({ balance: '1' })
    assert.equal((await chat(a.key)).status, 200)
    const unknown = await litellm('POST', '/user/delete', { user_ids: [String(a.userId), '999999'] })
    assertLiteLLMError(assert, unknown, 404)
    assert.isNull((await db.from('users').where('id', a.userId).first()).disabled_at, 'nobody disabled')
    assertLiteLLMError(assert, await litellm('POST', '/user/delete', { user_ids: 'x' }), 400, 'user_ids')
    assertLiteLLMError(assert, await litellm('POST', '/user/delete', { user_ids: [String(adminId)] }), 400, 'user_ids')

    const deleted = await litellm('POST', '/user/delete', { user_ids: [String(a.userId), b.email] })
    assert.equal(deleted.status, 200)
    assert.deepEqual(deleted.body, { deleted_users: [String(a.userId), String(b.userId)], disabled: true })
    for (const id of [a.userId, b.userId]) assert.isNotNull((await db.from('users').where('id', id).first()).disabled_at)
    // The call's usage row is written by the meter behind the answer: wait for it before counting.
    await (await gateway()).meter.drain()
    assert.isAbove((await db.from('usage_records').where('user_id', a.userId).count('* as n').first()).n, 0, 'usage kept')
    assert.equal((await db.from('audit_log').where('action', 'user.disable').where('subject_id', a.userId).first()).source, 'api')
    assert.isTrue(await eventually(async () => (await chat(a.key)).status === 401))
    const info = await litellm('GET', `/user/info?user_id=${a.userId}`)
    assert.isTrue(info.body.user_info.disabled)
  })

  test('/user/delete naming one user twice (id and e-mail) disables and audits them once', async ({ assert }) => {
    const c = await seedUser({ balance: '1' })
    const deleted = await litellm('POST', '/user/delete', { user_ids: [String(c.userId), c.email] })
    assert.equal(deleted.status, 200, JSON.stringify(deleted.body))
    assert.deepEqual(deleted.body, { deleted_users: [String(c.userId)], disabled: true })
    assert.isNotNull((await db.from('users').where('id', c.userId).first()).disabled_at)
    assert.equal((await db.from('audit_log').where('action', 'user.disable').where('subject_id', c.userId).count('* as n').first()).n, '1')
    assert.isNull(await db.from('audit_log').where('action', 'user.update').where('subject_id', c.userId).first(), 'no second, empty change audited')
  })

  test('/key/health: any working key is healthy (LiteLLM\'s shape); none or a blocked one is a 401', async ({ assert }) => {
    const user = await seedUser()
    for (const key of [user.key, adminKey]) {
      const answer = await litellm('POST', '/key/health', undefined, { authorization: `Bearer ${key}` })
      assert.equal(answer.status, 200)
      assert.deepEqual(answer.body, { key: 'healthy', logging_callbacks: null })
    }
    assertLiteLLMError(assert, await litellm('POST', '/key/health', undefined, {}), 401)
    await litellm('POST', '/key/block', { key: String(user.keyId) })
    assert.isTrue(await eventually(async () => (await litellm('POST', '/key/health', undefined, { authorization: `Bearer ${user.key}` })).status === 401))
  })
})

test.group('LiteLLM /spend/tags and /global/spend/*', (group) => {
  let alice: SeededUser
  let bob: SeededUser
  const today = DateTime.utc().startOf('day')
  const pastDay = today.minus({ days: 3 })

  group.setup(async () => {
    await resetDatabase()
    const { user } = await createUser({ email: 'ops@cust.local', password: 'password123', role: 'admin' })
    adminId = user.id
    adminKey = (await createApiKey({ userRef: 'ops@cust.local', name: 'litellm-master', manage: true })).key
    alice = await seedUser()
    bob = await seedUser()
    const meter = (await gateway()).meter
    // $0.001, 10 in and 5 out each (meterEvent); a past (rolled-up) day and today.
    const at = (who: SeededUser, day: DateTime, model: string, tags: string[] | null, endUser: string | null, cost = 1_000_000_000n) => ({
      ...meterEvent(who.userId, model),
      apiKeyId: who.keyId,
      tags,
      endUser,
      costPico: cost,
      createdAt: day.plus({ hours: 1 }).toJSDate(),
    })
    meter.record(at(alice, pastDay, 'model-a', ['team-x', 'job-1'], 'cust-1'))
    meter.record(at(alice, pastDay, 'model-b', ['team-x'], 'cust-1', 3_000_000_000n))
    meter.record(at(bob, pastDay, 'model-a', null, 'cust-1'))
    meter.record(at(bob, today, 'model-a', ['team-y'], null, 5_000_000_000n))
    await meter.drain()
  })

  test('/spend/tags: LiteLLM\'s [{individual_request_tag, log_count, total_spend}] over the tag report; dates checked', async ({ assert }) => {
    const answer = await litellm('GET', `/spend/tags?start_date=${pastDay.toISODate()}&end_date=${today.toISODate()}`)
    assert.equal(answer.status, 200)
    assert.deepEqual(answer.body, [
      { individual_request_tag: 'team-y', log_count: 1, total_spend: 0.005 },
      { individual_request_tag: 'team-x', log_count: 2, total_spend: 0.004 },
      { individual_request_tag: 'job-1', log_count: 1, total_spend: 0.001 },
    ])
    const pastOnly = await litellm('GET', `/spend/tags?start_date=${pastDay.toISODate()}&end_date=${pastDay.toISODate()}`)
    assert.deepEqual(pastOnly.body.map((r: any) => r.individual_request_tag), ['team-x', 'job-1'])
    assertLiteLLMError(assert, await litellm('GET', '/spend/tags?start_date=2026-13-40'), 400, 'start_date')
    const reversed = await litellm('GET', `/spend/tags?start_date=${today.toISODate()}&end_date=${pastDay.toISODate()}`)
    assertLiteLLMError(assert, reversed, 400, 'start_date')
    // Both ends named as a LiteLLM caller wrote them (it said "later than to")
    assert.match(reversed.body.error.message, new RegExp(`^start_date: must not be later than end_date \\(${pastDay.toISODate()}\\)`))
  })

  test('/global/spend/logs, /keys, /models: the last 30 days from the rollups and today\'s rows', async ({ assert }) => {
    const logs = await litellm('GET', '/global/spend/logs')
    assert.equal(logs.status, 200)
    assert.deepEqual(logs.body, [
      { date: pastDay.toISODate(), spend: 0.005 },
      { date: today.toISODate(), spend: 0.005 },
    ])
    const aliceLogs = await litellm('GET', `/global/spend/logs?api_key=${alice.keyId}`)
    assert.deepEqual(aliceLogs.body, [{ date: pastDay.toISODate(), spend: 0.004, api_key: String(alice.keyId) }])
    assertLiteLLMError(assert, await litellm('GET', '/global/spend/logs?api_key=sk-gw-nothing'), 404)

    const keys = await litellm('GET', '/global/spend/keys')
    assert.equal(keys.status, 200)
    assert.deepEqual(keys.body.map((k: any) => [k.api_key, k.total_spend]), [[String(bob.keyId), 0.006], [String(alice.keyId), 0.004]])
    assert.isString(keys.body[0].key_name)
    const rolled = await db.from('usage_daily').where('day', pastDay.toISODate()!).where('dim', 'key_model').orderBy('key').select('key', 'cost')
    assert.deepEqual(rolled.map((r) => r.key).sort(), [`${alice.keyId} model-a`, `${alice.keyId} model-b`, `${bob.keyId} model-a`].sort(), 'read from the rollups')
    assert.lengthOf((await litellm('GET', '/global/spend/keys?limit=1')).body, 1)
    assertLiteLLMError(assert, await litellm('GET', '/global/spend/keys?limit=zero'), 400, 'limit')

    const models = await litellm('GET', '/global/spend/models?limit=5')
    assert.deepEqual(models.body, [{ model: 'model-a', total_spend: 0.007 }, { model: 'model-b', total_spend: 0.003 }])
    assertLiteLLMError(assert, await litellm('GET', '/global/spend/models?limit=-1'), 400, 'limit')
  })

  test('/global/spend/report: by customer per day, by api_key with its models; team is an empty list; bad group_by 400', async ({ assert }) => {
    const range = `start_date=${pastDay.toISODate()}&end_date=${today.toISODate()}`
    const customers = await litellm('GET', `/global/spend/report?${range}&group_by=customer`)
    assert.equal(customers.status, 200)
    assert.lengthOf(customers.body, 1, 'today\'s request named no customer')
    assert.equal(customers.body[0].group_by_day, `${pastDay.toISODate()}T00:00:00+00:00`)
    assert.deepEqual(
      customers.body[0].customers.map((c: any) => [c.customer, c.owner, c.total_spend, c.metadata.length]),
      [['cust-1', String(alice.userId), 0.004, 2], ['cust-1', String(bob.userId), 0.001, 1]],
      'one customer per owner'
    )
    assert.deepInclude(customers.body[0].customers[1].metadata[0], { model: 'model-a', api_key: String(bob.keyId), spend: 0.001, total_tokens: 15 })

    const keys = await litellm('GET', `/global/spend/report?${range}&group_by=api_key`)
    assert.deepEqual(keys.body.map((k: any) => [k.api_key, k.total_cost, k.total_input_tokens, k.total_output_tokens]), [
      [String(bob.keyId), 0.006, 20, 10],
      [String(alice.keyId), 0.004, 20, 10],
    ])
    assert.deepEqual(
      keys.body[1].model_details.map((m: any) => [m.model, m.total_cost]).sort(),
      [['model-a', 0.001], ['model-b', 0.003]]
    )
    assert.deepEqual((await litellm('GET', `/global/spend/report?${range}`)).body, [])
    assert.deepEqual((await litellm('GET', `/global/spend/report?${range}&group_by=team`)).body, [])
    assertLiteLLMError(assert, await litellm('GET', `/global/spend/report?${range}&group_by=org`), 400, 'group_by')
    // By customer from the end-user rollup: any range the usage views take (a year), the same answer.
    const year = `start_date=${today.minus({ days: 364 }).toISODate()}&end_date=${today.toISODate()}`
    assert.deepEqual((await litellm('GET', `/global/spend/report?${year}&group_by=customer`)).body, customers.body)
    assert.equal((await litellm('GET', `/global/spend/report?${year}&group_by=api_key`)).status, 200, 'by key: from the rollups')
    assertLiteLLMError(assert, await litellm('GET', '/global/spend/report?end_date=yesterday'), 400, 'end_date')
  })

  test('/global/spend/report by customer: more groups than it answers is a 400 asking for fewer days, not a list cut short', async ({ assert }) => {
    const meter = (await gateway()).meter
    const day = today.minus({ days: 1 }).plus({ hours: 3 }).toJSDate()
    for (let i = 0; i <= 10_000; i++) meter.record({ ...meterEvent(alice.userId, 'model-a'), endUser: `many-${i}`, createdAt: day })
    await meter.drain()
    const range = `start_date=${today.minus({ days: 1 }).toISODate()}&end_date=${today.minus({ days: 1 }).toISODate()}`
    assertLiteLLMError(assert, await litellm('GET', `/global/spend/report?${range}&group_by=customer`), 400, 'end_date')
  }).timeout(60_000)

  test('a day\'s spend per key survives the usage retention: the pruned rows\' key totals stay in the report by api_key', async ({ assert }) => {
    const meter = (await gateway()).meter
    const old = today.minus({ days: 40 })
    for (const [who, model] of [[alice, 'model-a'], [alice, 'model-b'], [bob, 'model-a']] as const) {
      meter.record({ ...meterEvent(who.userId, model), apiKeyId: who.keyId, createdAt: old.plus({ hours: 2 }).toJSDate() })
    }
    await meter.drain()
    const range = `start_date=${old.toISODate()}&end_date=${old.toISODate()}&group_by=api_key`
    const before = (await litellm('GET', `/global/spend/report?${range}`)).body
    assert.deepEqual(before.map((k: any) => [k.api_key, k.total_cost]), [[String(alice.keyId), 0.002], [String(bob.keyId), 0.001]])
    // Not rolled up again from rows that are gone: a stale mark makes the next read redo the day.
    const pruned = await pruneUsage({ keepDays: 31 })
    assert.equal(pruned.rows, 3)
    await db.table('usage_daily_stale').insert({ day: old.toISODate() }).onConflict('day').ignore()
    assert.deepEqual((await litellm('GET', `/global/spend/report?${range}`)).body, before)
  })
})
