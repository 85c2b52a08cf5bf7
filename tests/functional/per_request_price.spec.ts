import { test } from '@japa/runner'
import ace from '@adonisjs/core/services/ace'
import db from '@adonisjs/lucid/services/db'
import { setPrice } from '#actions/set_price'
import { createUser } from '#actions/create_user'
import PriceSet from '#commands/price_set'
import { toPico } from '#gateway/metering/money'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { balanceAndLedger, baseUrl, post, refreshCaches, resetDatabase, seedChannel, seedUser, startMock, usageRows } from '#tests/helpers'
import { PageClient, htmlText } from '#tests/page_client'
import { PanelClient, textOf } from '#tests/panel_client'

const auth = (key: string) => ({ authorization: `Bearer ${key}` })
const hello = (model: string, extra: Record<string, unknown> = {}) => ({ model, messages: [{ role: 'user', content: 'hello there' }], ...extra })

async function run(command: any, args: string[]) {
  const instance = await ace.create(command, args)
  ace.ui.switchMode('raw')
  await instance.exec()
  return instance
}

test.group('A fixed price per request (new-api per-call pricing)', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock({ text: 'priced answer' })
    // Two channels: "every channel failed" means both.
    await seedChannel({ name: 'first', baseUrl: mock.url, models: ['per-call-model', 'call-only-model'], priority: 2 })
    await seedChannel({ name: 'second', baseUrl: mock.url, models: ['per-call-model', 'call-only-model'], priority: 1 })
    // $3 / $15 per 1M tokens, plus $0.01 a request; and a model priced only per request.
    await setPrice({ model: 'per-call-model', input: '3', output: '15', perRequest: '0.01' })
    await setPrice({ model: 'call-only-model', input: '0', output: '0', perRequest: '0.05' })
    await refreshCaches()
    return () => mock.stop()
  })

  test("a chat request pays its tokens plus the per-request price, times the plan's multiplier", async ({ assert }) => {
    const list = await seedUser({ plan: { name: 'list' }, balance: '10' })
    const vip = await seedUser({ plan: { name: 'vip', priceMultiplier: '0.5' }, balance: '10' })
    for (const user of [list, vip]) {
      assert.equal((await post('/v1/chat/completions', hello('per-call-model'), auth(user.key))).status, 200)
      const streamed = await post('/v1/chat/completions', hello('per-call-model', { stream: true }), auth(user.key))
      assert.equal(streamed.status, 200)
      await streamed.text()
    }
    for (const [user, perRequest, ratio] of [[list, 10_000_000_000n, 2n], [vip, 5_000_000_000n, 1n]] as const) {
      const rows = await usageRows(user.userId)
      assert.lengthOf(rows, 2)
      let total = 0n
      for (const row of rows) {
        assert.isAbove(row.prompt_tokens, 0)
        // list: 3,000,000 / 15,000,000 pico a token; vip: half of each (ratio 1 of 2)
        const tokens = (BigInt(row.prompt_tokens) * 1_500_000n + BigInt(row.completion_tokens) * 7_500_000n) * ratio
        assert.equal(toPico(row.cost), tokens + perRequest)
        total += toPico(row.cost)
      }
      const money = await balanceAndLedger(user.userId)
      assert.equal(toPico(money.balance), toPico('10') - total)
      assert.equal(money.balance, money.ledger)
    }
  })

  test('a call that failed on every channel is not charged the per-request price', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const ok = await post('/v1/chat/completions', hello('call-only-model'), auth(user.key))
    assert.equal(ok.status, 200)
    const before = mock.requests.length
    const failed = await post('/v1/chat/completions', hello('call-only-model', { mock: { status: 500 } }), auth(user.key))
    assert.equal(failed.status, 502)
    assert.equal(mock.requests.length - before, 2, 'both channels were tried')
    const rows = await usageRows(user.userId)
    assert.deepEqual(rows.map((r) => [r.status, r.cost]), [[200, '0.050000000000'], [502, '0.000000000000']])
    assert.equal((await balanceAndLedger(user.userId)).balance, '0.950000000000')
  })

  test('a model priced only per request needs money on the balance: an empty one is refused with 402', async ({ assert }) => {
    const broke = await seedUser()
    const refused = await post('/v1/chat/completions', hello('call-only-model'), auth(broke.key))
    assert.equal(refused.status, 402)
    assert.equal(((await refused.json()) as any).error.code, 'insufficient_balance')
    const [row] = await usageRows(broke.userId)
    assert.include(row, { status: 402, cost: '0.000000000000' })
  })

  test('/v1/models (OpenRouter pricing.request), the portal Models page and /pricing show it at the plan price', async ({ assert }) => {
    const vip = await seedUser({ plan: { name: 'models-vip', priceMultiplier: '0.5' } })
    const models: any = await (await fetch(`${baseUrl()}/v1/models`, { headers: auth(vip.key) })).json()
    const callOnly = models.data.find((m: any) => m.id === 'call-only-model')
    assert.deepEqual(callOnly.pricing, { prompt: '0', completion: '0', request: '0.025' })
    assert.equal(models.data.find((m: any) => m.id === 'per-call-model').pricing.request, '0.005')

    const client = new PageClient()
    await client.login(vip.email)
    const page = await client.get('/dashboard/models')
    assert.include(htmlText(/<tr data-model="call-only-model">([\s\S]*?)<\/tr>/.exec(page.body)![1]), '$0.025 per request')
    const pricing = await new PageClient().get('/pricing')
    assert.include(htmlText(/<tr data-model="call-only-model">([\s\S]*?)<\/tr>/.exec(pricing.body)![1]), '$0.05 per request')
  })

  test('price:set --per-request, and the Prices page form: set, shown, edited, refused when malformed', async ({ assert }) => {
    ;(await run(PriceSet, ['--model', 'cli-model', '--input', '1', '--output', '2', '--per-request', '0.002'])).assertSucceeded()
    assert.equal((await db.from('model_prices').where('model_pattern', 'cli-model').first()).per_request, '0.002000')
    const refused = await run(PriceSet, ['--model', 'cli-bad', '--input', '1', '--output', '2', '--per-request', 'abc'])
    assert.equal(refused.exitCode, 1)
    assert.notExists(await db.from('model_prices').where('model_pattern', 'cli-bad').first())

    const { user: admin } = await createUser({ email: `prices-${Date.now()}@test.local`, password: 'password123', role: 'admin' })
    const panel = new PanelClient()
    await panel.login(admin.email, 'password123')
    await panel.get('/admin/prices')
    const bad = await panel.follow(await panel.post('/admin/prices', { model: 'form-model', input: '1', output: '1', perRequest: '-1' }))
    assert.match(bad.html, /id="f-perRequest-error"/)
    await panel.post('/admin/prices', { model: 'form-model', input: '1', output: '1', perRequest: '0.25' })
    const row = await db.from('model_prices').where('model_pattern', 'form-model').first()
    assert.equal(row.per_request, '0.250000')
    assert.include(textOf((await panel.get('/admin/prices')).html), '$0.25')
    assert.include((await panel.get(`/admin/prices?edit=${row.id}`)).html, 'value="0.25"')
    // Emptied on edit: no per-request price any more.
    await panel.post('/admin/prices', { model: 'form-model', input: '1', output: '1', perRequest: '' })
    assert.isNull((await db.from('model_prices').where('model_pattern', 'form-model').first()).per_request)
    const audit = await db.from('audit_log').where('action', 'price.update').where('subject_id', row.id).first()
    assert.include(audit.summary, 'perRequest')
  })
})
