import { test } from '@japa/runner'
import db from '@adonisjs/lucid/services/db'
import { createUser } from '#actions/create_user'
import { cut } from '#gateway/logs/request_log_writer'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { gateway, post, resetDatabase, seedChannel, seedPrice, seedUser, startMock, usageRows } from '#tests/helpers'
import { PanelClient, textOf } from '#tests/panel_client'
import { PageClient, htmlText } from '#tests/page_client'

async function send(path: string, key: string, body: unknown) {
  const headers: Record<string, string> = path.startsWith('/v1/messages') ? { 'x-api-key': key, 'anthropic-version': '2023-06-01' } : { authorization: `Bearer ${key}` }
  const response = await post(path, body, headers)
  return { status: response.status, id: response.headers.get('x-request-id')!, text: await response.text() }
}

async function logOf(requestId: string) {
  const gw = await gateway()
  await gw.meter.drain()
  await gw.requestLogs?.drain()
  return db.from('request_logs').where('request_id', requestId).first()
}

test.group('Request and response bodies (LOG_BODIES)', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'logs-mock', baseUrl: mock.url, models: ['logs-*'] })
    await seedPrice('logs-priced', '1', '2')
    const gw = await gateway()
    return async () => {
      await gw.logBodies('off')
      await mock.stop()
    }
  })

  test('all: the client\'s bytes and exactly what it got back, JSON, stream and translated', async ({ assert }) => {
    await (await gateway()).logBodies('all', 64 * 1024)
    const user = await seedUser()
    const body = { model: 'logs-1', messages: [{ role: 'user', content: 'log me' }] }
    const json = await send('/v1/chat/completions', user.key, body)
    let row = await logOf(json.id)
    assert.equal(row.request_body, JSON.stringify(body))
    assert.equal(row.response_body, json.text)
    assert.isFalse(row.request_truncated)

    const stream = await send('/v1/chat/completions', user.key, { ...body, stream: true })
    row = await logOf(stream.id)
    assert.equal(row.response_body, stream.text)
    assert.include(row.response_body, 'data: [DONE]')

    const messages = await send('/v1/messages', user.key, { model: 'logs-1', max_tokens: 50, stream: true, messages: [{ role: 'user', content: 'hi' }] })
    row = await logOf(messages.id)
    assert.include(row.response_body, 'event: message_stop')
    assert.equal(row.response_body, messages.text)
  })

  test('errors: successes are not kept; an upstream error keeps its own body, a gateway refusal its code', async ({ assert }) => {
    await (await gateway()).logBodies('errors', 64 * 1024)
    const user = await seedUser()
    const ok = await send('/v1/chat/completions', user.key, { model: 'logs-1', messages: [{ role: 'user', content: 'fine' }] })
    assert.isNull(await logOf(ok.id))

    const upstream = await send('/v1/chat/completions', user.key, { model: 'logs-1', messages: [{ role: 'user', content: 'bad' }], mock: { status: 400 } })
    assert.equal(upstream.status, 400)
    let row = await logOf(upstream.id)
    assert.include(row.request_body, '"bad"')
    assert.include(row.response_body, 'mock upstream failure 400')

    const broke = await send('/v1/chat/completions', user.key, { model: 'logs-priced', messages: [{ role: 'user', content: 'no money' }] })
    assert.equal(broke.status, 402)
    row = await logOf(broke.id)
    assert.include(JSON.parse(row.response_body).error.code, 'insufficient')
    assert.lengthOf(await usageRows(user.userId), 3, 'every call still has its usage row')
  })

  test('bodies are cut at the limit on a character boundary, and say so', async ({ assert }) => {
    await (await gateway()).logBodies('all', 100)
    const user = await seedUser()
    const long = await send('/v1/chat/completions', user.key, { model: 'logs-1', messages: [{ role: 'user', content: 'é'.repeat(300) }] })
    const row = await logOf(long.id)
    assert.isTrue(row.request_truncated)
    assert.isAtMost(Buffer.byteLength(row.request_body), 100)
    assert.notInclude(row.request_body, '\uFFFD')
    const cutHere = cut(Buffer.from('aé'), 2)
    assert.deepEqual(cutHere, { text: 'a', truncated: true })
  })

  test('the admin request page shows them, or says how to turn logging on', async ({ assert }) => {
    const gw = await gateway()
    await gw.logBodies('all', 64 * 1024)
    const user = await seedUser()
    const logged = await send('/v1/chat/completions', user.key, { model: 'logs-1', messages: [{ role: 'user', content: 'show me' }] })
    await logOf(logged.id)
    await gw.logBodies('off')
    const unlogged = await send('/v1/chat/completions', user.key, { model: 'logs-1', messages: [{ role: 'user', content: 'not me' }] })
    const rows = await usageRows(user.userId)
    const byId = new Map(rows.map((r) => [r.request_id, r.id]))

    const email = `logs-admin-${Date.now()}@test.local`
    await createUser({ email, password: 'password123', role: 'admin' })
    const admin = new PanelClient()
    await admin.login(email, 'password123')
    const page = await admin.get(`/admin/usage/${byId.get(logged.id)}`)
    assert.include(page.html, 'data-body="request"')
    assert.include(textOf(page.html), '"content": "show me"')
    assert.include(page.html, 'data-body="response"')
    const other = await admin.get(`/admin/usage/${byId.get(unlogged.id)}`)
    assert.notInclude(other.html, 'data-body="request"')
    assert.include(textOf(other.html), 'Bodies are not kept. Set LOG_BODIES=errors')
  })

  test('a user opens one of their requests from the usage log: id, tokens, exact cost and, when kept, the bodies; not another user\'s', async ({ assert }) => {
    const gw = await gateway()
    await gw.logBodies('all', 64 * 1024)
    const user = await seedUser({ balance: '1' })
    const other = await seedUser()
    const sent = await send('/v1/chat/completions', user.key, { model: 'logs-priced', messages: [{ role: 'user', content: 'mine' }] })
    await logOf(sent.id)
    await gw.logBodies('off')
    const [row] = await usageRows(user.userId)

    const portal = new PageClient()
    await portal.login(user.email)
    const list = await portal.get('/dashboard/usage')
    assert.include(list.body, `href="/dashboard/usage/${row.id}"`)
    const page = await portal.get(`/dashboard/usage/${row.id}`)
    assert.equal(page.status, 200)
    const text = htmlText(page.body)
    assert.include(text, sent.id)
    assert.include(text, '12 in · 5 out · 0 cached · 0 reasoning')
    assert.include(page.body, 'data-cost="0.000022000000"')
    assert.include(text, '"content": "mine"')
    assert.include(page.body, 'data-body="response"')

    const stranger = new PageClient()
    await stranger.login(other.email)
    const refused = await stranger.get(`/dashboard/usage/${row.id}`)
    assert.equal(refused.status, 404)
    assert.include(refused.body, 'No such request in your account.')
  })
})
