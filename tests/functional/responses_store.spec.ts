import { test } from '@japa/runner'
import db from '@adonisjs/lucid/services/db'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { UsageRetentionTimer } from '#services/usage_retention_timer'
import { storedResponsesSweep } from '#services/retention_sweeps'
import { pruneStoredResponses } from '#actions/prune_stored_responses'
import { bodyBudget, bodyLimitFor } from '#gateway/http/body_limits'
import { baseUrl, gateway, openai, post, refreshCaches, resetDatabase, seedChannel, seedPrice, seedUser, startMock, usageRows } from '#tests/helpers'

/**
 * Stored Responses (app/gateway/responses_store/): `previous_response_id` on
 * translated channels (the gateway keeps the conversation), on
 * Responses-native ones (the follow-up goes back to the channel that holds
 * it), and GET/DELETE /v1/responses/{id}, /input_items.
 */

/** The conversation an upstream received: its system text and its turns as [role, text] */
function conversationOf(body: any): { system: string; turns: Array<[string, string]> } {
  const textOf = (content: any): string =>
    typeof content === 'string' ? content : (content ?? []).map((p: any) => p.text ?? '').join('')
  if (Array.isArray(body.system) || typeof body.system === 'string') {
    return { system: textOf(body.system), turns: body.messages.map((m: any) => [m.role, textOf(m.content).trim()]) }
  }
  const system = body.messages.filter((m: any) => m.role === 'system').map((m: any) => textOf(m.content)).join('\n')
  const turns = body.messages.filter((m: any) => m.role !== 'system').map((m: any) => [m.role, textOf(m.content).trim()])
  return { system, turns }
}

/** One turn through the openai SDK, streamed or not: the response object the client got. */
async function turn(key: string, stream: boolean, body: Record<string, any>): Promise<any> {
  const client = openai(key)
  if (!stream) return client.responses.create(body as any)
  const events = await client.responses.create({ ...body, stream: true } as any)
  let completed: any = null
  for await (const event of events as any) if (event.type === 'response.completed') completed = event.response
  return completed
}

/**
 * A chain of `count` gateway-kept responses of ~1 MB of input each, written
 * by the database itself (repeat(): nothing to send, little stored); the
 * newest is `${prefix}${count}`.
 */
async function storeChain(userId: number, prefix: string, count: number) {
  await db.rawQuery(
    `INSERT INTO stored_responses (id, kind, user_id, model, previous_response_id, input_items, output_items, status, created_at, expires_at)
     SELECT ? || n, 'gateway', ?, 'claude-x', CASE WHEN n = 1 THEN NULL ELSE ? || (n - 1) END,
            jsonb_build_array(jsonb_build_object('type', 'message', 'role', 'user', 'content', repeat('x', 1000000))),
            '[]'::jsonb, 'completed', now(), now() + interval '1 day'
       FROM generate_series(1, ?) n`,
    [prefix, userId, prefix, count]
  )
}

/** Until `done` holds or three seconds passed (a response's 'close' comes a moment after the client has it) */
async function eventually(done: () => boolean) {
  for (let i = 0; i < 300 && !done(); i++) await new Promise((resolve) => setTimeout(resolve, 10))
}

function get(path: string, key: string, method = 'GET') {
  return fetch(`${baseUrl()}${path}`, { method, headers: { authorization: `Bearer ${key}` } })
}

test.group('Stored Responses on translated channels (Anthropic, chat-only)', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'claude', provider: 'anthropic', baseUrl: mock.url, models: ['claude-*'] })
    await seedChannel({ name: 'deepseek', provider: 'deepseek', baseUrl: mock.url, models: ['deepseek-*'] })
    return () => mock.stop()
  })

  for (const [model, path] of [['claude-x', '/v1/messages'], ['deepseek-chat', '/v1/chat/completions']] as const) {
    for (const stream of [false, true]) {
      test(`a 3-turn conversation by previous_response_id on ${model} (${stream ? 'stream' : 'non-stream'}): the upstream gets the whole history, only this turn's instructions`, async ({ assert }) => {
        const user = await seedUser()
        const first = await turn(user.key, stream, { model, instructions: 'Be brief', input: 'First question' })
        assert.match(first.id, /^resp_[0-9a-f]{48}$/)
        assert.isTrue(first.store)
        assert.isNull(first.previous_response_id)
        const answer = first.output[0].content[0].text.trim()

        const second = await turn(user.key, stream, { model, instructions: 'Be precise', input: 'Second question', previous_response_id: first.id })
        assert.equal(mock.lastRequest()!.path, path)
        let sent = conversationOf(JSON.parse(mock.lastRequest()!.body))
        assert.equal(sent.system, 'Be precise')
        assert.deepEqual(sent.turns, [['user', 'First question'], ['assistant', answer], ['user', 'Second question']])
        assert.equal(second.previous_response_id, first.id)
        assert.notEqual(second.id, first.id)

        // The third reads the two earlier ones from the table (written, nothing left in memory).
        const store = (await gateway()).responses
        await store.flush()
        store.forgetCached()
        await turn(user.key, stream, { model, input: [{ role: 'user', content: 'Third question' }], previous_response_id: second.id })
        sent = conversationOf(JSON.parse(mock.lastRequest()!.body))
        assert.equal(sent.system, '')
        assert.deepEqual(sent.turns, [
          ['user', 'First question'],
          ['assistant', answer],
          ['user', 'Second question'],
          ['assistant', answer],
          ['user', 'Third question'],
        ])
        const rows = await usageRows(user.userId)
        assert.deepEqual(rows.map((r: any) => r.status), [200, 200, 200])
      })
    }
  }

  test('store:false is not kept: a follow-up to it is OpenAI\'s 400 previous_response_not_found, upstream untouched', async ({ assert }) => {
    const user = await seedUser()
    const unstored = await openai(user.key).responses.create({ model: 'claude-x', input: 'Hi', store: false })
    assert.notMatch(unstored.id, /^resp_[0-9a-f]{48}$/)
    assert.isFalse((unstored as any).store)
    await (await gateway()).responses.flush()
    const before = mock.requests.length
    const response = await post('/v1/responses', { model: 'claude-x', input: 'And?', previous_response_id: unstored.id }, { authorization: `Bearer ${user.key}` })
    assert.equal(response.status, 400)
    const body: any = await response.json()
    assert.deepEqual(body.error, {
      message: `Previous response with id '${unstored.id}' not found.`,
      type: 'invalid_request_error',
      param: 'previous_response_id',
      code: 'previous_response_not_found',
    })
    assert.equal(mock.requests.length, before)
  })

  test('retrieve, input_items, delete: then the id is unknown to GET and to previous_response_id', async ({ assert }) => {
    const user = await seedUser()
    const client = openai(user.key)
    const created = await client.responses.create({
      model: 'deepseek-chat',
      instructions: 'Be brief',
      input: [
        { role: 'user', content: 'One' },
        { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'Two' }] },
      ],
    })
    const fetched = await client.responses.retrieve(created.id)
    assert.equal(fetched.id, created.id)
    assert.equal(fetched.object, 'response')
    assert.equal(fetched.status, 'completed')
    assert.equal(fetched.instructions, 'Be brief')
    assert.deepEqual(fetched.output, created.output)
    assert.deepEqual(fetched.usage, created.usage)

    const items = await client.responses.inputItems.list(created.id, { order: 'asc' })
    assert.deepEqual(
      items.data.map((i: any) => [i.type, i.role, i.content[0].text]),
      [['message', 'user', 'One'], ['message', 'user', 'Two']]
    )
    const page: any = await (await get(`/v1/responses/${created.id}/input_items?limit=1`, user.key)).json()
    assert.equal(page.object, 'list')
    assert.equal(page.order, 'desc')
    assert.isTrue(page.has_more)
    assert.equal(page.data[0].content[0].text, 'Two')
    const rest: any = await (await get(`/v1/responses/${created.id}/input_items?limit=1&after=${page.last_id}`, user.key)).json()
    assert.deepEqual([rest.data[0].content[0].text, rest.has_more], ['One', false])

    const deleted = await (await get(`/v1/responses/${created.id}`, user.key, 'DELETE')).json()
    assert.deepEqual(deleted, { id: created.id, object: 'response', deleted: true })
    const gone = await get(`/v1/responses/${created.id}`, user.key)
    assert.equal(gone.status, 404)
    assert.equal(((await gone.json()) as any).error.type, 'invalid_request_error')
    const followUp = await post('/v1/responses', { model: 'deepseek-chat', input: 'And?', previous_response_id: created.id }, { authorization: `Bearer ${user.key}` })
    assert.equal(followUp.status, 400)
    assert.equal(((await followUp.json()) as any).error.code, 'previous_response_not_found')
    // Also once written (the delete reaches the table, not only the queue).
    const again = await client.responses.create({ model: 'deepseek-chat', input: 'Three' })
    await (await gateway()).responses.flush()
    assert.equal((await get(`/responses/${again.id}`, user.key, 'DELETE')).status, 200)
    assert.equal((await get(`/v1/responses/${again.id}`, user.key)).status, 404)
  })

  test('items and instructions with a NUL or a lone surrogate (which Postgres refuses) are kept: read back from the table exactly, and followed up', async ({ assert }) => {
    const user = await seedUser()
    const client = openai(user.key)
    const odd = 'bytes \u0000 of a file, half a pair \ud83d and a backslash-u \\u0000 as text'
    const instructions = 'Answer \u0000 briefly'
    const created = await client.responses.create({ model: 'deepseek-chat', instructions, input: [{ role: 'user', content: odd }, { role: 'user', content: 'plain' }] })
    const gw = await gateway()
    await gw.responses.flush()
    gw.responses.forgetCached()
    const row = await db.from('stored_responses').where('id', created.id).first()
    assert.exists(row, 'the row was written')

    const items = await client.responses.inputItems.list(created.id, { order: 'asc' })
    assert.deepEqual(items.data.map((i: any) => i.content[0].text), [odd, 'plain'])
    const fetched = await client.responses.retrieve(created.id)
    assert.deepEqual(fetched.output, created.output)
    assert.equal(fetched.instructions, instructions)

    await client.responses.create({ model: 'deepseek-chat', input: 'And?', previous_response_id: created.id })
    const sent = JSON.parse(mock.lastRequest()!.body)
    assert.equal(sent.messages[0].content, odd)
  })

  test('a follow-up holds its whole conversation on the balance while it runs, not only its own small body', async ({ assert }) => {
    await seedPrice('claude-priced', '1', '1')
    const user = await seedUser({ balance: '100' })
    const gw = await gateway()
    const first = await openai(user.key).responses.create({ model: 'claude-priced', input: 'x'.repeat(30_000) })
    /** What the user holds while a slow answer to `body` runs */
    const heldDuring = async (body: Record<string, any>) => {
      mock.script({ latency_ms: 400 })
      const answer = openai(user.key).responses.create({ model: 'claude-priced', ...body })
      await new Promise((resolve) => setTimeout(resolve, 200))
      const held = (await gw.catalog.user(user.userId))!.reservedPico
      await answer
      return held
    }
    const alone = await heldDuring({ input: 'More' })
    const followUp = await heldDuring({ input: 'More', previous_response_id: first.id })
    // 30 KB of conversation is some 10,000 prompt tokens at $1 per million: 10^10 pico-USD more.
    assert.isAbove(Number(followUp - alone), 9_000 * 1_000_000)
  })

  test('a follow-up on a conversation far larger than a body may be: the 413, its chain read only up to the bound, not whole', async ({ assert }) => {
    const user = await seedUser()
    const prefix = `resp_big${user.userId}_`
    // 100 MB of conversation; the bound (BODY_LIMIT_GENERATION_MB) is 32 MB.
    await storeChain(user.userId, prefix, 100)
    const rowsRead: number[] = []
    const rawQuery = db.rawQuery
    ;(db as any).rawQuery = async function (this: unknown, sql: string, bindings?: unknown) {
      const result: any = await rawQuery.call(db, sql, bindings as any)
      if (String(sql).includes('WITH RECURSIVE chain')) rowsRead.push(result.rows.length)
      return result
    }
    try {
      const followUp = await post('/v1/responses', { model: 'claude-x', input: 'And?', previous_response_id: `${prefix}100` }, { authorization: `Bearer ${user.key}` })
      assert.equal(followUp.status, 413)
      const body: any = await followUp.json()
      assert.include(body.error, { code: 'request_too_large', param: 'previous_response_id' })
    } finally {
      delete (db as any).rawQuery
    }
    const perRow = 1_000_000
    assert.lengthOf(rowsRead, 1)
    // Before: all 100 rows (100 MB) were read, then the body built, then found too large.
    assert.isAtMost(rowsRead[0], Math.ceil(bodyLimitFor('responses') / perRow) + 1, 'read to the bound and one row past it')
    assert.isAtLeast(rowsRead[0], Math.floor(bodyLimitFor('responses') / (perRow + 100)))
  })

  test("a follow-up's rebuilt conversation counts in the body budget (BODY_INFLIGHT_MAX_MB) while it runs; given back when it ends: answered, client gone, refused", async ({ assert }) => {
    const user = await seedUser()
    const prefix = `resp_budget${user.userId}_`
    await storeChain(user.userId, prefix, 4)
    const followUp = { model: 'claude-x', input: 'And?', previous_response_id: `${prefix}4` }
    const headers = { authorization: `Bearer ${user.key}` }
    const base = bodyBudget.used

    // Answered (the upstream takes 500 ms): held meanwhile.
    let sent = mock.requests.length
    mock.script({ latency_ms: 500 })
    const answered = post('/v1/responses', followUp, headers)
    // Held from before the upstream call until the end: looked at once the upstream has it.
    await eventually(() => mock.requests.length > sent)
    assert.isAtLeast(bodyBudget.used - base, 4_000_000, 'the rebuilt body is in the budget (before: only the few bytes sent)')
    assert.equal((await answered).status, 200)
    await eventually(() => bodyBudget.used === base)
    assert.equal(bodyBudget.used, base)

    // The client leaves while the upstream answers.
    sent = mock.requests.length
    mock.script({ latency_ms: 1000 })
    const abort = new AbortController()
    const leaving = fetch(`${baseUrl()}/v1/responses`, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify(followUp), signal: abort.signal }).catch(() => null)
    await eventually(() => mock.requests.length > sent)
    assert.isAtLeast(bodyBudget.used - base, 4_000_000)
    abort.abort()
    await leaving
    await eventually(() => bodyBudget.used === base)
    assert.equal(bodyBudget.used, base)

    // The budget has no room for it: 503 overloaded, nothing sent upstream.
    const capacity = bodyBudget.capacity
    bodyBudget.capacity = base + 2_000_000
    try {
      const before = mock.requests.length
      const refused = await post('/v1/responses', followUp, headers)
      assert.equal(refused.status, 503)
      assert.equal(refused.headers.get('retry-after'), '1')
      assert.equal(((await refused.json()) as any).error.code, 'overloaded')
      assert.equal(mock.requests.length, before)
    } finally {
      bodyBudget.capacity = capacity
    }
    await eventually(() => bodyBudget.used === base)
    assert.equal(bodyBudget.used, base)
    let rows: any[] = []
    for (let i = 0; i < 30 && rows.length < 3; i++) {
      rows = await usageRows(user.userId)
      if (rows.length < 3) await new Promise((resolve) => setTimeout(resolve, 100))
    }
    assert.deepEqual(rows.map((r: any) => r.status).sort(), [200, 499, 503], 'one usage row each')
  })

  test('a response larger than RESPONSES_STORE_MAX_KB is answered but not stored: a follow-up to it is not found', async ({ assert }) => {
    const user = await seedUser()
    const store = (await gateway()).responses
    const bound = store.options.maxBytes
    store.options.maxBytes = 2_000
    try {
      const big = await openai(user.key).responses.create({ model: 'claude-x', input: 'y'.repeat(3_000) })
      assert.equal(big.status, 'completed')
      const small = await openai(user.key).responses.create({ model: 'claude-x', input: 'Small' })
      const followUp = await post('/v1/responses', { model: 'claude-x', input: 'And?', previous_response_id: big.id }, { authorization: `Bearer ${user.key}` })
      assert.equal(followUp.status, 400)
      assert.equal(((await followUp.json()) as any).error.code, 'previous_response_not_found')
      assert.equal((await get(`/v1/responses/${small.id}`, user.key)).status, 200)
    } finally {
      store.options.maxBytes = bound
    }
  })

  test('RESPONSES_STORE_DAYS: an expired response is unknown at once, and the hourly retention run deletes it (usage retention off)', async ({ assert }) => {
    const user = await seedUser()
    const kept = await openai(user.key).responses.create({ model: 'claude-x', input: 'Kept' })
    const old = await openai(user.key).responses.create({ model: 'claude-x', input: 'Old' })
    await (await gateway()).responses.flush()
    const expiry: any = await db.from('stored_responses').where('id', kept.id).select('created_at', 'expires_at').first()
    assert.equal(new Date(expiry.expires_at).getTime() - new Date(expiry.created_at).getTime(), 30 * 86_400_000)
    await db.from('stored_responses').where('id', old.id).update({ expires_at: new Date(Date.now() - 1000) })
    // Its expiry moved by hand: what memory holds of it (the expiry it was saved with) goes too.
    ;(await gateway()).responses.forgetCached()
    assert.equal((await get(`/v1/responses/${old.id}`, user.key)).status, 404)
    const followUp = await post('/v1/responses', { model: 'claude-x', input: 'And?', previous_response_id: old.id }, { authorization: `Bearer ${user.key}` })
    assert.equal(followUp.status, 400)
    assert.equal(await pruneStoredResponses({ dryRun: true }), 1)

    const said: string[] = []
    const timer = new UsageRetentionTimer({ days: () => 0, log: (m) => said.push(m), sweeps: [storedResponsesSweep] })
    assert.isNull(await timer.tick())
    await timer.stop()
    assert.include(said.join('\n'), 'stored responses retention: 1 expired responses deleted')
    assert.deepEqual((await db.from('stored_responses').where('user_id', user.userId).select('id')).map((r: any) => r.id), [kept.id])
  })

  test('deleted while its write is under way: gone at once, and from the table once the write is over', async ({ assert }) => {
    const user = await seedUser()
    const store = (await gateway()).responses
    const flushMs = store.options.flushMs
    store.options.flushMs = 60_000
    try {
      const created = await openai(user.key).responses.create({ model: 'claude-x', input: 'Racing' })
      await new Promise((resolve) => setTimeout(resolve, 20))
      assert.isNotNull(await store.find(created.id, user.userId), 'queued')
      // Its INSERT starts; the delete comes before it is over (what DELETE /v1/responses/{id} calls).
      const writing = store.flush()
      assert.isTrue(await store.delete(created.id, user.userId))
      assert.equal((await get(`/v1/responses/${created.id}`, user.key)).status, 404)
      await writing
      await store.flush()
      assert.equal((await get(`/v1/responses/${created.id}`, user.key)).status, 404)
      const [{ count }] = await db.from('stored_responses').where('id', created.id).count('* as count')
      assert.equal(Number(count), 0)
    } finally {
      store.options.flushMs = flushMs
    }
  })

  test('deleted by another instance: this one forgets what it remembered of it (NOTIFY)', async ({ assert }) => {
    const user = await seedUser()
    const created = await openai(user.key).responses.create({ model: 'claude-x', input: 'Remembered' })
    const store = (await gateway()).responses
    await store.flush()
    assert.equal((await get(`/v1/responses/${created.id}`, user.key)).status, 200)
    // What another instance's DELETE runs (ResponseStore.delete)
    await db.rawQuery(
      `WITH gone AS (DELETE FROM stored_responses WHERE id = ? RETURNING id) SELECT pg_notify('gateway_changes', 'stored_responses:' || id) FROM gone`,
      [created.id]
    )
    let status = 200
    for (let i = 0; i < 100 && status === 200; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20))
      status = (await get(`/v1/responses/${created.id}`, user.key)).status
    }
    assert.equal(status, 404)
    const followUp = await post('/v1/responses', { model: 'claude-x', input: 'And?', previous_response_id: created.id }, { authorization: `Bearer ${user.key}` })
    assert.equal(followUp.status, 400)
  })

  test('the store cannot be read (database outage): the gateway\'s 503 database_unavailable in OpenAI\'s format, nothing of the cause', async ({ assert }) => {
    const user = await seedUser()
    const store = (await gateway()).responses as any
    store.chain = async () => {
      throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' })
    }
    store.find = store.chain
    try {
      const followUp = await post('/v1/responses', { model: 'claude-x', input: 'And?', previous_response_id: 'resp_x' }, { authorization: `Bearer ${user.key}` })
      assert.equal(followUp.status, 503)
      const body: any = await followUp.json()
      assert.equal(body.error.code, 'database_unavailable')
      assert.notInclude(JSON.stringify(body), 'ECONNREFUSED')
      const fetched = await get('/v1/responses/resp_x', user.key)
      assert.equal(fetched.status, 503)
      assert.notInclude(await fetched.text(), 'ECONNREFUSED')
    } finally {
      delete store.chain
      delete store.find
    }
  })

  test('RESPONSES_STORE_DAYS=0: nothing is read back (GET and input_items 404, as previous_response_id\'s 400); DELETE still removes a row kept before', async ({ assert }) => {
    const user = await seedUser()
    const client = openai(user.key)
    const kept = await client.responses.create({ model: 'claude-x', input: 'Kept before' })
    const other = await client.responses.create({ model: 'claude-x', input: 'Also kept before' })
    const store = (await gateway()).responses
    await store.flush()
    assert.equal((await get(`/v1/responses/${kept.id}`, user.key)).status, 200)
    const days = store.options.days
    store.options.days = 0
    try {
      for (const path of [`/v1/responses/${kept.id}`, `/v1/responses/${kept.id}/input_items`]) {
        const response = await get(path, user.key)
        assert.equal(response.status, 404, `${path}: before, the row kept before was read back while the store was off`)
        assert.equal(((await response.json()) as any).error.message, `Response with id '${kept.id}' not found.`)
      }
      const followUp = await post('/v1/responses', { model: 'claude-x', input: 'And?', previous_response_id: kept.id }, { authorization: `Bearer ${user.key}` })
      assert.equal(followUp.status, 400)
      assert.equal(((await followUp.json()) as any).error.code, 'previous_response_not_found')
      const deleted: any = await (await get(`/v1/responses/${other.id}`, user.key, 'DELETE')).json()
      assert.deepEqual(deleted, { id: other.id, object: 'response', deleted: true })
      assert.lengthOf(await db.from('stored_responses').where('id', other.id), 0)
    } finally {
      store.options.days = days
    }
    // On again: the row kept before is there until its expiry.
    assert.equal((await get(`/v1/responses/${kept.id}`, user.key)).status, 200)
  })

  test('another user\'s response: 404 to GET, DELETE and input_items, 400 to previous_response_id', async ({ assert }) => {
    const owner = await seedUser()
    const other = await seedUser()
    const created = await openai(owner.key).responses.create({ model: 'claude-x', input: 'Mine' })
    for (const queued of [true, false]) {
      if (!queued) await (await gateway()).responses.flush()
      assert.equal((await get(`/v1/responses/${created.id}`, other.key)).status, 404)
      assert.equal((await get(`/v1/responses/${created.id}/input_items`, other.key)).status, 404)
      assert.equal((await get(`/v1/responses/${created.id}`, other.key, 'DELETE')).status, 404)
      const followUp = await post('/v1/responses', { model: 'claude-x', input: 'Yours?', previous_response_id: created.id }, { authorization: `Bearer ${other.key}` })
      assert.equal(followUp.status, 400)
      assert.equal(((await followUp.json()) as any).error.code, 'previous_response_not_found')
    }
    assert.equal((await get(`/v1/responses/${created.id}`, owner.key)).status, 200)
  })
})

test.group('Stored Responses on Responses-native channels (sticky)', (group) => {
  let first: MockUpstream
  let second: MockUpstream
  let secondChannel: { id: number }

  group.setup(async () => {
    await resetDatabase()
    first = await startMock()
    second = await startMock()
    await seedChannel({ name: 'openai-a', provider: 'openai', baseUrl: first.url, models: ['gpt-*'], priority: 10 })
    secondChannel = await seedChannel({ name: 'openai-b', provider: 'openai', baseUrl: second.url, models: ['gpt-*'], priority: 0, apiKey: 'key-b' })
    return async () => {
      await first.stop()
      await second.stop()
    }
  })

  for (const stream of [false, true]) {
    test(`two openai channels: the follow-up reaches the one that answered first (${stream ? 'stream' : 'non-stream'}), also after a restart`, async ({ assert }) => {
      const user = await seedUser()
      // The preferred channel fails: the second one answers, and holds the response.
      first.script({ status: 500 })
      const created = await turn(user.key, stream, { model: 'gpt-5', input: 'Hello' })
      assert.isTrue(second.storedResponses.responses.has(created.id))
      const seenByFirst = first.requests.length

      await turn(user.key, stream, { model: 'gpt-5', input: 'And then?', previous_response_id: created.id })
      assert.equal(first.requests.length, seenByFirst)
      assert.equal(JSON.parse(second.lastRequest()!.body).previous_response_id, created.id)

      // Read back from the table: what memory held is gone (a restart, another instance).
      const gw = await gateway()
      await gw.responses.flush()
      gw.responses.forgetCached()
      await turn(user.key, stream, { model: 'gpt-5', input: 'And after?', previous_response_id: created.id })
      assert.equal(first.requests.length, seenByFirst)
      assert.equal(second.lastRequest()!.headers.authorization, 'Bearer key-b')
    })
  }

  test('GET, input_items and DELETE are relayed to the holding channel with its key; another user gets 404', async ({ assert }) => {
    const user = await seedUser()
    const other = await seedUser()
    first.script({ status: 500 })
    const created = await openai(user.key).responses.create({ model: 'gpt-5', input: 'Hello' })
    const fetched = await openai(user.key).responses.retrieve(created.id)
    assert.equal(fetched.id, created.id)
    assert.equal(second.lastRequest()!.path, `/v1/responses/${created.id}`)
    assert.equal(second.lastRequest()!.headers.authorization, 'Bearer key-b')
    const items: any = await (await get(`/v1/responses/${created.id}/input_items`, user.key)).json()
    assert.equal(items.object, 'list')
    assert.match(second.lastRequest()!.path, new RegExp(`^/v1/responses/${created.id}/input_items\\?`))
    assert.equal((await get(`/v1/responses/${created.id}`, other.key)).status, 404)
    const deleted: any = await (await get(`/v1/responses/${created.id}`, user.key, 'DELETE')).json()
    assert.deepEqual(deleted, { id: created.id, object: 'response', deleted: true })
    assert.isFalse(second.storedResponses.responses.has(created.id))
    assert.equal((await get(`/v1/responses/${created.id}`, user.key)).status, 404)
  })

  test('DELETE of a response whose channel is disabled, deleted, or failing: the gateway\'s record is deleted (200), the upstream copy left there', async ({ assert }) => {
    const user = await seedUser()
    // A channel of its own (on the second mock), so the other tests' channels and their health stay as they were.
    const holding = await seedChannel({ name: 'openai-holding', provider: 'openai', baseUrl: second.url, models: ['held-*'] })
    await refreshCaches()
    const held = async (model = 'held-model') => {
      const created = await openai(user.key).responses.create({ model, input: 'Hello' })
      assert.isTrue(second.storedResponses.responses.has(created.id))
      await (await gateway()).responses.flush()
      return created.id
    }
    const deleteAndCheck = async (id: string, why: string) => {
      const response = await get(`/v1/responses/${id}`, user.key, 'DELETE')
      assert.equal(response.status, 200, `${why}: before, a 404 (or the upstream's error) until it expired`)
      assert.deepEqual(await response.json(), { id, object: 'response', deleted: true })
      assert.lengthOf(await db.from('stored_responses').where('id', id), 0, why)
      assert.equal((await get(`/v1/responses/${id}`, user.key)).status, 404)
      assert.isTrue(second.storedResponses.responses.has(id), `${why}: the upstream copy is left there`)
    }

    // The upstream fails the delete (its 5xx): the owner's delete stands.
    const failing = await held()
    second.script({ status: 500 })
    await deleteAndCheck(failing, 'upstream failing')

    const disabled = await held()
    await db.from('channels').where('id', holding.id).update({ enabled: false })
    await refreshCaches()
    const seen = second.requests.length
    await deleteAndCheck(disabled, 'channel disabled')
    assert.equal(second.requests.length, seen, 'nothing sent to a disabled channel')

    // Its channel deleted (the row's channel_id set to NULL).
    await db.from('channels').where('id', holding.id).update({ enabled: true })
    await refreshCaches()
    const orphan = await held()
    await db.from('channels').where('id', holding.id).delete()
    await refreshCaches()
    await deleteAndCheck(orphan, 'channel deleted')
  })

  test('held by an Azure OpenAI channel: the follow-up goes there; GET and input_items relayed with its api-key and Responses api-version', async ({ assert }) => {
    const user = await seedUser()
    await seedChannel({ name: 'azure', provider: 'azure', baseUrl: `${first.origin}/openai`, apiKey: 'az-key', models: ['az-*'] })
    const created = await openai(user.key).responses.create({ model: 'az-model', input: 'Hello' })
    assert.match(first.lastRequest()!.path, /^\/openai\/responses\?api-version=/)
    await openai(user.key).responses.create({ model: 'az-model', input: 'And?', previous_response_id: created.id })
    assert.equal(JSON.parse(first.lastRequest()!.body).previous_response_id, created.id)
    const fetched = await openai(user.key).responses.retrieve(created.id)
    assert.equal(fetched.id, created.id)
    assert.equal(first.lastRequest()!.path, `/openai/responses/${created.id}?api-version=2025-03-01-preview`)
    assert.equal(first.lastRequest()!.headers['api-key'], 'az-key')
    await openai(user.key).responses.inputItems.list(created.id)
    assert.equal(first.lastRequest()!.path, `/openai/responses/${created.id}/input_items?api-version=2025-03-01-preview&limit=20&order=desc`)
  })

  test('the holding channel disabled: the follow-up is OpenAI\'s not-found, never the other account', async ({ assert }) => {
    const user = await seedUser()
    first.script({ status: 500 })
    const created = await openai(user.key).responses.create({ model: 'gpt-5', input: 'Hello' })
    await db.from('channels').where('id', secondChannel.id).update({ enabled: false })
    await refreshCaches()
    try {
      const seenByFirst = first.requests.length
      const response = await post('/v1/responses', { model: 'gpt-5', input: 'And?', previous_response_id: created.id }, { authorization: `Bearer ${user.key}` })
      assert.equal(response.status, 400)
      assert.equal(((await response.json()) as any).error.code, 'previous_response_not_found')
      assert.equal(first.requests.length, seenByFirst)
    } finally {
      await db.from('channels').where('id', secondChannel.id).update({ enabled: true })
      await refreshCaches()
    }
  })

  test('store:false on a native channel records nothing: a later follow-up goes where routing sends it', async ({ assert }) => {
    const user = await seedUser()
    await openai(user.key).responses.create({ model: 'gpt-5', input: 'Hello', store: false })
    await (await gateway()).responses.flush()
    const [{ count }] = await db.from('stored_responses').where('user_id', user.userId).count('* as count')
    assert.equal(Number(count), 0)
  })
})
