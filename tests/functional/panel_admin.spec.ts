import { test } from '@japa/runner'
import db from '@adonisjs/lucid/services/db'
import { createUser } from '#actions/create_user'
import { createPlan } from '#actions/create_plan'
import { baseUrl, openai, resetDatabase, refreshCaches, startMock, usageRows } from '#tests/helpers'
import { PanelClient, textOf } from '#tests/panel_client'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'

async function audit(action: string) {
  return db.from('audit_log').where('action', action).orderBy('id', 'desc').first()
}

async function signedInAdmin() {
  await resetDatabase()
  await db.from('audit_log').delete()
  const email = `root-${Date.now()}@test.local`
  await createUser({ email, password: 'admin-password', role: 'admin' })
  const client = new PanelClient()
  await client.login(email, 'admin-password')
  return { client, email }
}

test.group('Admin panel pages', (group) => {
  let mock: MockUpstream
  group.setup(async () => {
    mock = await startMock()
    return () => mock.stop()
  })

  test('a refused form with a long field still comes back with its errors: the session cookie stays under 4 KB', async ({ assert }) => {
    const { client } = await signedInAdmin()
    await client.get('/admin/plans/new')
    // A pasted model list of ~6 KB: flashed back whole, the signed cookie passed 4 KB and a browser
    // dropped it, so the form came back with no error at all.
    const models = Array.from({ length: 600 }, (_, i) => `model-${i}`).join(', ')
    const bad = await client.post('/admin/plans', { name: '', rpm: '-3', models })
    for (const cookie of bad.headers.getSetCookie()) assert.isBelow(cookie.length, 4096, cookie.slice(0, 40))
    const form = await client.follow(bad)
    assert.match(form.html, /id="f-name-error"/)
    assert.match(form.html, /id="f-rpm-error"/)
    assert.include(form.html, 'value="-3"', 'the short fields are kept')
    assert.notInclude(form.html, 'model-599', 'the long one is left out')
  })

  test('plans: create with validation errors beside fields, edit, delete refused while users are on it', async ({ assert }) => {
    const { client, email } = await signedInAdmin()
    assert.include(textOf((await client.get('/admin/plans')).html), 'No plans yet')

    await client.get('/admin/plans/new')
    const bad = await client.post('/admin/plans', { name: '', rpm: '-3', models: 'gpt-*' })
    assert.match(bad.location!, /\/admin\/plans\/new$/)
    const form = await client.follow(bad)
    assert.match(form.html, /id="f-name-error"/)
    assert.match(form.html, /id="f-rpm-error"/)
    assert.include(form.html, 'value="gpt-*"', 'typed input is kept')
    // What was typed comes back escaped (no reflected markup).
    const xss = await client.follow(await client.post('/admin/plans', { name: '"><b id=xss>', rpm: '-1' }))
    assert.notInclude(xss.html, '<b id=xss>')
    assert.include(xss.html, '&quot;&gt;&lt;b id=xss&gt;')
    assert.equal(await db.from('plans').count('* as n').first().then((r) => Number(r.n)), 0)

    const ok = await client.post('/admin/plans', { name: 'pro', models: 'gpt-*, claude-*', rpm: '60', monthlyInputTokens: '' })
    assert.equal(ok.location, '/admin/plans')
    const plan = await db.from('plans').where('name', 'pro').first()
    assert.deepEqual(plan.allowed_models, ['gpt-*', 'claude-*'])
    assert.isNull(plan.monthly_input_tokens)
    const created = await audit('plan.create')
    assert.equal(created.actor, email)
    assert.equal(created.source, 'panel')

    await client.get(`/admin/plans/${plan.id}/edit`)
    await client.post(`/admin/plans/${plan.id}`, { name: 'pro', models: 'gpt-*', rpm: '120' })
    const updated = await audit('plan.update')
    assert.include(updated.summary, 'rpm: 60 → 120')
    assert.deepEqual(updated.before, { models: ['gpt-*', 'claude-*'], rpm: 60 })

    await createUser({ email: `on-pro-${Date.now()}@t.local`, planId: plan.id })
    await client.get('/admin/plans')
    const refused = await client.follow(await client.post(`/admin/plans/${plan.id}/delete`))
    assert.include(textOf(refused.html), 'still has 1 user')
    assert.isNotNull(await db.from('plans').where('id', plan.id).first())
    assert.include(textOf((await client.get('/admin/plans')).html), 'pro')

    // Once nobody is on it, the plan can go; the audit row keeps what it was.
    await db.from('users').where('plan_id', plan.id).update({ plan_id: null })
    await client.get('/admin/plans')
    const deleted = await client.follow(await client.post(`/admin/plans/${plan.id}/delete`))
    assert.include(textOf(deleted.html), 'Plan pro deleted')
    assert.notExists(await db.from('plans').where('id', plan.id).first())
    assert.equal((await audit('plan.delete')).before.rpm, 120)
  })

  test('users: a bad edit is refused beside the field and changes nothing; a role change is audited', async ({ assert }) => {
    const { client } = await signedInAdmin()
    const { user } = await createUser({ email: 'edit-me@test.local', password: 'password123' })
    await client.get(`/admin/users/${user.id}`)
    const bad = await client.follow(await client.post(`/admin/users/${user.id}`, { role: 'owner', password: 'short' }))
    assert.match(bad.html, /id="f-role-error"/)
    assert.match(bad.html, /id="f-password-error"/)
    assert.equal((await db.from('users').where('id', user.id).first()).role, 'user')
    assert.notExists(await audit('user.update'))
    await client.post(`/admin/users/${user.id}`, { role: 'admin', planId: '', disabled: '0', password: 'new-password-1' })
    const row = await audit('user.update')
    assert.include(row.summary, 'role: user → admin')
    assert.include(row.summary, 'password reset')
    assert.notInclude(JSON.stringify(row), 'new-password-1')
    const again = new PanelClient()
    assert.equal((await again.login('edit-me@test.local', 'new-password-1')).location, '/admin')
  })

  test('users: create, edit role/plan/disabled, top-up as a ledger entry; disabling refuses the API key', async ({ assert }) => {
    const { client } = await signedInAdmin()
    const plan = await createPlan({ name: `basic-${Date.now()}` })
    await client.get('/admin/users/new')
    const dup = await client.post('/admin/users', { email: 'not-an-email', role: 'user' })
    assert.match((await client.follow(dup)).html, /id="f-email-error"/)

    const created = await client.post('/admin/users', { email: 'jane@test.local', role: 'user', planId: String(plan.id) })
    const page = await client.follow(created)
    assert.include(textOf(page.html), 'Generated password (shown once)')
    const user = await db.from('users').where('email', 'jane@test.local').first()
    assert.equal(Number(user.plan_id), plan.id)
    assert.equal((await audit('user.create')).subject_id, user.id)

    const topup = await client.post(`/admin/users/${user.id}/ledger`, { kind: 'topup', amount: '12.50', note: 'invoice 7' })
    assert.equal(topup.location, `/admin/users/${user.id}#balance`)
    const after = await db.from('users').where('id', user.id).first()
    assert.equal(Number(after.balance), 12.5)
    const entry = await db.from('balance_ledger').where('user_id', user.id).first()
    assert.equal(entry.kind, 'topup')
    assert.equal(entry.note, 'invoice 7')
    assert.include((await audit('balance.topup')).summary, '+12.50')
    // A negative top-up is refused and nothing is written.
    await client.get(`/admin/users/${user.id}`)
    const negative = await client.follow(await client.post(`/admin/users/${user.id}/ledger`, { kind: 'topup', amount: '-5' }))
    assert.include(textOf(negative.html), 'must be positive')
    assert.equal(await db.from('balance_ledger').where('user_id', user.id).count('* as n').first().then((r) => Number(r.n)), 1)

    // A key works, then the user is disabled: the key is refused at once.
    const { createApiKey } = await import('#actions/issue_api_key')
    const channel = await import('#actions/create_channel').then((m) =>
      m.createChannel({ name: 'mock', provider: 'custom', baseUrl: mock.url, apiKey: 'k', models: ['*'] })
    )
    assert.isOk(channel)
    const { key } = await createApiKey({ userRef: 'jane@test.local' })
    await refreshCaches()
    await openai(key).chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] })
    await client.post(`/admin/users/${user.id}`, { role: 'user', planId: String(plan.id), disabled: ['0', '1'] })
    assert.isNotNull((await db.from('users').where('id', user.id).first()).disabled_at)
    assert.equal((await audit('user.disable')).subject_id, user.id)
    await refreshCaches()
    const refused = await fetch(`${baseUrl()}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'authorization': `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }),
    })
    assert.equal(refused.status, 401)
  })

  test('cache prices set in the panel bill cached prompt tokens end to end', async ({ assert }) => {
    const { client } = await signedInAdmin()
    const { createChannel } = await import('#actions/create_channel')
    const { createApiKey } = await import('#actions/issue_api_key')
    const { postLedgerEntry } = await import('#actions/post_ledger_entry')
    await createChannel({ name: 'mock', provider: 'custom', baseUrl: mock.url, apiKey: 'k', models: ['*'] })
    await client.get('/admin/prices')
    await client.post('/admin/prices', { model: 'cachey-*', input: '10', output: '0', cacheRead: '1' })
    const { user } = await createUser({ email: 'cache@test.local', password: 'password123' })
    await postLedgerEntry({ userRef: 'cache@test.local', kind: 'topup', amount: '10' })
    const { key } = await createApiKey({ userRef: 'cache@test.local' })
    await refreshCaches()
    await openai(key).chat.completions.create({
      model: 'cachey-1',
      messages: [{ role: 'user', content: 'hello' }],
      // @ts-expect-error mock upstream behaviour
      mock: { cache_read: 100, chunks: 1 },
    })
    const [row] = await usageRows(user.id)
    assert.equal(row.cached_tokens, 100)
    const plain = row.prompt_tokens - 100
    // plain x $10/M + 100 x $1/M (not 100 x $10/M)
    assert.equal(Number(row.cost), (plain * 10 + 100 * 1) / 1e6)
  })

  test('ace commands write audit rows too, as the CLI user, without secrets', async ({ assert }) => {
    await resetDatabase()
    await db.from('audit_log').delete()
    const ace = (await import('@adonisjs/core/services/ace')).default
    const ChannelCreate = (await import('#commands/channel_create')).default
    const command = await ace.create(ChannelCreate, ['--name', 'cli-channel', '--provider', 'custom', '--base-url', mock.url, '--api-key', 'sk-cli-SECRET', '--models', 'x-*'])
    ace.ui.switchMode('raw')
    await command.exec()
    command.assertSucceeded()
    const row = await audit('channel.create')
    assert.equal(row.source, 'cli')
    assert.match(row.actor, /^cli:/)
    assert.isNull(row.actor_id)
    assert.equal(row.after.upstreamKey, 'set')
    assert.notInclude(JSON.stringify(row), 'sk-cli-SECRET')
  })

  test('an admin cannot disable or demote themselves', async ({ assert }) => {
    const { client, email } = await signedInAdmin()
    const me = await db.from('users').where('email', email).first()
    await client.get(`/admin/users/${me.id}`)
    const result = await client.follow(await client.post(`/admin/users/${me.id}`, { role: 'user', disabled: '0' }))
    assert.include(textOf(result.html), 'cannot disable your own account')
    assert.equal((await db.from('users').where('id', me.id).first()).role, 'admin')
  })

  test('keys: issued once with the full key on the page, listed by prefix only, revoked with an audit row', async ({ assert }) => {
    const { client } = await signedInAdmin()
    const { user } = await createUser({ email: 'owner@test.local', password: 'password123' })
    await client.get(`/admin/keys/new?user=${user.id}`)
    const issued = await client.post('/admin/keys', { user: String(user.id), name: 'ci', rpm: '30', spendLimit: '5' })
    const page = await client.follow(issued)
    const key = page.html.match(/data-testid="new-key">([^<]+)</)![1]
    assert.match(key, /^sk-/)
    // Shown once: the next view of the same page no longer has it.
    assert.notInclude((await client.get(issued.location!)).html, key)
    assert.notInclude((await client.get('/admin/keys')).html, key)
    const created = await audit('key.create')
    assert.notInclude(JSON.stringify(created), key)

    const row = await db.from('api_keys').where('user_id', user.id).first()
    // Blocked for now: refused with a reason, the page says so and offers Unblock; unblocked, it works again.
    await client.get(`/admin/keys/${row.id}`)
    const blocked = textOf((await client.follow(await client.post(`/admin/keys/${row.id}/block`))).html)
    assert.include(blocked, `blocked: requests with it are refused until it is unblocked`)
    assert.include(blocked, 'Unblock')
    assert.isNotNull((await db.from('api_keys').where('id', row.id).first()).blocked_at)
    assert.equal((await audit('key.block')).subject_id, row.id)
    await refreshCaches()
    const refused = await fetch(`${baseUrl()}/v1/models`, { headers: { authorization: `Bearer ${key}` } })
    assert.equal(refused.status, 401)
    assert.include(await refused.text(), 'This API key is blocked')
    await client.post(`/admin/keys/${row.id}/unblock`)
    assert.isNull((await db.from('api_keys').where('id', row.id).first()).blocked_at)
    assert.equal((await audit('key.unblock')).subject_id, row.id)
    await refreshCaches()
    assert.equal((await fetch(`${baseUrl()}/v1/models`, { headers: { authorization: `Bearer ${key}` } })).status, 200)

    await client.get('/admin/keys')
    await client.post(`/admin/keys/${row.id}/revoke`)
    assert.isNotNull((await db.from('api_keys').where('id', row.id).first()).revoked_at)
    assert.equal((await audit('key.revoke')).subject_id, row.id)
  })

  test('channels: create with bad mapping refused beside the field; key write-only; edit, disable with reason, test action', async ({ assert }) => {
    const { client } = await signedInAdmin()
    await client.get('/admin/channels/new')
    const bad = await client.post('/admin/channels', {
      name: 'mock',
      provider: 'custom',
      baseUrl: mock.url,
      apiKey: 'sk-upstream-SECRET-1234',
      models: 'gpt-*',
      modelMapping: 'no separator here',
    })
    const form = await client.follow(bad)
    assert.match(form.html, /id="f-modelMapping-error"/)
    assert.notInclude(form.html, 'sk-upstream-SECRET-1234', 'the upstream key is not echoed back')

    const ok = await client.post('/admin/channels', {
      name: 'mock',
      provider: 'custom',
      baseUrl: mock.url,
      apiKey: 'sk-upstream-SECRET-1234',
      models: 'gpt-*',
      modelMapping: 'fast = gpt-4o-mini',
      extraHeaders: 'X-Team: blue',
    })
    const channel = await db.from('channels').where('name', 'mock').first()
    assert.equal(ok.location, `/admin/channels/${channel.id}`)
    assert.deepEqual(channel.model_mapping, { fast: 'gpt-4o-mini' })
    const show = await client.get(`/admin/channels/${channel.id}`)
    assert.notInclude(show.html, 'sk-upstream-SECRET-1234')
    assert.include(show.html, '••••1234')

    // Edit without a key keeps the stored one.
    await client.post(`/admin/channels/${channel.id}`, {
      name: 'mock',
      provider: 'custom',
      baseUrl: mock.url,
      apiKey: '',
      models: 'gpt-*',
      priority: '5',
    })
    const edited = await db.from('channels').where('id', channel.id).first()
    assert.equal(edited.priority, 5)
    assert.equal(edited.api_key_encrypted, channel.api_key_encrypted)

    // The test action goes through the mock and shows the answer.
    await refreshCaches()
    await client.get(`/admin/channels/${channel.id}`)
    const tested = await client.follow(await client.post(`/admin/channels/${channel.id}/test`, { model: 'gpt-4o-mini' }))
    assert.match(textOf(tested.html), /OK — gpt-4o-mini, \d+ ms, HTTP 200/)
    assert.isAbove(mock.requests.length, 0)

    await client.post(`/admin/channels/${channel.id}/disable`, { reason: 'quota exhausted' })
    const disabled = await db.from('channels').where('id', channel.id).first()
    assert.isFalse(disabled.enabled)
    assert.equal(disabled.disabled_reason, 'quota exhausted')
    assert.include(textOf((await client.get('/admin/channels')).html), 'quota exhausted')

    await client.get(`/admin/channels/${channel.id}`)
    await client.post(`/admin/channels/${channel.id}/enable`)
    const enabled = await db.from('channels').where('id', channel.id).first()
    assert.isTrue(enabled.enabled)
    assert.isNull(enabled.disabled_reason)

    const log = await db.from('audit_log').where('subject_type', 'channel').orderBy('id')
    assert.deepEqual(log.map((r) => r.action), ['channel.create', 'channel.update', 'channel.disable', 'channel.enable'])
    assert.notInclude(JSON.stringify(log), 'SECRET', 'upstream keys never reach the audit log')
  })

  test('channel test shows the upstream error verbatim', async ({ assert }) => {
    const { client } = await signedInAdmin()
    const { createChannel } = await import('#actions/create_channel')
    const channel = await createChannel({ name: 'broken', provider: 'custom', baseUrl: mock.url, apiKey: 'k', models: ['gpt-4o-mini'] })
    await refreshCaches()
    mock.script({ status: 500 })
    await client.get(`/admin/channels/${channel.id}`)
    const tested = await client.follow(await client.post(`/admin/channels/${channel.id}/test`, {}))
    assert.match(textOf(tested.html), /Failed — gpt-4o-mini, \d+ ms, HTTP 500/)
  })

  test('channel page: per-model cool-downs with why; a passing Test puts a channel the gateway disabled back in rotation', async ({ assert }) => {
    const { client } = await signedInAdmin()
    const { createChannel } = await import('#actions/create_channel')
    const channel = await createChannel({ name: 'resting', provider: 'custom', baseUrl: mock.url, apiKey: 'k', models: ['gpt-4o-mini'] })
    const soon = new Date(Date.now() + 60_000).toISOString()
    const past = new Date(Date.now() - 60_000).toISOString()
    await db.from('channels').where('id', channel.id).update({
      enabled: false,
      disabled_reason: 'upstream answered HTTP 403 for several models',
      auto_disabled_at: new Date(),
      model_cooldowns: JSON.stringify({
        'gpt-4o': { until: soon, kind: 'rate_limited', reason: 'HTTP 429: slow down' },
        'gpt-old': { until: past, kind: 'forbidden', reason: 'HTTP 403: expired entry' },
      }),
    })
    await refreshCaches()
    const page = textOf((await client.get(`/admin/channels/${channel.id}`)).html)
    assert.include(page, 'Models cooling down')
    assert.include(page, 'gpt-4o')
    assert.include(page, '429 rate limited')
    assert.include(page, 'HTTP 429: slow down')
    assert.notInclude(page, 'expired entry', 'finished cool-downs are not shown')
    assert.include(page, 'disabled by the gateway: upstream answered HTTP 403 for several models')

    const tested = textOf((await client.follow(await client.post(`/admin/channels/${channel.id}/test`, {}))).html)
    assert.include(tested, 'back in rotation')
    const row = await db.from('channels').where('id', channel.id).first()
    assert.isTrue(row.enabled)
    assert.isNull(row.auto_disabled_at)
    // Coming back is a change like an admin's Enable: audited, with who tested and why it had been off.
    const audit = await db.from('audit_log').where({ action: 'channel.enable', subject_id: channel.id }).first()
    assert.equal(audit.source, 'panel')
    assert.include(audit.summary, 'back in rotation after a passing test')
    assert.include(audit.summary, 'the gateway had disabled it: upstream answered HTTP 403 for several models')
  })

  test('prices: set, list with the 1M+1M preview, delete; audit rows', async ({ assert }) => {
    const { client } = await signedInAdmin()
    assert.include(textOf((await client.get('/admin/prices')).html), 'No prices yet')
    const bad = await client.follow(await client.post('/admin/prices', { model: 'gpt-4o', input: 'abc', output: '1' }))
    assert.match(bad.html, /id="f-input-error"/)
    await client.post('/admin/prices', { model: 'gpt-4o', input: '2.5', output: '10', cacheRead: '1.25' })
    const list = textOf((await client.get('/admin/prices')).html)
    assert.include(list, '$12.50')
    assert.include(list, '$1.25 / input')
    const price = await db.from('model_prices').where('model_pattern', 'gpt-4o').first()
    assert.equal(Number(price.cache_read_per_million), 1.25)
    assert.isNull(price.cache_write_per_million)
    const edit = await client.get(`/admin/prices?edit=${price.id}`)
    assert.include(edit.html, 'value="2.5"')
    await client.post('/admin/prices', { model: 'gpt-4o', input: '3', output: '10', cacheRead: '1.25' })
    assert.include((await audit('price.update')).summary, 'input: 2.5 → 3')
    await client.post(`/admin/prices/${price.id}/delete`)
    assert.notExists(await db.from('model_prices').where('id', price.id).first())
    assert.deepEqual(
      (await db.from('audit_log').where('subject_type', 'price').orderBy('id')).map((r) => r.action),
      ['price.create', 'price.update', 'price.delete']
    )
  })

  test('money: cards and totals in cents, request costs and ledger movements in 6 decimals, prices as set', async ({ assert }) => {
    const { client } = await signedInAdmin()
    const { createChannel } = await import('#actions/create_channel')
    const { setPrice } = await import('#actions/set_price')
    const { createApiKey } = await import('#actions/issue_api_key')
    const { postLedgerEntry } = await import('#actions/post_ledger_entry')
    await createChannel({ name: 'mock', provider: 'custom', baseUrl: mock.url, apiKey: 'k', models: ['*'] })
    await setPrice({ model: 'gpt-4o-mini', input: '1000', output: '2000' })
    await setPrice({ model: 'cheap-*', input: '0.075', output: '0.3' })
    const { user } = await createUser({ email: 'payer@test.local', password: 'password123' })
    await postLedgerEntry({ userRef: 'payer@test.local', kind: 'topup', amount: '10' })
    const { key } = await createApiKey({ userRef: 'payer@test.local', spendLimit: '5' })
    await refreshCaches()
    await openai(key).chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hello' }] })
    const [row] = await usageRows(user.id)
    // 12 prompt tokens x $1000/M + 5 completion tokens x $2000/M: under a dollar, over a cent
    assert.equal(Number(row.cost), 0.022)

    // Summary figures: cents (it was "$0.0220" beside "$9.98")
    const dashboard = textOf((await client.get('/admin')).html)
    assert.include(dashboard, 'Spend $0.02 ')
    assert.include(dashboard, 'gpt-4o-mini 1 17 $0.02 ')
    assert.notInclude(dashboard, '$0.0220')
    const users = textOf((await client.get('/admin/users')).html)
    assert.include(users, '$9.98')
    const keys = textOf((await client.get('/admin/keys')).html)
    assert.include(keys, '$0.02 / $5.00')

    // The usage list: the total in cents, each request's cost in 6 decimals (exact on hover)
    const list = await client.get('/admin/usage?user=payer@test.local')
    assert.include(textOf(list.html), 'Cost $0.02 ')
    assert.include(textOf(list.html), ' $0.022000 ')
    assert.include(list.html, 'title="$0.022"')
    // One request: its exact cost and charge
    const detail = textOf((await client.get(`/admin/usage/${row.id}`)).html)
    assert.include(detail, 'Cost $0.022 ')
    assert.match(detail, /Charged -\$0\.022 \(ledger #\d+\)/)

    // The user: balance and key spend in cents; the ledger column all in 6 decimals
    const page = textOf((await client.get(`/admin/users/${user.id}`)).html)
    assert.include(page, 'Balance $9.98 ')
    assert.include(page, ' $0.02 ')
    assert.include(page, 'charge -$0.022000 ')
    assert.include(page, 'topup $10.000000 ')

    // Prices as configured, the 1M + 1M sum exact (they were "$0.0750", "$0.3000", "$0.3750")
    const prices = textOf((await client.get('/admin/prices')).html)
    assert.include(prices, 'cheap-* $0.075 $0.30 input / input — — — $0.375 ')
    assert.include(prices, 'gpt-4o-mini $1,000.00 $2,000.00 input / input — — — $3,000.00 ')

    // A posted entry says the amount as typed and the balance in cents
    await client.get(`/admin/users/${user.id}`)
    const posted = textOf((await client.follow(await client.post(`/admin/users/${user.id}/ledger`, { kind: 'adjustment', amount: '-0.005' }))).html)
    assert.include(posted, 'Posted adjustment of -$0.005; balance is now $9.97.')
  })

  test('usage: a metered request is listed with its cost, opens its detail with attempts, and exports as CSV', async ({ assert }) => {
    const { client } = await signedInAdmin()
    const { createChannel } = await import('#actions/create_channel')
    const { setPrice } = await import('#actions/set_price')
    const { createApiKey } = await import('#actions/issue_api_key')
    const { postLedgerEntry } = await import('#actions/post_ledger_entry')
    await createChannel({ name: 'mock', provider: 'custom', baseUrl: mock.url, apiKey: 'k', models: ['*'] })
    await setPrice({ model: 'gpt-4o-mini', input: '1', output: '2' })
    const { user } = await createUser({ email: 'caller@test.local', password: 'password123' })
    await postLedgerEntry({ userRef: 'caller@test.local', kind: 'topup', amount: '10' })
    const { key } = await createApiKey({ userRef: 'caller@test.local' })
    await refreshCaches()
    await openai(key).chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hello' }] })
    const [row] = await usageRows(user.id)
    assert.isAbove(Number(row.cost), 0)

    const list = await client.get(`/admin/usage?user=caller@test.local`)
    assert.include(list.html, `/admin/usage/${row.id}`)
    assert.include(textOf(list.html), 'gpt-4o-mini')
    const detail = textOf((await client.get(`/admin/usage/${row.id}`)).html)
    assert.include(detail, row.request_id)
    assert.match(detail, /1 mock ok 200/)

    const csv = await fetch(`${baseUrl()}/admin/usage/export.csv?user=${user.id}`, {
      headers: { cookie: [...client.cookies].map(([k, v]) => `${k}=${v}`).join('; ') },
    })
    assert.equal(csv.status, 200)
    assert.include(csv.headers.get('content-type') ?? '', 'text/csv')
    const lines = (await csv.text()).trim().split('\n')
    assert.lengthOf(lines, 2)
    assert.include(lines[1], row.request_id)
    assert.include(lines[1], 'caller@test.local')

    const dashboard = textOf((await client.get('/admin')).html)
    assert.include(dashboard, 'Top models this month')
    assert.include(dashboard, 'gpt-4o-mini')
    const audit = textOf((await client.get('/admin/audit?action=balance')).html)
    assert.include(audit, 'caller@test.local')
  })
})
