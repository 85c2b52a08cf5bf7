import { test } from '@japa/runner'
import ace from '@adonisjs/core/services/ace'
import db from '@adonisjs/lucid/services/db'
import Plan from '#models/plan'
import { createUser } from '#actions/create_user'
import PlanCreate from '#commands/plan_create'
import { toPico } from '#gateway/metering/money'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { balanceAndLedger, post, resetDatabase, seedChannel, seedPrice, seedUser, startMock, usageRows } from '#tests/helpers'
import { PageClient, htmlText } from '#tests/page_client'
import { PanelClient, textOf } from '#tests/panel_client'

const hello = { model: 'priced-model', messages: [{ role: 'user', content: 'hello there' }] }

async function call(key: string) {
  const answer = await post('/v1/chat/completions', hello, { authorization: `Bearer ${key}` })
  if (answer.status !== 200) throw new Error(`call failed: ${answer.status} ${JSON.stringify(answer.body)}`)
  return answer
}

async function run(command: any, args: string[]) {
  const instance = await ace.create(command, args)
  ace.ui.switchMode('raw')
  await instance.exec()
  return instance
}

test.group('Plans: price multipliers (new-api group ratios)', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock({ text: 'priced answer' })
    await seedChannel({ name: 'mock', baseUrl: mock.url, models: ['priced-model'] })
    // $3 / $15 per 1M tokens: 3,000,000 and 15,000,000 pico-USD per token.
    await seedPrice('priced-model', '3', '15')
    return () => mock.stop()
  })

  test('users pay the list prices times their plan multiplier, to the pico; rows, ledger and balance agree', async ({ assert }) => {
    const list = await seedUser({ plan: { name: 'list' }, balance: '10' })
    const vip = await seedUser({ plan: { name: 'vip', priceMultiplier: '0.5' }, balance: '10' })
    const retail = await seedUser({ plan: { name: 'retail', priceMultiplier: '1.3333' }, balance: '10' })
    await call(list.key)
    await call(vip.key)
    await call(retail.key)

    const [listRow] = await usageRows(list.userId)
    const [vipRow] = await usageRows(vip.userId)
    const [retailRow] = await usageRows(retail.userId)
    assert.isAbove(listRow.prompt_tokens, 0)
    assert.deepEqual([vipRow.prompt_tokens, vipRow.completion_tokens], [listRow.prompt_tokens, listRow.completion_tokens])
    const listCost = toPico(listRow.cost)
    assert.equal(listCost, BigInt(listRow.prompt_tokens) * 3_000_000n + BigInt(listRow.completion_tokens) * 15_000_000n)
    assert.equal(toPico(vipRow.cost) * 2n, listCost)
    // 1.3333 x: 3,999,900 and 19,999,500 pico per token, exactly.
    assert.equal(toPico(retailRow.cost), BigInt(listRow.prompt_tokens) * 3_999_900n + BigInt(listRow.completion_tokens) * 19_999_500n)

    for (const user of [list, vip, retail]) {
      const money = await balanceAndLedger(user.userId)
      assert.equal(money.balance, money.ledger)
    }
    const vipMoney = await balanceAndLedger(vip.userId)
    assert.equal(toPico(vipMoney.balance), toPico('10') - toPico(vipRow.cost))
  })

  test('a changed multiplier applies to the next request, without a restart or a cache refresh by hand', async ({ assert }) => {
    const user = await seedUser({ plan: { name: 'moving' }, balance: '10' })
    await call(user.key)
    const plan = await Plan.query().where('name', 'like', 'moving-%').firstOrFail()
    await createUser({ email: `mult-admin-${Date.now()}@test.local`, password: 'password123', role: 'admin' }).then(async ({ user: admin }) => {
      const panel = new PanelClient()
      await panel.login(admin.email, 'password123')
      await panel.get(`/admin/plans/${plan.id}/edit`)
      const saved = await panel.post(`/admin/plans/${plan.id}`, { name: plan.name, models: '*', priceMultiplier: '0.25', isDefault: '0' })
      assert.equal(saved.status, 302)
      const index = await panel.get('/admin/plans')
      assert.include(textOf(index.html), '×0.25')
    })
    assert.equal((await Plan.findOrFail(plan.id)).priceMultiplier, '0.2500')

    let rows: any[] = []
    for (let i = 0; i < 40; i++) {
      await call(user.key)
      rows = await usageRows(user.userId)
      if (toPico(rows.at(-1).cost) * 4n === toPico(rows[0].cost)) break
      await new Promise((r) => setTimeout(r, 50))
    }
    assert.equal(toPico(rows.at(-1).cost) * 4n, toPico(rows[0].cost), 'the plan NOTIFY reached the gateway')
    const audit = await db.from('audit_log').where('action', 'plan.update').where('subject_id', plan.id).first()
    assert.include(audit.summary, 'priceMultiplier: 1 → 0.25')
  })

  test('the portal Models page shows the prices the user pays, and says so', async ({ assert }) => {
    const vip = await seedUser({ plan: { name: 'models-vip', priceMultiplier: '0.8' } })
    const client = new PageClient()
    await client.login(vip.email)
    const page = await client.get('/dashboard/models')
    const row = /<tr data-model="priced-model">([\s\S]*?)<\/tr>/.exec(page.body)![1]
    assert.include(htmlText(row), '$2.40')
    assert.include(htmlText(row), '$12.00')
    assert.include(htmlText(page.body), '0.8× the list prices')

    const plain = await seedUser({ plan: { name: 'models-list' } })
    const other = new PageClient()
    await other.login(plain.email)
    const listPage = await other.get('/dashboard/models')
    assert.include(htmlText(/<tr data-model="priced-model">([\s\S]*?)<\/tr>/.exec(listPage.body)![1]), '$3.00')
    assert.notInclude(listPage.body, 'data-multiplier')
  })

  test('plan:create --price-multiplier, and the values the form and the command refuse', async ({ assert }) => {
    ;(await run(PlanCreate, ['--name', 'cli-tier', '--price-multiplier', '0.85'])).assertSucceeded()
    assert.equal((await Plan.findByOrFail('name', 'cli-tier')).priceMultiplier, '0.8500')
    for (const bad of ['0', '-1', '1000.5', 'abc', '0.00001', '1e3', '0.0000']) {
      const refused = await run(PlanCreate, ['--name', `bad-${bad}`, '--price-multiplier', bad])
      assert.equal(refused.exitCode, 1, bad)
      assert.isNull(await Plan.findBy('name', `bad-${bad}`), bad)
    }
    ;(await run(PlanCreate, ['--name', 'max-tier', '--price-multiplier', '1000'])).assertSucceeded()

    const { user: admin } = await createUser({ email: `mult-form-${Date.now()}@test.local`, password: 'password123', role: 'admin' })
    const panel = new PanelClient()
    await panel.login(admin.email, 'password123')
    await panel.get('/admin/plans/new')
    const refused = await panel.post('/admin/plans', { name: 'form-bad', models: '*', priceMultiplier: '0' })
    const form = await panel.follow(refused)
    assert.include(textOf(form.html), 'Price multiplier must be a number from 0.0001 to 1000')
    assert.isNull(await Plan.findBy('name', 'form-bad'))
  })
})
