import { test } from '@japa/runner'
import db from '@adonisjs/lucid/services/db'
import { createUser } from '#actions/create_user'
import { createApiKey } from '#actions/issue_api_key'
import { setPrice } from '#actions/set_price'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { PanelClient } from '#tests/panel_client'
import { baseUrl, gateway, multipartBody, refreshCaches, resetDatabase, seedChannel, seedUser, startMock, usageRows } from '#tests/helpers'

/**
 * The twenty-second pass's hostile input on the newest endpoints (Files and
 * Batch API, LiteLLM's management paths): what a sloppy or hostile client
 * sends that must be a clear error in the endpoint's own format, never a
 * generic one after work was done upstream, and never a batch left running
 * unbilled or a file left upstream unlisted.
 */

/** One batch request line for `model`, with extra body fields. */
function line(i: number, model: string, extra: Record<string, unknown> = {}) {
  return JSON.stringify({ custom_id: `r${i}`, method: 'POST', url: '/v1/chat/completions', body: { model, messages: [{ role: 'user', content: 'hi' }], ...extra } })
}

async function api(method: string, path: string, key: string, body?: Buffer | string, contentType?: string) {
  const headers: Record<string, string> = { authorization: `Bearer ${key}` }
  if (contentType) headers['content-type'] = contentType
  const response = await fetch(`${baseUrl()}${path}`, { method, headers, body })
  return { status: response.status, body: (await response.json()) as any }
}

function uploadForm(content: string, filename = 'requests.jsonl') {
  return multipartBody([
    ['purpose', 'batch'],
    ['file', content, filename],
  ])
}

async function upload(key: string, content: string, filename?: string) {
  const form = uploadForm(content, filename)
  return api('POST', '/v1/files', key, form.body, form.contentType)
}

test.group('Hostile input (pass 22): Files and Batch API', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'openai', provider: 'openai', baseUrl: mock.url, models: ['gpt-4o-mini', 'free-model'] })
    await setPrice({ model: 'gpt-4o-mini', input: '2', output: '8' })
    await refreshCaches()
    return () => mock.stop()
  })

  /** Every file the upstream holds is one of the gateway's rows (none uploaded and then lost). */
  async function orphans() {
    const rows = await db.from('batch_objects').where('kind', 'file').select('upstream_id')
    const known = new Set(rows.map((r) => r.upstream_id))
    return [...mock.batches.files.keys()].filter((id) => !known.has(id))
  }

  test("batch lines' huge max_tokens: the file is stored (its hold bounded), its batch refused with 402, nothing left upstream", async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    // A free model's file holds nothing: it is stored and batched.
    const free = await upload(user.key, [line(1, 'free-model', { max_tokens: 1e19 }), line(2, 'free-model', { max_tokens: 1e300 })].join('\n'))
    assert.equal(free.status, 200)
    const row = await db.from('batch_objects').where('public_id', free.body.id).first()
    // Bounded at the largest exact number (the lines' sum is past a bigint's range).
    assert.equal(Number(row.completion_hold), Number.MAX_SAFE_INTEGER)
    const freeBatch = await api('POST', '/v1/batches', user.key, JSON.stringify({ input_file_id: free.body.id, endpoint: '/v1/chat/completions', completion_window: '24h' }), 'application/json')
    assert.equal(freeBatch.status, 200)
    // A priced one: 5,000 lines of 2e15 tokens each, past a bigint's range once summed.
    const lines = Array.from({ length: 5000 }, (_, i) => line(i, 'gpt-4o-mini', { max_tokens: 2e15 }))
    const priced = await upload(user.key, lines.join('\n'))
    assert.equal(priced.status, 200)
    const batch = await api('POST', '/v1/batches', user.key, JSON.stringify({ input_file_id: priced.body.id, endpoint: '/v1/chat/completions', completion_window: '24h' }), 'application/json')
    assert.equal(batch.status, 402)
    assert.include(batch.body.error, { code: 'insufficient_balance', type: 'insufficient_quota' })
    assert.deepEqual(await orphans(), [])
    assert.equal((await gateway()).batches.holds.heldFor(user.userId), 0n)
  })

  test('a client that leaves while its file goes upstream: the file is recorded (listed), not left upstream unknown', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const before = mock.batches.files.size
    mock.script({ latency_ms: 400 })
    const form = uploadForm(line(1, 'gpt-4o-mini'), 'left.jsonl')
    const abort = new AbortController()
    const leaving = fetch(`${baseUrl()}/v1/files`, {
      method: 'POST',
      headers: { 'authorization': `Bearer ${user.key}`, 'content-type': form.contentType },
      body: form.body,
      signal: abort.signal,
    }).catch(() => null)
    setTimeout(() => abort.abort(), 100)
    assert.isNull(await leaving)
    for (let i = 0; i < 40 && mock.batches.files.size === before; i++) await new Promise((r) => setTimeout(r, 25))
    assert.equal(mock.batches.files.size, before + 1, 'the upstream stored the file')
    let listed: any[] = []
    for (let i = 0; i < 40 && listed.length === 0; i++) {
      listed = (await api('GET', '/v1/files', user.key)).body.data
      if (listed.length === 0) await new Promise((r) => setTimeout(r, 25))
    }
    assert.deepEqual(listed.map((f) => f.filename), ['left.jsonl'])
    assert.deepEqual(await orphans(), [])
  })

  test('a file name with a NUL is refused before the upload', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const before = mock.batches.files.size
    const refused = await upload(user.key, line(1, 'gpt-4o-mini'), 'a\u0000.jsonl')
    assert.equal(refused.status, 400)
    assert.include(refused.body.error, { type: 'invalid_request_error', code: 'invalid_value', param: 'file' })
    assert.equal(refused.body.error.message, "The file's name contains a NUL character")
    assert.equal(mock.batches.files.size, before)
    assert.deepEqual(await orphans(), [])
  })

  test('metadata that is no object of strings, or holds a NUL, is refused before the upstream makes a batch', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const file = await upload(user.key, line(1, 'gpt-4o-mini'))
    const made = mock.batches.batches.size
    for (const [metadata, code] of [
      [{ note: 'a\u0000b' }, 'invalid_value'],
      [{ 'n\u0000': 'x' }, 'invalid_value'],
      [{ count: 5 }, 'invalid_type'],
      [{ nested: { a: '1' } }, 'invalid_type'],
      [['a'], 'invalid_type'],
    ] as const) {
      const refused = await api('POST', '/v1/batches', user.key, JSON.stringify({ input_file_id: file.body.id, endpoint: '/v1/chat/completions', metadata }), 'application/json')
      assert.equal(refused.status, 400, JSON.stringify(metadata))
      assert.include(refused.body.error, { type: 'invalid_request_error', code, param: 'metadata' })
    }
    assert.equal(mock.batches.batches.size, made, 'no batch runs upstream')
    assert.equal((await gateway()).batches.holds.heldFor(user.userId), 0n)
  })

  test('a client that leaves while the upstream makes its batch: the batch is recorded, held and billed all the same', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const file = await upload(user.key, line(1, 'gpt-4o-mini'))
    const made = mock.batches.batches.size
    // The upstream takes 400 ms; the client hangs up after 100.
    mock.script({ latency_ms: 400 })
    const abort = new AbortController()
    const leaving = fetch(`${baseUrl()}/v1/batches`, {
      method: 'POST',
      headers: { 'authorization': `Bearer ${user.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ input_file_id: file.body.id, endpoint: '/v1/chat/completions', metadata: { mock_polls: '5' } }),
      signal: abort.signal,
    }).catch(() => null)
    setTimeout(() => abort.abort(), 100)
    assert.isNull(await leaving)
    for (let i = 0; i < 40 && mock.batches.batches.size === made; i++) await new Promise((r) => setTimeout(r, 25))
    assert.equal(mock.batches.batches.size, made + 1, 'the upstream made the batch')
    const upstreamId = [...mock.batches.batches.keys()].at(-1)!
    let row: any = null
    for (let i = 0; i < 40 && !row; i++) {
      row = await db.from('batch_objects').where({ kind: 'batch', upstream_id: upstreamId }).first()
      if (!row) await new Promise((r) => setTimeout(r, 25))
    }
    assert.isOk(row, 'the gateway recorded it')
    assert.isAbove(Number(row.hold), 0)
    assert.equal((await gateway()).batches.holds.heldFor(user.userId), BigInt(Math.round(Number(row.hold) * 1e12)))
    // The client comes back with the id (the batch list has it) and finds it billed once it ends.
    const listed = await api('GET', '/v1/batches', user.key)
    assert.equal(listed.body.data[0].id, row.public_id)
    for (let look = 0; look < 8; look++) {
      if ((await api('GET', `/v1/batches/${row.public_id}`, user.key)).body.status === 'completed') break
    }
    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 1)
    assert.equal(rows[0].endpoint, 'batch')
    assert.equal((await gateway()).batches.holds.heldFor(user.userId), 0n)
  })

  test("a sweep while a batch is being created (its upstream call slow) keeps that batch's hold", async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const holds = (await gateway()).batches.holds
    // What createBatch holds before its row exists (a negative id), taken before the sweep's read.
    holds.hold(-1_000_000, user.userId, user.keyId, 5_000_000n)
    await new Promise((r) => setTimeout(r, 5))
    await holds.sync()
    assert.equal(holds.heldFor(user.userId), 5_000_000n)
    holds.release(-1_000_000)
    assert.equal(holds.heldFor(user.userId), 0n)
  })

  test('an upstream batch whose object carries a NUL is stored without it, and billed once when it ends', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const file = await upload(user.key, [line(1, 'gpt-4o-mini'), line(2, 'gpt-4o-mini')].join('\n'))
    const created = await api('POST', '/v1/batches', user.key, JSON.stringify({ input_file_id: file.body.id, endpoint: '/v1/chat/completions', metadata: { mock_polls: '2' } }), 'application/json')
    assert.equal(created.status, 200)
    const upstreamId = (await db.from('batch_objects').where('public_id', created.body.id).first()).upstream_id
    // The upstream (a proxy echoing bytes, a hostile one) now puts a NUL in what it says of the batch.
    mock.batches.batches.get(upstreamId)!.metadata = { mock_polls: '2', 'note\u0000': 'a\u0000b' }
    for (let look = 0; look < 4; look++) {
      const seen = await api('GET', `/v1/batches/${created.body.id}`, user.key)
      assert.equal(seen.status, 200)
      if (seen.body.status === 'completed') break
    }
    const stored = await db.from('batch_objects').where('public_id', created.body.id).first()
    assert.deepEqual(stored.object.metadata, { mock_polls: '2', note: 'ab' })
    assert.isNotNull(stored.billed_at)
    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 1)
    assert.include(rows[0], { endpoint: 'batch', error_code: null })
    assert.equal((await gateway()).batches.holds.heldFor(user.userId), 0n)
  })
})

test.group('Hostile input (pass 22): LiteLLM management', (group) => {
  let adminKey = ''

  group.setup(async () => {
    await resetDatabase()
    await createUser({ email: 'ops@s22.local', password: 'password123', role: 'admin' })
    adminKey = (await createApiKey({ userRef: 'ops@s22.local', name: 'master', manage: true })).key
    await refreshCaches()
  })

  async function litellm(method: string, path: string, body?: unknown) {
    return api(method, path, adminKey, body === undefined ? undefined : JSON.stringify(body), body === undefined ? undefined : 'application/json')
  }

  test("a key named by an id past a bigint's digits, or with a NUL, is LiteLLM's 404, not a generic 400", async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    for (const [method, path, body] of [
      ['POST', '/key/block', { key: '99999999999999999999' }],
      ['POST', '/key/unblock', { key: '99999999999999999999' }],
      ['POST', '/key/update', { key: '99999999999999999999', rpm_limit: 5 }],
      ['POST', '/key/delete', { keys: ['99999999999999999999'] }],
      ['POST', '/key/99999999999999999999/regenerate', {}],
      ['GET', '/key/info?key=99999999999999999999', undefined],
      ['GET', '/spend/logs?api_key=99999999999999999999', undefined],
      ['POST', '/key/block', { key: 'sk-gw-\u0000' }],
      ['GET', '/spend/logs?api_key=%00', undefined],
    ] as const) {
      const answer = await litellm(method, path, body)
      assert.equal(answer.status, 404, `${method} ${path} ${JSON.stringify(body)}`)
      assert.include(answer.body.error, { type: 'not_found_error', code: '404' })
      assert.match(answer.body.error.message, /^No API key matches "/)
    }
    // The key itself is untouched and still found by its token.
    const info = await litellm('GET', `/key/info?key=${user.keyId}`)
    assert.equal(info.status, 200)
    assert.equal(info.body.info.blocked, false)
  })

  test('/user/new sent six times at once with one e-mail: one user, the others told it exists (no 500); the address in capitals is the same address', async ({ assert }) => {
    const answers = await Promise.all(Array.from({ length: 6 }, () => litellm('POST', '/user/new', { user_email: 'race@s22.local' })))
    assert.deepEqual(answers.map((a) => a.status).sort(), [200, 400, 400, 400, 400, 400])
    for (const refused of answers.filter((a) => a.status === 400)) {
      assert.include(refused.body.error, { param: 'user_email', message: 'A user with email race@s22.local already exists' })
    }
    const users = await db.from('users').where('email', 'race@s22.local')
    assert.lengthOf(users, 1)
    // One key made, for the one user.
    assert.lengthOf(await db.from('api_keys').where('user_id', users[0].id), 1)
    // The same address in other letters is the same address (as registration has it), not a second account.
    const upper = await litellm('POST', '/user/new', { user_email: 'RACE@s22.local' })
    assert.equal(upper.status, 400)
    assert.include(upper.body.error, { param: 'user_email', message: 'A user with email RACE@s22.local (as race@s22.local) already exists' })
    assert.lengthOf(await db.from('users').whereRaw('lower(email) = ?', ['race@s22.local']), 1)
  })

  test('/user/new sent at once with one address in different letter cases: one user, the others told it exists (no second account)', async ({ assert }) => {
    const spellings = ['case@s22.local', 'CASE@s22.local', 'Case@s22.local', 'cAsE@S22.LOCAL', 'case@S22.local', 'CASE@S22.LOCAL']
    const answers = await Promise.all(spellings.map((email) => litellm('POST', '/user/new', { user_email: email })))
    assert.deepEqual(answers.map((a) => a.status).sort(), [200, 400, 400, 400, 400, 400])
    for (const refused of answers.filter((a) => a.status === 400)) assert.equal(refused.body.error.param, 'user_email')
    // Before the lower(email) index, the exact-case index let every spelling in when they passed the check together.
    assert.lengthOf(await db.from('users').whereRaw('lower(email) = ?', ['case@s22.local']), 1)
  })

  test("/spend/logs' before past an id's digits is a 400 naming it", async ({ assert }) => {
    const answer = await litellm('GET', '/spend/logs?before=99999999999999999999')
    assert.equal(answer.status, 400)
    assert.include(answer.body.error, { param: 'before', code: '400' })
  })
})

test.group('Hostile input (pass 22): end users in the panel and the management API', (group) => {
  group.setup(async () => {
    await resetDatabase()
    await createUser({ email: 'admin@s22.local', password: 'admin-password', role: 'admin' })
    await refreshCaches()
  })

  /** The flash messages of the page a form redirected to */
  async function flashes(client: PanelClient, result: { status: number; location: string | null }) {
    if (result.status !== 302) return [`status ${result.status}`]
    const page = await client.follow(result)
    const top = [...page.html.matchAll(/class="flash flash--(\w+)"[^>]*>([^<]*)</g)].map((m) => `${m[1]}: ${m[2].replace(/&quot;/g, '"')}`)
    const beside = [...page.html.matchAll(/<small class="field-error" id="f-([\w.]+)-error">([^<]*)</g)].map((m) => `${m[1]}: ${m[2].replace(/&quot;/g, '"')}`)
    return [...top, ...beside]
  }

  test("an admin whose sessions were ended elsewhere (password reset): the panel's next form is the sign-in page with the reason, not a 500, and changes nothing", async ({ assert }) => {
    await createUser({ email: 'other-admin@s22.local', password: 'admin-password', role: 'admin' })
    const client = new PanelClient()
    await client.login('other-admin@s22.local', 'admin-password')
    const user = await seedUser({ balance: '1' })
    await client.get(`/admin/keys/${user.keyId}`)
    // Another admin resets this one's password: its session epoch moves on.
    await db.from('users').where('email', 'other-admin@s22.local').increment('session_epoch', 1)
    const blocked = await client.post(`/admin/keys/${user.keyId}/block`)
    assert.equal(blocked.status, 302)
    assert.equal(blocked.location, '/login')
    assert.deepEqual(await flashes(client, blocked), ['error: The password of this account was changed: sign in again.'])
    assert.isNull((await db.from('api_keys').where('id', user.keyId).first()).blocked_at)
  })

  test('an end user name with a NUL, or sent twice in one form, is refused with the reason (was a 500, or "a,b" saved)', async ({ assert }) => {
    const client = new PanelClient()
    await client.login('admin@s22.local', 'admin-password')
    const user = await seedUser({ balance: '1' })
    await client.get(`/admin/users/${user.userId}/end-users`)
    // Said beside the page's End user field; the top says only that the form was not saved
    const refusal = ['error: The form could not be saved. Please check the errors below.', 'end_user: An end user id is 1 to 128 characters without control characters']
    assert.deepEqual(await flashes(client, await client.post(`/admin/users/${user.userId}/end-users/remove`, { end_user: 'a\u0000' })), refusal)
    assert.deepEqual(await flashes(client, await client.post(`/admin/users/${user.userId}/end-users`, { end_user: ['a', 'b'], blocked: '1' })), refusal)
    assert.lengthOf(await db.from('end_users').where('user_id', user.userId), 0)

    const { key: adminKey } = await createApiKey({ userRef: 'admin@s22.local', name: 'm', manage: true })
    await refreshCaches()
    const removed = await api('DELETE', `/api/admin/end-users?user=${user.userId}&end_user=%00`, adminKey)
    assert.equal(removed.status, 400)
    assert.include(removed.body.error, { param: 'end_user', code: 'invalid_field' })
  })
})
