import { test } from '@japa/runner'
import db from '@adonisjs/lucid/services/db'
import { createUser } from '#actions/create_user'
import { createApiKey } from '#actions/issue_api_key'
import { createPlan } from '#actions/create_plan'
import { redeemCode } from '#actions/redeem_code'
import ace from '@adonisjs/core/services/ace'
import KeyCreate from '#commands/key_create'
import { PanelClient, textOf } from '#tests/panel_client'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { adminApi, baseUrl, gateway, post, refreshCaches, resetDatabase, seedChannel, seedPrice, startMock } from '#tests/helpers'

let adminKey = ''

async function api(method: string, path: string, body?: unknown, key = adminKey) {
  return adminApi(method, path, key, body)
}

async function chat(key: string) {
  return (await post('/v1/chat/completions', { model: 'managed-model', messages: [{ role: 'user', content: 'hi' }] }, { authorization: `Bearer ${key}` })).status
}

/** The gateway hears of changes through NOTIFY: wait for the expected answer (no refresh by hand). */
async function eventually(check: () => Promise<boolean>) {
  for (let i = 0; i < 40; i++) {
    if (await check()) return true
    await new Promise((r) => setTimeout(r, 50))
  }
  return false
}

test.group('Management API (/api/admin) with an administrator key', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'mock', baseUrl: mock.url, models: ['managed-model'] })
    await seedPrice('managed-model', '50', '80')
    await createPlan({ name: 'team', models: ['managed-*'] })
    await createUser({ email: 'ops@test.local', password: 'password123', role: 'admin' })
    adminKey = (await createApiKey({ userRef: 'ops@test.local', name: 'billing-system', manage: true })).key
    await refreshCaches()
    return () => mock.stop()
  })

  test('an admin\'s everyday key is refused: only a key issued with the management scope', async ({ assert }) => {
    const everyday = (await createApiKey({ userRef: 'ops@test.local', name: 'laptop' })).key
    await refreshCaches()
    const refused = await api('GET', '/users', undefined, everyday)
    assert.equal(refused.status, 403)
    assert.include(refused.body.error.message, 'management key')
    await createUser({ email: 'scope-user@test.local', password: 'password123' })
    await assert.rejects(() => createApiKey({ userRef: 'scope-user@test.local', manage: true }), /Only an administrator/)
    const viaApi = await api('POST', '/keys', { user: 'scope-user@test.local', manage: true })
    assert.equal(viaApi.status, 400)
    const info = await api('GET', '/keys?user=' + (await db.from('users').where('email', 'ops@test.local').first()).id)
    assert.deepEqual(info.body.data.map((k: any) => [k.name, k.manage]).sort(), [['billing-system', true], ['laptop', false]])
  })

  test('a user, an amount or a spend limit given as an object or a list is refused as such, not looked up as "[object Object]"', async ({ assert }) => {
    const owner = await createUser({ email: 'shape-user@test.local', password: 'password123' })
    for (const user of [{ id: 1 }, ['shape-user@test.local']]) {
      const refused = await api('POST', '/keys', { user })
      assert.equal(refused.status, 400, JSON.stringify(user))
      assert.notInclude(refused.body.error.message, '[object Object]')
      assert.match(refused.body.error.message, /must be text/)
    }
    const capped = await api('POST', '/keys', { user: owner.user.id, spend_limit: { usd: 5 } })
    assert.equal(capped.status, 400)
    const codes = await api('POST', '/redemption-codes', { per_code: [5], count: 1 })
    assert.equal(codes.status, 400)
    // Numbers stay welcome where a number is meant.
    const created = await api('POST', '/keys', { user: owner.user.id, spend_limit: 5 })
    assert.equal(created.status, 201)
    assert.equal(Number(created.body.spend_limit), 5)
  })

  test('the panel and key:create issue management keys to administrators only', async ({ assert }) => {
    const panel = new PanelClient()
    await panel.login('ops@test.local', 'password123')
    await panel.get('/admin/keys/new')
    await createUser({ email: 'scope-panel@test.local', password: 'password123' })
    const refused = await panel.post('/admin/keys', { user: 'scope-panel@test.local', name: 'x', manage: ['0', '1'] })
    assert.include(textOf((await panel.follow(refused)).html), "Only an administrator's key can have the management scope")
    await panel.get('/admin/keys/new')
    const issued = await panel.post('/admin/keys', { user: 'ops@test.local', name: 'automation', manage: ['0', '1'] })
    assert.equal(issued.status, 302)
    const page = await panel.follow(issued)
    assert.include(textOf(page.html), 'management API')
    const clear = /data-testid="new-key">([^<]+)</.exec(page.html)![1]
    assert.isTrue(await eventually(async () => (await api('GET', '/users', undefined, clear)).status === 200))

    const lines: string[] = []
    const original = console.log
    console.log = (...args: any[]) => lines.push(args.join(' '))
    try {
      const command = await ace.create(KeyCreate, ['--user', 'ops@test.local', '--name', 'cli-ops', '--manage'])
      ace.ui.switchMode('raw')
      await command.exec()
      command.assertSucceeded()
    } finally {
      console.log = original
    }
    assert.isTrue(await eventually(async () => (await api('GET', '/users', undefined, lines.at(-1)!)).status === 200))
  })

  test('a user\'s key or no key is refused, in the OpenAI error shape', async ({ assert }) => {
    await createUser({ email: 'plain@test.local', password: 'password123' })
    const { key } = await createApiKey({ userRef: 'plain@test.local' })
    await refreshCaches()
    const refused = await api('GET', '/users', undefined, key)
    assert.equal(refused.status, 403)
    assert.deepEqual(refused.body.error.code, 'admin_required')
    const anonymous = await api('GET', '/users', undefined, 'sk-gw-nothing')
    assert.equal(anonymous.status, 401)
    assert.equal(anonymous.body.error.code, 'invalid_api_key')
    const created = await api('POST', '/users', { email: 'sneaky@test.local' }, key)
    assert.equal(created.status, 403)
    assert.isNull(await db.from('users').where('email', 'sneaky@test.local').first())
  })

  test('a billing system signs a customer up: user, top-up, key; the key works at once', async ({ assert }) => {
    const user = await api('POST', '/users', { email: 'customer@test.local', plan: 'team' })
    assert.equal(user.status, 201)
    assert.equal(user.body.plan, 'team')
    assert.isString(user.body.password, 'a generated password, returned once')
    assert.equal(user.body.balance, '0')

    const topped = await api('POST', `/users/${user.body.id}/ledger`, { kind: 'topup', amount: '25.50', note: 'invoice 1042' })
    assert.equal(topped.status, 201)
    assert.equal(topped.body.balance, '25.5')

    const key = await api('POST', '/keys', { user: 'customer@test.local', name: 'prod', spend_limit: '10', spend_period: 'month', rpm: 600 })
    assert.equal(key.status, 201)
    assert.match(key.body.key, /^sk-gw-/)
    assert.deepEqual([key.body.name, key.body.spend_limit, key.body.spend_period, key.body.rpm], ['prod', '10', 'month', 600])
    assert.isTrue(await eventually(async () => (await chat(key.body.key)) === 200))

    const found = await api('GET', '/users/customer@test.local')
    assert.equal(found.body.id, user.body.id)
    const info = await api('GET', `/keys/${key.body.id}`)
    assert.equal(info.body.spent, '0.001')
    assert.equal(info.body.cap_spent, '0.001')
    assert.notProperty(info.body, 'key', 'the clear key is never shown again')
    const listed = await api('GET', `/keys?user=${user.body.id}`)
    assert.deepEqual(listed.body.data.map((k: any) => k.id), [key.body.id])

    const usage = await api('GET', `/users/${user.body.id}/usage`)
    assert.equal(usage.status, 200)
    assert.equal(usage.body.month, new Date().toISOString().slice(0, 7))
    assert.deepEqual(usage.body.models, [{ model: 'managed-model', requests: 1, input_tokens: 12, output_tokens: 5, cost: '0.001' }])
    assert.deepEqual([usage.body.requests, usage.body.cost], [1, '0.001'])
    assert.deepEqual((await api('GET', `/users/${user.body.id}/usage?month=2020-01`)).body.models, [])
    assert.equal((await api('GET', `/users/${user.body.id}/usage?month=January`)).status, 400)

    const audit = await db.from('audit_log').where('source', 'api').orderBy('id').select('action', 'actor')
    assert.includeMembers(audit.map((r) => r.action), ['user.create', 'balance.topup', 'key.create'])
    assert.equal(audit[0].actor, 'api:billing-system')
  })

  test('PATCH changes what it is given; DELETE revokes; the gateway applies both at once', async ({ assert }) => {
    const user = await api('POST', '/users', { email: 'patch@test.local', plan: 'team' })
    await api('POST', `/users/${user.body.id}/ledger`, { kind: 'topup', amount: '5' })
    const key = await api('POST', '/keys', { user: user.body.id, models: ['managed-*'], tpm: 1000 })
    assert.isTrue(await eventually(async () => (await chat(key.body.key)) === 200))

    const patched = await api('PATCH', `/keys/${key.body.id}`, { name: 'renamed', spend_limit: '0.001', spend_period: 'day' })
    assert.equal(patched.status, 200)
    assert.deepEqual([patched.body.name, patched.body.models, patched.body.tpm, patched.body.spend_period], ['renamed', ['managed-*'], 1000, 'day'])
    assert.equal(patched.body.cap_spent, '0.001', "today's spend so far counts")
    assert.isTrue(await eventually(async () => (await chat(key.body.key)) === 402))

    const cleared = await api('PATCH', `/keys/${key.body.id}`, { spend_limit: null, models: null })
    assert.deepEqual([cleared.body.spend_limit, cleared.body.spend_period, cleared.body.models], [null, null, null])
    assert.isTrue(await eventually(async () => (await chat(key.body.key)) === 200))

    const disabled = await api('PATCH', `/users/${user.body.id}`, { disabled: true })
    assert.isTrue(disabled.body.disabled)
    assert.isTrue(await eventually(async () => (await chat(key.body.key)) === 401))
    await api('PATCH', `/users/${user.body.id}`, { disabled: false, plan: null })

    const revoked = await api('DELETE', `/keys/${key.body.id}`)
    assert.isNotNull(revoked.body.revoked_at)
    assert.isTrue(await eventually(async () => (await chat(key.body.key)) === 401))
    const late = await api('PATCH', `/keys/${key.body.id}`, { name: 'zombie' })
    assert.equal(late.status, 400)
    assert.include(late.body.error.message, 'is revoked')
  })

  test('redemption codes: made in a batch, listed by hint, disabled', async ({ assert }) => {
    const made = await api('POST', '/redemption-codes', { batch: 'reseller-7', per_code: '20', count: 3 })
    assert.equal(made.status, 201)
    assert.lengthOf(made.body.codes, 3)
    const { user } = await createUser({ email: 'reseller-buyer@test.local', password: 'password123' })
    await redeemCode(user.id, made.body.codes[0].code, { id: user.id, label: 'buyer', source: 'portal' })
    const listed = await api('GET', '/redemption-codes?batch=reseller-7')
    assert.deepEqual(listed.body.data.map((c: any) => c.status).sort(), ['redeemed', 'unused', 'unused'])
    assert.notInclude(JSON.stringify(listed.body), made.body.codes[1].code)
    const disabled = await api('POST', '/redemption-codes/disable', { batch: 'reseller-7' })
    assert.equal(disabled.body.disabled, 2)
  })

  test('bad input is a 400 naming the fields; an unknown user or key a 404', async ({ assert }) => {
    const bad = await api('POST', '/users', { email: 'not-an-email', role: 'owner' })
    assert.equal(bad.status, 400)
    assert.equal(bad.body.error.code, 'invalid_field')
    assert.include(bad.body.error.message, 'email: Enter a valid e-mail address.')
    assert.include(bad.body.error.message, 'role:')
    const taken = await api('POST', '/users', { email: 'ops@test.local' })
    assert.equal(taken.status, 400)
    assert.include(taken.body.error.message, 'already exists')
    assert.equal((await api('GET', '/users/9999999')).status, 404)
    assert.equal((await api('GET', '/keys/9999999')).status, 404)
    assert.equal((await api('POST', '/keys', { user: 'nobody@test.local' })).status, 404)
    const period = await api('POST', '/keys', { user: 'ops@test.local', spend_period: 'week' })
    assert.equal(period.status, 400)
    assert.include(period.body.error.message, 'needs a spend cap')
    const money = await api('POST', '/users/1/ledger', { kind: 'topup', amount: '-5' })
    assert.equal(money.status, 400)
    const notJson = await fetch(`${baseUrl()}/api/admin/users`, { method: 'POST', headers: { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json' }, body: '{"email":' })
    assert.equal(notJson.status, 400)
    const body: any = await notJson.json()
    assert.isString(body.error.message)
    assert.equal((await api('GET', '/nothing-here')).status, 404)
  })

  test('the request log as JSON: filters, keyset pages, exact costs; payments listed', async ({ assert }) => {
    await createUser({ email: 'logged@test.local', password: 'password123' })
    const key = (await createApiKey({ userRef: 'logged@test.local', name: 'app' })).key
    await db.table('balance_ledger').insert({ user_id: (await db.from('users').where('email', 'logged@test.local').first()).id, kind: 'topup', amount: '5' })
    await refreshCaches()
    for (let i = 0; i < 3; i++) assert.equal(await chat(key), 200)
    await post('/v1/chat/completions', { model: 'managed-model', messages: [{ role: 'user', content: 'x' }], mock: { status: 400 } }, { authorization: `Bearer ${key}` })

    const all = await api('GET', '/usage?user=logged@test.local')
    assert.equal(all.status, 200)
    assert.equal(all.body.object, 'list')
    assert.lengthOf(all.body.data, 4)
    const [newest] = all.body.data
    assert.equal(newest.object, 'usage_record')
    assert.equal(newest.status, 400)
    const ok = all.body.data.filter((r: any) => r.status === 200)
    assert.lengthOf(ok, 3)
    assert.equal(ok[0].model, 'managed-model')
    assert.equal(ok[0].cost, '0.001')
    assert.isFalse(ok[0].cache_hit)
    assert.match(ok[0].request_id, /^[0-9a-f-]{36}$/)

    const errors = await api('GET', '/usage?user=logged@test.local&status=error')
    assert.lengthOf(errors.body.data, 1)
    const stranger = await api('GET', '/usage?user=nobody@test.local')
    assert.lengthOf(stranger.body.data, 0)
    // A NUL in the user names nobody (Postgres cannot compare it: was a generic error from the query).
    const nul = await api('GET', '/usage?user=logged%00@test.local')
    assert.equal(nul.status, 200)
    assert.lengthOf(nul.body.data, 0)
    const older = await api('GET', `/usage?user=logged@test.local&before=${newest.id}`)
    assert.lengthOf(older.body.data, 3)
    assert.isNull(older.body.next_before)

    const userId = (await db.from('users').where('email', 'logged@test.local').first()).id
    await db.table('payments').insert({ user_id: userId, session_id: 'cs_test_listed', amount: '25', amount_cents: 2500, status: 'pending' })
    const payments = await api('GET', `/payments?status=pending&user_id=${userId}`)
    assert.equal(payments.status, 200)
    assert.lengthOf(payments.body.data, 1)
    assert.include(payments.body.data[0], { object: 'payment', session_id: 'cs_test_listed', amount: '25', status: 'pending', currency: 'usd' })
    assert.lengthOf((await api('GET', '/payments?status=paid')).body.data, 0)
  })

  test('channels: add one, read it back without its key, change what is given, turn it off and on, test it; the gateway routes by it at once', async ({ assert }) => {
    const created = await api('POST', '/channels', { name: 'api-made', provider: 'custom', base_url: mock.url, api_key: 'sk-upstream-secret', models: ['api-model'], priority: 5 })
    assert.equal(created.status, 201)
    assert.include(created.body, { object: 'channel', name: 'api-made', provider: 'custom', has_key: true, priority: 5, enabled: true })
    assert.notInclude(JSON.stringify(created.body), 'sk-upstream-secret', 'the upstream key is write-only')
    const id = created.body.id
    assert.deepInclude((await api('GET', '/channels')).body.data.map((c: any) => c.name), 'api-made')

    // The gateway hears of the channel through NOTIFY and routes its model.
    await createUser({ email: 'channel-user@test.local', password: 'password123' })
    const key = (await createApiKey({ userRef: 'channel-user@test.local' })).key
    await refreshCaches()
    const routed = async () => (await post('/v1/chat/completions', { model: 'api-model', messages: [{ role: 'user', content: 'hi' }] }, { authorization: `Bearer ${key}` })).status
    assert.isTrue(await eventually(async () => (await routed()) === 200))

    const patched = await api('PATCH', `/channels/${id}`, { models: ['api-model', 'api-other'], weight: 3, api_key: null })
    assert.equal(patched.status, 200)
    assert.include(patched.body, { name: 'api-made', priority: 5, weight: 3, has_key: false })
    assert.deepEqual(patched.body.models, ['api-model', 'api-other'])

    const off = await api('PATCH', `/channels/${id}`, { enabled: false, disabled_reason: 'maintenance window' })
    assert.include(off.body, { enabled: false, disabled_reason: 'maintenance window' })
    assert.isTrue(await eventually(async () => (await routed()) !== 200), 'a disabled channel is not routed')
    const on = await api('PATCH', `/channels/${id}`, { enabled: true })
    assert.include(on.body, { enabled: true, disabled_reason: null })
    assert.isTrue(await eventually(async () => (await routed()) === 200))

    const tested = await api('POST', `/channels/${id}/test`)
    assert.equal(tested.status, 200)
    assert.include(tested.body, { object: 'channel_test', channel_id: id, ok: true, model: 'api-model' })

    const audit = await db.from('audit_log').where('subject_type', 'channel').where('subject_id', id).select('action', 'source')
    assert.includeMembers(audit.map((a: any) => a.action), ['channel.create', 'channel.update', 'channel.disable', 'channel.enable'])
    assert.isTrue(audit.every((a: any) => a.source === 'api'))

    const bad = await api('POST', '/channels', { name: 'x', provider: 'nope', base_url: 'not a url', models: [] })
    assert.equal(bad.status, 400)
    assert.equal(bad.body.error.code, 'invalid_field')
    assert.include(bad.body.error.message, 'provider')
    assert.equal((await api('POST', '/channels', { name: 'api-made', provider: 'custom', base_url: mock.url, models: ['m'] })).status, 400, 'names are unique')
    assert.equal((await api('GET', '/channels/999999')).status, 404)
    assert.equal((await api('PATCH', '/channels/999999', { weight: 1 })).status, 404)
  })

  test('prices: set, list, remove one price or a whole glob; the next request is billed at the new price', async ({ assert }) => {
    const set = await api('POST', '/prices', { model: 'priced-by-api', input: 1.5, output: '2', per_request: '0.01', per_image: '0.04' })
    assert.equal(set.status, 200)
    assert.include(set.body, { object: 'model_price', model: 'priced-by-api', input: '1.5', output: '2', per_request: '0.01', per_image: '0.04', per_second: null })
    const audio = await api('POST', '/prices', { model: 'realtime-by-api', input: '4', output: '16', audio_input: '32', audio_output: 64 })
    assert.include(audio.body, { audio_input: '32', audio_output: '64' })
    const cleared = await api('POST', '/prices', { model: 'priced-by-api', input: '1.5', output: '2', per_image: null })
    assert.include(cleared.body, { per_image: null, per_request: '0.01' }, 'null removes a price, absent keeps it')
    assert.deepInclude((await api('GET', '/prices')).body.data.map((p: any) => p.model), 'priced-by-api')

    // managed-model was priced 50 / 80 by the set-up: 12 input and 5 output tokens from the mock.
    await createUser({ email: 'price-user@test.local', password: 'password123' })
    await db.table('balance_ledger').insert({ user_id: (await db.from('users').where('email', 'price-user@test.local').first()).id, kind: 'topup', amount: '5' })
    const key = (await createApiKey({ userRef: 'price-user@test.local' })).key
    await refreshCaches()
    const repriced = await api('POST', '/prices', { model: 'managed-model', input: '100', output: '200' })
    assert.equal(repriced.status, 200)
    const costOfACall = async () => {
      assert.equal(await chat(key), 200)
      const usage = await api('GET', '/usage?user=price-user@test.local')
      return usage.body.data[0].cost
    }
    assert.isTrue(await eventually(async () => (await costOfACall()) === '0.0022'), '12 x 100 + 5 x 200 per 1M')
    await api('POST', '/prices', { model: 'managed-model', input: '50', output: '80' })

    const bad = await api('POST', '/prices', { model: 'x', input: '-1', output: 'lots' })
    assert.equal(bad.status, 400)
    assert.include(bad.body.error.message, 'input')
    const gone = await api('DELETE', `/prices/${encodeURIComponent('priced-by-api')}`)
    assert.deepEqual(gone.body, { object: 'model_price', model: 'priced-by-api', deleted: true })
    assert.equal((await api('DELETE', '/prices/priced-by-api')).status, 404)
  })

  test('one request by its x-request-id: the row, the attempts that failed on the way, the logged bodies as sent', async ({ assert }) => {
    await createUser({ email: 'quoted@test.local', password: 'password123' })
    const key = (await createApiKey({ userRef: 'quoted@test.local', name: 'app' })).key
    await db.table('balance_ledger').insert({ user_id: (await db.from('users').where('email', 'quoted@test.local').first()).id, kind: 'topup', amount: '5' })
    await refreshCaches()
    const gw = await gateway()
    const plain = await post('/v1/chat/completions', { model: 'managed-model', messages: [{ role: 'user', content: 'x' }] }, { authorization: `Bearer ${key}` })
    const plainId = plain.headers.get('x-request-id')!
    await plain.text()
    const found = await api('GET', `/usage/${plainId.toUpperCase()}`)
    assert.equal(found.status, 200)
    assert.include(found.body, { object: 'usage_record', request_id: plainId, model: 'managed-model', status: 200, cost: '0.001' })
    assert.deepEqual(found.body.attempt_log, [])
    assert.isNull(found.body.bodies, 'nothing kept while LOG_BODIES is off')

    await gw.logBodies('all', 64 * 1024)
    try {
      const sent = JSON.stringify({ model: 'managed-model', messages: [{ role: 'user', content: 'keep me' }] })
      const logged = await fetch(`${baseUrl()}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: sent })
      const answer = await logged.text()
      await gw.meter.drain()
      await gw.requestLogs?.drain()
      const detail = await api('GET', `/usage/${logged.headers.get('x-request-id')}`)
      assert.equal(detail.status, 200)
      assert.equal(detail.body.bodies.request, sent, 'the bytes as sent, not re-indented')
      assert.equal(detail.body.bodies.response, answer)
      assert.isFalse(detail.body.bodies.request_truncated)
    } finally {
      await gw.logBodies('off')
    }

    assert.equal((await api('GET', '/usage/00000000-0000-7000-8000-000000000000')).status, 404)
    const malformed = await api('GET', '/usage/not-a-request')
    assert.equal(malformed.status, 400)
    assert.equal(malformed.body.error.code, 'invalid_field')
  })
})
