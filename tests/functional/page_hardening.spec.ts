import { test } from '@japa/runner'
import { readdirSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import db from '@adonisjs/lucid/services/db'
import router from '@adonisjs/core/services/router'
import { createUser } from '#actions/create_user'
import { createPlan } from '#actions/create_plan'
import { setChannelEnabled } from '#actions/update_channel'
import { postLedgerEntry } from '#actions/post_ledger_entry'
import { createRedemptionCodes } from '#actions/create_redemption_codes'
import { setAnnouncement } from '#actions/set_announcement'
import { cliActor } from '#actions/audit'
import { clearLoginThrottles } from '#services/login_throttle'
import { isApiPath } from '#gateway/http/api_paths'
import { baseUrl, gateway, meterEvent, resetDatabase, seedChannel, seedUser } from '#tests/helpers'
import { PanelClient, textOf } from '#tests/panel_client'

/**
 * The admin panel and portal against hostile input: ids and numbers past what
 * the columns hold, LIKE wildcards, dates Postgres refuses, redirects off the
 * site, a disabled account's session, spreadsheet formulas in CSV exports,
 * and every route's guard (admin role, CSRF token).
 */

const HUGE = '99999999999999999999'

async function signedIn(email: string, password: string) {
  const client = new PanelClient()
  const result = await client.login(email, password)
  if (result.status !== 302) throw new Error(`login of ${email} failed: ${result.status}`)
  return client
}

async function seedAccounts() {
  await resetDatabase()
  await clearLoginThrottles('127.0.0.1')
  await createUser({ email: 'hard-admin@test.local', password: 'admin-password', role: 'admin' })
  const alice = await seedUser({ balance: '5' })
  const bob = await seedUser({ balance: '5' })
  const gw = await gateway()
  for (const u of [alice, bob]) gw.meter.record({ ...meterEvent(u.userId), apiKeyId: u.keyId })
  await gw.meter.drain()
  return {
    admin: await signedIn('hard-admin@test.local', 'admin-password'),
    alice: await signedIn(alice.email, 'password123'),
    aliceUser: alice,
    bobUser: bob,
  }
}

test.group('Pages: hostile ids, numbers and dates', (group) => {
  let accounts: Awaited<ReturnType<typeof seedAccounts>>
  group.setup(async () => {
    accounts = await seedAccounts()
  })

  test('admin lists take any ?before=, ?user=, ?key=, ?channel= and dates without a 500', async ({ assert }) => {
    const paths = [
      ...['/admin/users', '/admin/keys', '/admin/audit', '/admin/payments', '/admin/redemptions', '/admin/usage'].flatMap((p) => [
        `${p}?before=1e20`,
        `${p}?before=1.5`,
        `${p}?before=-1`,
        `${p}?before=abc`,
        `${p}?before[]=1`,
        `${p}?before=${HUGE}`,
      ]),
      `/admin/keys/new?user=${HUGE}`,
      '/admin/keys/new?user=1.5',
      `/admin/audit?subject=user:${HUGE}`,
      `/admin/usage?user=${HUGE}`,
      `/admin/usage?key=${HUGE}`,
      `/admin/usage?channel=${HUGE}`,
      `/admin/usage?channel=${HUGE}&model=m&user=1`,
      '/admin/usage?from=9999-12-31&to=9999-12-31',
      '/admin/usage?model[]=a&user[]=b&status=%5C&tag=%27%5C',
    ]
    for (const path of paths) {
      const page = await accounts.admin.get(path)
      assert.equal(page.status, 200, path)
    }
    // Dates the report refuses (no day, before 1970, from after to): a 422 with the message beside the date field, no 500.
    for (const path of [
      '/admin/usage?from=0000-01-01&to=0000-01-02',
      '/admin/usage?from=0000-01-01&model=m&user=1',
      '/admin/usage?from=2026-12-01&to=2020-01-01',
      '/admin/usage?from=2026-13-45',
      '/admin/usage?from[]=2026-01-01',
    ]) {
      const page = await accounts.admin.get(path)
      assert.equal(page.status, 422, path)
      assert.include(page.html, 'data-range-error=', path)
    }
  }).timeout(60_000)

  test('an id with more digits than any row has is a 404, in the panel and the portal', async ({ assert }) => {
    for (const path of [
      `/admin/users/${HUGE}`,
      `/admin/keys/${HUGE}`,
      `/admin/keys/${HUGE}/edit`,
      `/admin/channels/${HUGE}`,
      `/admin/plans/${HUGE}/edit`,
      `/admin/usage/${HUGE}`,
    ]) {
      assert.equal((await accounts.admin.get(path)).status, 404, path)
    }
    for (const path of [`/dashboard/usage/${HUGE}`, `/dashboard/keys/${HUGE}/edit`]) {
      assert.equal((await accounts.alice.get(path)).status, 404, path)
    }
    await accounts.admin.get('/admin/users')
    assert.equal((await accounts.admin.post(`/admin/users/${HUGE}/ledger`, { kind: 'topup', amount: '1' })).status, 404)
  })

  test('the portal usage filters refuse a key id past 2^53 with a message (422), page and CSV alike', async ({ assert }) => {
    const page = await accounts.alice.get(`/dashboard/usage?key=${HUGE}`)
    assert.equal(page.status, 422)
    assert.match(textOf(page.html), /key/i)
    assert.equal((await accounts.alice.get(`/dashboard/usage.csv?key=${HUGE}`)).status, 422)
    // A repeated page (page[]=1) is no whole number either (whole_number.ts), as in the management API's lists.
    for (const path of ['/dashboard/usage?page=-1', '/dashboard/usage?page=1e20', '/dashboard/usage?page=abc', '/dashboard/usage?page[]=1', '/dashboard/usage?from=0000-01-01', '/dashboard/usage?from=2026-12-01&to=2020-01-01']) {
      assert.equal((await accounts.alice.get(path)).status, 422, path)
    }
    for (const path of ['/dashboard/usage?per_page=1000000', '/dashboard/usage?model=%25%27%5C']) {
      assert.equal((await accounts.alice.get(path)).status, 200, path)
    }
  })

  test('the admin CSV export with an id no row has ends (header only), never hangs', async ({ assert }) => {
    const response = await fetch(`${baseUrl()}/admin/usage/export.csv?user=${HUGE}`, {
      headers: { cookie: [...accounts.admin.cookies].map(([k, v]) => `${k}=${v}`).join('; ') },
      signal: AbortSignal.timeout(10_000),
    })
    assert.equal(response.status, 200)
    const lines = (await response.text()).trim().split('\n')
    assert.lengthOf(lines, 1)
    assert.match(lines[0], /^id,created_at,/)
  })

  test('admin forms refuse numbers their columns cannot hold with a message, not a 500', async ({ assert }) => {
    const { admin } = accounts
    await admin.get('/admin/plans/new')
    const plan = await admin.post('/admin/plans', { name: 'huge-plan', rpm: '3000000000', isDefault: '0' })
    assert.equal(plan.status, 302)
    assert.include(textOf((await admin.follow(plan)).html), 'at most 2147483647')
    assert.isNull(await db.from('plans').where('name', 'huge-plan').first())

    await admin.get('/admin/prices')
    const price = await admin.post('/admin/prices', { model: 'huge-*', input: '123456789012345678', output: '1' })
    assert.equal(price.status, 302)
    assert.include(textOf((await admin.follow(price)).html), 'must be a price in USD')

    await admin.get(`/admin/users/${accounts.aliceUser.userId}`)
    const ledger = await admin.post(`/admin/users/${accounts.aliceUser.userId}/ledger`, { kind: 'topup', amount: '12345678901234' })
    assert.equal(ledger.status, 302)
    assert.include(textOf((await admin.follow(ledger)).html), 'must be an amount in USD')
  })

  test('a last day in year 0, an owner id of 20 digits, a balance past numeric(24,12): a message, not a 500', async ({ assert }) => {
    const { admin, alice, aliceUser } = accounts
    await alice.get(`/dashboard/keys/${aliceUser.keyId}/edit`)
    const portalEdit = await alice.post(`/dashboard/keys/${aliceUser.keyId}`, { name: 'year zero', expires_on: '0000-01-01' })
    assert.equal(portalEdit.status, 302)
    assert.notEqual((await db.from('api_keys').where('id', aliceUser.keyId).first()).name, 'year zero')

    await admin.get(`/admin/keys/${aliceUser.keyId}/edit`)
    const adminEdit = await admin.post(`/admin/keys/${aliceUser.keyId}`, { name: 'year zero', expiresOn: '0000-01-01' })
    assert.equal(adminEdit.status, 302)
    assert.include(textOf((await admin.follow(adminEdit)).html), 'Last day it works must be a date such as 2027-01-31')

    await admin.get('/admin/keys/new')
    const owner = await admin.post('/admin/keys', { user: HUGE, name: 'nobody' })
    assert.equal(owner.status, 302)
    assert.include(textOf((await admin.follow(owner)).html), `No user "${HUGE}"`)

    const balance = (await db.from('users').where('id', aliceUser.userId).first()).balance
    await admin.get(`/admin/users/${aliceUser.userId}`)
    const overflow = await admin.post(`/admin/users/${aliceUser.userId}/ledger`, { kind: 'topup', amount: '999999999999' })
    assert.equal(overflow.status, 302)
    assert.include(textOf((await admin.follow(overflow)).html), 'The balance would go past 999999999999.99 USD')
    assert.equal((await db.from('users').where('id', aliceUser.userId).first()).balance, balance)
  })
})

test.group('Pages: search boxes take % _ and \\ literally', (group) => {
  let accounts: Awaited<ReturnType<typeof seedAccounts>>
  group.setup(async () => {
    accounts = await seedAccounts()
  })

  test('a % or _ in the key and audit searches matches only itself', async ({ assert }) => {
    const { admin } = accounts
    const everyKey = await admin.get('/admin/keys')
    const keyIds = [accounts.aliceUser.keyId, accounts.bobUser.keyId]
    for (const id of keyIds) assert.include(everyKey.html, `/admin/keys/${id}"`)
    for (const q of ['%', '_', '%25', '\\']) {
      const page = await admin.get(`/admin/keys?q=${encodeURIComponent(q)}`)
      assert.equal(page.status, 200, q)
      for (const id of keyIds) assert.notInclude(page.html, `/admin/keys/${id}"`, `q=${q} matched every key`)
    }
    // The audit log has the seed's entries (actor "cli"): "%" is no wildcard there either.
    const audit = await admin.get('/admin/audit?actor=%25')
    assert.equal(audit.status, 200)
    assert.notInclude(textOf(audit.html), 'key.create')
    const payments = await admin.get('/admin/payments?email=_')
    assert.equal(payments.status, 200)
  })
})

test.group('Pages: redirects stay on the site', (group) => {
  group.setup(async () => {
    await resetDatabase()
  })

  test('the language picker goes back only to a path of ours; a malformed Referer goes to /docs', async ({ assert }) => {
    for (const referer of ['http://[', `${baseUrl()}//evil.com/x`, `${baseUrl()}/\\evil.com`, 'https://evil.com/x']) {
      const response = await fetch(`${baseUrl()}/lang/en`, { redirect: 'manual', headers: { referer } })
      assert.equal(response.status, 302, referer)
      assert.equal(response.headers.get('location'), '/docs', referer)
    }
    const back = await fetch(`${baseUrl()}/lang/vi`, { redirect: 'manual', headers: { referer: `${baseUrl()}/pricing?q=gpt#top` } })
    assert.equal(back.headers.get('location'), '/pricing?q=gpt#top')
  })
})

test.group('Pages: a disabled account', (group) => {
  group.setup(async () => {
    await resetDatabase()
    await clearLoginThrottles('127.0.0.1')
  })

  test("an administrator disabled mid-session loses /status's admin columns and the session", async ({ assert }) => {
    await seedChannel({ name: 'hidden-upstream', baseUrl: 'http://127.0.0.1:9/secret-upstream-path' })
    const { user } = await createUser({ email: 'gone-admin@test.local', password: 'admin-password', role: 'admin' })
    const client = await signedIn('gone-admin@test.local', 'admin-password')
    assert.include((await client.get('/status')).html, 'secret-upstream-path')

    await db.from('users').where('id', user.id).update({ disabled_at: new Date() })
    for (const path of ['/status', '/docs', '/pricing']) {
      const page = await client.get(path)
      assert.notInclude(page.html, 'secret-upstream-path', path)
      assert.notInclude(page.html, 'gone-admin@test.local', path)
    }
    // The session is over: re-enabling the account does not bring it back.
    await db.from('users').where('id', user.id).update({ disabled_at: null })
    assert.equal((await client.get('/admin')).location, '/login')
  })

  test('a user disabled mid-session is signed out of the portal at the next request, POSTs included', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const client = await signedIn(user.email, 'password123')
    await client.get('/dashboard/keys')
    await db.from('users').where('id', user.userId).update({ disabled_at: new Date() })
    const created = await client.post('/dashboard/keys', { name: 'after-disable' })
    assert.equal(created.location, '/login')
    assert.isNull(await db.from('api_keys').where('name', 'after-disable').first())
    await db.from('users').where('id', user.userId).update({ disabled_at: null })
    assert.equal((await client.get('/dashboard')).location, '/login')
  })
})

test.group('CSV exports: spreadsheet formulas stay text', (group) => {
  group.setup(async () => {
    await resetDatabase()
    await clearLoginThrottles('127.0.0.1')
  })

  test('a key named =HYPERLINK(...) is exported with a leading apostrophe; negative amounts stay numbers', async ({ assert }) => {
    await createUser({ email: 'csv-admin@test.local', password: 'admin-password', role: 'admin' })
    const user = await seedUser({ balance: '5' })
    const formula = '=HYPERLINK("http://evil.example","click")'
    await db.from('api_keys').where('id', user.keyId).update({ name: formula })
    const gw = await gateway()
    gw.meter.record({ ...meterEvent(user.userId, '@SUM(A1)'), apiKeyId: user.keyId })
    await gw.meter.drain()

    const portal = await signedIn(user.email, 'password123')
    const mine = (await portal.get('/dashboard/usage.csv')).html
    assert.include(mine, `"'=HYPERLINK(""http://evil.example"",""click"")`)
    assert.include(mine, "'@SUM(A1)")
    assert.notMatch(mine, /(^|,)"?=HYPERLINK/m)

    const ledger = (await portal.get('/dashboard/billing.csv')).html
    assert.match(ledger, /,-0\.001(0*)?\r\n/, 'a charge stays a negative number')

    const admin = await signedIn('csv-admin@test.local', 'admin-password')
    const all = (await admin.get('/admin/usage/export.csv')).html
    assert.include(all, "'@SUM(A1)")
    assert.include(all, `"'=HYPERLINK(""http://evil.example"",""click"")"`)
  })
})

/** Every page route of the running app (not the API's, whose paths isApiPath knows): method and pattern, with :params filled with 1. */
function sessionRoutes() {
  const routes: Array<{ method: string; path: string }> = []
  for (const list of Object.values(router.toJSON())) {
    for (const route of list as Array<{ pattern: string; methods: string[] }>) {
      if (isApiPath(route.pattern) || route.pattern.startsWith('/webhooks/')) continue
      const path = route.pattern.replace(/:[a-z_]+\??/g, '1').replace(/\*$/, 'x')
      for (const method of route.methods) if (method !== 'HEAD') routes.push({ method, path })
    }
  }
  return routes
}

test.group('Pages: every route is guarded', (group) => {
  let accounts: Awaited<ReturnType<typeof seedAccounts>>
  group.setup(async () => {
    accounts = await seedAccounts()
  })

  test('a signed-in user gets 403 on every /admin route, GET and POST, and changes nothing', async ({ assert }) => {
    const admin = sessionRoutes().filter((r) => r.path === '/admin' || r.path.startsWith('/admin/'))
    assert.isAbove(admin.filter((r) => r.method === 'POST').length, 20)
    const before = await db.from('audit_log').count('* as n').first()
    await accounts.alice.get('/dashboard')
    for (const { method, path } of admin) {
      const result = method === 'GET' ? await accounts.alice.get(path) : await accounts.alice.post(path, { name: 'x', amount: '1', kind: 'topup' })
      assert.equal(result.status, 403, `${method} ${path}`)
    }
    assert.deepEqual(await db.from('audit_log').count('* as n').first(), before)
  }).timeout(60_000)

  test('every state-changing page route refuses a form without the CSRF token', async ({ assert }) => {
    const posts = sessionRoutes().filter((r) => r.method !== 'GET')
    assert.isAbove(posts.length, 40)
    for (const { method, path } of posts) {
      assert.equal(method, 'POST', `${path}: the pages post forms; a ${method} route needs its own CSRF check here`)
      const anonymous = ['/login', '/login/two-factor', '/register'].includes(path)
      const client = anonymous ? new PanelClient() : path.startsWith('/admin') || path === '/logout' ? accounts.admin : accounts.alice
      await client.get(anonymous ? '/login' : path.startsWith('/admin') ? '/admin' : '/dashboard')
      const result = await client.post(path, { email: 'x@test.local', password: 'password123', name: 'x' }, { csrf: false })
      assert.equal(result.status, 302, `${method} ${path}`)
      const page = await client.follow(result)
      assert.include(textOf(page.html), 'Invalid or expired CSRF token', `${method} ${path}`)
    }
    // Still signed in: the refused /logout did not log the admin out.
    assert.equal((await accounts.admin.get('/admin')).status, 200)
  }).timeout(60_000)
})

test.group('Pages: user-controlled text is escaped everywhere it is shown', (group) => {
  group.setup(async () => {
    await resetDatabase()
    await clearLoginThrottles('127.0.0.1')
  })

  test('names, models, tags, upstream errors, notes, batches and echoed filters never come back as markup', async ({ assert }) => {
    const P = `<i>xss"'</i>`
    const raw = /<i>xss/
    const escaped = /&lt;i&gt;xss/
    let shown = 0
    await createUser({ email: 'xss-admin@test.local', password: 'admin-password', role: 'admin' })
    const plan = await createPlan({ name: `plan ${P}`, models: ['*'] })
    const user = await seedUser({ balance: '5' })
    await db.from('users').where('id', user.userId).update({ plan_id: plan.id })
    await db.from('api_keys').where('id', user.keyId).update({ name: `key ${P}` })
    const channel = await seedChannel({ name: `channel ${P}`, baseUrl: 'http://127.0.0.1:9' })
    await setChannelEnabled(channel.id, false, `reason ${P}`)
    await postLedgerEntry({ userRef: user.email, kind: 'topup', amount: '1', note: `note ${P}` })
    await createRedemptionCodes({ batch: `batch ${P}`, amount: '1', count: 1 })
    await setAnnouncement({ text: `news ${P}`, level: 'warning', link: `https://x.example/"><i>xss` }, cliActor())
    const gw = await gateway()
    gw.meter.record({
      ...meterEvent(user.userId, `model ${P}`),
      apiKeyId: user.keyId,
      channelId: channel.id,
      requestedModel: `asked ${P}`,
      status: 502,
      errorCode: `code ${P}`,
      tags: [`tag ${P}`],
      attemptCount: 1,
      attempts: [{ attempt: 1, channelId: channel.id, status: 502, outcome: 'http_error', error: `upstream said ${P}`, latencyMs: 3 }],
    })
    await gw.meter.drain()
    const row = await db.from('usage_records').where('user_id', user.userId).first()
    const q = encodeURIComponent(P)
    // A batch whose model, upstream id, metadata and upstream errors carry the text (the Batches pages)
    const [batch] = await db
      .table('batch_objects')
      .insert({
        kind: 'batch',
        public_id: 'batch_gwxss',
        upstream_id: `up ${P}`,
        user_id: user.userId,
        api_key_id: user.keyId,
        channel_id: channel.id,
        model: `model ${P}`,
        endpoint: '/v1/chat/completions',
        status: 'failed',
        object: JSON.stringify({ status: 'failed', metadata: { [`k ${P}`]: `v ${P}` }, errors: { data: [{ code: `c ${P}`, message: `m ${P}`, line: 1 }] } }),
      })
      .returning('id')

    const admin = await signedIn('xss-admin@test.local', 'admin-password')
    const adminPages = [
      ...sessionRoutes().filter((r) => r.method === 'GET' && r.path.startsWith('/admin') && !r.path.includes('/1') && !r.path.endsWith('.csv')).map((r) => r.path),
      `/admin/users/${user.userId}`,
      `/admin/keys/${user.keyId}`,
      `/admin/keys/${user.keyId}/edit`,
      `/admin/keys/new?user=${user.userId}`,
      `/admin/channels/${channel.id}`,
      `/admin/plans/${plan.id}/edit`,
      `/admin/usage/${row.id}`,
      `/admin/usage?model=${q}&tag=${q}&status=${q}&user=${q}`,
      `/admin/audit?actor=${q}&action=${q}&subject=${q}`,
      `/admin/keys?q=${q}`,
      `/admin/users?q=${q}`,
      `/admin/payments?email=${q}`,
      `/admin/redemptions?q=${q}`,
      `/admin/batches/${batch.id}`,
      `/admin/batches?owner=${q}`,
    ]
    for (const path of adminPages) {
      const page = await admin.get(path)
      assert.oneOf(page.status, [200, 422], path)
      assert.notMatch(page.html, raw, path)
      if (path.startsWith('/admin/batches/')) assert.lengthOf(page.html.match(/&lt;i&gt;xss/g) ?? [], 8, 'model, upstream id, key, channel, metadata name and value, error code and message')
      if (escaped.test(page.html)) shown++
    }
    // The text is on the pages (escaped), so the checks above looked at it.
    assert.isAbove(shown, 10)
    // A flash message carrying the text.
    await admin.get('/admin/channels')
    const removed = await admin.post('/admin/fallbacks/delete', { model: `m ${P}` })
    assert.notMatch((await admin.follow(removed)).html, raw, 'flash')

    const portal = await signedIn(user.email, 'password123')
    for (const path of [
      '/dashboard',
      '/dashboard/keys',
      `/dashboard/keys/${user.keyId}/edit`,
      '/dashboard/billing',
      '/dashboard/usage',
      `/dashboard/usage?model=${q}`,
      `/dashboard/usage?tag=${q}`,
      `/dashboard/usage/${row.id}`,
      '/dashboard/batches',
      '/dashboard/models',
      '/dashboard/playground',
      '/dashboard/security',
      `/docs?model=${q}`,
      `/pricing?q=${q}`,
      '/status',
    ]) {
      const page = await portal.get(path)
      assert.oneOf(page.status, [200, 422], path)
      assert.notMatch(page.html, raw, path)
      if (path.startsWith('/dashboard/usage/') || path === '/dashboard/keys' || path === '/dashboard/batches') assert.match(page.html, escaped, path)
    }
    await portal.get('/dashboard/keys')
    const created = await portal.post('/dashboard/keys', { name: `new ${P}` })
    assert.notMatch(created.html, raw, 'the new key page')
    for (const path of [`/register?ref=${q}`, '/login']) {
      const page = await new PanelClient().get(path)
      assert.notMatch(page.html, raw, path)
    }
    const login = new PanelClient()
    await login.get('/login')
    const refused = await login.post('/login', { email: `a${P}@x.y`, password: 'wrong-password' })
    assert.notMatch((await login.follow(refused)).html, raw, 'login email echoed')
  }).timeout(60_000)
})

test.group('Pages: no route takes a file', () => {
  test('a multipart upload to /login (anonymous, no CSRF token) leaves nothing in the temp directory', async ({ assert }) => {
    // An odd size: a file of it in the temp directory can only be this upload.
    const size = 1_234_567
    const uploads = () => readdirSync(tmpdir()).filter((f) => {
      try {
        return statSync(join(tmpdir(), f)).size === size
      } catch {
        return false
      }
    })
    const before = new Set(uploads())
    const form = new FormData()
    form.set('email', 'upload@test.local')
    form.set('file', new Blob([new Uint8Array(size)]), 'big.bin')
    const response = await fetch(`${baseUrl()}/login`, { method: 'POST', body: form, redirect: 'manual' })
    assert.equal(response.status, 302)
    await new Promise((resolve) => setTimeout(resolve, 300))
    assert.deepEqual(uploads().filter((f) => !before.has(f)), [])
  })
})

test.group('Pages: secrets shown once are not cached', (group) => {
  group.setup(async () => {
    await resetDatabase()
    await clearLoginThrottles('127.0.0.1')
  })

  test('a new key, a generated password and a two-factor secret come with Cache-Control: no-store', async ({ assert }) => {
    await createUser({ email: 'secret-admin@test.local', password: 'admin-password', role: 'admin' })
    const user = await seedUser({ balance: '1' })
    const noStore = (headers: Headers) => headers.get('cache-control') === 'no-store'

    const portal = await signedIn(user.email, 'password123')
    const keys = await portal.get('/dashboard/keys')
    assert.isFalse(noStore(keys.headers), 'the keys page without a new key')
    const created = await portal.post('/dashboard/keys', { name: 'shown once' })
    assert.equal(created.status, 200)
    assert.isTrue(noStore(created.headers), 'the page with the new key')
    await portal.get('/dashboard/security')
    await portal.post('/dashboard/security/two-factor/start', {})
    assert.isTrue(noStore((await portal.get('/dashboard/security')).headers), 'the two-factor secret and QR code')

    const admin = await signedIn('secret-admin@test.local', 'admin-password')
    await admin.get('/admin/keys/new')
    const issued = await admin.post('/admin/keys', { user: user.email, name: 'admin-issued' })
    const keyPage = await admin.follow(issued)
    assert.match(keyPage.html, /data-testid="new-key"/)
    assert.isTrue(noStore(keyPage.headers), 'the admin key page with the full key')
    assert.isFalse(noStore((await admin.get(issued.location!)).headers), 'the same page later')

    await admin.get('/admin/users/new')
    const made = await admin.post('/admin/users', { email: 'generated@test.local', role: 'user' })
    const userPage = await admin.follow(made)
    assert.match(userPage.html, /id="generated-password"/)
    assert.isTrue(noStore(userPage.headers), 'the user page with the generated password')
  })
})
