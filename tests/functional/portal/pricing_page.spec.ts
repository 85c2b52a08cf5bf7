import { test } from '@japa/runner'
import { createPlan } from '#actions/create_plan'
import { setDefaultPlan } from '#actions/set_default_plan'
import Plan from '#models/plan'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { refreshCaches, resetDatabase, seedChannel, seedPrice, seedUser, startMock } from '#tests/helpers'
import { PageClient, htmlText } from '#tests/page_client'

test.group('Public pricing page', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'pricing-mock', baseUrl: mock.url, models: ['gpt-4o', 'claude-sonnet-4', 'deepseek-chat'] })
    await seedPrice('gpt-4o', '2.5', '10')
    await seedPrice('claude-sonnet-4', '3', '15')
    return () => mock.stop()
  })

  test('anyone sees the models and list prices; a search narrows them', async ({ assert }) => {
    const page = await new PageClient().get('/pricing')
    assert.equal(page.status, 200)
    const text = htmlText(page.body)
    for (const model of ['gpt-4o', 'claude-sonnet-4', 'deepseek-chat']) assert.include(page.body, `data-model="${model}"`)
    assert.include(text, '$2.5')
    assert.include(text, '$15')
    assert.include(text, 'Free')
    assert.include(page.body, 'href="/register"')
    const found = await new PageClient().get('/pricing?q=CLAUDE')
    assert.include(found.body, 'data-model="claude-sonnet-4"')
    assert.notInclude(found.body, 'data-model="gpt-4o"')
    assert.include(htmlText(found.body), '1 model of 3')
    // The docs and status pages link to it.
    assert.include((await new PageClient().get('/docs')).body, 'href="/pricing"')
  })

  test("visitors see the default plan's models at its prices; a signed-in user sees their own plan's", async ({ assert }) => {
    await createPlan({ name: 'starter', models: ['gpt-*', 'claude-*'], priceMultiplier: '0.5' })
    await setDefaultPlan((await Plan.findByOrFail('name', 'starter')).id)
    await refreshCaches()
    const visitor = await new PageClient().get('/pricing')
    assert.include(htmlText(visitor.body), 'on the starter plan, the plan new accounts get')
    assert.include(visitor.body, 'data-model="gpt-4o"')
    assert.notInclude(visitor.body, 'data-model="deepseek-chat"')
    assert.include(htmlText(visitor.body), '$1.25')
    assert.include(visitor.body, 'data-multiplier="0.5"')

    const user = await seedUser({ plan: { name: 'pro', models: ['deepseek-*', 'gpt-*'] } })
    const client = new PageClient()
    await client.login(user.email)
    const mine = await client.get('/pricing')
    const text = htmlText(mine.body)
    assert.match(text, /Every model your plan \(pro-\d+\) allows/)
    assert.include(mine.body, 'data-model="deepseek-chat"')
    assert.notInclude(mine.body, 'data-model="claude-sonnet-4"')
    assert.include(text, '$2.5')
    assert.notInclude(mine.body, 'href="/register"')
  })
})
