import { test } from '@japa/runner'
import db from '@adonisjs/lucid/services/db'
import env from '#start/env'
import User from '#models/user'
import Plan from '#models/plan'
import { createUser } from '#actions/create_user'
import ApiKey from '#models/api_key'
import { createPlan } from '#actions/create_plan'
import { setDefaultPlan } from '#actions/set_default_plan'
import { postLedgerEntry } from '#actions/post_ledger_entry'
import { setRegistrationOpen } from '#services/app_settings'
import { clearFormThrottles } from '#services/form_throttle'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { baseUrl, post, resetDatabase, seedChannel, seedPrice, seedUser, startMock, refreshCaches } from '#tests/helpers'
import { PageClient, htmlText } from '#tests/page_client'

let mailbox = 0
const email = () => `portal${++mailbox}-${Date.now()}@test.local`

async function registered(client = new PageClient()) {
  const address = email()
  await client.get('/register')
  const result = await client.post('/register', { email: address, password: 'password123', password_confirmation: 'password123' })
  if (result.status !== 302 || result.location !== '/dashboard') throw new Error(`register failed: ${result.status} ${result.body.slice(0, 200)}`)
  const user = await User.findByOrFail('email', address)
  return { client, user, address }
}

/** A signed-in user with a key, a balance and some metered traffic. */
async function userWithTraffic(model = 'mock-chat') {
  const seeded = await seedUser({ balance: '10' })
  for (let i = 0; i < 3; i++) {
    await post('/v1/chat/completions', { model, messages: [{ role: 'user', content: 'hi' }] }, { authorization: `Bearer ${seeded.key}` })
  }
  const client = new PageClient()
  await client.login(seeded.email)
  return { ...seeded, client }
}

test.group('Portal: registration', (group) => {
  group.each.setup(async () => {
    await resetDatabase()
    await db.from('app_settings').delete()
    await clearFormThrottles('127.0.0.1')
  })

  test('registers on the default plan, signs in and lands on /dashboard', async ({ assert }) => {
    await createPlan({ name: 'starter', monthlyInputTokens: 1000 })
    const plan = await createPlan({ name: 'free-tier', monthlyInputTokens: 5000 })
    await setDefaultPlan(plan.id)
    const { client, user } = await registered()
    assert.equal(user.role, 'user')
    assert.equal(user.planId, plan.id)
    assert.equal(Number(user.balance), 0)
    const page = await client.get('/dashboard')
    assert.equal(page.status, 200)
    assert.include(page.body, 'free-tier')
  })

  test('the panel marks the default plan and closes registration', async ({ assert }) => {
    await createUser({ email: 'reg-admin@test.local', password: 'password123', role: 'admin' })
    const admin = new PageClient()
    await admin.login('reg-admin@test.local')
    await admin.get('/admin/plans/new')
    const created = await admin.post('/admin/plans', { name: 'gold', models: '*', isDefault: '1' })
    assert.equal(created.status, 302)
    const gold = await Plan.findByOrFail('name', 'gold')
    assert.isTrue(gold.isDefault)
    const { user } = await registered()
    assert.equal(user.planId, gold.id)
    const audit = await db.from('audit_log').where('action', 'user.register').where('subject_id', user.id).first()
    assert.equal(audit.source, 'portal')

    await admin.get('/admin/plans')
    await admin.post('/admin/settings/registration', { open: '0' })
    assert.equal((await new PageClient().get('/register')).status, 403)
    await admin.get('/admin/plans')
    await admin.post('/admin/settings/registration', { open: '1' })
    assert.equal((await new PageClient().get('/register')).status, 200)
    await admin.post('/admin/settings/registration', { open: '1' })
    const switched = await db.from('audit_log').where('action', 'settings.registration').orderBy('id')
    assert.deepEqual(
      switched.map((row) => row.summary),
      ['Self-service registration closed', 'Self-service registration opened'],
      'each change on record once, a save that changes nothing not'
    )
  })

  test('ALLOW_REGISTRATION=false closes registration whatever the panel setting says', async ({ assert, cleanup }) => {
    await setRegistrationOpen(true)
    env.set('ALLOW_REGISTRATION', false)
    cleanup(() => {
      // env.set also writes process.env, which child processes (shutdown test) inherit.
      env.set('ALLOW_REGISTRATION', true)
      delete process.env.ALLOW_REGISTRATION
    })
    const client = new PageClient()
    assert.equal((await client.get('/register')).status, 403)
    await client.get('/login')
    const address = email()
    const posted = await client.post('/register', { email: address, password: 'password123', password_confirmation: 'password123' })
    assert.equal(posted.status, 403)
    assert.isNull(await User.findBy('email', address))
  })

  test('validation errors come back beside the fields, in the page language', async ({ assert }) => {
    const client = new PageClient({ 'accept-language': 'vi' })
    await client.get('/register')
    const result = await client.post('/register', { email: 'not-an-email', password: 'short', password_confirmation: 'other' })
    assert.equal(result.status, 302)
    const page = await client.get('/register')
    assert.include(htmlText(page.body), 'Hãy nhập địa chỉ email hợp lệ.')
    assert.include(htmlText(page.body), 'Mật khẩu phải dài ít nhất 8 ký tự.')
    assert.include(page.body, 'value="not-an-email"', 'old input comes back')
    assert.equal(await User.query().where('email', 'not-an-email').first(), null)
  })

  test('validation errors in Chinese for a zh-CN browser', async ({ assert }) => {
    const client = new PageClient({ 'accept-language': 'zh-CN,zh;q=0.9' })
    await client.get('/register')
    const result = await client.post('/register', { email: 'not-an-email', password: 'short', password_confirmation: 'other' })
    assert.equal(result.status, 302)
    const text = htmlText((await client.get('/register')).body)
    assert.include(text, '请输入有效的电子邮箱地址。')
    assert.include(text, '密码至少需要 8 个字符。')
  })

  test('old input comes back escaped (no markup injection through a form field)', async ({ assert }) => {
    const client = new PageClient()
    await client.get('/register')
    await client.post('/register', { email: '"><script>alert(1)</script>', password: 'x', password_confirmation: 'x' })
    const page = await client.get('/register')
    assert.notInclude(page.body, '<script>alert(1)</script>')
    assert.include(page.body, '&quot;&gt;&lt;script&gt;')
  })

  test('a taken e-mail is refused', async ({ assert }) => {
    const { address } = await registered()
    const client = new PageClient()
    await client.get('/register')
    await client.post('/register', { email: address.toUpperCase(), password: 'password123', password_confirmation: 'password123' })
    const page = await client.get('/register')
    assert.include(htmlText(page.body), 'An account with this e-mail already exists')
    assert.lengthOf(await User.query().whereRaw('lower(email) = ?', [address]), 1)
  })

  test('a POST without the CSRF token creates nothing', async ({ assert }) => {
    const client = new PageClient()
    await client.get('/register')
    const address = email()
    const result = await client.post('/register', { email: address, password: 'password123', password_confirmation: 'password123' }, { csrf: false })
    assert.notEqual(result.location, '/dashboard')
    assert.isNull(await User.findBy('email', address))
  })

  test('registrations are throttled per client IP (429 with Retry-After)', async ({ assert }) => {
    const client = new PageClient()
    await client.get('/register')
    for (let i = 0; i < 5; i++) {
      await client.post('/register', { email: 'bad', password: 'x', password_confirmation: 'y' })
      await client.get('/register')
    }
    const address = email()
    const result = await client.post('/register', { email: address, password: 'password123', password_confirmation: 'password123' })
    assert.equal(result.status, 429)
    assert.isAbove(Number(result.headers.get('retry-after')), 0)
    assert.include(htmlText(result.body), 'Too many attempts')
    assert.isNull(await User.findBy('email', address))
  })

  test('an administrator can close registration (panel setting); the page says so', async ({ assert }) => {
    await setRegistrationOpen(false)
    const client = new PageClient()
    const page = await client.get('/register')
    assert.equal(page.status, 403)
    assert.include(htmlText(page.body), 'Registration is closed')
    assert.notInclude(page.body, 'name="password_confirmation"')
    await setRegistrationOpen(true)
    assert.equal((await client.get('/register')).status, 200)
  })
})

test.group('Portal: pages of a signed-in user', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock({ text: 'Hello from the mock' })
    await seedChannel({ name: 'mock', baseUrl: mock.url, models: ['mock-chat', 'mock-free', 'text-embedding-3-small'] })
    await seedPrice('mock-chat', '2', '8')
    return () => mock.stop()
  })

  test('/login sends a user to /dashboard; the portal needs a session', async ({ assert }) => {
    const anonymous = new PageClient()
    const denied = await anonymous.get('/dashboard/keys')
    assert.equal(denied.status, 302)
    assert.equal(denied.location, '/login')
    const seeded = await seedUser()
    const client = new PageClient()
    await client.get('/login')
    const result = await client.post('/login', { email: seeded.email, password: 'password123' })
    assert.equal(result.location, '/dashboard')
  })

  test('overview: balance, month spend and tokens, 30 days of requests, last errors with a fix', async ({ assert }) => {
    const user = await userWithTraffic()
    await post('/v1/chat/completions', { model: 'mock-chat' }, { authorization: `Bearer ${user.key}` })
    const page = await user.client.get('/dashboard')
    assert.equal(page.status, 200)
    const text = htmlText(page.body)
    const chart = JSON.parse(htmlText(/data-chart="([^"]+)"/.exec(page.body)![1]))
    assert.lengthOf(chart.labels, 30)
    assert.equal(chart.series[0].values.at(-1), 4)
    assert.equal(chart.series[1].values.at(-1), 1)
    assert.include(text, 'Input tokens this month')
    assert.include(text, 'Last errors')
  })

  test('keys: create with name, expiry, models and cap; the full key is shown once and works', async ({ assert }) => {
    const user = await userWithTraffic()
    await user.client.get('/dashboard/keys')
    const created = await user.client.post('/dashboard/keys', { name: 'ci', expires_in_days: '30', models: 'mock-chat', spend_limit: '2.5' })
    assert.equal(created.status, 200)
    const key = /data-new-key>([^<]+)</.exec(created.body)![1]
    assert.match(key, /^sk-gw-/)
    const row = await ApiKey.query().where('user_id', user.userId).where('name', 'ci').firstOrFail()
    assert.deepEqual(row.allowedModels, ['mock-chat'])
    assert.equal(Number(row.spendLimit), 2.5)
    assert.isNotNull(row.expiresAt)
    const again = await user.client.get('/dashboard/keys')
    assert.notInclude(again.body, key, 'shown once')
    assert.include(again.body, row.prefix)
    await refreshCaches()
    const answer = await post('/v1/chat/completions', { model: 'mock-chat', messages: [{ role: 'user', content: 'hi' }] }, { authorization: `Bearer ${key}` })
    assert.equal(answer.status, 200)
    const refused = await post('/v1/chat/completions', { model: 'mock-free', messages: [{ role: 'user', content: 'hi' }] }, { authorization: `Bearer ${key}` })
    assert.equal(refused.status, 403)
  })

  test('keys: validation errors, a model outside the plan, CSRF', async ({ assert }) => {
    const seeded = await seedUser({ plan: { name: 'narrow', models: ['mock-chat'] } })
    const client = new PageClient()
    await client.login(seeded.email)
    await client.get('/dashboard/keys')
    await client.post('/dashboard/keys', { name: '', spend_limit: 'lots', expires_in_days: '0' })
    let page = await client.get('/dashboard/keys')
    assert.include(htmlText(page.body), 'Name is required')
    assert.include(htmlText(page.body), 'Spend cap has an invalid format')
    await client.post('/dashboard/keys', { name: 'wide', models: 'mock-free' })
    page = await client.get('/dashboard/keys')
    assert.include(htmlText(page.body), 'not allowed by your plan')
    await client.post('/dashboard/keys', { name: 'forged' }, { csrf: false })
    assert.equal(await ApiKey.query().where('user_id', seeded.userId).count('* as n').then((r) => Number(r[0].$extras.n)), 1)
  })

  test('keys: revoke one of your own', async ({ assert }) => {
    const user = await userWithTraffic()
    await user.client.get('/dashboard/keys')
    const result = await user.client.post(`/dashboard/keys/${user.keyId}/revoke`, {})
    assert.equal(result.location, '/dashboard/keys')
    assert.isNotNull((await ApiKey.findOrFail(user.keyId)).revokedAt)
    await refreshCaches()
    const answer = await post('/v1/chat/completions', { model: 'mock-chat', messages: [] }, { authorization: `Bearer ${user.key}` })
    assert.equal(answer.status, 401)
  })

  test('billing: balance agrees with /v1/balance to the cent; charges summed per day', async ({ assert }) => {
    const user = await userWithTraffic()
    await postLedgerEntry({ userRef: user.email, kind: 'adjustment', amount: '-0.25', note: 'goodwill fix' })
    const page = await user.client.get('/dashboard/billing')
    const api: any = await (await fetch(`${baseUrl()}/v1/balance`, { headers: { authorization: `Bearer ${user.key}` } })).json()
    const shown = Number(/data-balance="([^"]+)"/.exec(page.body)![1])
    assert.equal(Math.round(shown * 100), Math.round(api.balance * 100))
    assert.isBelow(shown, 9.75)
    const charges = [...page.body.matchAll(/<tr data-kind="charge">/g)]
    assert.lengthOf(charges, 1, 'three requests today: one line')
    assert.include(htmlText(page.body), '3 requests')
    assert.include(htmlText(page.body), 'goodwill fix')
    assert.include(htmlText(page.body), 'Top-up')
  })

  test('usage logs: rows with tokens, cost, latency; filters; paging; CSV', async ({ assert }) => {
    const user = await userWithTraffic()
    await post('/v1/chat/completions', { model: 'mock-free', messages: [{ role: 'user', content: 'x' }] }, { authorization: `Bearer ${user.key}` })
    let page = await user.client.get('/dashboard/usage')
    assert.lengthOf([...page.body.matchAll(/data-usage-id=/g)], 4)
    const cost = [...page.body.matchAll(/data-cost="([^"]+)"/g)].map((m) => Number(m[1]))
    assert.isTrue(cost.some((c) => c > 0))
    page = await user.client.get('/dashboard/usage?model=mock-free')
    assert.lengthOf([...page.body.matchAll(/data-usage-id=/g)], 1)
    page = await user.client.get('/dashboard/usage?status=error')
    assert.lengthOf([...page.body.matchAll(/data-usage-id=/g)], 0)
    const today = new Date().toISOString().slice(0, 10)
    page = await user.client.get(`/dashboard/usage?from=${today}&to=${today}&key=${user.keyId}`)
    assert.lengthOf([...page.body.matchAll(/data-usage-id=/g)], 4)
    page = await user.client.get('/dashboard/usage?from=2020-01-01&to=2020-01-02')
    assert.lengthOf([...page.body.matchAll(/data-usage-id=/g)], 0)
    const bad = await user.client.get('/dashboard/usage?from=yesterday&status=maybe')
    assert.equal(bad.status, 422)
    const csv = await user.client.get('/dashboard/usage.csv?model=mock-chat')
    assert.equal(csv.headers.get('content-type'), 'text/csv; charset=utf-8')
    const lines = csv.body.trim().split('\r\n')
    assert.match(lines[0], /^time,model,endpoint,stream,key,status,error_code,input_tokens,output_tokens,cached_tokens,cost_usd,latency_ms,estimated,requested_model,cache_hit,tags,end_user$/)
    assert.lengthOf(lines, 4)
    assert.isTrue(lines.slice(1).every((l) => l.split(',')[1] === 'mock-chat'))
  })

  test('money: cards, spend and the ledger in cents; each request\'s cost in 6 decimals', async ({ assert }) => {
    const seeded = await seedUser({ balance: '5.3' })
    await db.table('balance_ledger').insert({ user_id: seeded.userId, kind: 'charge', amount: '-0.5682' })
    await db.from('api_keys').where('id', seeded.keyId).update({ spent: '0.5682', spend_limit: '2.5' })
    const usage = (cost: string) => ({
      request_id: crypto.randomUUID(),
      user_id: seeded.userId,
      api_key_id: seeded.keyId,
      model: 'mock-chat',
      endpoint: 'chat',
      stream: false,
      status: 200,
      prompt_tokens: 1,
      completion_tokens: 1,
      total_tokens: 2,
      cost,
      latency_ms: 5,
      created_at: new Date(),
    })
    await db.table('usage_records').multiInsert([usage('0.0022'), usage('0.5682'), usage('0')])
    const client = new PageClient()
    await client.login(seeded.email)

    // One row of cards: "$4.73" beside "$0.57" (it was "$0.5682")
    const overview = htmlText((await client.get('/dashboard')).body)
    assert.include(overview, '$4.73')
    assert.include(overview, '$0.57')
    assert.notInclude(overview, '$0.5682')
    const billing = await client.get('/dashboard/billing')
    const amounts = [...billing.body.matchAll(/data-amount="([^"]+)">([^<]+)</g)].map((m) => [Number(m[1]), m[2]])
    assert.sameDeepMembers(amounts, [[5.3, '$5.30'], [-0.5682, '-$0.57']], 'the ledger column in cents; data-amount exact')
    assert.include(htmlText(billing.body), '$4.73')
    assert.notInclude(htmlText(billing.body), '$0.5682')
    const keys = htmlText((await client.get('/dashboard/keys')).body)
    assert.include(keys, '$0.57 / $2.50')

    // Usage logs: one rule for the whole column, the exact cost on hover and in data-cost
    const logs = await client.get('/dashboard/usage')
    const costs = [...logs.body.matchAll(/data-cost="([^"]+)" title="([^"]+)">([^<]+)</g)].map((m) => [Number(m[1]), m[2], m[3]])
    assert.sameDeepMembers(costs, [
      [0.0022, '$0.0022', '$0.002200'],
      [0.5682, '$0.5682', '$0.568200'],
      [0, '$0.00', '$0.000000'],
    ])

    await client.get('/lang/vi')
    const vi = htmlText((await client.get('/dashboard')).body)
    assert.match(vi, /4,73\sUS\$/)
    assert.match(vi, /0,57\sUS\$/)
    assert.match(htmlText((await client.get('/dashboard/usage')).body), /0,002200\sUS\$/)
    await client.get('/lang/zh')
    const zh = htmlText((await client.get('/dashboard')).body)
    assert.include(zh, 'US$4.73')
    assert.include(zh, 'US$0.57')
    assert.include(htmlText((await client.get('/dashboard/usage')).body), 'US$0.002200')
  })

  test('usage logs: 50 rows a page, then the next page', async ({ assert }) => {
    const seeded = await seedUser()
    const rows = Array.from({ length: 60 }, (_, i) => ({
      request_id: crypto.randomUUID(),
      user_id: seeded.userId,
      api_key_id: seeded.keyId,
      model: 'mock-free',
      endpoint: 'chat',
      stream: false,
      status: 200,
      prompt_tokens: i,
      completion_tokens: 1,
      total_tokens: i + 1,
      cost: '0',
      latency_ms: 5,
      created_at: new Date(),
    }))
    await db.table('usage_records').multiInsert(rows)
    const client = new PageClient()
    await client.login(seeded.email)
    const first = await client.get('/dashboard/usage')
    assert.lengthOf([...first.body.matchAll(/data-usage-id=/g)], 50)
    assert.include(first.body, 'rel="next"')
    const second = await client.get('/dashboard/usage?page=2')
    assert.lengthOf([...second.body.matchAll(/data-usage-id=/g)], 10)
    assert.include(htmlText(second.body), 'Page 2 of 2')
  })

  test('models: the plan\'s models with prices, each linking to /docs with it selected', async ({ assert }) => {
    const seeded = await seedUser({ plan: { name: 'mock-only', models: ['mock-*'] } })
    const client = new PageClient()
    await client.login(seeded.email)
    // Priced, but no channel serves it: a request for it would be a 404, so it is not offered.
    await seedPrice('mock-unserved', '1', '1')
    await refreshCaches()
    const page = await client.get('/dashboard/models')
    assert.include(page.body, 'data-model="mock-chat"')
    assert.include(page.body, 'data-model="mock-free"')
    assert.notInclude(page.body, 'data-model="mock-unserved"')
    assert.notInclude(page.body, 'data-model="text-embedding-3-small"')
    assert.include(htmlText(page.body), '$2.00')
    assert.include(page.body, '/docs?model=mock-chat#models')
    const docs = await client.get('/docs?model=mock-free')
    assert.include(docs.body, '<code data-selected-model>mock-free</code>')
    assert.notInclude(docs.body, 'data-model="text-embedding-3-small"', 'tags limited to the plan')
    assert.include(docs.body, `${(await ApiKey.findOrFail(seeded.keyId)).prefix}`, 'own key prefix')
    assert.notInclude(docs.body, seeded.key, 'never the full key')
  })

  test('password: wrong current password refused, then changed; throttled', async ({ assert }) => {
    const seeded = await seedUser()
    await clearFormThrottles('127.0.0.1', [seeded.userId])
    const client = new PageClient()
    await client.login(seeded.email)
    await client.get('/dashboard/password')
    await client.post('/dashboard/password', { current_password: 'nope', password: 'newpassword1', password_confirmation: 'newpassword1' })
    let page = await client.get('/dashboard/password')
    assert.include(htmlText(page.body), 'The current password is not correct.')
    await client.post('/dashboard/password', { current_password: 'password123', password: 'newpassword1', password_confirmation: 'mismatch' })
    page = await client.get('/dashboard/password')
    assert.include(htmlText(page.body), 'The two passwords do not match.')
    const done = await client.post('/dashboard/password', { current_password: 'password123', password: 'newpassword1', password_confirmation: 'newpassword1' })
    assert.equal(done.location, '/dashboard/password')
    await new PageClient().login(seeded.email, 'newpassword1')
    await client.get('/dashboard/password')
    for (let i = 0; i < 2; i++) await client.post('/dashboard/password', { current_password: 'x', password: 'newpassword2', password_confirmation: 'newpassword2' })
    const throttled = await client.post('/dashboard/password', { current_password: 'newpassword1', password: 'newpassword2', password_confirmation: 'newpassword2' })
    assert.equal(throttled.status, 429)
  })

  test('seed 004 console paths redirect to the portal', async ({ assert }) => {
    const client = new PageClient()
    for (const [from, to] of [
      ['/console', '/dashboard'],
      ['/console/token', '/dashboard/keys'],
      ['/console/topup', '/dashboard/billing'],
      ['/console/log', '/dashboard/usage'],
    ]) {
      const result = await client.get(from)
      assert.equal(result.status, 302)
      assert.equal(result.location, to)
    }
  })
})

test.group('Portal: isolation between two users', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'mock', baseUrl: mock.url, models: ['mock-chat'] })
    await seedPrice('mock-chat', '1', '1')
    return () => mock.stop()
  })

  test('no portal route shows or changes the other user\'s keys, logs or ledger', async ({ assert }) => {
    const alice = await userWithTraffic()
    const bob = await userWithTraffic()
    await postLedgerEntry({ userRef: bob.email, kind: 'topup', amount: '77.77', note: 'bob-secret-note' })
    const bobKey = await ApiKey.findOrFail(bob.keyId)
    const bobRows = await db.from('usage_records').where('user_id', bob.userId).select('id')

    for (const path of [
      '/dashboard',
      '/dashboard/keys',
      '/dashboard/billing',
      '/dashboard/usage',
      `/dashboard/usage?key=${bob.keyId}`,
      `/dashboard/usage.csv?key=${bob.keyId}`,
      '/dashboard/usage.csv',
      '/dashboard/models',
      '/docs',
    ]) {
      const page = await alice.client.get(path)
      assert.oneOf(page.status, [200], path)
      assert.notInclude(page.body, bobKey.prefix, `${path} shows bob's key`)
      assert.notInclude(page.body, 'bob-secret-note', `${path} shows bob's ledger`)
      assert.notInclude(page.body, '77.77', path)
      assert.notInclude(page.body, bob.email, path)
      for (const row of bobRows) assert.notInclude(page.body, `data-usage-id="${row.id}"`, path)
    }
    const filtered = await alice.client.get(`/dashboard/usage?key=${bob.keyId}`)
    assert.lengthOf([...filtered.body.matchAll(/data-usage-id=/g)], 0)
    const csv = await alice.client.get(`/dashboard/usage.csv?key=${bob.keyId}`)
    assert.lengthOf(csv.body.trim().split('\r\n'), 1, 'header only')

    await alice.client.get('/dashboard/keys')
    const revoke = await alice.client.post(`/dashboard/keys/${bob.keyId}/revoke`, {})
    assert.equal(revoke.status, 404)
    assert.isNull((await ApiKey.findOrFail(bob.keyId)).revokedAt, "bob's key untouched")
  })
})
