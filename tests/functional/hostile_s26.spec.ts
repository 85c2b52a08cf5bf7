import { test } from '@japa/runner'
import db from '@adonisjs/lucid/services/db'
import { createUser } from '#actions/create_user'
import { createApiKey } from '#actions/issue_api_key'
import { updateBudget } from '#actions/budgets'
import { createTeam, setKeyTeam } from '#actions/teams'
import { PanelClient } from '#tests/panel_client'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { baseUrl, gateway, post, refreshCaches, resetDatabase, seedChannel, seedPrice, seedUser, startMock, type SeededUser } from '#tests/helpers'

/**
 * Hostile input and races against this pass's merges: shared budgets and
 * customers (LiteLLM /budget/*, /customer/*), the meter's per-period end-user
 * spend, the portal's key moves.
 */
let adminKey = ''

async function litellm(method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
  const response = await fetch(`${baseUrl()}${path}`, {
    method,
    headers: { authorization: `Bearer ${adminKey}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  })
  const text = await response.text()
  try {
    return { status: response.status, body: JSON.parse(text) as any, type: response.headers.get('content-type') }
  } catch {
    throw new Error(`${method} ${path}: ${response.status} ${text.slice(0, 2000)}`)
  }
}

async function chat(key: string, user: string) {
  const response = await post('/v1/chat/completions', { model: 'hos-model', user, messages: [{ role: 'user', content: 'hi' }] }, { authorization: `Bearer ${key}` })
  return { status: response.status, body: (await response.json()) as any }
}

async function eventually(check: () => Promise<boolean>) {
  for (let i = 0; i < 100; i++) {
    if (await check()) return true
    await new Promise((r) => setTimeout(r, 50))
  }
  return false
}

/** Sessions waiting for a lock (this database only) */
async function lockWaiters(): Promise<number> {
  const result = await db.rawQuery(
    `SELECT count(*)::int AS n FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
      WHERE NOT l.granted AND a.datname = current_database()`
  )
  return result.rows[0].n
}

test.group('Hostile input and races: budgets, customers', (group) => {
  let mock: MockUpstream
  let owner: SeededUser

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'mock', baseUrl: mock.url, models: ['hos-*'] })
    // 12 prompt and 5 completion tokens a call (the mock's usage): $0.022.
    await seedPrice('hos-model', '1000', '2000')
    await createUser({ email: 'ops@hos.local', password: 'password123', role: 'admin' })
    adminKey = (await createApiKey({ userRef: 'ops@hos.local', name: 'litellm-master', manage: true })).key
    owner = await seedUser({ balance: '10' })
    await refreshCaches()
    return () => mock.stop()
  })

  test("a budget's new period committed while a metering batch waits keeps the recount and the batch", async ({ assert }) => {
    // A lifetime budget: the customer's spend so far is in `spent`, period_spent stays 0.
    assert.equal((await litellm('POST', '/budget/new', { budget_id: 'race-life', max_budget: 100 })).status, 200)
    assert.equal((await litellm('POST', '/customer/new', { user_id: 'racer', owner: owner.userId, budget_id: 'race-life' })).status, 200)
    const gw = await gateway()
    assert.isTrue(await eventually(async () => gw.catalog.endUsers.policyOf(owner.userId, 'racer')?.budgetId === 'race-life'))
    for (let i = 0; i < 2; i++) assert.equal((await chat(owner.key, 'racer')).status, 200)
    await gw.meter.drain()

    // The budget becomes daily; its transaction is held after its recount (at its audit entry) until a
    // metering batch of the customer's next call has begun and waits on the rows it locked.
    const holder = await db.transaction()
    await holder.rawQuery('LOCK TABLE audit_log IN SHARE MODE')
    const change = updateBudget('race-life', { budgetPeriod: 'day' })
    assert.isTrue(await eventually(async () => (await lockWaiters()) >= 1), 'the budget change waits')
    assert.equal((await chat(owner.key, 'racer')).status, 200)
    const metered = gw.meter.drain()
    assert.isTrue(await eventually(async () => (await lockWaiters()) >= 2), 'the metering batch waits')
    await holder.commit()
    await change
    await metered

    // The day's spend is the three calls: the recount's two and the batch's one.
    const row = await db.from('end_users').where('end_user', 'racer').first()
    const today = await db
      .from('usage_records')
      .where('end_user', 'racer')
      .where('created_at', '>=', new Date(new Date().toISOString().slice(0, 10)))
      .sum('cost as s')
      .first()
    assert.equal(Number(row.period_spent), Number(today!.s))
    assert.closeTo(Number(row.period_spent), 0.066, 1e-9)
    assert.closeTo(Number(row.spent), 0.066, 1e-9)
  }).timeout(30_000)

  test('20 concurrent calls at the edge of a daily shared budget, its period changed meanwhile: at most one call over, no double count', async ({ assert }) => {
    assert.equal((await litellm('POST', '/budget/new', { budget_id: 'edge', max_budget: 0.05, budget_duration: '1d' })).status, 200)
    assert.equal((await litellm('POST', '/customer/new', { user_id: 'edgy', owner: owner.userId, budget_id: 'edge' })).status, 200)
    const gw = await gateway()
    assert.isTrue(await eventually(async () => gw.catalog.endUsers.policyOf(owner.userId, 'edgy')?.spendPeriod === 'day'))
    assert.equal((await chat(owner.key, 'edgy')).status, 200)
    // The burst, while the budget goes monthly and back to daily (each change recounts the linked customers).
    const [burst] = await Promise.all([
      Promise.all(Array.from({ length: 20 }, () => chat(owner.key, 'edgy'))),
      (async () => {
        for (const duration of ['1mo', '1d', '1mo', '1d']) await litellm('POST', '/budget/update', { budget_id: 'edge', budget_duration: duration })
      })(),
    ])
    assert.isTrue(burst.every((r) => r.status === 200 || r.status === 402), JSON.stringify(burst.map((r) => r.status)))
    await gw.meter.drain()
    const spent = await db.from('usage_records').where('end_user', 'edgy').sum('cost as s').first()
    // $0.05: two calls of $0.022 fit; the one-call slack allows a third at most.
    assert.isAtMost(Number(spent!.s), 0.05 + 0.022 + 1e-9)
    const row = await db.from('end_users').where('end_user', 'edgy').first()
    assert.equal(row.spend_period, 'day')
    assert.closeTo(Number(row.period_spent), Number(spent!.s), 1e-9)
    assert.closeTo(Number(row.spent), Number(spent!.s), 1e-9)
    assert.equal((await chat(owner.key, 'edgy')).status, 402)
  }).timeout(30_000)

  test('a request in flight while its key moves to another team is metered for the team it was admitted under', async ({ assert }) => {
    const first = await createTeam({ alias: 'hos-first', maxBudget: '10', budgetPeriod: 'month' })
    const second = await createTeam({ alias: 'hos-second', maxBudget: '10', budgetPeriod: 'month' })
    const mover = await seedUser({ balance: '10' })
    await setKeyTeam(String(mover.keyId), first.id)
    await refreshCaches()
    const slow = post(
      '/v1/chat/completions',
      { model: 'hos-model', mock: { latency_ms: 600 }, messages: [{ role: 'user', content: 'hi' }] },
      { authorization: `Bearer ${mover.key}` }
    )
    await new Promise((r) => setTimeout(r, 150))
    await setKeyTeam(String(mover.keyId), second.id)
    assert.equal((await slow).status, 200)
    await (await gateway()).meter.drain()
    const rows = await db.from('usage_records').where('api_key_id', mover.keyId)
    assert.deepEqual(rows.map((r) => Number(r.team_id)), [first.id])
    const teams = await db.from('teams').whereIn('id', [first.id, second.id]).orderBy('id')
    assert.closeTo(Number(teams[0].spent), 0.022, 1e-9)
    assert.equal(Number(teams[1].spent), 0)
  })

  test("linking customers while their budget's period changes: no deadlock (a 500), every call answered", async ({ assert }) => {
    const other = await seedUser({ balance: '10' })
    assert.equal((await litellm('POST', '/budget/new', { budget_id: 'dl', max_budget: 1, budget_duration: '1d' })).status, 200)
    for (const who of [owner, other]) {
      assert.equal((await litellm('POST', '/customer/new', { user_id: 'dl-0', owner: who.userId, budget_id: 'dl' })).status, 200)
    }
    assert.equal((await litellm('POST', '/budget/new', { budget_id: 'dl-b', max_budget: 1, budget_duration: '1d' })).status, 200)
    assert.equal((await litellm('POST', '/customer/new', { user_id: 'dl-b0', owner: other.userId, budget_id: 'dl-b' })).status, 200)
    assert.equal((await litellm('POST', '/customer/new', { user_id: 'dl-b1', owner: owner.userId, budget_id: 'dl-b' })).status, 200)
    const failed: string[] = []
    for (let round = 0; round < 15; round++) {
      const answers = await Promise.all([
        litellm('POST', '/budget/update', { budget_id: 'dl', budget_duration: round % 2 ? '1d' : '1mo' }),
        litellm('POST', '/budget/update', { budget_id: 'dl-b', budget_duration: round % 2 ? '1mo' : '1d' }),
        litellm('POST', '/customer/new', { user_id: `dl-${round + 1}`, owner: owner.userId, budget_id: 'dl' }),
        litellm('POST', '/customer/update', { user_id: 'dl-0', owner: owner.userId, budget_id: 'dl', rpm_limit: round + 1 }),
        litellm('POST', '/customer/update', { user_id: 'dl-0', owner: other.userId, budget_id: 'dl-b' }),
        litellm('POST', '/customer/update', { user_id: 'dl-b0', owner: other.userId, budget_id: 'dl' }),
      ])
      failed.push(...answers.filter((a) => a.status !== 200).map((a) => `${a.status} ${JSON.stringify(a.body)}`))
    }
    assert.deepEqual(failed, [])
    // Each linked row counts in its budget's period.
    const rows = await db.from('end_users as e').join('budgets as b', 'b.id', 'e.budget_id').select('e.spend_period', 'b.budget_period')
    for (const row of rows) assert.equal(row.spend_period, row.budget_period)
  }).timeout(60_000)

  test('ten concurrent /budget/new of one id: one made, the others 400 in LiteLLM\'s shape (not a 500)', async ({ assert }) => {
    const answers = await Promise.all(Array.from({ length: 10 }, () => litellm('POST', '/budget/new', { budget_id: 'dup-race', max_budget: 1 })))
    assert.equal(answers.filter((a) => a.status === 200).length, 1, JSON.stringify(answers.map((a) => a.status)))
    for (const refused of answers.filter((a) => a.status !== 200)) {
      assert.equal(refused.status, 400)
      assert.include(refused.body.error.message, 'already exists')
      assert.equal(refused.body.error.param, 'budget_id')
    }
    assert.equal((await db.from('budgets').where('budget_id', 'dup-race').count('* as n').first())?.n, '1')
  })

  test('ten concurrent /customer/new of one id: one made, the others 400 "already exists" (none turned into an update)', async ({ assert }) => {
    const answers = await Promise.all(
      Array.from({ length: 10 }, (_, i) => litellm('POST', '/customer/new', { user_id: 'cust-race', owner: owner.userId, max_budget: i + 1 }))
    )
    assert.equal(answers.filter((a) => a.status === 200).length, 1, JSON.stringify(answers.map((a) => a.status)))
    const made = answers.find((a) => a.status === 200)!
    for (const refused of answers.filter((a) => a.status !== 200)) {
      assert.equal(refused.status, 400)
      assert.include(refused.body.error.message, 'already exists')
      assert.equal(refused.body.error.param, 'user_id')
    }
    // The row holds the settings of the one answered 200: no refused call changed it.
    const row = await db.from('end_users').where('user_id', owner.userId).where('end_user', 'cust-race').firstOrFail()
    assert.equal(Number(row.monthly_limit), made.body.litellm_budget_table.max_budget)
    assert.equal(
      (await db.from('audit_log').where('action', 'end_user.create').whereILike('summary', '%cust-race%').count('* as n').first())?.n,
      '1'
    )
    assert.equal(
      (await db.from('audit_log').where('action', 'end_user.update').whereILike('summary', '%cust-race%').count('* as n').first())?.n,
      '0'
    )
  })

  test('a budget id with a space at either end is refused (the panel trims: " gold" was linked as "gold"); LiteLLM names budget_id', async ({ assert }) => {
    assert.equal((await litellm('POST', '/budget/new', { budget_id: 'gold', max_budget: 100 })).status, 200)
    for (const id of [' gold', 'gold ', ' ', '\u00a0gold', 'gold\u3000']) {
      const answer = await litellm('POST', '/budget/new', { budget_id: id, max_budget: 0 })
      assert.equal(answer.status, 400, `${JSON.stringify(id)}: ${JSON.stringify(answer.body)}`)
      assert.equal(answer.body.error.param, 'budget_id')
      assert.match(answer.body.error.message, /^budget_id: Budget id is 1 to 128 characters/)
      const api = await litellm('POST', '/api/admin/budgets', { budget_id: id, max_budget: 0 })
      assert.equal(api.status, 400, JSON.stringify(id))
    }
    const tooLong = await litellm('POST', '/budget/new', { budget_id: 'x'.repeat(129) })
    assert.deepInclude(tooLong.body.error, { param: 'budget_id' })
    assert.notInclude(tooLong.body.error.message, 'budgetId')
    // Linking names the budget exactly: " gold" is no budget id, never "gold".
    const linked = await litellm('POST', '/customer/new', { user_id: 'ws-1', owner: owner.userId, budget_id: ' gold' })
    assert.equal(linked.status, 400)
    assert.equal(linked.body.error.param, 'budget_id')
    assert.notExists(await db.from('end_users').where('end_user', 'ws-1').first())
    // Inner spaces and case are the budget's own: "team gold" and "GOLD" are two more budgets.
    assert.equal((await litellm('POST', '/budget/new', { budget_id: 'team gold' })).status, 200)
    assert.equal((await litellm('POST', '/budget/new', { budget_id: 'GOLD' })).status, 200)
  })

  test('the panel Budgets and End users forms say why a value is refused, beside its field or above the row', async ({ assert }) => {
    await createUser({ email: 'panel@hos.local', password: 'password123', role: 'admin' })
    const admin = new PanelClient()
    await admin.login('panel@hos.local', 'password123')
    await admin.get('/admin/budgets')
    const shown = async (result: { location: string | null }) => {
      const html = (await admin.follow(result)).html
      const errors = [...html.matchAll(/<(?:div|small|p)[^>]*(?:flash--error|-error")[^>]*>([^<]+)</g)].map((m) => m[1].trim())
      return { html, errors }
    }
    const tooLong = await shown(await admin.post('/admin/budgets', { budget_id: 'x'.repeat(129), max_budget: '1', budget_period: 'day', rpm: '', tpm: '' }))
    assert.isTrue(tooLong.errors.some((e) => e.includes('Budget id is 1 to 128 characters')), JSON.stringify(tooLong.errors))
    assert.include(tooLong.html, 'id="f-budget_id-error"')
    const negative = await shown(await admin.post('/admin/budgets', { budget_id: 'neg', max_budget: '-1', budget_period: 'day', rpm: '', tpm: '' }))
    assert.include(negative.html, 'id="f-max_budget-error"')
    assert.isTrue(negative.errors.some((e) => e.includes('must be an amount in USD')), JSON.stringify(negative.errors))
    await admin.post('/admin/budgets', { budget_id: 'panel-ok', max_budget: '1', budget_period: 'day', rpm: '', tpm: '' })
    const period = await shown(await admin.post('/admin/budgets/update', { budget_id: 'panel-ok', max_budget: '1', budget_period: 'year', rpm: '', tpm: '' }))
    assert.isTrue(period.errors.some((e) => e.includes('Budget resets')), JSON.stringify(period.errors))
    assert.equal((await db.from('budgets').where('budget_id', 'panel-ok').first()).budget_period, 'day')
    await admin.get(`/admin/users/${owner.userId}/end-users`)
    const link = await shown(await admin.post(`/admin/users/${owner.userId}/end-users`, { end_user: 'pf-1', budget_id: 'x'.repeat(129) }))
    assert.include(link.html, 'id="f-budget_id-error"')
    assert.isTrue(link.errors.some((e) => e.includes('Budget id is 1 to 128 characters')), JSON.stringify(link.errors))
    assert.notExists(await db.from('end_users').where('end_user', 'pf-1').first())
  })

  test('a budget made with a numeric budget_id is linked with that number too', async ({ assert }) => {
    const made = await litellm('POST', '/budget/new', { budget_id: 42, max_budget: 3, budget_duration: '1d' })
    assert.equal(made.body.budget_id, '42')
    const linked = await litellm('POST', '/customer/new', { user_id: 'num-1', owner: owner.userId, budget_id: 42 })
    assert.equal(linked.status, 200, JSON.stringify(linked.body))
    assert.equal(linked.body.budget_id, '42')
    assert.equal((await litellm('POST', '/customer/update', { user_id: 'num-1', owner: owner.userId, budget_id: 1.5 })).status, 400)
    assert.equal((await litellm('POST', '/customer/update', { user_id: 'num-1', owner: owner.userId, budget_id: null })).body.budget_id, null)
  })
})
