import { test } from '@japa/runner'
import db from '@adonisjs/lucid/services/db'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { ResponseStore } from '#gateway/responses_store/response_store'
import { mintResponseId } from '#gateway/responses_store/response_ids'
import { gateway, post, resetDatabase, seedChannel, seedUser, startMock } from '#tests/helpers'

/**
 * Hostile and sloppy clients of stored Responses, item references and Codex
 * compaction (twenty-third pass, a): what they send is answered with a clear
 * error in OpenAI's wire format, never silently misread.
 */

test.group('Hostile input s23a: stored Responses', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'claude', provider: 'anthropic', baseUrl: mock.url, models: ['claude-*'] })
    return () => mock.stop()
  })

  test('previous_response_id of a wrong type is the 400 naming it, never an answer without the conversation', async ({ assert }) => {
    const user = await seedUser()
    const auth = { authorization: `Bearer ${user.key}` }
    const first = (await (await post('/v1/responses', { model: 'claude-x', input: 'Remember 42' }, auth)).json()) as any
    const before = mock.lastRequest()
    for (const wrong of [1, { id: first.id }, [first.id], true]) {
      const res = await post('/v1/responses', { model: 'claude-x', input: 'What number?', previous_response_id: wrong }, auth)
      assert.equal(res.status, 400, JSON.stringify(wrong))
      const body = (await res.json()) as any
      assert.equal(body.error.type, 'invalid_request_error')
      assert.include(body.error.message, 'previous_response_id')
    }
    assert.strictEqual(mock.lastRequest(), before, 'no upstream call')
    // null is no follow-up, as at OpenAI
    const none = await post('/v1/responses', { model: 'claude-x', input: 'hi', previous_response_id: null }, auth)
    assert.equal(none.status, 200)
  })

  test('a follow-up whose stored conversation is larger than a request body may be: 413 naming previous_response_id, nothing sent upstream', async ({ assert }) => {
    const user = await seedUser()
    const store = (await gateway()).responses
    // 34 stored turns of about 1 MB each (each under RESPONSES_STORE_MAX_KB), chained: 34 MB, over the 32 MB body limit.
    let previous: string | null = null
    for (let i = 0; i < 34; i++) {
      const id = mintResponseId()
      store.save({
        id, kind: 'gateway', userId: user.userId, apiKeyId: null, channelId: null, model: 'claude-x', previousResponseId: previous,
        inputItems: [{ type: 'message', role: 'user', content: `${i} ${'x'.repeat(1_000_000)}` }], instructions: null,
        outputItems: [{ type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'ok' }] }], usage: null, status: 'completed', createdAt: new Date(),
      })
      previous = id
    }
    await store.flush()
    const before = mock.lastRequest()
    const res = await post('/v1/responses', { model: 'claude-x', input: 'And now?', previous_response_id: previous }, { authorization: `Bearer ${user.key}` })
    assert.equal(res.status, 413)
    const body = (await res.json()) as any
    assert.equal(body.error.param, 'previous_response_id')
    assert.equal(body.error.code, 'request_too_large')
    assert.strictEqual(mock.lastRequest(), before, 'nothing sent upstream')
  }).timeout(60_000)

  test('item_references that would make a body larger than a request body may be (one 1 MB item named 40 times): 413, nothing sent upstream', async ({ assert }) => {
    const user = await seedUser()
    const store = (await gateway()).responses
    const id = mintResponseId()
    store.save({
      id, kind: 'gateway', userId: user.userId, apiKeyId: null, channelId: null, model: 'claude-x', previousResponseId: null,
      inputItems: [{ type: 'message', role: 'user', content: 'Write a lot' }], instructions: null,
      outputItems: [{ type: 'message', id: `msg_${id}_0`, role: 'assistant', content: [{ type: 'output_text', text: 'y'.repeat(1_000_000) }] }],
      usage: null, status: 'completed', createdAt: new Date(),
    })
    await store.flush()
    const before = mock.lastRequest()
    const input = [...Array.from({ length: 40 }, () => ({ type: 'item_reference', id: `msg_${id}_0` })), { role: 'user', content: 'Again?' }]
    const res = await post('/v1/responses', { model: 'claude-x', input }, { authorization: `Bearer ${user.key}` })
    assert.equal(res.status, 413)
    const body = (await res.json()) as any
    assert.equal(body.error.code, 'request_too_large')
    assert.equal(body.error.param, 'input')
    assert.strictEqual(mock.lastRequest(), before, 'nothing sent upstream')
    // A few references to it are served.
    const few = await post('/v1/responses', { model: 'claude-x', input: [{ type: 'item_reference', id: `msg_${id}_0` }, { role: 'user', content: 'Again?' }] }, { authorization: `Bearer ${user.key}` })
    assert.equal(few.status, 200)
  }).timeout(60_000)

  test('compaction v2 emulated with previous_response_id: the summary is asked of the whole stored conversation; an unknown id is the 400', async ({ assert }) => {
    const user = await seedUser()
    const auth = { authorization: `Bearer ${user.key}` }
    const first = (await (await post('/v1/responses', { model: 'claude-x', input: 'The secret word is PLUM' }, auth)).json()) as any
    const res = await post('/v1/responses', { model: 'claude-x', previous_response_id: first.id, input: [{ role: 'user', content: 'Go on' }, { type: 'compaction_trigger' }] }, auth)
    assert.equal(res.status, 200)
    const answer = (await res.json()) as any
    assert.equal(answer.output[0].type, 'compaction')
    const sent = mock.lastRequest()!.body
    assert.include(sent, 'The secret word is PLUM')
    assert.include(sent, 'Go on')
    // An item reference in the history: the item it names is summarised.
    const byReference = await post('/v1/responses', { model: 'claude-x', input: [{ type: 'item_reference', id: first.output[0].id }, { type: 'compaction_trigger' }] }, auth)
    assert.equal(byReference.status, 200)
    assert.include(mock.lastRequest()!.body, first.output[0].content[0].text.trim())
    const before = mock.lastRequest()
    const unknown = await post('/v1/responses', { model: 'claude-x', previous_response_id: 'resp_unknown', input: [{ type: 'compaction_trigger' }] }, auth)
    assert.equal(unknown.status, 400)
    assert.equal(((await unknown.json()) as any).error.code, 'previous_response_not_found')
    assert.strictEqual(mock.lastRequest(), before)
  })

  test('an item_reference whose id is not a string (or is empty) is the 400 naming it, not "Item with id \'[object Object]\' not found"', async ({ assert }) => {
    const user = await seedUser()
    for (const id of [5, { id: 'msg_x' }, null, '']) {
      const res = await post('/v1/responses', { model: 'claude-x', input: [{ role: 'user', content: 'q' }, { type: 'item_reference', id }] }, { authorization: `Bearer ${user.key}` })
      assert.equal(res.status, 400, JSON.stringify(id))
      const body = (await res.json()) as any
      assert.equal(body.error.code, 'invalid_type')
      assert.equal(body.error.param, 'input[1].id')
    }
  })

  test('POST /v1/responses/compact emulated with previous_response_id: the stored conversation is summarised; unknown or of a wrong type, the 400', async ({ assert }) => {
    const user = await seedUser()
    const auth = { authorization: `Bearer ${user.key}` }
    const first = (await (await post('/v1/responses', { model: 'claude-x', input: 'The secret word is FIG' }, auth)).json()) as any
    const res = await post('/v1/responses/compact', { model: 'claude-x', previous_response_id: first.id, input: [{ role: 'user', content: 'Go on' }] }, auth)
    assert.equal(res.status, 200)
    assert.include(mock.lastRequest()!.body, 'The secret word is FIG')
    const before = mock.lastRequest()
    const unknown = await post('/v1/responses/compact', { model: 'claude-x', previous_response_id: 'resp_unknown', input: [] }, auth)
    assert.equal(unknown.status, 400)
    assert.equal(((await unknown.json()) as any).error.code, 'previous_response_not_found')
    const wrong = await post('/v1/responses/compact', { model: 'claude-x', previous_response_id: 7, input: [] }, auth)
    assert.equal(wrong.status, 400)
    assert.include(((await wrong.json()) as any).error.message, 'previous_response_id')
    assert.strictEqual(mock.lastRequest(), before)
  })

  test('store of a wrong type ("false") is the 400 naming it, never stored against the client\'s wish', async ({ assert }) => {
    const user = await seedUser()
    const auth = { authorization: `Bearer ${user.key}` }
    for (const wrong of ['false', 0, {}]) {
      const res = await post('/v1/responses', { model: 'claude-x', input: 'hi', store: wrong }, auth)
      assert.equal(res.status, 400, JSON.stringify(wrong))
      const body = (await res.json()) as any
      assert.equal(body.error.type, 'invalid_request_error')
      assert.include(body.error.message, 'store')
    }
  })
})

test.group('Hostile input s23a: the store\'s write-behind queue', (group) => {
  group.setup(async () => {
    await resetDatabase()
  })

  /** A gateway-kept response of this user, as the service saves one */
  function record(userId: number) {
    const id = mintResponseId()
    return {
      id,
      kind: 'gateway' as const,
      userId,
      apiKeyId: null,
      channelId: null,
      model: 'claude-x',
      previousResponseId: null,
      inputItems: [{ type: 'message', role: 'user', content: 'hi' }],
      instructions: null,
      outputItems: [{ type: 'message', role: 'assistant', content: 'hello' }],
      usage: null,
      status: 'completed',
      createdAt: new Date(),
    }
  }

  test('flush() (shutdown) writes the whole queue, not one batch of it: nothing left to a timer after the pools close', async ({ assert }) => {
    const user = await seedUser()
    const logged: string[] = []
    const store = new ResponseStore({ days: 1, maxBytes: 1 << 20, log: (m) => logged.push(m), batchSize: 2, flushMs: 60_000 })
    const ids: string[] = []
    // Saved in a burst: each full batch asks for a write at once, the last ones wait for it.
    for (let i = 0; i < 7; i++) {
      const r = record(user.userId)
      ids.push(r.id)
      store.save(r)
    }
    await store.flush()
    const rows = await db.from('stored_responses').whereIn('id', ids).count('* as n')
    assert.equal(Number(rows[0].n), 7)
    assert.deepEqual(logged, [])
  })

  test('the queue is bounded in bytes (a database that hangs): answers past the bound are not stored, logged once, not per answer', async ({ assert }) => {
    const user = await seedUser()
    const logged: string[] = []
    // 106 bytes of items a response: the bound holds three of them.
    const store = new ResponseStore({ days: 1, maxBytes: 1 << 20, maxQueuedBytes: 350, log: (m) => logged.push(m), batchSize: 1000, flushMs: 60_000 })
    const saved = Array.from({ length: 6 }, () => store.save(record(user.userId)))
    assert.deepEqual(saved, [true, true, true, false, false, false])
    assert.lengthOf(logged, 1)
    assert.include(logged[0], 'queue')
    // Written: room again.
    await store.flush()
    assert.isTrue(store.save(record(user.userId)))
    await store.flush()
  })

  test('one row the table refuses (a key or a channel deleted meanwhile) loses only itself, not the other answers of its batch; a NUL in an item is kept', async ({ assert }) => {
    const user = await seedUser()
    const logged: string[] = []
    const store = new ResponseStore({ days: 1, maxBytes: 1 << 20, log: (m) => logged.push(m), batchSize: 200, flushMs: 60_000 })
    const good = [record(user.userId), record(user.userId), record(user.userId)]
    const nul = { ...record(user.userId), inputItems: [{ type: 'message', role: 'user', content: 'a\u0000b' }] }
    const goneKey = { ...record(user.userId), apiKeyId: 987_654_321 }
    const goneChannel = { ...record(user.userId), channelId: 987_654_321 }
    for (const r of [good[0], nul, good[1], goneKey, good[2], goneChannel]) assert.isTrue(store.save(r))
    await store.flush()
    const rows = await db.from('stored_responses').whereIn('id', [...good, nul, goneKey, goneChannel].map((r) => r.id)).select('id')
    assert.sameMembers(rows.map((r) => r.id), [...good, nul].map((r) => r.id))
    assert.lengthOf(logged, 1)
    assert.include(logged[0], '2 ')
  })

  test('the table cannot be written (an outage): logged once, not per write, then how many were lost once it can again', async ({ assert }) => {
    const user = await seedUser()
    const logged: string[] = []
    const store = new ResponseStore({ days: 1, maxBytes: 1 << 20, log: (m) => logged.push(m), batchSize: 1, flushMs: 60_000 })
    await db.rawQuery('ALTER TABLE stored_responses RENAME TO stored_responses_away')
    try {
      for (let i = 0; i < 3; i++) store.save(record(user.userId))
      await store.flush()
    } finally {
      await db.rawQuery('ALTER TABLE stored_responses_away RENAME TO stored_responses')
    }
    assert.lengthOf(logged, 1)
    const back = record(user.userId)
    store.save(back)
    await store.flush()
    assert.lengthOf(logged, 2)
    assert.include(logged[1], '3')
    const rows = await db.from('stored_responses').where('id', back.id)
    assert.lengthOf(rows, 1)
  })
})
