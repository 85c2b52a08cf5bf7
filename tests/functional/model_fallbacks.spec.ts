import { test } from '@japa/runner'
import ace from '@adonisjs/core/services/ace'
import db from '@adonisjs/lucid/services/db'
import Anthropic from '@anthropic-ai/sdk'
import { createUser } from '#actions/create_user'
import { setModelFallbacks } from '#actions/set_model_fallbacks'
import FallbackSet from '#commands/fallback_set'
import { toPico } from '#gateway/metering/money'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { DateTime } from 'luxon'
import { dailyTotals } from '#services/usage_rollup'
import { baseUrl, gateway, meterEvent, post, refreshCaches, resetDatabase, seedChannel, seedPrice, seedUser, startMock, usageRows } from '#tests/helpers'
import { htmlText, PageClient } from '#tests/page_client'
import { PanelClient, textOf } from '#tests/panel_client'

const hello = [{ role: 'user', content: 'hi' }]

test.group('Model fallbacks: when every channel of a model fails', (group) => {
  let down: MockUpstream
  let up: MockUpstream
  let anthropic: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    down = await startMock({ status: 503 })
    up = await startMock({ text: 'from the fallback' })
    anthropic = await startMock({ text: 'claude answers' })
    await seedChannel({ name: 'primary-down', baseUrl: down.url, models: ['big-model', 'big-stream', 'big-claude', 'big-plan', 'big-4xx', 'free-big', 'big-req', 'big-page', 'big-embed', 'big-image'] })
    await seedChannel({ name: 'fallback-up', baseUrl: up.url, models: ['small-model', 'paid-small', 'small-embed', 'small-image'] })
    await seedChannel({ name: 'claude', provider: 'anthropic', baseUrl: anthropic.url, models: ['claude-fallback'] })
    await seedPrice('big-*', '10', '10')
    await seedPrice('small-model', '1', '2')
    return async () => {
      // The failing channel's open circuit is not the next file's business.
      ;(await gateway()).health.reset()
      await down.stop()
      await up.stop()
      await anthropic.stop()
    }
  })

  test('embeddings fall back too: the fallback model answers as itself, its row keeps the model asked for', async ({ assert }) => {
    await setModelFallbacks({ model: 'big-embed', fallbacks: ['small-embed'] })
    await refreshCaches()
    const user = await seedUser({ balance: '10' })
    const answer = await post('/v1/embeddings', { model: 'big-embed', input: ['one', 'two'] }, { authorization: `Bearer ${user.key}` })
    assert.equal(answer.status, 200)
    const body: any = await answer.json()
    assert.lengthOf(body.data, 2)
    assert.equal(body.model, 'small-embed')
    assert.equal(JSON.parse(up.requests.at(-1)!.body).model, 'small-embed')
    const [row] = await usageRows(user.userId)
    assert.include(row, { model: 'small-embed', requested_model: 'big-embed', status: 200 })
  })

  test('images fall back too, billed as the fallback model', async ({ assert }) => {
    await setModelFallbacks({ model: 'big-image', fallbacks: ['small-image'] })
    await refreshCaches()
    const user = await seedUser({ balance: '10' })
    const answer = await post('/v1/images/generations', { model: 'big-image', prompt: 'a cat', n: 1 }, { authorization: `Bearer ${user.key}` })
    assert.equal(answer.status, 200)
    assert.lengthOf(((await answer.json()) as any).data, 1)
    assert.equal(JSON.parse(up.requests.at(-1)!.body).model, 'small-image')
    const [row] = await usageRows(user.userId)
    assert.include(row, { model: 'small-image', requested_model: 'big-image', status: 200, images: 1 })
  })

  test('the fallback answers as itself, billed at its price; the attempts show the failure', async ({ assert }) => {
    await setModelFallbacks({ model: 'big-model', fallbacks: ['small-model'] })
    await refreshCaches()
    const user = await seedUser({ balance: '10' })
    const answer = await post('/v1/chat/completions', { model: 'big-model', messages: hello }, { authorization: `Bearer ${user.key}` })
    assert.equal(answer.status, 200)
    const body: any = await answer.json()
    assert.equal(body.choices[0].message.content, 'from the fallback')
    assert.equal(body.model, 'small-model')
    assert.equal(JSON.parse(up.requests.at(-1)!.body).model, 'small-model')

    const [row] = await usageRows(user.userId)
    assert.equal(row.model, 'small-model')
    assert.equal(row.requested_model, 'big-model', 'the row keeps the model the client asked for')
    assert.equal(row.status, 200)
    assert.equal(toPico(row.cost), BigInt(row.prompt_tokens) * 1_000_000n + BigInt(row.completion_tokens) * 2_000_000n)
    const attempts = await db.from('request_attempts').where('request_id', row.request_id).orderBy('attempt')
    assert.isAbove(attempts.length, 1)
    assert.equal(attempts.at(-1).outcome, 'ok')
    assert.isTrue(attempts.slice(0, -1).every((a: any) => a.outcome !== 'ok'))
  })

  test('a stream falls back too, named as the fallback in every chunk', async ({ assert }) => {
    await setModelFallbacks({ model: 'big-stream', fallbacks: ['small-model'] })
    await refreshCaches()
    const user = await seedUser({ balance: '10' })
    const answer = await post('/v1/chat/completions', { model: 'big-stream', messages: hello, stream: true }, { authorization: `Bearer ${user.key}` })
    assert.equal(answer.status, 200)
    const text = await answer.text()
    const chunks = text.split('\n\n').filter((l) => l.startsWith('data: {')).map((l) => JSON.parse(l.slice(6)))
    assert.isAbove(chunks.length, 1)
    assert.isTrue(chunks.every((c) => c.model === 'small-model'))
    assert.include(chunks.map((c) => c.choices[0]?.delta?.content ?? '').join(''), 'from the fallback')
  })

  test('a fallback on a channel of another format is translated, and an Anthropic client is answered by it', async ({ assert }) => {
    await setModelFallbacks({ model: 'big-claude', fallbacks: ['claude-fallback'] })
    await refreshCaches()
    const user = await seedUser({ balance: '10' })
    const client = new Anthropic({ apiKey: user.key, baseURL: baseUrl(), maxRetries: 0 })
    const message = await client.messages.create({ model: 'big-claude', max_tokens: 50, messages: [{ role: 'user', content: 'hi' }] })
    assert.equal(message.model, 'claude-fallback')
    assert.include((message.content[0] as any).text, 'claude answers')
    assert.equal(anthropic.requests.at(-1)!.path, '/v1/messages')
  })

  test('only models the plan allows, and a priced one only with money; a 4xx is not retried elsewhere', async ({ assert }) => {
    await setModelFallbacks({ model: 'big-plan', fallbacks: ['small-model'] })
    await refreshCaches()
    const narrow = await seedUser({ balance: '10', plan: { name: 'only-big', models: ['big-*'] } })
    const refused = await post('/v1/chat/completions', { model: 'big-plan', messages: hello }, { authorization: `Bearer ${narrow.key}` })
    assert.equal(refused.status, 503, "the plan does not allow small-model: the primary's failure stands")

    // A free model whose fallback is priced: a user without money is not served the priced one.
    await setModelFallbacks({ model: 'free-big', fallbacks: ['small-model'] })
    await refreshCaches()
    const broke = await seedUser()
    const free = await post('/v1/chat/completions', { model: 'free-big', messages: hello }, { authorization: `Bearer ${broke.key}` })
    assert.equal(free.status, 503)
    const rich = await seedUser({ balance: '1' })
    assert.equal((await post('/v1/chat/completions', { model: 'free-big', messages: hello }, { authorization: `Bearer ${rich.key}` })).status, 200)

    await setModelFallbacks({ model: 'big-4xx', fallbacks: ['small-model'] })
    await refreshCaches()
    const user = await seedUser({ balance: '10' })
    const before = up.requests.length
    const bad = await post('/v1/chat/completions', { model: 'big-4xx', messages: 'not a list' }, { authorization: `Bearer ${user.key}` })
    assert.equal(bad.status, 400)
    assert.equal(up.requests.length, before, 'a bad request is the client\'s: no fallback')
  })

  test("a request's own fallbacks: OpenRouter's models and LiteLLM's fallbacks, never sent upstream", async ({ assert }) => {
    const user = await seedUser({ balance: '10' })
    const auth = { authorization: `Bearer ${user.key}` }
    const openrouter = await post('/v1/chat/completions', { model: 'big-req', models: ['big-req', 'small-model'], messages: hello }, auth)
    assert.equal(openrouter.status, 200)
    assert.equal(((await openrouter.json()) as any).model, 'small-model')
    let sent = JSON.parse(up.requests.at(-1)!.body)
    assert.equal(sent.model, 'small-model')
    assert.notProperty(sent, 'models')

    const litellm = await post('/v1/chat/completions', { model: 'big-req', fallbacks: ['small-model'], messages: hello, stream: true }, auth)
    assert.equal(litellm.status, 200)
    assert.include(await litellm.text(), '"model":"small-model"')
    assert.notProperty(JSON.parse(up.requests.at(-1)!.body), 'fallbacks')

    // A healthy first model: the list is stripped from the pass-through body all the same.
    const healthy = await post('/v1/chat/completions', { model: 'small-model', models: ['small-model', 'big-req'], messages: hello, temperature: 0.3 }, auth)
    assert.equal(healthy.status, 200)
    sent = JSON.parse(up.requests.at(-1)!.body)
    assert.deepEqual([sent.model, sent.temperature, 'models' in sent], ['small-model', 0.3, false])

    const bad = await post('/v1/chat/completions', { model: 'big-req', models: 'small-model', messages: hello }, auth)
    assert.equal(bad.status, 400)
    assert.equal(((await bad.json()) as any).error.code, 'invalid_fallbacks')
    const many = await post('/v1/chat/completions', { model: 'big-req', fallbacks: ['a', 'b', 'c', 'd', 'e', 'f'], messages: hello }, auth)
    assert.equal(many.status, 400)
    const rows = await usageRows(user.userId)
    assert.deepEqual(rows.map((r: any) => r.status), [200, 200, 200, 400, 400], 'refusals are metered too')
    assert.deepEqual(
      rows.map((r: any) => [r.model, r.requested_model]),
      [['small-model', 'big-req'], ['small-model', 'big-req'], ['small-model', null], ['big-req', null], ['big-req', null]],
      'requested_model only on the rows a fallback answered'
    )
  })

  test("a Gemini-format request names its own fallbacks the same way (the body's `fallbacks`), translated or not", async ({ assert }) => {
    const user = await seedUser({ balance: '10' })
    const answer = await post(
      '/v1beta/models/big-req:generateContent',
      { contents: [{ role: 'user', parts: [{ text: 'hi' }] }], fallbacks: ['small-model'] },
      { 'x-goog-api-key': user.key }
    )
    assert.equal(answer.status, 200)
    const body = (await answer.json()) as any
    assert.equal(body.candidates[0].content.parts[0].text, 'from the fallback')
    assert.notProperty(JSON.parse(up.requests.at(-1)!.body), 'fallbacks')
    const rows = await usageRows(user.userId)
    assert.deepEqual(rows.map((r: any) => [r.status, r.model, r.requested_model]), [[200, 'small-model', 'big-req']])
  })

  test('the usage pages, their model filter and the CSV exports show the model asked for', async ({ assert }) => {
    await setModelFallbacks({ model: 'big-page', fallbacks: ['small-model'] })
    await refreshCaches()
    const user = await seedUser({ balance: '10' })
    const auth = { authorization: `Bearer ${user.key}` }
    assert.equal((await post('/v1/chat/completions', { model: 'big-page', messages: hello }, auth)).status, 200)
    assert.equal((await post('/v1/chat/completions', { model: 'small-model', messages: hello }, auth)).status, 200)
    const [fallback, direct] = await usageRows(user.userId)
    assert.deepEqual([fallback.model, fallback.requested_model, direct.model, direct.requested_model], ['small-model', 'big-page', 'small-model', null])

    // Portal: the log says which model was asked for; filtering by it finds the row.
    const portal = new PageClient()
    await portal.login(user.email)
    let page = await portal.get('/dashboard/usage')
    assert.lengthOf([...page.body.matchAll(/data-usage-id=/g)], 2)
    assert.lengthOf([...htmlText(page.body).matchAll(/via fallback from big-page/g)], 1)
    page = await portal.get('/dashboard/usage?model=big-page')
    assert.deepEqual([...page.body.matchAll(/data-usage-id="(\d+)"/g)].map((m) => Number(m[1])), [Number(fallback.id)])
    assert.match(page.body, /<option value="big-page"\s+selected/, 'a model only asked for stays shown as the filter')
    page = await portal.get('/dashboard/usage?model=small-model')
    assert.lengthOf([...page.body.matchAll(/data-usage-id=/g)], 2)
    const vi = new PageClient({ 'accept-language': 'vi' })
    await vi.login(user.email)
    assert.include(htmlText((await vi.get('/dashboard/usage')).body), 'dự phòng cho big-page')
    const portalCsv = (await portal.get('/dashboard/usage.csv')).body.trim().split('\r\n')
    assert.match(portalCsv[0], /,requested_model,cache_hit,tags,end_user$/)
    assert.deepEqual(portalCsv.slice(1).map((l) => l.split(',').at(-4)), ['', 'big-page'], 'newest first')

    // Admin: the log, the request's page, the model filter (rows and totals) and the CSV.
    const { user: admin } = await createUser({ email: `fb-usage-admin-${Date.now()}@test.local`, password: 'password123', role: 'admin' })
    const panel = new PanelClient()
    await panel.login(admin.email, 'password123')
    const list = textOf((await panel.get(`/admin/usage?user=${user.userId}`)).html)
    assert.lengthOf([...list.matchAll(/via fallback from big-page/g)], 1)
    assert.include(textOf((await panel.get(`/admin/usage/${fallback.id}`)).html), 'Asked for big-page')
    assert.notInclude(textOf((await panel.get(`/admin/usage/${direct.id}`)).html), 'Asked for')
    const filtered = await panel.get('/admin/usage?model=big-page')
    assert.include(filtered.html, `/admin/usage/${fallback.id}"`)
    assert.notInclude(filtered.html, `/admin/usage/${direct.id}"`)
    assert.match(textOf(filtered.html), /Requests 1\b/, 'the totals count the rows the filter lists')
    const csv = await fetch(`${baseUrl()}/admin/usage/export.csv?user=${user.userId}`, {
      headers: { cookie: [...panel.cookies].map(([k, v]) => `${k}=${v}`).join('; ') },
    })
    const lines = (await csv.text()).trim().split('\n')
    assert.match(lines[0], /,requested_model,cache_hit,tags,end_user$/)
    assert.deepEqual(lines.slice(1).map((l) => [l.split(',')[2], l.split(',').at(-4)]), [[direct.request_id, ''], [fallback.request_id, 'big-page']])
  })

  test("a model's daily totals count the finished days' fallback rows that asked for it, once", async ({ assert }) => {
    const user = await seedUser()
    const meter = (await gateway()).meter
    const today = DateTime.utc().startOf('day')
    const day = today.minus({ days: 3 })
    const event = (model: string, requestedModel: string | null, createdAt: DateTime) => ({
      ...meterEvent(user.userId, model),
      requestedModel,
      createdAt: createdAt.toJSDate(),
    })
    meter.record(event('rollup-served', 'rollup-asked', day.plus({ hours: 3 })))
    meter.record(event('rollup-asked', null, day.plus({ hours: 4 })))
    meter.record(event('rollup-served', 'rollup-asked', today))
    await meter.drain()
    const sum = (days: Array<{ requests: number }>) => days.reduce((n, d) => n + d.requests, 0)
    const asked = await dailyTotals(day, today, { dim: 'model', key: 'rollup-asked' })
    assert.deepEqual([asked[0].requests, asked.at(-1)!.requests], [2, 1], 'a finished day from the rollups, today live')
    assert.equal(sum(await dailyTotals(day, today, { dim: 'model', key: 'rollup-served' })), 2)
    assert.equal(sum(await dailyTotals(day, day)), 2, 'unfiltered, a fallback row counts once')
  })

  test('the panel and fallback:set set and remove fallbacks; bad lists are refused', async ({ assert }) => {
    await createUser({ email: `fb-admin-${Date.now()}@test.local`, password: 'password123', role: 'admin' }).then(async ({ user }) => {
      const panel = new PanelClient()
      await panel.login(user.email, 'password123')
      await panel.get('/admin/channels')
      const set = await panel.post('/admin/fallbacks', { model: 'gpt-4o*', fallbacks: 'claude-sonnet-4, deepseek-chat' })
      assert.equal(set.status, 302)
      const page = await panel.get('/admin/channels')
      assert.include(textOf(page.html), 'claude-sonnet-4 → deepseek-chat')
      const self = await panel.post('/admin/fallbacks', { model: 'gpt-4o*', fallbacks: 'gpt-4o-mini' })
      assert.include(textOf((await panel.follow(self)).html), 'is matched by "gpt-4o*" itself')
      await panel.get('/admin/channels')
      await panel.post('/admin/fallbacks/delete', { model: 'gpt-4o*' })
      assert.isNull(await db.from('model_fallbacks').where('model_pattern', 'gpt-4o*').first())
    })
    const run = async (args: string[]) => {
      const command = await ace.create(FallbackSet, args)
      ace.ui.switchMode('raw')
      await command.exec()
      return command
    }
    ;(await run(['o3', '--to', 'o4-mini,gpt-4.1'])).assertSucceeded()
    assert.deepEqual((await db.from('model_fallbacks').where('model_pattern', 'o3').first()).fallbacks, ['o4-mini', 'gpt-4.1'])
    assert.equal((await run(['o3', '--to', 'gpt-*'])).exitCode, 1, 'a glob is not a fallback')
    ;(await run(['o3', '--remove'])).assertSucceeded()
    assert.equal((await run(['o3', '--remove'])).exitCode, 1)
  })

  test("a fallback's cost counts on the key's budget for the model asked for (model_max_budget), not the fallback's", async ({ assert }) => {
    await setModelFallbacks({ model: 'big-model', fallbacks: ['small-model'] })
    await refreshCaches()
    const user = await seedUser({ balance: '10', key: { modelLimits: { 'big-model': { budget: '0.00001' } } } })
    const answer = await post('/v1/chat/completions', { model: 'big-model', messages: hello }, { authorization: `Bearer ${user.key}` })
    assert.equal(answer.status, 200)
    const [row] = await usageRows(user.userId)
    assert.include(row, { model: 'small-model', requested_model: 'big-model' })
    const spend = await db.from('api_key_model_spend').where('api_key_id', user.keyId)
    assert.deepEqual(spend.map((r) => [r.model, r.spent]), [['big-model', row.cost]])
    const refused = await post('/v1/chat/completions', { model: 'big-model', messages: hello }, { authorization: `Bearer ${user.key}` })
    assert.equal(refused.status, 402)
    assert.include(((await refused.json()) as any).error.message, "model 'big-model'")
  })
})
