import { test } from '@japa/runner'
import ace from '@adonisjs/core/services/ace'
import db from '@adonisjs/lucid/services/db'
import ApiKey from '#models/api_key'
import KeyCreate from '#commands/key_create'
import { createUser } from '#actions/create_user'
import { createApiKey } from '#actions/issue_api_key'
import { updateApiKey } from '#actions/update_api_key'
import { hashApiKey } from '#gateway/auth/api_key_token'
import { periodBounds } from '#gateway/metering/spend_period'
import { estimateCostPico } from '#gateway/metering/reservation'
import { fromPico, toPico } from '#gateway/metering/money'
import { modelLimitsFromText, modelLimitsText } from '#gateway/limits/model_limits'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { adminApi, baseUrl, gateway, post, resetDatabase, seedChannel, seedPrice, seedUser, startMock, usageRows } from '#tests/helpers'
import { PageClient, htmlText } from '#tests/page_client'
import { PanelClient, textOf } from '#tests/panel_client'

/**
 * A key's USD budget per model (LiteLLM's model_max_budget): held like the
 * key's cap, kept per (key, model asked for, period) by the meter, recounted
 * from the usage rows when it changes.
 */
const hello = [{ role: 'user', content: 'hi' }]

/** $0.001 a call: the mock's usage (12 in, 5 out) at 50/80 per million. */
async function chat(key: string, model = 'budgeted') {
  const answer = await post('/v1/chat/completions', { model, messages: hello }, { authorization: `Bearer ${key}` })
  return { status: answer.status, body: (await answer.json()) as any }
}

async function spendRow(keyId: number, model = 'budgeted') {
  await (await gateway()).meter.drain()
  return db.from('api_key_model_spend').where('api_key_id', keyId).where('model', model).first()
}

async function eventually(check: () => Promise<boolean>) {
  for (let i = 0; i < 60; i++) {
    if (await check()) return true
    await new Promise((r) => setTimeout(r, 50))
  }
  return false
}

test.group('Per-model budgets of a key (model_max_budget)', (group) => {
  let mock: MockUpstream
  let adminKey = ''

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'mock', baseUrl: mock.url, models: ['*'] })
    await seedChannel({ name: 'anthropic', provider: 'anthropic', baseUrl: mock.url, models: ['claude-*'] })
    for (const model of ['budgeted', 'other', 'claude-b', 'm-race']) await seedPrice(model, '50', '80')
    await createUser({ email: 'ops@budgets.local', password: 'password123', role: 'admin' })
    adminKey = (await createApiKey({ userRef: 'ops@budgets.local', manage: true })).key
    return () => mock.stop()
  })

  async function litellm(path: string, body: unknown) {
    const response = await fetch(`${baseUrl()}${path}`, {
      method: 'POST',
      headers: { 'authorization': `Bearer ${adminKey}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    })
    return { status: response.status, body: (await response.json()) as any }
  }

  async function keyInfo(token: string) {
    const response = await fetch(`${baseUrl()}/key/info?key=${token}`, { headers: { authorization: `Bearer ${adminKey}` } })
    return ((await response.json()) as any).info
  }

  /** A user with $10 and a key made by LiteLLM's /key/generate with these fields. */
  async function litellmKey(fields: Record<string, unknown>) {
    const owner = await seedUser({ balance: '10' })
    const made = await litellm('/key/generate', { user_id: owner.email, ...fields })
    return { ...made, owner }
  }

  test('a lifetime budget (no time_period): refused with 402 budget_exceeded naming the model once spent; other models go on', async ({ assert }) => {
    const made = await litellmKey({ model_max_budget: { budgeted: { budget_limit: 0.0015 } } })
    assert.equal(made.status, 200, JSON.stringify(made.body))
    assert.deepEqual(made.body.model_max_budget, { budgeted: { budget_limit: 0.0015, time_period: null } })
    assert.equal((await chat(made.body.key)).status, 200)
    assert.equal((await chat(made.body.key)).status, 200)
    const refused = await chat(made.body.key)
    assert.equal(refused.status, 402)
    assert.equal(refused.body.error.code, 'budget_exceeded')
    assert.include(refused.body.error.message, "budget for model 'budgeted' is spent ($0.002 of $0.0015)")
    assert.notInclude(refused.body.error.message, 'resets')
    // Another model of the key, and the model through another key: no budget of theirs.
    assert.equal((await chat(made.body.key, 'other')).status, 200)
    const row = await spendRow(Number(made.body.token))
    assert.equal(Number(row.spent), 0.002)
    assert.equal(Number(row.period_spent), 0)
    const info = await keyInfo(made.body.token)
    assert.deepEqual(info.model_max_budget, { budgeted: { budget_limit: 0.0015, time_period: null } })
    assert.deepEqual(info.model_spend, { budgeted: 0.002 })
    // A reload reads the spend back from its row: still refused.
    await (await gateway()).catalog.reload()
    assert.equal((await chat(made.body.key)).status, 402)
  })

  test('another spelling of the model (case, a thinking suffix) spends the same budget, kept under its own name across a reload', async ({ assert }) => {
    // Prices are looked up by the name as asked: each spelling priced as the model is.
    for (const spelling of ['BUDGETED', 'Budgeted', 'budgeted-thinking']) await seedPrice(spelling, '50', '80')
    await (await gateway()).catalog.reload()
    const made = await litellmKey({ model_max_budget: { budgeted: { budget_limit: 0.0015 } } })
    assert.equal(made.status, 200, JSON.stringify(made.body))
    assert.equal((await chat(made.body.key, 'BUDGETED')).status, 200)
    assert.equal((await chat(made.body.key, 'budgeted-thinking')).status, 200)
    const refused = await chat(made.body.key, 'Budgeted')
    assert.equal(refused.status, 402, JSON.stringify(refused.body))
    assert.include(refused.body.error.message, "budget for model 'budgeted'")
    // Metered under the budget's name (the spellings have no row of their own), so a reload reads it back.
    const row = await spendRow(Number(made.body.token))
    assert.equal(Number(row?.spent), 0.002)
    assert.lengthOf(await db.from('api_key_model_spend').where('api_key_id', Number(made.body.token)).whereNot('model', 'budgeted'), 0)
    await (await gateway()).catalog.reload()
    assert.equal((await chat(made.body.key, 'BUDGETED')).status, 402)
  })

  test('a daily budget: the 402 says when it resets; a new day starts from zero (in memory, and from the row)', async ({ assert }) => {
    const made = await litellmKey({ model_max_budget: { budgeted: { budget_limit: '0.0015', time_period: '1d' } } })
    assert.equal(made.status, 200, JSON.stringify(made.body))
    const key = made.body.key
    await chat(key)
    await chat(key)
    const refused = await chat(key)
    assert.equal(refused.status, 402)
    const tomorrow = new Date(periodBounds('day', Date.now()).end).toISOString()
    assert.include(refused.body.error.message, `model 'budgeted' is spent for this day ($0.002 of $0.0015, UTC); it resets at ${tomorrow}`)
    const row = await spendRow(Number(made.body.token))
    assert.equal(Number(row.period_spent), 0.002)
    assert.equal(new Date(row.period_start).getDate(), new Date().getUTCDate())

    // The day ends while the key is cached: the next check starts a new day.
    const budget = (await gateway()).catalog.cachedKey(hashApiKey(key))!.modelLimits!.get('budgeted')!.budget!
    budget.periodEndsAt = Date.now() - 1
    assert.equal((await chat(key)).status, 200)
    assert.equal(budget.spentPico, toPico('0.001'))
    // Yesterday's spend in the row (a restart after midnight): the budget counts none of it.
    await (await gateway()).meter.drain()
    const yesterday = new Date(periodBounds('day', Date.now()).start - 86_400_000).toISOString().slice(0, 10)
    await db.from('api_key_model_spend').where('api_key_id', Number(made.body.token)).update({ period_spent: '0.002', period_start: yesterday })
    await (await gateway()).catalog.reload()
    assert.equal((await chat(key)).status, 200)
    const after = await spendRow(Number(made.body.token))
    assert.equal(Number(after.period_spent), 0.001, 'a new period starts at this call')
    assert.equal(Number(after.spent), 0.004)
    assert.deepEqual((await keyInfo(made.body.token)).model_spend, { budgeted: 0.001 })
  })

  test('an Anthropic call past its model budget is an Anthropic error naming the model', async ({ assert }) => {
    const made = await litellmKey({ model_max_budget: { 'claude-b': { budget_limit: 0.0005 } } })
    const messages = () =>
      post('/v1/messages', { model: 'claude-b', max_tokens: 16, messages: hello }, { 'x-api-key': made.body.key, 'anthropic-version': '2023-06-01' })
    assert.equal((await messages()).status, 200)
    const refused = await messages()
    assert.equal(refused.status, 402)
    const body: any = await refused.json()
    assert.equal(body.type, 'error')
    assert.include(body.error.message, "model 'claude-b'")
    assert.isString(body.error.type)
  })

  test('exact under concurrency: 20 calls at once on a $0.0001 budget spend at most the budget plus one estimate; holds released', async ({ assert }) => {
    const made = await litellmKey({ model_max_budget: { 'm-race': { budget_limit: 0.0001 } } })
    const body = { model: 'm-race', messages: hello, max_tokens: 10, mock: { latency_ms: 50 } }
    const statuses = await Promise.all(
      Array.from({ length: 20 }, () =>
        post('/v1/chat/completions', body, { authorization: `Bearer ${made.body.key}` }).then(async (r) => {
          const answer: any = await r.json()
          if (r.status === 402) assert.equal(answer.error.code, 'budget_exceeded')
          return r.status
        })
      )
    )
    const served = statuses.filter((s) => s === 200).length
    assert.equal(served + statuses.filter((s) => s === 402).length, 20)
    assert.isAtLeast(served, 1)
    assert.isBelow(served, 20)
    const { catalog } = await gateway()
    const estimate = estimateCostPico(catalog.priceFor('m-race'), Buffer.byteLength(JSON.stringify(body)), body)
    const rows = await usageRows(made.owner.userId)
    const spent = rows.filter((r) => r.api_key_id === Number(made.body.token)).reduce((sum, r) => sum + toPico(r.cost), 0n)
    assert.isTrue(spent <= toPico('0.0001') + estimate, `spent ${fromPico(spent)}, budget 0.0001 + estimate ${fromPico(estimate)}`)
    assert.equal(toPico(String((await spendRow(Number(made.body.token), 'm-race')).spent)), spent)
    const budget = catalog.cachedKey(hashApiKey(made.body.key))!.modelLimits!.get('m-race')!.budget!
    assert.equal(budget.heldPico, 0n)
    assert.equal(budget.spentPico, spent)
  })

  test('a budget set or changed later recounts what the key already spent on the model from its usage rows', async ({ assert }) => {
    const made = await litellmKey({})
    const key = made.body.key
    for (let i = 0; i < 3; i++) assert.equal((await chat(key)).status, 200)
    await (await gateway()).meter.drain()
    // Set after $0.003 was spent: the budget of $0.0025 is already spent.
    const updated = await litellm('/key/update', { key: made.body.token, model_max_budget: { budgeted: { budget_limit: 0.0025 } } })
    assert.equal(updated.status, 200, JSON.stringify(updated.body))
    assert.equal(Number((await spendRow(Number(made.body.token))).spent), 0.003)
    assert.isTrue(await eventually(async () => (await chat(key)).status === 402))
    // Raised: served again, and the new spend adds to the recount (nothing counted twice).
    await litellm('/key/update', { key: made.body.token, model_max_budget: { budgeted: { budget_limit: 0.0035, time_period: '30d' } } })
    assert.isTrue(await eventually(async () => (await chat(key)).status === 200))
    const row = await spendRow(Number(made.body.token))
    assert.equal(Number(row.spent), 0.004)
    assert.equal(Number(row.period_spent), 0.004)
    assert.equal(Number((await keyInfo(made.body.token)).model_spend.budgeted), 0.004)
    assert.equal((await chat(key)).status, 402)
    // rpm/tpm maps alone keep the budget; null clears it (and its row).
    await litellm('/key/update', { key: made.body.token, model_rpm_limit: { budgeted: 100 } })
    assert.deepEqual((await keyInfo(made.body.token)).model_max_budget, { budgeted: { budget_limit: 0.0035, time_period: '1mo' } })
    await litellm('/key/update', { key: made.body.token, model_max_budget: null })
    assert.isTrue(await eventually(async () => (await chat(key)).status === 200))
    assert.isNull(await spendRow(Number(made.body.token)))
  })

  test("a budget's period changed while a metering batch of the key waits on the key's row: the batch adds to the recount (read under the lock), nothing lost", async ({ assert }) => {
    const user = await seedUser({ balance: '10', key: { modelLimits: { budgeted: { budget: '5', budget_period: 'day' } } } })
    const key = await ApiKey.findOrFail(user.keyId)
    assert.equal((await chat(user.key)).status, 200)
    assert.equal((await spendRow(user.keyId))?.period_spent, '0.001000000000')
    let open!: () => void
    const gate = new Promise<void>((resolve) => (open = resolve))
    let locked!: () => void
    const keyLocked = new Promise<void>((resolve) => (locked = resolve))
    // The operator's change holds the key's row (as updateApiKey does first) while a call through the key is metered.
    const change = updateApiKey(user.keyId, { name: key.name, modelLimits: { budgeted: { budget: '5', budget_period: 'month' } } }, undefined, async () => {
      locked()
      await gate
    })
    await keyLocked
    try {
      assert.equal((await chat(user.key)).status, 200)
      // The meter's batch is waiting for a lock the change holds.
      const waits = await eventually(async () => {
        // (Its text is past pg_stat_activity's first 1,024 bytes: any statement waiting on a lock is the batch here.)
        const waiting = await db.rawQuery(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()`)
        return waiting.rows[0].n > 0
      })
      assert.isTrue(waits)
    } finally {
      open()
    }
    // No deadlock: the batch had locked the spend row before waiting on the key's row, the recount then waited on the
    // batch, and Postgres broke the cycle only after deadlock_timeout (1 s), failing the batch (retried).
    const released = performance.now()
    await change
    const deadlockTimeoutMs = Number((await db.rawQuery(`SELECT setting FROM pg_settings WHERE name = 'deadlock_timeout'`)).rows[0].setting)
    assert.isBelow(performance.now() - released, deadlockTimeoutMs * 0.9)
    const row = await spendRow(user.keyId)
    // The month's recount (the first call) plus the waiting batch's call: both, in the month's period.
    assert.equal(row.period_spent, '0.002000000000')
    assert.equal(row.spent, '0.002000000000')
    assert.equal(new Date(row.period_start).toISOString().slice(0, 10), new Date(periodBounds('month', Date.now()).start).toISOString().slice(0, 10))
  }).timeout(30_000)

  test("a budget's period changed and recounted just before a metering batch of the key reaches its rows: the batch adds to the recount, in the new period", async ({ assert }) => {
    const user = await seedUser({ balance: '10', key: { modelLimits: { budgeted: { budget: '5', budget_period: 'day' } } } })
    assert.equal((await chat(user.key)).status, 200)
    assert.equal((await spendRow(user.keyId))?.period_spent, '0.001000000000')
    // What updateApiKey does, held open: the key's row locked, the month recounted (the first call), the setting changed.
    const monthStart = new Date(periodBounds('month', Date.now()).start).toISOString().slice(0, 10)
    const trx = await db.transaction()
    try {
      await trx.from('api_keys').where('id', user.keyId).forUpdate().select('id')
      await trx.rawQuery(
        `UPDATE api_key_model_spend SET period_spent = 0.001, period_start = ?::date WHERE api_key_id = ? AND model = 'budgeted'`,
        [monthStart, user.keyId]
      )
      await trx.from('api_keys').where('id', user.keyId).update({ model_limits: JSON.stringify({ budgeted: { budget: '5', budget_period: 'month' } }) })
      assert.equal((await chat(user.key)).status, 200)
      const waits = await eventually(async () => {
        const waiting = await db.rawQuery(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()`)
        return waiting.rows[0].n > 0
      })
      assert.isTrue(waits)
    } finally {
      await trx.commit()
    }
    const row = await spendRow(user.keyId)
    assert.equal(row.period_spent, '0.002000000000')
    assert.equal(row.spent, '0.002000000000')
    assert.equal(new Date(row.period_start).toISOString().slice(0, 10), monthStart)
  }).timeout(30_000)

  test('bad model_max_budget values are refused with the field named; the management API takes and shows it', async ({ assert }) => {
    const owner = await seedUser()
    for (const bad of [
      { m: { budget_limit: 0 } },
      { m: { budget_limit: -1 } },
      { m: { budget_limit: 'five' } },
      { m: { budget_limit: 1, time_period: '2d' } },
      { m: 5 },
      [1],
    ]) {
      const refused = await litellm('/key/generate', { user_id: owner.email, model_max_budget: bad })
      assert.equal(refused.status, 400, JSON.stringify(bad))
      assert.include(JSON.stringify(refused.body), 'model_max_budget')
    }
    const made = await adminApi('POST', '/keys', adminKey, { user: owner.email, model_max_budget: { m: { budget_limit: 2.5, time_period: '7d' } } })
    assert.equal(made.status, 201, JSON.stringify(made.body))
    assert.deepEqual(made.body.model_max_budget, { m: { budget_limit: 2.5, time_period: '7d' } })
    assert.deepEqual({ ...(await ApiKey.findOrFail(made.body.id)).modelLimits }, { m: { budget: '2.5', budget_period: 'week' } })
  })

  test('the panel line syntax (budget=5/day), key:create --model-limits, and the portal shows it read-only', async ({ assert }) => {
    assert.deepEqual({ ...modelLimitsFromText('gpt-4o rpm=10 budget=5/day\no3 budget=20') }, {
      'gpt-4o': { rpm: 10, budget: '5', budget_period: 'day' },
      'o3': { budget: '20' },
    })
    assert.equal(modelLimitsText(modelLimitsFromText('gpt-4o rpm=10 budget=5.50/month')), 'gpt-4o rpm=10 budget=5.5/month')
    assert.throws(() => modelLimitsFromText('gpt-4o budget=0'), /budget_limit must be a USD amount above 0/)
    assert.throws(() => modelLimitsFromText('gpt-4o budget=5/year'), /budget=USD/)
    const owner = await seedUser({ balance: '1' })
    // The panel's key form: saved, shown, enforced.
    const { user: admin } = await createUser({ email: `mb-admin-${Date.now()}@test.local`, password: 'password123', role: 'admin' })
    const panel = new PanelClient()
    await panel.login(admin.email, 'password123')
    await panel.get(`/admin/keys/${owner.keyId}/edit`)
    const saved = await panel.post(`/admin/keys/${owner.keyId}`, { name: 'k', modelLimits: 'budgeted rpm=50 budget=0.0005/day' })
    assert.equal(saved.status, 302)
    assert.include(textOf((await panel.get(`/admin/keys/${owner.keyId}`)).html), 'budgeted rpm=50 budget=0.0005/day')
    assert.isTrue(await eventually(async () => (await chat(owner.key)).status === 402))
    const instance = await ace.create(KeyCreate, ['--user', owner.email, '--name', 'cli-budget', '--model-limits', 'budgeted budget=0.0005/week'])
    ace.ui.switchMode('raw')
    await instance.exec()
    instance.assertSucceeded()
    const key = await ApiKey.query().where('name', 'cli-budget').firstOrFail()
    assert.deepEqual({ ...key.modelLimits }, { budgeted: { budget: '0.0005', budget_period: 'week' } })
    const portal = new PageClient()
    await portal.login(owner.email)
    const page = await portal.get(`/dashboard/keys/${key.id}/edit`)
    assert.include(htmlText(page.body), 'budgeted budget=0.0005/week')
  })
})
