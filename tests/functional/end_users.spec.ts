import { test } from '@japa/runner'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import db from '@adonisjs/lucid/services/db'
import { setEndUser, deleteEndUser } from '#actions/end_users'
import { baseUrl, gateway, multipartBody, post, refreshCaches, resetDatabase, seedChannel, seedPrice, seedUser, startMock, usageRows, type SeededUser } from '#tests/helpers'

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

  test('an end user over 128 characters or with a control character is a 400 invalid_end_user in the endpoint\'s format, with its row; nothing goes upstream', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const before = mock.requests.length
    const long = await post('/v1/chat/completions', chat({ user: 'x'.repeat(129) }), bearer(user))
    assert.equal(long.status, 400)
    const longError: any = await long.json()
    assert.equal(longError.error.code, 'invalid_end_user')
    assert.equal(longError.error.param, 'user')
    const control = await post('/v1/messages', messages({ metadata: { user_id: 'a\u0000b' } }), anthropic(user))
    assert.equal(control.status, 400)
    const controlError: any = await control.json()
    assert.equal(controlError.type, 'error')
    assert.include(controlError.error.message, 'metadata.user_id')
    const exactly = await post('/v1/chat/completions', chat({ user: 'y'.repeat(128) }), bearer(user))
    assert.equal(exactly.status, 200)
    await exactly.text()
    assert.equal(mock.requests.length, before + 1)
    const rows = await usageRows(user.userId)
    assert.deepEqual(rows.map((r) => [r.status, r.error_code, r.end_user]), [
      [400, 'invalid_end_user', null],
      [400, 'invalid_end_user', null],
      [200, null, 'y'.repeat(128)],
    ])
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
