import { test } from '@japa/runner'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { anthropic } from '#tests/clients'
import { baseUrl, openai, post, resetDatabase, seedChannel, seedPrice, seedUser, startMock } from '#tests/helpers'

const get = (path: string, key?: string) =>
  fetch(`${baseUrl()}${path}`, { headers: key ? { authorization: `Bearer ${key}` } : {} })

test.group('GET /v1/models, /v1/usage, /v1/balance, /api/status', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'mock', provider: 'openrouter', baseUrl: mock.url, models: ['gpt-4o', 'deepseek-chat', 'nex/*'], modelMapping: { 'gpt-alias': 'gpt-4o' } })
    await seedPrice('gpt-4o', '2', '8')
    return () => mock.stop()
  })

  test('models: the concrete models the plan allows, in OpenAI list shape', async ({ assert }) => {
    const user = await seedUser({ plan: { name: 'gpt-only', models: ['gpt-*'] } })
    const body: any = await (await get('/v1/models', user.key)).json()
    assert.equal(body.object, 'list')
    assert.sameMembers(body.data.map((m: any) => m.id), ['gpt-4o', 'gpt-alias'])
    assert.include(body.data[0], { object: 'model' })
    assert.equal((await get('/v1/models')).status, 401)
  })

  test("models carry OpenRouter's pricing (USD per token, the plan's prices) and the context length when known", async ({ assert }) => {
    const user = await seedUser({ plan: { name: 'half-price', models: ['gpt-*', 'deepseek-*'], priceMultiplier: '0.5' } })
    const body: any = await (await get('/v1/models', user.key)).json()
    const gpt = body.data.find((m: any) => m.id === 'gpt-4o')
    assert.deepEqual(gpt.pricing, { prompt: '0.000001', completion: '0.000004' })
    assert.equal(gpt.context_length, 128000)
    const free = body.data.find((m: any) => m.id === 'deepseek-chat')
    assert.deepEqual(free.pricing, { prompt: '0', completion: '0' })
    const one: any = await (await get('/v1/models/gpt-4o', user.key)).json()
    assert.deepEqual(one.pricing, gpt.pricing)
  })

  test('models through the OpenAI SDK: list, and retrieve a listed model, one a glob serves, an unknown one', async ({ assert }) => {
    const user = await seedUser({ plan: { name: 'sdk-openai', models: ['gpt-*', 'nex/*'] } })
    const client = openai(user.key)
    const listed = []
    for await (const model of client.models.list()) listed.push(model.id)
    assert.sameMembers(listed, ['gpt-4o', 'gpt-alias'])

    assert.deepInclude(await client.models.retrieve('gpt-4o'), { id: 'gpt-4o', object: 'model', owned_by: 'openrouter' })
    // Not listed (a glob), so absent from the list, yet served: it can be retrieved.
    assert.deepInclude(await client.models.retrieve('nex/coder-1'), { id: 'nex/coder-1', object: 'model' })
    const missing = await client.models.retrieve('gpt-unserved').catch((error) => error)
    assert.equal(missing.status, 404)
    assert.equal(missing.error.code, 'model_not_found')
    const forbidden = await client.models.retrieve('deepseek-chat').catch((error) => error)
    assert.equal(forbidden.status, 403)
  })

  test('models through the Anthropic SDK: its shape (anthropic-version decides), its pager, retrieve', async ({ assert }) => {
    const user = await seedUser({ plan: { name: 'sdk-anthropic', models: ['gpt-*', 'deepseek-*'] } })
    const client = anthropic(user.key)
    const listed = []
    for await (const model of client.models.list()) {
      assert.equal(model.type, 'model')
      assert.equal(model.display_name, model.id)
      assert.match(model.created_at, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/)
      listed.push(model.id)
    }
    assert.sameMembers(listed, ['gpt-4o', 'gpt-alias', 'deepseek-chat'])
    const page: any = await (await fetch(`${baseUrl()}/v1/models`, { headers: { 'x-api-key': user.key, 'anthropic-version': '2023-06-01' } })).json()
    assert.deepInclude(page, { has_more: false, first_id: page.data[0].id, last_id: page.data.at(-1).id })
    assert.notProperty(page, 'object')

    assert.include(await client.models.retrieve('deepseek-chat'), { type: 'model', id: 'deepseek-chat', display_name: 'deepseek-chat' })
  })

  test('usage: seed 000 shape for the current month, by model', async ({ assert }) => {
    const user = await seedUser({ plan: { name: 'quota', monthlyInputTokens: 1000000, monthlyOutputTokens: 500, models: ['*'] }, balance: '5' })
    const auth = { authorization: `Bearer ${user.key}` }
    await post('/v1/chat/completions', { model: 'gpt-4o', messages: [{ role: 'user', content: 'a' }] }, auth)
    await post('/v1/chat/completions', { model: 'gpt-4o', messages: [{ role: 'user', content: 'a' }, { role: 'assistant', content: 'b' }, { role: 'user', content: 'c' }] }, auth)
    await post('/v1/chat/completions', { model: 'deepseek-chat', messages: [{ role: 'user', content: 'a' }] }, auth)
    const usage: any = await (await get('/v1/usage', user.key)).json()
    assert.equal(usage.object, 'usage')
    const now = new Date()
    assert.equal(usage.period.start, `${now.getUTCFullYear()}-${String(now.getUTCMonth() + 1).padStart(2, '0')}-01T00:00:00Z`)
    assert.match(usage.period.end, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/)
    assert.deepEqual(usage.totals, { input_tokens: 12 + 16 + 12, output_tokens: 15, total_tokens: 55 })
    assert.deepEqual(usage.plan_limits, { monthly_input_tokens: 1000000, monthly_output_tokens: 500, allowed_models: ['*'] })
    assert.deepEqual(usage.by_model, [
      { model: 'deepseek-chat', provider: 'openrouter', inp: 12, out: 5, total: 17 },
      { model: 'gpt-4o', provider: 'openrouter', inp: 28, out: 10, total: 38 },
    ])
  })

  test('balance: seed 003 shape, spent = charges', async ({ assert }) => {
    const user = await seedUser({ balance: '42.5' })
    await post('/v1/chat/completions', { model: 'gpt-4o', messages: [{ role: 'user', content: 'a' }] }, { authorization: `Bearer ${user.key}` })
    const balance: any = await (await get('/v1/balance', user.key)).json()
    // 12 x $2/M + 5 x $8/M = $0.000064
    assert.equal(balance.currency, 'USD')
    assert.closeTo(balance.balance, 42.499936, 1e-9)
    assert.closeTo(balance.total_spent, 0.000064, 1e-12)
    assert.match(balance.last_updated, /Z$/)
  })

  test("OpenAI's old billing endpoints (NextChat's balance check): hard limit - usage / 100 = the balance, or the key's cap left", async ({ assert }) => {
    const user = await seedUser({ balance: '42.5' })
    for (let i = 0; i < 2; i++) await post('/v1/chat/completions', { model: 'gpt-4o', messages: [{ role: 'user', content: 'a' }] }, { authorization: `Bearer ${user.key}` })
    const subscription: any = await (await get('/v1/dashboard/billing/subscription', user.key)).json()
    const usage: any = await (await get('/v1/dashboard/billing/usage?start_date=2026-11-01&end_date=2026-12-31', user.key)).json()
    assert.equal(subscription.object, 'billing_subscription')
    assert.equal(subscription.access_until, 0)
    assert.equal(usage.object, 'list')
    // 2 calls x (12 x $2/M + 5 x $8/M) = $0.000128 = 0.0128 cents
    assert.closeTo(usage.total_usage, 0.0128, 1e-9)
    assert.closeTo(subscription.hard_limit_usd - usage.total_usage / 100, 42.499872, 1e-9)

    const capped = await seedUser({ balance: '10', key: { spendLimit: '3' } })
    await post('/v1/chat/completions', { model: 'gpt-4o', messages: [{ role: 'user', content: 'a' }] }, { authorization: `Bearer ${capped.key}` })
    const capSubscription: any = await (await get('/v1/dashboard/billing/subscription', capped.key)).json()
    const capUsage: any = await (await get('/v1/dashboard/billing/usage', capped.key)).json()
    assert.equal(capSubscription.hard_limit_usd, 3)
    assert.closeTo(capUsage.total_usage, 0.0064, 1e-9)
    assert.equal((await get('/v1/dashboard/billing/usage')).status, 401)
  })

  test('status: version, uptime and database health without a key', async ({ assert }) => {
    const response = await get('/api/status')
    assert.equal(response.status, 200)
    const body: any = await response.json()
    assert.equal(body.status, 'ok')
    assert.equal(body.database.status, 'ok')
    assert.isString(body.version)
    assert.isNumber(body.uptime_seconds)
    assert.isTrue(body.ready)
    const head = await fetch(`${baseUrl()}/`, { method: 'HEAD' })
    assert.equal(head.status, 200)
  })
})

test.group('GET /v1/models with channels that serve globs only', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'claude', provider: 'anthropic', baseUrl: mock.url, models: ['claude-*'] })
    await seedPrice('claude-sonnet-4-5', '3', '15')
    await seedPrice('claude-*', '1', '1')
    // Priced, but no channel serves it: not listed.
    await seedPrice('gpt-unserved', '1', '1')
    return () => mock.stop()
  })

  test('the priced model names a glob serves are listed, in OpenAI, Anthropic and Gemini shapes', async ({ assert }) => {
    const user = await seedUser()
    const listed = []
    for await (const model of openai(user.key).models.list()) listed.push(model.id)
    assert.deepEqual(listed, ['claude-sonnet-4-5'])
    const anthropicListed = []
    for await (const model of anthropic(user.key).models.list()) anthropicListed.push(model.id)
    assert.deepEqual(anthropicListed, ['claude-sonnet-4-5'])
    const gemini: any = await (await fetch(`${baseUrl()}/v1beta/models`, { headers: { 'x-goog-api-key': user.key } })).json()
    assert.deepEqual(gemini.models.map((m: any) => m.name), ['models/claude-sonnet-4-5'])
    const limited = await seedUser({ plan: { name: 'no-claude', models: ['gpt-*'] } })
    const none: any = await (await get('/v1/models', limited.key)).json()
    assert.deepEqual(none.data, [])
  })
})
