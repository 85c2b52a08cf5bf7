import { test } from '@japa/runner'
import ace from '@adonisjs/core/services/ace'
import db from '@adonisjs/lucid/services/db'
import ApiKey from '#models/api_key'
import KeyCreate from '#commands/key_create'
import { createUser } from '#actions/create_user'
import { createApiKey } from '#actions/issue_api_key'
import { hashApiKey } from '#gateway/auth/api_key_token'
import { periodBounds } from '#gateway/metering/spend_period'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { baseUrl, gateway, meterEvent, post, refreshCaches, resetDatabase, seedChannel, seedPrice, seedUser, startMock } from '#tests/helpers'
import { PageClient, htmlText } from '#tests/page_client'
import { PanelClient, textOf } from '#tests/panel_client'

const hello = [{ role: 'user', content: 'hi' }]
const DAY_MS = 86_400_000

/** $0.001 a call: the mock's usage (12 in, 5 out) at these prices. */
async function call(key: string, model = 'capped-model') {
  const answer = await post('/v1/chat/completions', { model, messages: hello }, { authorization: `Bearer ${key}` })
  const body: any = await answer.json()
  return { status: answer.status, body }
}

async function keyRow(keyId: number) {
  await (await gateway()).meter.drain()
  return db.from('api_keys').where('id', keyId).first()
}

/**
 * Holds the meter's writes for a while: its statement updates the key's row
 * (spend, last use), which this transaction locks until it ends. Calls made
 * meanwhile stay in the meter (the batch being written, then the queue).
 */
async function holdKeyRow(keyId: number) {
  const trx = await db.transaction()
  await trx.from('api_keys').where('id', keyId).forUpdate().first()
  return trx
}

/** The key's cap as /v1/balance reports it (the key is loaded from the database when not cached). */
async function keyReport(key: string) {
  const answer = await fetch(`${baseUrl()}/v1/balance`, { headers: { authorization: `Bearer ${key}` } })
  return ((await answer.json()) as any).key
}

test.group('API keys: spend caps that reset each day, week or month', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'mock', baseUrl: mock.url, models: ['capped-model'] })
    await seedPrice('capped-model', '50', '80')
    return () => mock.stop()
  })

  test('a daily cap refuses once this day\'s spend reaches it, and says when it resets', async ({ assert }) => {
    const user = await seedUser({ balance: '10', key: { spendLimit: '0.0015', spendPeriod: 'day' } })
    assert.equal((await call(user.key)).status, 200)
    assert.equal((await call(user.key)).status, 200)
    const refused = await call(user.key)
    assert.equal(refused.status, 402)
    assert.equal(refused.body.error.code, 'spend_limit_exceeded')
    const tomorrow = new Date(periodBounds('day', Date.now()).end).toISOString()
    assert.include(refused.body.error.message, `for this day (UTC); it resets at ${tomorrow}`)

    const row = await keyRow(user.keyId)
    assert.equal(row.spend_period, 'day')
    assert.equal(Number(row.period_spent), Number(row.spent))
    assert.equal(new Date(row.period_start).getDate(), new Date().getUTCDate())
  })

  test('the next period starts from zero: in memory at the boundary, and from the row after a reload', async ({ assert }) => {
    const user = await seedUser({ balance: '10', key: { spendLimit: '0.0015', spendPeriod: 'day' } })
    await call(user.key)
    await call(user.key)
    assert.equal((await call(user.key)).status, 402)

    // The day ends while the key is cached: the next check starts a new day.
    const cached = (await gateway()).catalog.cachedKey(hashApiKey(user.key))!
    cached.periodEndsAt = Date.now() - 1
    assert.equal((await call(user.key)).status, 200)
    assert.equal(cached.spentPico, 1_000_000_000n, "only today's call counts")

    // Yesterday's spend in the row (a gateway restarted after midnight): the cap counts none of it,
    // while the lifetime spend keeps everything.
    await (await gateway()).meter.drain()
    const yesterday = new Date(periodBounds('day', Date.now()).start - DAY_MS)
    await db.from('api_keys').where('id', user.keyId).update({ period_spent: '0.0015', period_start: yesterday.toISOString().slice(0, 10) })
    await refreshCaches()
    assert.equal((await call(user.key)).status, 200)
    const row = await keyRow(user.keyId)
    assert.equal(Number(row.period_spent), 0.001, 'a new period starts at this call')
    assert.equal(Number(row.spent), 0.004)
  })

  test('rows of an older period (a replayed spill) add to the lifetime spend only', async ({ assert }) => {
    const user = await seedUser({ balance: '10', key: { spendLimit: '1', spendPeriod: 'month' } })
    await call(user.key)
    const meter = (await gateway()).meter
    // Recorded right after the call: both rows may share one batch, and each counts in its own period.
    const late = { ...meterEvent(user.userId, 'capped-model'), apiKeyId: user.keyId, createdAt: new Date(periodBounds('month', Date.now()).start - DAY_MS) }
    meter.record(late)
    const row = await keyRow(user.keyId)
    assert.equal(Number(row.spent), 0.002)
    assert.equal(Number(row.period_spent), 0.001)
    assert.equal(new Date(row.period_start).getMonth(), new Date().getUTCMonth())

    // Alone in its batch, a late row leaves the period alone too.
    meter.record({ ...late, requestId: crypto.randomUUID() })
    const after = await keyRow(user.keyId)
    assert.equal(Number(after.spent), 0.003)
    assert.equal(Number(after.period_spent), 0.001)
  })

  test('a key reloaded while its calls are still being metered keeps their cost against its cap', async ({ assert }) => {
    const user = await seedUser({ balance: '10', key: { spendLimit: '0.0015', spendPeriod: 'day' } })
    const gw = await gateway()
    const hash = hashApiKey(user.key)
    const hold = await holdKeyRow(user.keyId)
    try {
      assert.equal((await call(user.key)).status, 200)
      assert.equal((await call(user.key)).status, 200)
      assert.equal(Number((await db.from('api_keys').where('id', user.keyId).first()).period_spent), 0, 'none committed')

      // Another key is issued: the api_keys NOTIFY makes the gateway drop every cached key.
      await createApiKey({ userRef: user.email, name: 'second' })
      for (let i = 0; i < 300 && gw.catalog.cachedKey(hash) !== undefined; i++) await new Promise((r) => setTimeout(r, 10))
      assert.isUndefined(gw.catalog.cachedKey(hash), 'the key was dropped from the cache')

      // Reloaded from its row (no spend committed yet) plus what the meter holds: over the cap.
      const refused = await call(user.key)
      assert.equal(refused.status, 402)
      assert.equal(refused.body.error.code, 'spend_limit_exceeded')
      assert.equal(gw.catalog.cachedKey(hash)!.spentPico, 2_000_000_000n)
      assert.equal(gw.meter.pendingKeyCost(user.keyId, -Infinity), 2_000_000_000n, 'both calls still in the meter')
    } finally {
      await hold.rollback()
    }

    // Committed: the row has it, the meter no longer, and a reload counts it once.
    const row = await keyRow(user.keyId)
    assert.equal(Number(row.period_spent), 0.002)
    assert.equal(gw.meter.pendingKeyCost(user.keyId, -Infinity), 0n)
    await refreshCaches()
    assert.equal((await keyReport(user.key)).spent, 0.002)
    assert.equal((await call(user.key)).status, 402)
  })

  test('a reloaded key with a period counts the uncommitted calls of this period only; a lifetime cap counts all', async ({ assert }) => {
    const daily = await seedUser({ balance: '10', key: { spendLimit: '1', spendPeriod: 'day' } })
    const lifetime = await seedUser({ balance: '10', key: { spendLimit: '1' } })
    const gw = await gateway()
    const beforeMidnight = new Date(periodBounds('day', Date.now()).start - 1000)
    const holds = [await holdKeyRow(daily.keyId), await holdKeyRow(lifetime.keyId)]
    try {
      for (const user of [daily, lifetime]) {
        assert.equal((await call(user.key)).status, 200)
        // A call begun before midnight and metered now: yesterday's spend (see the meter's statement).
        gw.meter.record({ ...meterEvent(user.userId, 'capped-model'), apiKeyId: user.keyId, createdAt: beforeMidnight })
      }
      // In memory as it was metered: today's call only for the daily cap.
      assert.equal(gw.catalog.cachedKey(hashApiKey(daily.key))!.spentPico, 1_000_000_000n)
      assert.equal(gw.catalog.cachedKey(hashApiKey(lifetime.key))!.spentPico, 2_000_000_000n)

      // Reloaded (/v1/balance would wait for the meter: the catalog is asked directly).
      await refreshCaches()
      assert.equal((await gw.catalog.key(hashApiKey(daily.key)))!.spentPico, 1_000_000_000n, "today's pending call, not yesterday's")
      assert.equal((await gw.catalog.key(hashApiKey(lifetime.key)))!.spentPico, 2_000_000_000n, 'both pending calls')
    } finally {
      for (const hold of holds) await hold.rollback()
    }
    const dailyRow = await keyRow(daily.keyId)
    assert.equal(Number(dailyRow.period_spent), 0.001)
    assert.equal(Number(dailyRow.spent), 0.002)
    await refreshCaches()
    assert.equal((await keyReport(daily.key)).spent, 0.001, 'the same once committed')
    assert.equal((await keyReport(lifetime.key)).spent, 0.002)
  })

  test('a lifetime cap (no period) is unchanged; /v1/balance shows the key\'s cap', async ({ assert }) => {
    const lifetime = await seedUser({ balance: '10', key: { spendLimit: '0.0015' } })
    await call(lifetime.key)
    await call(lifetime.key)
    const refused = await call(lifetime.key)
    assert.equal(refused.status, 402)
    assert.equal(refused.body.error.message, 'This API key reached its spend limit')
    const row = await keyRow(lifetime.keyId)
    assert.isNull(row.spend_period)
    assert.isNull(row.period_start)
    assert.equal(Number(row.period_spent), 0)

    const weekly = await seedUser({ balance: '10', key: { spendLimit: '5', spendPeriod: 'week' } })
    await call(weekly.key)
    const balance: any = await (await fetch(`${baseUrl()}/v1/balance`, { headers: { authorization: `Bearer ${weekly.key}` } })).json()
    assert.deepEqual(balance.key, {
      spend_limit: 5,
      spend_period: 'week',
      spent: 0.001,
      resets_at: new Date(periodBounds('week', Date.now()).end).toISOString().replace(/\.\d{3}Z$/, 'Z'),
    })
    const plain = await seedUser({ balance: '10' })
    const noCap: any = await (await fetch(`${baseUrl()}/v1/balance`, { headers: { authorization: `Bearer ${plain.key}` } })).json()
    assert.notProperty(noCap, 'key')
  })

  test('the portal key form sets a monthly cap; a period without a cap is refused', async ({ assert }) => {
    const seeded = await seedUser({ balance: '10' })
    const client = new PageClient()
    await client.login(seeded.email)
    await client.get('/dashboard/keys')
    const made = await client.post('/dashboard/keys', { name: 'monthly', spend_limit: '20', spend_period: 'month' })
    assert.equal(made.status, 200)
    const key = await ApiKey.query().where('user_id', seeded.userId).where('name', 'monthly').firstOrFail()
    assert.equal(key.spendPeriod, 'month')
    assert.include(htmlText((await client.get('/dashboard/keys')).body), '$20.00 a month')

    await client.post('/dashboard/keys', { name: 'no-cap', spend_period: 'day' })
    assert.include(htmlText((await client.get('/dashboard/keys')).body), 'Set a spend cap for it to reset.')
    assert.isNull(await ApiKey.query().where('user_id', seeded.userId).where('name', 'no-cap').first())
    await client.post('/dashboard/keys', { name: 'odd', spend_limit: '1', spend_period: 'year' })
    assert.isNull(await ApiKey.query().where('user_id', seeded.userId).where('name', 'odd').first())
  })

  test('the panel and key:create set a period too', async ({ assert }) => {
    const { user: admin } = await createUser({ email: `period-admin-${Date.now()}@test.local`, password: 'password123', role: 'admin' })
    const owner = await seedUser()
    const panel = new PanelClient()
    await panel.login(admin.email, 'password123')
    await panel.get('/admin/keys/new')
    const issued = await panel.post('/admin/keys', { user: owner.email, name: 'daily', spendLimit: '3', spendPeriod: 'day' })
    assert.equal(issued.status, 302)
    const key = await ApiKey.query().where('user_id', owner.userId).where('name', 'daily').firstOrFail()
    assert.equal(key.spendPeriod, 'day')
    assert.include(textOf((await panel.get(`/admin/keys/${key.id}`)).html), 'of a $3.00 cap this day (UTC)')

    await panel.get('/admin/keys/new')
    const refused = await panel.post('/admin/keys', { user: owner.email, name: 'period-only', spendPeriod: 'week' })
    assert.include(textOf((await panel.follow(refused)).html), 'A spend cap that resets needs a spend cap')

    const command = await ace.create(KeyCreate, ['--user', owner.email, '--name', 'cli-weekly', '--spend-limit', '2', '--spend-period', 'week'])
    ace.ui.switchMode('raw')
    await command.exec()
    command.assertSucceeded()
    assert.equal((await ApiKey.query().where('name', 'cli-weekly').firstOrFail()).spendPeriod, 'week')
    const bad = await ace.create(KeyCreate, ['--user', owner.email, '--spend-limit', '2', '--spend-period', 'fortnight'])
    await bad.exec()
    assert.equal(bad.exitCode, 1)
  })
})
