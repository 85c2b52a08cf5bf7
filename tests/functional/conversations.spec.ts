import { test } from '@japa/runner'
import db from '@adonisjs/lucid/services/db'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { pruneStoredResponses } from '#actions/prune_stored_responses'
import { baseUrl, gateway, openai, post, resetDatabase, seedChannel, seedUser, startMock, usageRows } from '#tests/helpers'

/**
 * OpenAI's Conversations API kept by the gateway (app/gateway/conversations/):
 * CRUD of conversations and items through the openai SDK (as OpenAI's Agents
 * SDK's OpenAIConversationsSession calls it), the `conversation` parameter of
 * POST /v1/responses on a translated and on a Responses-native channel,
 * bounds, another user's ids, expiry.
 */

function call(path: string, key: string, method = 'GET', body?: unknown) {
  return fetch(`${baseUrl()}${path}`, {
    method,
    headers: { 'authorization': `Bearer ${key}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  })
}

/** The texts of a list of items, as [role, text] */
function textsOf(items: any[]): Array<[string, string]> {
  return items.map((i) => [i.role, (i.content ?? []).map((p: any) => p.text ?? '').join('').trim()])
}

test.group('Conversations API', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'claude', provider: 'anthropic', baseUrl: mock.url, models: ['claude-*'] })
    await seedChannel({ name: 'openai', provider: 'openai', baseUrl: mock.url, models: ['gpt-*'] })
    return () => mock.stop()
  })

  test('create, retrieve, update, items: list (desc, asc, after), add, retrieve, delete (the session pops its last); delete', async ({ assert }) => {
    const user = await seedUser()
    const client = openai(user.key)
    const created = await client.conversations.create({ items: [{ type: 'message', role: 'user', content: 'First' }], metadata: { topic: 'demo' } })
    assert.match(created.id, /^conv_[0-9a-f]{48}$/)
    assert.equal(created.object, 'conversation')
    assert.deepEqual(created.metadata, { topic: 'demo' })
    assert.deepEqual((await client.conversations.retrieve(created.id)).metadata, { topic: 'demo' })
    assert.deepEqual((await client.conversations.update(created.id, { metadata: { topic: 'other' } })).metadata, { topic: 'other' })

    const added = await client.conversations.items.create(created.id, {
      items: [
        { type: 'message', role: 'assistant', content: 'Second' },
        { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'Third' }] },
      ] as any,
    })
    assert.lengthOf(added.data, 2)
    assert.match(added.data[0].id!, /^msg_[0-9a-f]{48}$/)

    const desc = await client.conversations.items.list(created.id)
    assert.deepEqual(textsOf(desc.data), [['user', 'Third'], ['assistant', 'Second'], ['user', 'First']])
    assert.deepEqual((desc.data[1] as any).content, [{ type: 'output_text', text: 'Second' }])
    const asc = await client.conversations.items.list(created.id, { order: 'asc', limit: 2 })
    assert.deepEqual(textsOf(asc.data), [['user', 'First'], ['assistant', 'Second']])
    assert.isTrue(asc.has_more)
    const rest = await call(`/v1/conversations/${created.id}/items?order=asc&after=${asc.data[1].id}`, user.key)
    const restBody: any = await rest.json()
    assert.deepEqual(textsOf(restBody.data), [['user', 'Third']])
    assert.isFalse(restBody.has_more)

    const third = desc.data[0]
    assert.deepEqual(textsOf([await client.conversations.items.retrieve(third.id!, { conversation_id: created.id })]), [['user', 'Third']])
    const after = await client.conversations.items.delete(third.id!, { conversation_id: created.id })
    assert.equal(after.id, created.id)
    assert.deepEqual(textsOf((await client.conversations.items.list(created.id, { order: 'asc' })).data), [['user', 'First'], ['assistant', 'Second']])
    const gone = await call(`/v1/conversations/${created.id}/items/${third.id}`, user.key)
    assert.equal(gone.status, 404)
    assert.equal(((await gone.json()) as any).error.code, 'not_found')

    const deleted = await client.conversations.delete(created.id)
    assert.deepEqual(deleted, { id: created.id, object: 'conversation.deleted', deleted: true } as any)
    const missing = await call(`/v1/conversations/${created.id}`, user.key)
    assert.equal(missing.status, 404)
    assert.deepEqual(((await missing.json()) as any).error, {
      message: `Conversation with id '${created.id}' not found.`,
      type: 'invalid_request_error',
      param: 'conversation_id',
      code: 'not_found',
    })
    assert.equal(Number((await db.from('conversation_items').where('conversation_id', created.id).count('* as n'))[0].n), 0)
  })

  test("another user's conversation is unknown to every call, and to a response naming it (upstream untouched)", async ({ assert }) => {
    const owner = await seedUser()
    const other = await seedUser()
    const conversation = await openai(owner.key).conversations.create({ items: [{ type: 'message', role: 'user', content: 'Mine' }] })
    for (const [method, path, body] of [
      ['GET', `/v1/conversations/${conversation.id}`],
      ['POST', `/v1/conversations/${conversation.id}`, { metadata: { a: 'b' } }],
      ['DELETE', `/v1/conversations/${conversation.id}`],
      ['GET', `/v1/conversations/${conversation.id}/items`],
      ['POST', `/v1/conversations/${conversation.id}/items`, { items: [{ role: 'user', content: 'x' }] }],
    ] as const) {
      const response = await call(path, other.key, method, body)
      assert.equal(response.status, 404, `${method} ${path}`)
    }
    const before = mock.requests.length
    const response = await post('/v1/responses', { model: 'claude-x', input: 'Hi', conversation: conversation.id }, { authorization: `Bearer ${other.key}` })
    assert.equal(response.status, 404)
    assert.equal(((await response.json()) as any).error.param, 'conversation_id')
    assert.equal(mock.requests.length, before)
    assert.lengthOf((await openai(owner.key).conversations.items.list(conversation.id)).data, 1)
  })

  for (const [model, label] of [['claude-x', 'a translated channel (Anthropic)'], ['gpt-x', 'a Responses-native channel']] as const) {
    for (const stream of [false, true]) {
      test(`\`conversation\` on POST /v1/responses, ${label}, ${stream ? 'stream' : 'non-stream'}: its items lead the input; the turn's input and output are added`, async ({ assert }) => {
        const user = await seedUser()
        const client = openai(user.key)
        const conversation = await client.conversations.create({ items: [{ type: 'message', role: 'user', content: 'Earlier question' }] })
        const ask = async (input: string) => {
          if (!stream) return client.responses.create({ model, input, conversation: conversation.id } as any)
          const events = await client.responses.create({ model, input, conversation: { id: conversation.id }, stream: true } as any)
          for await (const _ of events as any);
        }
        await ask('First question')
        let sent = JSON.parse(mock.lastRequest()!.body)
        assert.notProperty(sent, 'conversation')
        const items = await client.conversations.items.list(conversation.id, { order: 'asc' })
        assert.deepEqual(
          textsOf(items.data).map(([role]) => role),
          ['user', 'user', 'assistant']
        )
        assert.deepEqual(textsOf(items.data).slice(0, 2), [['user', 'Earlier question'], ['user', 'First question']])

        await ask('Second question')
        sent = JSON.parse(mock.lastRequest()!.body)
        const turns = model === 'claude-x' ? sent.messages.map((m: any) => m.role) : sent.input.map((i: any) => i.role)
        // Anthropic joins the two user turns into one message
        assert.deepEqual(turns, model === 'claude-x' ? ['user', 'assistant', 'user'] : ['user', 'user', 'assistant', 'user'])
        const all = await client.conversations.items.list(conversation.id, { order: 'asc' })
        assert.lengthOf(all.data, 5)
        const rows = (await usageRows(user.userId)).filter((r: any) => r.endpoint === 'responses')
        assert.deepEqual(rows.map((r: any) => r.status), [200, 200])
      })
    }
  }

  test('bounds: more than 20 items or 16 metadata pairs per call, a conversation past its size; with previous_response_id: 400s', async ({ assert }) => {
    const user = await seedUser()
    const many = Array.from({ length: 21 }, () => ({ type: 'message', role: 'user', content: 'x' }))
    assert.equal((await call('/v1/conversations', user.key, 'POST', { items: many })).status, 400)
    const metadata = Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, 'v']))
    const refused = await call('/v1/conversations', user.key, 'POST', { metadata })
    assert.equal(refused.status, 400)
    assert.equal(((await refused.json()) as any).error.param, 'metadata')

    const conversation: any = await (await call('/v1/conversations', user.key, 'POST', {})).json()
    const store = (await gateway()).conversations
    const bound = store.options.maxBytes
    store.options.maxBytes = 2000
    try {
      const big = await call(`/v1/conversations/${conversation.id}/items`, user.key, 'POST', { items: [{ role: 'user', content: 'x'.repeat(3000) }] })
      assert.equal(big.status, 400)
      assert.equal(((await big.json()) as any).error.code, 'conversation_too_large')
    } finally {
      store.options.maxBytes = bound
    }
    assert.lengthOf((await openai(user.key).conversations.items.list(conversation.id)).data, 0)

    const both = await post('/v1/responses', { model: 'claude-x', input: 'Hi', conversation: conversation.id, previous_response_id: 'resp_x' }, { authorization: `Bearer ${user.key}` })
    assert.equal(both.status, 400)
    assert.equal(((await both.json()) as any).error.param, 'conversation')
  })

  test('hostile item ids and cursors: a NUL or an overlong id is an unknown item (404), an `after` cursor like it lists nothing; text that says \\u0000 is kept, a lone surrogate refused naming items', async ({ assert }) => {
    const user = await seedUser()
    const code = 'printf("\\u0000 ends a C string")'
    const created = await call('/v1/conversations', user.key, 'POST', { items: [{ role: 'user', content: code }] })
    // Before: the NUL check read the JSON, so an item saying `\u0000` in words was refused.
    assert.equal(created.status, 200)
    const conversation: any = await created.json()
    const [item] = (await openai(user.key).conversations.items.list(conversation.id)).data as any[]
    assert.equal(item.content[0].text, code)

    // Before: each reached Postgres, whose refusal was the generic 400 naming nothing.
    for (const [id, method] of [['a%00b', 'GET'], ['a%00b', 'DELETE'], ['x'.repeat(300), 'GET']] as const) {
      const unknown = await call(`/v1/conversations/${conversation.id}/items/${id}`, user.key, method)
      assert.equal(unknown.status, 404)
      const body: any = await unknown.json()
      assert.deepEqual([body.error.code, body.error.param], ['not_found', 'item_id'])
    }
    const page = await call(`/v1/conversations/${conversation.id}/items?after=%00`, user.key)
    assert.equal(page.status, 200)
    assert.deepEqual(((await page.json()) as any).data, [])

    const surrogate = await call(`/v1/conversations/${conversation.id}/items`, user.key, 'POST', '{"items":[{"role":"user","content":"\\ud800"}]}')
    assert.equal(surrogate.status, 400)
    assert.equal(((await surrogate.json()) as any).error.param, 'items')
    assert.lengthOf((await openai(user.key).conversations.items.list(conversation.id)).data, 1)
  })

  test('expiry: a conversation not written for RESPONSES_STORE_DAYS is unknown, and the retention run deletes it with its items', async ({ assert }) => {
    const user = await seedUser()
    const conversation = await openai(user.key).conversations.create({ items: [{ type: 'message', role: 'user', content: 'Old' }] })
    const row = await db.from('conversations').where('id', conversation.id).first()
    assert.isAbove(new Date(row.expires_at).getTime(), Date.now() + 29 * 86_400_000)
    await db.from('conversations').where('id', conversation.id).update({ expires_at: new Date(Date.now() - 1000) })
    assert.equal((await call(`/v1/conversations/${conversation.id}`, user.key)).status, 404)
    assert.isAtLeast(await pruneStoredResponses(), 1)
    assert.isNull(await db.from('conversations').where('id', conversation.id).first())
    assert.isNull(await db.from('conversation_items').where('conversation_id', conversation.id).first())
  })
})
