import { test } from '@japa/runner'
import ace from '@adonisjs/core/services/ace'
import ApiKey from '#models/api_key'
import KeyCreate from '#commands/key_create'
import KeyUpdate from '#commands/key_update'
import { createApiKey } from '#actions/issue_api_key'
import { createUser } from '#actions/create_user'
import { parallelInFlight } from '#gateway/limits/parallel_requests'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { adminApi, baseUrl, post, refreshCaches, resetDatabase, seedChannel, seedUser, startMock, usageRows } from '#tests/helpers'
import { PanelClient } from '#tests/panel_client'

const hello = [{ role: 'user', content: 'hi' }]
/** A stream the mock answers in 6 chunks 150 ms apart: about a second in flight. */
const slow = { model: 'm', messages: hello, stream: true, mock: { chunks: 6, chunk_delay_ms: 150 } }

async function until(check: () => boolean | Promise<boolean>, what: string) {
  for (let i = 0; i < 200; i++) {
    if (await check()) return
    await new Promise((r) => setTimeout(r, 25))
  }
  throw new Error(`timed out waiting for ${what}`)
}

/**
 * A key's cap on requests in flight at once (LiteLLM's max_parallel_requests,
 * new-api's token concurrency): while N of its calls run, the next is 429
 * concurrency_limit_exceeded in the endpoint's format, not admitted (no row,
 * nothing charged); a place frees when a call's response closes, whichever
 * way it ends.
 */
test.group('API keys: requests in flight at once', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'mock', baseUrl: mock.url, models: ['*'] })
    return () => mock.stop()
  })

  test('with two streams running, a third call is 429 in its format; once they end, calls pass again', async ({ assert }) => {
    const user = await seedUser({ balance: '5', key: { maxParallel: 2 } })
    const auth = { authorization: `Bearer ${user.key}` }
    const running = [await post('/v1/chat/completions', slow, auth), await post('/v1/chat/completions', slow, auth)]
    assert.deepEqual(running.map((r) => r.status), [200, 200])
    assert.equal(parallelInFlight(user.keyId), 2)

    const third = await post('/v1/chat/completions', { model: 'm', messages: hello }, auth)
    assert.equal(third.status, 429)
    assert.equal(third.headers.get('retry-after'), '1')
    assert.equal(third.headers.get('retry-after-ms'), '1000')
    const body: any = await third.json()
    assert.deepInclude(body.error, { code: 'concurrency_limit_exceeded', type: 'rate_limit_error' })
    assert.include(body.error.message, 'it may run 2 at once')
    const anthropic = await post('/v1/messages', { model: 'm', max_tokens: 10, messages: hello }, { 'x-api-key': user.key })
    assert.equal(anthropic.status, 429)
    assert.deepEqual(((await anthropic.json()) as any).error.type, 'rate_limit_error')
    const gemini = await post('/v1beta/models/m:generateContent', { contents: [{ parts: [{ text: 'hi' }] }] }, { 'x-goog-api-key': user.key })
    assert.equal(gemini.status, 429)
    assert.equal(((await gemini.json()) as any).error.status, 'RESOURCE_EXHAUSTED')
    // Listing models does no work: not counted, not refused.
    assert.equal((await fetch(`${baseUrl()}/v1/models`, { headers: auth })).status, 200)
    // Another key of the same user has its own places.
    const { key: other } = await createApiKey({ userRef: user.email, name: 'other' })
    await refreshCaches()
    assert.equal((await post('/v1/chat/completions', { model: 'm', messages: hello }, { authorization: `Bearer ${other}` })).status, 200)

    for (const stream of running) assert.include(await stream.text(), 'data: [DONE]')
    await until(() => parallelInFlight(user.keyId) === 0, 'the places to free')
    assert.equal((await post('/v1/chat/completions', { model: 'm', messages: hello }, auth)).status, 200)
    // Refused calls were never admitted: rows only for the two streams and the last call.
    const rows = (await usageRows(user.userId)).filter((r: any) => r.api_key_id === user.keyId)
    assert.lengthOf(rows, 3)
    assert.isTrue(rows.every((r: any) => r.status === 200))
  })

  test('a place frees however a call ends: the client gone mid-stream, an upstream error, a refused body', async ({ assert }) => {
    const user = await seedUser({ balance: '5', key: { maxParallel: 1 } })
    const auth = { authorization: `Bearer ${user.key}` }

    const aborted = new AbortController()
    const cut = await fetch(`${baseUrl()}/v1/chat/completions`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify(slow),
      signal: aborted.signal,
    })
    assert.equal(cut.status, 200)
    assert.equal((await post('/v1/chat/completions', { model: 'm', messages: hello }, auth)).status, 429)
    aborted.abort()
    await until(() => parallelInFlight(user.keyId) === 0, 'the client gone to free its place')

    const failed = await post('/v1/chat/completions', { model: 'm', messages: hello, mock: { status: 400 } }, auth)
    assert.equal(failed.status, 400)
    await failed.text()
    const bad = await fetch(`${baseUrl()}/v1/chat/completions`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: '{"model":' })
    assert.equal(bad.status, 400)
    await bad.text()
    await until(() => parallelInFlight(user.keyId) === 0, 'the failed calls to free their places')
    assert.equal((await post('/v1/chat/completions', { model: 'm', messages: hello }, auth)).status, 200)
  })

  test('set from the panel, key:create / key:update and the management API; the gateway applies it to the next call', async ({ assert }) => {
    const { user: admin } = await createUser({ email: 'parallel-admin@test.local', password: 'password123', role: 'admin' })
    const user = await seedUser({ balance: '5' })
    const auth = { authorization: `Bearer ${user.key}` }

    const panel = new PanelClient()
    await panel.login(admin.email, 'password123')
    await panel.get(`/admin/keys/${user.keyId}/edit`)
    const saved = await panel.post(`/admin/keys/${user.keyId}`, { name: 'agent', models: '', rpm: '', tpm: '', maxParallel: '1', spendLimit: '', spendPeriod: '', expiresOn: '' })
    assert.equal(saved.status, 302)
    assert.equal((await ApiKey.findOrFail(user.keyId)).maxParallel, 1)
    assert.include((await panel.get(`/admin/keys/${user.keyId}`)).html, '1 at once')
    // The edit reaches the running gateway's key cache by NOTIFY.
    const holding = await post('/v1/chat/completions', slow, auth)
    await until(async () => (await post('/v1/chat/completions', { model: 'm', messages: hello }, auth)).status === 429, 'the cap to apply')
    await holding.text()

    const run = async (command: typeof KeyUpdate | typeof KeyCreate, args: string[]) => {
      const made = await ace.create(command, args)
      ace.ui.switchMode('raw')
      await made.exec()
      made.assertSucceeded()
    }
    await run(KeyUpdate, ['--key', String(user.keyId), '--max-parallel', '4'])
    assert.equal((await ApiKey.findOrFail(user.keyId)).maxParallel, 4)
    await run(KeyUpdate, ['--key', String(user.keyId), '--rpm', '50'])
    assert.equal((await ApiKey.findOrFail(user.keyId)).maxParallel, 4, 'left out: unchanged')
    await run(KeyUpdate, ['--key', String(user.keyId), '--max-parallel', 'none'])
    assert.isNull((await ApiKey.findOrFail(user.keyId)).maxParallel)
    await run(KeyCreate, ['--user', user.email, '--name', 'cli-made', '--max-parallel', '3'])
    assert.equal((await ApiKey.findByOrFail('name', 'cli-made')).maxParallel, 3)

    const { key: manager } = await createApiKey({ userRef: admin.email, manage: true })
    await refreshCaches()
    const made = await adminApi('POST', '/keys', manager, { user: user.email, name: 'api-made', max_parallel_requests: 5 })
    assert.equal(made.status, 201)
    assert.equal(made.body.max_parallel_requests, 5)
    const patched = await adminApi('PATCH', `/keys/${made.body.id}`, manager, { rpm: 10 })
    assert.equal(patched.body.max_parallel_requests, 5, 'a PATCH without it keeps it')
    const cleared = await adminApi('PATCH', `/keys/${made.body.id}`, manager, { max_parallel_requests: null })
    assert.isNull(cleared.body.max_parallel_requests)
    const refused = await adminApi('PATCH', `/keys/${made.body.id}`, manager, { max_parallel_requests: 0 })
    assert.equal(refused.status, 400)
  })
})
