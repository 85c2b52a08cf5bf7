import { test } from '@japa/runner'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { resetChannelSpeeds } from '#gateway/routing/channel_speed'
import { gateway, post, resetDatabase, seedChannel, seedPrice, seedUser, startMock, usageRows } from '#tests/helpers'

/**
 * OpenRouter's provider routing (the `provider` object: order, only, ignore,
 * allow_fallbacks, sort, max_price) and its model variants (`:nitro`,
 * `:floor`, `:exacto`, `:thinking`), applied to the gateway's own channels:
 * https://openrouter.ai/docs/features/provider-routing
 */
test.group('OpenRouter provider preferences over channels', (group) => {
  let alpha: MockUpstream
  let beta: MockUpstream
  let down: MockUpstream
  let router: MockUpstream
  let key: string
  let userId: number

  group.setup(async () => {
    await resetDatabase()
    resetChannelSpeeds()
    // alpha, first by priority, is the slow one: 150 ms before each answer (30 words: its throughput is measured)
    alpha = await startMock({ text: `alpha ${'word '.repeat(30)}`.trim(), latencyMs: 150 })
    beta = await startMock({ text: `beta ${'word '.repeat(30)}`.trim() })
    down = await startMock({ status: 503 })
    router = await startMock({ text: 'router' })
    await seedChannel({ name: 'Alpha', provider: 'openai', baseUrl: alpha.url, models: ['pref-model', 'priced'], priority: 2 })
    await seedChannel({ name: 'beta', provider: 'custom', baseUrl: beta.url, models: ['pref-model', 'priced'], priority: 1 })
    await seedChannel({ name: 'gamma', provider: 'custom', baseUrl: down.url, models: ['pref-model'], priority: 0 })
    await seedChannel({ name: 'or', provider: 'openrouter', baseUrl: router.url, models: ['or-model'] })
    await seedPrice('priced', '3', '15')
    const user = await seedUser({ balance: '10' })
    key = user.key
    userId = user.userId
    return async () => {
      ;(await gateway()).health.reset()
      for (const mock of [alpha, beta, down, router]) await mock.stop()
    }
  })

  const hello = [{ role: 'user', content: 'hi' }]

  async function ask(model: string, extra: Record<string, unknown> = {}) {
    const answer = await post('/v1/chat/completions', { model, messages: hello, ...extra }, { authorization: `Bearer ${key}` })
    const body: any = await answer.json()
    const content: string | undefined = body.choices?.[0]?.message?.content
    return { status: answer.status, body, text: content?.split(' ')[0] }
  }

  test('only, ignore and order choose among the channels by name or kind; the route’s order otherwise', async ({ assert }) => {
    assert.equal((await ask('pref-model')).text, 'alpha')
    assert.equal((await ask('pref-model', { provider: { only: ['beta'] } })).text, 'beta')
    assert.equal((await ask('pref-model', { provider: { ignore: ['openai'] } })).text, 'beta')
    assert.equal((await ask('pref-model', { provider: { order: ['BETA', 'alpha'] } })).text, 'beta')
    assert.equal((await ask('pref-model', { provider: { only: ['openai'] } })).text, 'alpha')
    // The provider object never reaches a channel that is not OpenRouter's.
    assert.notProperty(JSON.parse(beta.lastRequest()!.body), 'provider')
  })

  test('order tries its channels first and then the rest; allow_fallbacks: false stops at its own', async ({ assert }) => {
    const before = down.requests.length
    assert.equal((await ask('pref-model', { provider: { order: ['gamma'] } })).text, 'alpha')
    assert.equal(down.requests.length, before + 1)
    const stopped = await ask('pref-model', { provider: { order: ['gamma'], allow_fallbacks: false } })
    assert.isAtLeast(stopped.status, 500)
    assert.equal(down.requests.length, before + 2)
  })

  test('no channel left is OpenRouter’s 404 "No allowed providers", in the endpoint’s format; a malformed object a 400', async ({ assert }) => {
    const none = await ask('pref-model', { provider: { only: ['nobody'] } })
    assert.equal(none.status, 404)
    assert.equal(none.body.error.message, 'No allowed providers are available for the selected model.')
    assert.equal(none.body.error.code, 'no_allowed_providers')
    const anthropic = await post('/v1/messages', { model: 'pref-model', max_tokens: 10, messages: hello, provider: { ignore: ['alpha', 'beta', 'gamma'] } }, { 'x-api-key': key, 'anthropic-version': '2023-06-01' })
    assert.equal(anthropic.status, 404)
    const body: any = await anthropic.json()
    assert.equal(body.type, 'error')
    assert.equal(body.error.message, 'No allowed providers are available for the selected model.')
    const bad = await ask('pref-model', { provider: { only: 'beta' } })
    assert.equal(bad.status, 400)
    assert.equal(bad.body.error.param, 'provider')
    // Refused before any upstream: a row with no cost.
    const rows = await usageRows(userId)
    assert.include(rows.at(-1), { status: 400 })
  })

  test('max_price against the model’s price: dearer is refused, within it served', async ({ assert }) => {
    const over = await ask('priced', { provider: { max_price: { prompt: 1, completion: 20 } } })
    assert.equal(over.status, 404)
    assert.equal((await ask('priced', { provider: { max_price: { prompt: 3, completion: 15 } } })).status, 200)
    // An unpriced model is within any price.
    assert.equal((await ask('pref-model', { provider: { max_price: { prompt: 0 } } })).status, 200)
  })

  test('max_price holds for each model of the route: a dearer fallback is not served, a cheaper one is', async ({ assert }) => {
    await seedChannel({ name: 'cheap-down', provider: 'custom', baseUrl: down.url, models: ['cheap-down'] })
    await seedChannel({ name: 'cheap-up', provider: 'custom', baseUrl: beta.url, models: ['cheap-up'] })
    await seedPrice('cheap-down', '1', '1')
    await seedPrice('cheap-up', '1', '1')
    const before = beta.requests.length
    // The model asked for is within the price and down; its fallback ('priced', 3 USD) is over it.
    const dear = await ask('cheap-down', { models: ['priced'], provider: { max_price: { prompt: 2 } } })
    assert.isAtLeast(dear.status, 500)
    assert.notEqual(dear.body.model, 'priced')
    assert.equal(beta.requests.length, before)
    // The model asked for is over the price; its fallback within it answers.
    const cheap = await ask('priced', { models: ['cheap-up'], provider: { max_price: { prompt: 2 } } })
    assert.equal(cheap.status, 200)
    assert.equal(cheap.body.model, 'cheap-up')
    // Every model over the price: OpenRouter's 404.
    assert.equal((await ask('priced', { models: ['priced'], provider: { max_price: { prompt: 0.5 } } })).status, 404)
  })

  test('a hostile provider object is a 400 in the endpoint’s format: blank or non-numeric prices, prototype keys, huge lists', async ({ assert }) => {
    for (const provider of [
      { max_price: { prompt: '' } },
      { max_price: { prompt: ' ' } },
      { max_price: { prompt: '0x10' } },
      { max_price: { prompt: 'NaN' } },
      { max_price: { prompt: -1 } },
      { max_price: { completion: '1e400' } },
      { only: Array.from({ length: 51 }, (_, i) => `p${i}`) },
      { order: [1] },
      { sort: { by: 'fastest' } },
    ]) {
      const refused = await ask('pref-model', { provider })
      assert.equal(refused.status, 400, JSON.stringify(provider))
      assert.equal(refused.body.error.param, 'provider')
    }
    // Prototype keys name no channel (and no kind): nothing left.
    for (const slug of ['__proto__', 'constructor', 'toString', 'hasOwnProperty']) {
      assert.equal((await ask('pref-model', { provider: { only: [slug] } })).status, 404, slug)
    }
    const parsed = JSON.parse('{"model":"pref-model","messages":[{"role":"user","content":"hi"}],"provider":{"__proto__":{"only":["nobody"]},"max_price":{"__proto__":{"prompt":0}}}}')
    const answer = await post('/v1/chat/completions', JSON.stringify(parsed), { authorization: `Bearer ${key}` })
    assert.equal(answer.status, 200)
    await answer.text()
  })

  test(':nitro and sort by throughput or latency order by the gateway’s own measures; the row is the base model’s', async ({ assert }) => {
    // Both channels measured: alpha waits 150 ms before answering, beta does not.
    for (let i = 0; i < 2; i++) {
      assert.equal((await ask('pref-model', { provider: { only: ['beta'] } })).text, 'beta')
      assert.equal((await ask('pref-model', { provider: { only: ['alpha'] } })).text, 'alpha')
    }
    await usageRows(userId)
    assert.equal((await ask('pref-model')).text, 'alpha')
    assert.equal((await ask('pref-model', { provider: { sort: 'latency' } })).text, 'beta')
    assert.equal((await ask('pref-model:nitro')).text, 'beta')
    assert.equal((await ask('pref-model', { provider: { sort: { by: 'throughput' } } })).text, 'beta')
    // price: every channel bills the model's price, the route's order stays.
    assert.equal((await ask('pref-model', { provider: { sort: 'price' } })).text, 'alpha')
    const rows = await usageRows(userId)
    const nitro = rows.find((r: any) => r.requested_model === 'pref-model:nitro')
    assert.include(nitro, { model: 'pref-model', status: 200 })
    // :floor and :exacto are the base model on its channels, in the route's order.
    assert.equal((await ask('pref-model:floor')).text, 'alpha')
    const exacto = await ask('pref-model:exacto')
    assert.equal(exacto.status, 200)
    assert.equal(exacto.body.model, 'pref-model:exacto')
  })

  test('an OpenRouter channel gets the provider object and a variant as sent', async ({ assert }) => {
    const body = JSON.stringify({ model: 'or-model:nitro', messages: hello, provider: { only: ['anthropic'], sort: 'price' } })
    await seedChannel({ name: 'or-variant', provider: 'openrouter', baseUrl: router.url, models: ['or-model:nitro'] })
    const answer = await post('/v1/chat/completions', body, { authorization: `Bearer ${key}` })
    assert.equal(answer.status, 200)
    assert.equal(router.lastRequest()!.body, body)
    const kept = await ask('or-model', { provider: { only: ['anthropic'] } })
    assert.equal(kept.status, 200)
    assert.deepEqual(JSON.parse(router.lastRequest()!.body).provider, { only: ['anthropic'] })
  })
})
