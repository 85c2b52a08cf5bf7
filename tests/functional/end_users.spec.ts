import { test } from '@japa/runner'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import db from '@adonisjs/lucid/services/db'
import { createBudget } from '#actions/budgets'
import { setEndUser, deleteEndUser } from '#actions/end_users'
import { createUser } from '#actions/create_user'
import { createApiKey } from '#actions/issue_api_key'
import { PanelClient, textOf } from '#tests/panel_client'
import { PageClient } from '#tests/page_client'
import ace from '@adonisjs/core/services/ace'
import EndUserSet from '#commands/enduser_set'
import { adminApi, baseUrl, gateway, meterEvent, multipartBody, post, refreshCaches, resetDatabase, seedChannel, seedPrice, seedUser, startMock, usageRows, type SeededUser } from '#tests/helpers'

const chat = (extra: Record<string, unknown> = {}) => ({ model: 'eu-model', messages: [{ role: 'user', content: 'hi' }], ...extra })
const messages = (extra: Record<string, unknown> = {}) => ({ model: 'eu-model', max_tokens: 16, messages: [{ role: 'user', content: 'hi' }], ...extra })
const gemini = { contents: [{ role: 'user', parts: [{ text: 'hi' }] }] }
const bearer = (user: SeededUser, headers: Record<string, string> = {}) => ({ authorization: `Bearer ${user.key}`, ...headers })
const anthropic = (user: SeededUser, headers: Record<string, string> = {}) => ({ 'x-api-key': user.key, 'anthropic-version': '2023-06-01', ...headers })
const google = (user: SeededUser, headers: Record<string, string> = {}) => ({ 'x-goog-api-key': user.key, ...headers })

test.group('End users: recorded on the usage row', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'eu-mock', baseUrl: mock.url, models: ['eu-*', 'text-embedding-*'] })
    await seedPrice('eu-model', '1', '2')
    return () => mock.stop()
  })

  test('every dialect: OpenAI `user` (chat, Responses, embeddings), Anthropic metadata.user_id, the LiteLLM header (Gemini), litellm_metadata.user', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const calls: Array<[string, unknown, Record<string, string>]> = [
      ['/v1/chat/completions', chat({ user: 'cust-chat' }), bearer(user)],
      ['/v1/chat/completions', chat({ user: 'cust-stream', stream: true }), bearer(user)],
      ['/v1/responses', { model: 'eu-model', input: 'hi', user: 'cust-responses' }, bearer(user)],
      ['/v1/embeddings', { model: 'text-embedding-3-small', input: 'hi', user: 'cust-embed' }, bearer(user)],
      ['/v1/messages', messages({ metadata: { user_id: 'cust-anthropic' } }), anthropic(user)],
      ['/v1beta/models/eu-model:generateContent', gemini, google(user, { 'x-litellm-end-user-id': 'cust-gemini' })],
      ['/v1/chat/completions', chat({ litellm_metadata: { user: 'cust-litellm' } }), bearer(user)],
      ['/v1/chat/completions', chat(), bearer(user)],
    ]
    for (const [path, body, headers] of calls) {
      const answer = await post(path, body, headers)
      assert.equal(answer.status, 200, `${path}: ${await answer.clone().text()}`)
      await answer.text()
    }
    const rows = await usageRows(user.userId)
    assert.deepEqual(
      rows.map((r) => [r.endpoint, r.end_user]),
      [
        ['chat.completions', 'cust-chat'],
        ['chat.completions', 'cust-stream'],
        ['responses', 'cust-responses'],
        ['embeddings', 'cust-embed'],
        ['messages', 'cust-anthropic'],
        ['gemini.generateContent', 'cust-gemini'],
        ['chat.completions', 'cust-litellm'],
        ['chat.completions', null],
      ]
    )
  })

  test('`user` still goes upstream (providers track abuse by it); litellm_metadata does not; the header wins over the body', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    await (await post('/v1/chat/completions', chat({ user: 'body-user' }), bearer(user, { 'x-litellm-end-user-id': 'header-user' }))).text()
    assert.equal(JSON.parse(mock.lastRequest()!.body.toString()).user, 'body-user')
    await (await post('/v1/embeddings', { model: 'text-embedding-3-small', input: 'hi', litellm_metadata: { user: 'meta-user' } }, bearer(user))).text()
    assert.notProperty(JSON.parse(mock.lastRequest()!.body.toString()), 'litellm_metadata')
    const rows = await usageRows(user.userId)
    assert.deepEqual(rows.map((r) => r.end_user), ['header-user', 'meta-user'])
  })

  test('an upload names its end user with the header', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const form = multipartBody([['model', 'eu-image'], ['prompt', 'a cat'], ['image', Buffer.from('png'), 'cat.png']])
    const answer = await fetch(`${baseUrl()}/v1/images/edits`, {
      method: 'POST',
      headers: { 'authorization': `Bearer ${user.key}`, 'content-type': form.contentType, 'x-litellm-end-user-id': 'cust-upload' },
      body: form.body,
    })
    await answer.text()
    const rows = await usageRows(user.userId)
    assert.deepEqual(rows.map((r) => [r.endpoint, r.end_user]), [['images.edits', 'cust-upload']])
  })

  test('an end user over 128 characters or with a control character: refused in the gateway\'s header, kept bounded from the providers\' fields (Claude Code\'s long metadata.user_id passes)', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const before = mock.requests.length
    const refused = await post('/v1/chat/completions', chat(), { ...bearer(user), 'x-litellm-end-user-id': 'x'.repeat(129) })
    assert.equal(refused.status, 400)
    const refusedError: any = await refused.json()
    assert.equal(refusedError.error.code, 'invalid_end_user')
    assert.equal(refusedError.error.param, 'x-litellm-end-user-id')
    const claudeId = JSON.stringify({ device_id: 'd'.repeat(64), account_uuid: 'a'.repeat(36), session_id: 's'.repeat(36) })
    const claude = await post('/v1/messages', messages({ metadata: { user_id: claudeId } }), anthropic(user))
    assert.equal(claude.status, 200)
    await claude.text()
    const control = await post('/v1/messages', messages({ metadata: { user_id: 'a\u0000b' } }), anthropic(user))
    assert.equal(control.status, 200)
    await control.text()
    const exactly = await post('/v1/chat/completions', chat({ user: 'y'.repeat(128) }), bearer(user))
    assert.equal(exactly.status, 200)
    await exactly.text()
    assert.equal(mock.requests.length, before + 3)
    const rows = await usageRows(user.userId)
    assert.deepEqual(rows.map((r) => [r.status, r.error_code]), [[400, 'invalid_end_user'], [200, null], [200, null], [200, null]])
    assert.isTrue(rows[1].end_user.startsWith(claudeId.slice(0, 96)) && rows[1].end_user.length <= 128)
    assert.isTrue(rows[2].end_user.startsWith('a?b…'))
    assert.equal(rows[3].end_user, 'y'.repeat(128))
  })
})

test.group('End users: blocked and monthly limits at admission', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'eu-mock', baseUrl: mock.url, models: ['eu-*'] })
    // 12 prompt and 5 completion tokens a call (the mock's usage): $0.012 + $0.010 = $0.022.
    await seedPrice('eu-model', '1000', '2000')
    return () => mock.stop()
  })

  test('a blocked end user is refused in each wire format (403 end_user_blocked); other end users and requests without one are not', async ({ assert }) => {
    const user = await seedUser({ balance: '10' })
    await setEndUser({ userRef: user.email, endUser: 'bad-actor', blocked: true })
    await refreshCaches()
    const before = mock.requests.length

    const openaiShape = await post('/v1/chat/completions', chat({ user: 'bad-actor' }), bearer(user))
    assert.equal(openaiShape.status, 403)
    const openaiError: any = await openaiShape.json()
    assert.equal(openaiError.error.code, 'end_user_blocked')
    assert.equal(openaiError.error.type, 'permission_error')

    const anthropicShape = await post('/v1/messages', messages({ metadata: { user_id: 'bad-actor' } }), anthropic(user))
    assert.equal(anthropicShape.status, 403)
    const anthropicError: any = await anthropicShape.json()
    assert.equal(anthropicError.type, 'error')
    assert.equal(anthropicError.error.type, 'permission_error')
    assert.include(anthropicError.error.message, 'bad-actor')

    const googleShape = await post('/v1beta/models/eu-model:generateContent', gemini, google(user, { 'x-litellm-end-user-id': 'bad-actor' }))
    assert.equal(googleShape.status, 403)
    const googleError: any = await googleShape.json()
    assert.equal(googleError.error.code, 403)
    assert.equal(googleError.error.status, 'PERMISSION_DENIED')

    assert.equal(mock.requests.length, before, 'nothing reached the upstream')

    for (const body of [chat({ user: 'good-actor' }), chat()]) {
      const answer = await post('/v1/chat/completions', body, bearer(user))
      assert.equal(answer.status, 200)
      await answer.text()
    }
    // Another owner's end user of the same name is theirs.
    const other = await seedUser({ balance: '10' })
    const theirs = await post('/v1/chat/completions', chat({ user: 'bad-actor' }), bearer(other))
    assert.equal(theirs.status, 200)
    await theirs.text()

    const rows = await usageRows(user.userId)
    assert.deepEqual(rows.map((r) => [r.status, r.error_code, r.end_user, Number(r.cost)]), [
      [403, 'end_user_blocked', 'bad-actor', 0],
      [403, 'end_user_blocked', 'bad-actor', 0],
      [403, 'end_user_blocked', 'bad-actor', 0],
      [200, null, 'good-actor', 0.022],
      [200, null, null, 0.022],
    ])

    // Unblocked: served again.
    await setEndUser({ userRef: user.email, endUser: 'bad-actor', blocked: false })
    await refreshCaches()
    const again = await post('/v1/chat/completions', chat({ user: 'bad-actor' }), bearer(user))
    assert.equal(again.status, 200)
    await again.text()
  })

  test('a monthly limit: served until this month\'s spend reaches it, then 402 end_user_budget_exceeded; spend survives a reload; others unaffected', async ({ assert }) => {
    const user = await seedUser({ balance: '10' })
    await setEndUser({ userRef: user.email, endUser: 'capped', monthlyLimit: '0.03' })
    await refreshCaches()
    for (let i = 0; i < 2; i++) {
      const answer = await post('/v1/chat/completions', chat({ user: 'capped' }), bearer(user))
      assert.equal(answer.status, 200)
      await answer.text()
    }
    const refused = await post('/v1/chat/completions', chat({ user: 'capped' }), bearer(user))
    assert.equal(refused.status, 402)
    const error: any = await refused.json()
    assert.equal(error.error.code, 'end_user_budget_exceeded')
    assert.equal(error.error.type, 'insufficient_quota')
    assert.include(error.error.message, '$0.03')

    const anthropicShape = await post('/v1/messages', messages({ metadata: { user_id: 'capped' } }), anthropic(user))
    assert.equal(anthropicShape.status, 402)
    assert.equal(((await anthropicShape.json()) as any).type, 'error')

    // The meter's statement kept the spend in end_users: a reload (another process's view) still refuses.
    await (await gateway()).meter.drain()
    const row = await db.from('end_users').where('user_id', user.userId).where('end_user', 'capped').first()
    assert.equal(Number(row.period_spent), 0.044)
    await refreshCaches()
    const afterReload = await post('/v1/chat/completions', chat({ user: 'capped' }), bearer(user))
    assert.equal(afterReload.status, 402)
    await afterReload.text()

    const free = await post('/v1/chat/completions', chat(), bearer(user))
    assert.equal(free.status, 200)
    await free.text()

    // A higher limit serves it again.
    await setEndUser({ userRef: user.email, endUser: 'capped', monthlyLimit: '1' })
    await refreshCaches()
    const raised = await post('/v1/chat/completions', chat({ user: 'capped' }), bearer(user))
    assert.equal(raised.status, 200)
    await raised.text()
    // Removed: no settings at all.
    await deleteEndUser(user.email, 'capped')
    await refreshCaches()
    assert.isUndefined((await gateway()).catalog.endUsers.policyOf(user.userId, 'capped'))
  })

  test('a change made anywhere reaches the cache through NOTIFY (no reload asked); the meter\'s spend writes do not reload it', async ({ assert }) => {
    const user = await seedUser({ balance: '10' })
    const endUsers = (await gateway()).catalog.endUsers
    // Written the way another process (an ace command, another instance) writes it: straight to the table.
    await db.table('end_users').insert({ user_id: user.userId, end_user: 'from-elsewhere', blocked: true })
    const deadline = Date.now() + 5000
    while (endUsers.policyOf(user.userId, 'from-elsewhere') === undefined && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
    assert.isTrue(endUsers.policyOf(user.userId, 'from-elsewhere')?.blocked, 'end_users:<id> reloaded the table')
    const refused = await post('/v1/chat/completions', chat({ user: 'from-elsewhere' }), bearer(user))
    assert.equal(refused.status, 403)
    await refused.text()

    // The meter's statement writes end_users.period_spent on every batch that charges a listed end user: no reload for it.
    const reload = endUsers.reload
    let reloads = 0
    endUsers.reload = function () {
      reloads++
      return reload.call(this)
    }
    try {
      // The setting's own notice reloads the cache once: wait for it, so a late one is not counted below.
      await setEndUser({ userRef: user.email, endUser: 'spender', monthlyLimit: '100' })
      const settled = Date.now() + 5000
      while ((reloads === 0 || endUsers.policyOf(user.userId, 'spender') === undefined) && Date.now() < settled) {
        await new Promise((r) => setTimeout(r, 20))
      }
      await new Promise((r) => setTimeout(r, 100))
      const before = reloads
      const answer = await post('/v1/chat/completions', chat({ user: 'spender' }), bearer(user))
      assert.equal(answer.status, 200)
      await answer.text()
      await (await gateway()).meter.drain()
      await new Promise((r) => setTimeout(r, 300))
      assert.equal(Number((await db.from('end_users').where('end_user', 'spender').first()).period_spent), 0.022)
      assert.equal(reloads, before, 'the meter\'s spend write made no reload')
    } finally {
      endUsers.reload = reload
    }
  })

  test('requests in flight hold against the limit: concurrent calls of a capped end user cannot all pass', async ({ assert }) => {
    const user = await seedUser({ balance: '100' })
    // The hold of one call (body bytes / 3 prompt tokens + 1,024 completion tokens) is ~$2: a $1 limit admits one at a time.
    await setEndUser({ userRef: user.email, endUser: 'busy', monthlyLimit: '1' })
    await refreshCaches()
    const answers = await Promise.all(
      Array.from({ length: 4 }, () => post('/v1/chat/completions', chat({ user: 'busy', mock: { latency_ms: 200 } }), bearer(user)))
    )
    const statuses = answers.map((a) => a.status).sort()
    await Promise.all(answers.map((a) => a.text()))
    assert.deepEqual(statuses, [200, 402, 402, 402])
  })
})

test.group('End users: usage pages, CSVs, spend per end user, management API, panel', (group) => {
  let mock: MockUpstream
  let adminKey = ''
  let admin: PanelClient
  let alice: SeededUser
  let bob: SeededUser

  /** data-end-user of each usage row, newest first */
  const endUserRows = (html: string) => [...html.matchAll(/<div class="small muted[^"]*" data-end-user="([^"]*)"/g)].map((m) => m[1])

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'eu-report-mock', baseUrl: mock.url, models: ['eu-*'] })
    // 12 prompt and 5 completion tokens a call: 12 × 1 + 5 × 2 = 22 µUSD.
    await seedPrice('eu-model', '1', '2')
    const email = `eu-admin-${Date.now()}@test.local`
    await createUser({ email, password: 'password123', role: 'admin' })
    adminKey = (await createApiKey({ userRef: email, name: 'eu-reports', manage: true })).key
    admin = new PanelClient()
    await admin.login(email, 'password123')
    alice = await seedUser({ balance: '1' })
    bob = await seedUser({ balance: '1' })
    const send = async (user: SeededUser, endUser: string | null) => {
      const answer = await post('/v1/chat/completions', chat(endUser === null ? {} : { user: endUser }), bearer(user))
      if (answer.status !== 200) throw new Error(`seed call: ${answer.status}`)
      await answer.text()
    }
    await send(alice, 'cust-a')
    await send(alice, 'cust-a')
    await send(alice, 'cust "b" <i>')
    await send(alice, null)
    await send(bob, 'cust-a')
    // The admin pages read what is committed (the meter writes behind the answers).
    await (await gateway()).meter.drain()
    return () => mock.stop()
  })

  test('the admin Usage page filters by end user (rows and totals), shows each row\'s end user and, for one user, spend per end user', async ({ assert }) => {
    const page = await admin.get(`/admin/usage?user=${alice.userId}`)
    assert.equal(page.status, 200)
    assert.deepEqual(endUserRows(page.html), ['cust &quot;b&quot; &lt;i&gt;', 'cust-a', 'cust-a'])
    assert.notInclude(page.html, '<i>', 'the client\'s text is escaped')
    const spend = page.html.slice(page.html.indexOf('data-end-user-spend'), page.html.indexOf('</details>'))
    assert.match(textOf(spend), /cust-a 2 24 10 \$0\.000044/)
    assert.include(textOf(spend), 'cust "b" <i> 1 12 5')

    const filtered = await admin.get('/admin/usage?end_user=cust-a')
    assert.deepEqual(endUserRows(filtered.html), ['cust-a', 'cust-a', 'cust-a'], 'both owners\' cust-a')
    assert.match(textOf(filtered.html), /Requests 3\b/, 'the totals count the rows the filter lists')
    assert.include(filtered.html, 'value="cust-a"')
    const mine = await admin.get(`/admin/usage?user=${alice.userId}&end_user=cust-a`)
    assert.deepEqual(endUserRows(mine.html), ['cust-a', 'cust-a'])
    assert.match(textOf(mine.html), /Requests 2\b/)
    assert.lengthOf(endUserRows((await admin.get('/admin/usage?end_user=nobody')).html), 0)
    assert.notInclude((await admin.get('/admin/usage')).html, 'data-end-user-spend', 'spend per end user is one account\'s')

    const csv = (await admin.get(`/admin/usage/export.csv?user=${alice.userId}`)).html.trim().split('\n')
    assert.isTrue(csv[0].endsWith(',tags,end_user'))
    assert.deepEqual([csv[1].endsWith(','), csv[3].endsWith(',cust-a'), csv[4].endsWith(',cust-a')], [true, true, true])
    assert.isTrue(csv[2].endsWith(',"cust ""b"" <i>"'))
    const one = (await admin.get('/admin/usage/export.csv?end_user=cust-a')).html.trim().split('\n')
    assert.lengthOf(one, 4)
  })

  test('the portal usage log filters by end user and shows spend per end user; its CSV has it last; a control character is refused', async ({ assert }) => {
    const portal = new PageClient()
    await portal.login(alice.email)
    const all = await portal.get('/dashboard/usage')
    assert.equal(all.status, 200)
    assert.deepEqual(endUserRows(all.body), ['cust &quot;b&quot; &lt;i&gt;', 'cust-a', 'cust-a'])
    const spend = all.body.slice(all.body.indexOf('data-end-user-spend'), all.body.indexOf('</details>'))
    assert.include(textOf(spend), 'cust-a')
    assert.notInclude(spend, bob.email)
    assert.match(spend, /data-cost="0\.000044/)
    const filtered = await portal.get('/dashboard/usage?end_user=cust-a')
    assert.deepEqual(endUserRows(filtered.body), ['cust-a', 'cust-a'], 'only alice\'s own rows')
    const csv = (await portal.get('/dashboard/usage.csv?end_user=cust-a')).body.trim().split('\r\n')
    assert.isTrue(csv[0].endsWith(',tags,end_user'))
    assert.deepEqual(csv.slice(1).map((l) => l.split(',').at(-1)), ['cust-a', 'cust-a'])
    const bad = await portal.get('/dashboard/usage?end_user=a%01b')
    assert.equal(bad.status, 422)
  })

  test('management API: ?end_user= on /usage, end_user on each object, GET /spend/end-users', async ({ assert }) => {
    const rows = await adminApi('GET', '/usage?end_user=cust-a', adminKey)
    assert.equal(rows.status, 200)
    assert.deepEqual(rows.body.data.map((r: any) => [r.user_id, r.end_user]), [[bob.userId, 'cust-a'], [alice.userId, 'cust-a'], [alice.userId, 'cust-a']])
    const spend = await adminApi('GET', '/spend/end-users', adminKey)
    assert.equal(spend.status, 200)
    assert.deepEqual(spend.body.data, [
      { user_id: alice.userId, user_email: alice.email, end_user: 'cust-a', requests: 2, input_tokens: 24, output_tokens: 10, cost: '0.000044' },
      { user_id: alice.userId, user_email: alice.email, end_user: 'cust "b" <i>', requests: 1, input_tokens: 12, output_tokens: 5, cost: '0.000022' },
      { user_id: bob.userId, user_email: bob.email, end_user: 'cust-a', requests: 1, input_tokens: 12, output_tokens: 5, cost: '0.000022' },
    ])
    const forBob = await adminApi('GET', `/spend/end-users?user=${encodeURIComponent(bob.email)}`, adminKey)
    assert.lengthOf(forBob.body.data, 1)
    assert.equal((await adminApi('GET', '/spend/end-users?from=2026-13-01', adminKey)).status, 400)
  })

  test('management API: /end-users lists an owner\'s end users with this month\'s spend, creates, changes and deletes settings', async ({ assert }) => {
    const listed = await adminApi('GET', `/end-users?user=${alice.userId}`, adminKey)
    assert.equal(listed.status, 200)
    assert.deepEqual(listed.body.data.map((e: any) => [e.end_user, e.listed, e.requests_this_month, e.spent_this_month]), [
      ['cust-a', false, 2, '0.000044'],
      ['cust "b" <i>', false, 1, '0.000022'],
    ])
    // A limit set mid-month counts the month's spend so far.
    const created = await adminApi('POST', '/end-users', adminKey, { user: alice.email, end_user: 'cust-a', monthly_limit: '0.00005' })
    assert.equal(created.status, 201)
    assert.deepInclude(created.body, { end_user: 'cust-a', listed: true, blocked: false, monthly_limit: '0.00005', spent_this_month: '0.000044' })
    const blocked = await adminApi('POST', '/end-users', adminKey, { user: alice.userId, end_user: 'cust-a', blocked: true })
    assert.equal(blocked.status, 200)
    assert.deepInclude(blocked.body, { blocked: true, monthly_limit: '0.00005' }, 'fields not given stay')
    const unlimited = await adminApi('POST', '/end-users', adminKey, { user: alice.userId, end_user: 'cust-a', monthly_limit: null, blocked: false })
    assert.deepInclude(unlimited.body, { blocked: false, monthly_limit: null })
    for (const [body, param] of [
      [{ user: alice.userId, end_user: 'x'.repeat(129) }, 'end_user'],
      [{ user: alice.userId, end_user: 'x', monthly_limit: '-1' }, 'monthly_limit'],
      [{ user: alice.userId, end_user: 'x', blocked: 'yes' }, 'blocked'],
      [{ end_user: 'x' }, 'user'],
    ] as const) {
      const refused = await adminApi('POST', '/end-users', adminKey, body)
      assert.equal(refused.status, 400, JSON.stringify(body))
      assert.equal(refused.body.error.param, param)
    }
    assert.equal((await adminApi('POST', '/end-users', adminKey, { user: 'nobody@test.local', end_user: 'x' })).status, 404)
    const removed = await adminApi('DELETE', `/end-users?user=${alice.userId}&end_user=cust-a`, adminKey)
    assert.deepEqual(removed, { status: 200, body: { object: 'end_user', end_user: 'cust-a', deleted: true } })
    assert.equal((await adminApi('DELETE', `/end-users?user=${alice.userId}&end_user=cust-a`, adminKey)).status, 404)
    const audit = await db.from('audit_log').where('action', 'like', 'end_user.%').orderBy('id').select('action', 'source')
    assert.deepEqual(audit.map((a) => a.action), ['end_user.create', 'end_user.update', 'end_user.update', 'end_user.delete'])
    assert.isTrue(audit.every((a) => a.source === 'api'))
  })

  test('the panel: a user\'s end users with spend this month; block, set a limit, add one, remove; the gateway refuses at once', async ({ assert }) => {
    const page = await admin.get(`/admin/users/${alice.userId}/end-users`)
    assert.equal(page.status, 200)
    assert.include(page.html, 'data-end-user="cust-a"')
    assert.include(textOf(page.html), 'cust "b" <i>')
    assert.notInclude(textOf(page.html), '@end', 'every Edge tag closed')
    assert.include(page.html, 'Add or change an end user')
    const [first] = await usageRows(alice.userId)
    assert.include((await admin.get(`/admin/usage/${first.id}`)).html, 'data-end-user="cust-a"', "the request's page")
    const portal = new PageClient()
    await portal.login(alice.email)
    assert.include((await portal.get(`/dashboard/usage/${first.id}`)).body, 'data-end-user="cust-a"', "the portal's request page")
    assert.include((await admin.get(`/admin/users/${alice.userId}`)).html, `/admin/users/${alice.userId}/end-users`)

    const block = await admin.post(`/admin/users/${alice.userId}/end-users`, { end_user: 'cust-a', blocked: '1' })
    assert.equal(block.status, 302)
    assert.include(textOf((await admin.follow(block)).html), 'Added end user cust-a: blocked, no limit.')
    await refreshCaches()
    const refused = await post('/v1/chat/completions', chat({ user: 'cust-a' }), bearer(alice))
    assert.equal(refused.status, 403)
    await refused.text()

    const limit = await admin.post(`/admin/users/${alice.userId}/end-users`, { end_user: 'cust-a', monthly_limit: '2.5' })
    assert.include(textOf((await admin.follow(limit)).html), 'Saved end user cust-a: blocked, a limit of $2.5 a month.')
    const unblock = await admin.post(`/admin/users/${alice.userId}/end-users`, { end_user: 'cust-a', blocked: '0' })
    await admin.follow(unblock)
    const row = await db.from('end_users').where('user_id', alice.userId).where('end_user', 'cust-a').first()
    assert.deepInclude(row, { blocked: false, monthly_limit: '2.500000000000' })

    const bad = await admin.post(`/admin/users/${alice.userId}/end-users`, { end_user: 'new-one', monthly_limit: 'lots' })
    assert.equal(bad.status, 302)
    assert.include(textOf((await admin.follow(bad)).html), 'The monthly limit is an amount in USD')
    const added = await admin.post(`/admin/users/${alice.userId}/end-users`, { end_user: 'new-one', monthly_limit: '', blocked: ['0', '1'] })
    const after = await admin.follow(added)
    assert.include(textOf(after.html), 'Added end user new-one: blocked, no limit.')
    assert.include(after.html, 'data-end-user="new-one"')

    const removed = await admin.post(`/admin/users/${alice.userId}/end-users/remove`, { end_user: 'new-one' })
    assert.include(textOf((await admin.follow(removed)).html), 'Removed the settings of end user new-one')
    assert.notInclude((await admin.get(`/admin/users/${alice.userId}/end-users`)).html, 'data-end-user="new-one"')
    assert.equal((await admin.get('/admin/users/999999/end-users')).status, 404)
    await refreshCaches()
  })

  test('the portal\'s spend per end user covers this UTC month unless a From date is set', async ({ assert }) => {
    const carol = await seedUser({ balance: '1' })
    const meter = (await gateway()).meter
    const lastMonth = new Date(Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth(), 1) - 86_400_000)
    meter.record({ ...meterEvent(carol.userId, 'eu-model'), apiKeyId: carol.keyId, endUser: 'old-customer', createdAt: lastMonth })
    meter.record({ ...meterEvent(carol.userId, 'eu-model'), apiKeyId: carol.keyId, endUser: 'new-customer' })
    await meter.drain()
    const portal = new PageClient()
    await portal.login(carol.email)
    const spendOf = (html: string) => textOf(html.slice(html.indexOf('data-end-user-spend'), html.indexOf('</details>')))
    const page = await portal.get('/dashboard/usage')
    assert.include(spendOf(page.body), 'new-customer')
    assert.notInclude(spendOf(page.body), 'old-customer')
    assert.include(page.body, 'data-end-user="old-customer"', 'the log itself lists every row')
    const from = lastMonth.toISOString().slice(0, 10)
    assert.include(spendOf((await portal.get(`/dashboard/usage?from=${from}`)).body), 'old-customer')
  })
})

test.group('End users: enduser:set', (group) => {
  group.setup(() => resetDatabase())

  async function run(args: string[]) {
    const command = await ace.create(EndUserSet, args)
    ace.ui.switchMode('raw')
    await command.exec()
    return command
  }

  test('blocks, limits, clears and removes; bad input fails with a clear line and exit code 1', async ({ assert }) => {
    const user = await seedUser()
    const block = await run([user.email, 'cust-9', '--block', '--limit', '12.5'])
    block.assertSucceeded()
    block.assertLog(`[ green(success) ] End user cust-9 of ${user.email}: blocked, limit $12.5 a month`)
    const row = () => db.from('end_users').where('user_id', user.userId).where('end_user', 'cust-9').first()
    assert.deepInclude(await row(), { blocked: true, monthly_limit: '12.500000000000' })
    ;(await run([String(user.userId), 'cust-9', '--unblock', '--limit', 'none'])).assertSucceeded()
    assert.deepInclude(await row(), { blocked: false, monthly_limit: null })
    const badLimit = await run([user.email, 'cust-9', '--limit', 'ten'])
    badLimit.assertFailed()
    badLimit.assertLog('[ red(error) ] The monthly limit is an amount in USD such as 25 or 0.50 (at most 12 decimals)', 'stderr')
    const both = await run([user.email, 'cust-9', '--block', '--unblock'])
    both.assertFailed()
    assert.equal(both.exitCode, 1)
    ;(await run([user.email, 'cust-9', '--remove'])).assertSucceeded()
    assert.isNull(await row())
    const gone = await run([user.email, 'cust-9', '--remove'])
    gone.assertFailed()
    gone.assertLog(`[ red(error) ] No end user "cust-9" set for ${user.email}`, 'stderr')
    const audit = await db.from('audit_log').where('action', 'like', 'end_user.%').orderBy('id').select('action', 'source')
    assert.deepEqual(audit.map((a) => [a.action, a.source]), [['end_user.create', 'cli'], ['end_user.update', 'cli'], ['end_user.delete', 'cli']])
  })

  test('--period, --rpm, --tpm, --budget; hostile numbers and an unknown budget fail with exit code 1', async ({ assert }) => {
    const user = await seedUser()
    const set = await run([user.email, 'cust-p', '--limit', '3', '--period', 'week', '--rpm', '40', '--tpm', '9000'])
    set.assertSucceeded()
    set.assertLog(`[ green(success) ] End user cust-p of ${user.email}: allowed, limit $3 a week`)
    const row = () => db.from('end_users').where('user_id', user.userId).where('end_user', 'cust-p').first()
    assert.deepInclude(await row(), { budget_period: 'week', rpm: 40, tpm: 9000 })
    ;(await run([user.email, 'cust-p', '--period', 'never', '--rpm', 'none'])).assertSucceeded()
    assert.deepInclude(await row(), { budget_period: null, rpm: null })
    for (const bad of [['--rpm', '0x10'], ['--tpm', '1e3'], ['--period', 'year'], ['--budget', 'nope']]) {
      const refused = await run([user.email, 'cust-p', ...bad])
      refused.assertFailed()
      assert.equal(refused.exitCode, 1, bad.join(' '))
    }
    await createBudget({ budgetId: 'cli-tier', maxBudget: '1', budgetPeriod: 'day' })
    const linked = await run([user.email, 'cust-p', '--budget', 'cli-tier'])
    linked.assertSucceeded()
    linked.assertLog(`[ green(success) ] End user cust-p of ${user.email}: allowed, linked to budget cli-tier`)
  })
})
