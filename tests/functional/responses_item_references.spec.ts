import { test } from '@japa/runner'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { responseOfItem } from '#gateway/responses_store/item_references'
import { baseUrl, gateway, openai, post, resetDatabase, seedChannel, seedUser, startMock } from '#tests/helpers'

/**
 * Responses `item_reference` inputs (responses_store/item_references.ts): on
 * translated channels each becomes the stored item it names (the model sees
 * its own earlier turn); on Responses-native ones they pass as sent.
 */

/** The turns an Anthropic upstream received, as [role, text] */
function turnsOf(body: any): Array<[string, string]> {
  const textOf = (content: any): string =>
    typeof content === 'string' ? content : (content ?? []).map((p: any) => p.text ?? '').join('')
  return body.messages.map((m: any) => [m.role, textOf(m.content).trim()])
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

test.group('Responses item_reference on translated channels', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'claude', provider: 'anthropic', baseUrl: mock.url, models: ['claude-*'] })
    await seedChannel({ name: 'openai', provider: 'openai', baseUrl: mock.url, models: ['gpt-*'] })
    await seedChannel({ name: 'deepseek', provider: 'deepseek', baseUrl: mock.url, models: ['deepseek-*'] })
    return () => mock.stop()
  })

  for (const stream of [false, true]) {
    test(`an earlier output item sent back by reference reaches the model as the item (${stream ? 'stream' : 'non-stream'}): from memory, then from the table`, async ({ assert }) => {
      const user = await seedUser()
      const first = await turn(user.key, stream, { model: 'claude-x', input: 'First question' })
      const item = first.output[0]
      const answer = item.content[0].text.trim()
      assert.isString(item.id)
      const input = [
        { role: 'user', content: 'First question' },
        { type: 'item_reference', id: item.id },
        { role: 'user', content: 'Second question' },
      ]
      const expected = [['user', 'First question'], ['assistant', answer], ['user', 'Second question']]

      await turn(user.key, stream, { model: 'claude-x', input })
      assert.deepEqual(turnsOf(JSON.parse(mock.lastRequest()!.body)), expected)

      // Written, nothing left in memory (a restart, another instance): read by the response's key.
      const store = (await gateway()).responses
      await store.flush()
      store.forgetCached()
      const second = await turn(user.key, stream, { model: 'claude-x', input })
      assert.deepEqual(turnsOf(JSON.parse(mock.lastRequest()!.body)), expected)

      // The stored response keeps the item itself, not the reference.
      await store.flush()
      const listed: any = await openai(user.key).responses.inputItems.list(second.id, { order: 'asc' })
      assert.deepEqual(listed.data[1], item)
    })
  }

  test('references to the items of several earlier responses, after a restart: all resolved, in input order', async ({ assert }) => {
    const user = await seedUser()
    const first = await turn(user.key, false, { model: 'claude-x', input: 'One' })
    const second = await turn(user.key, true, { model: 'deepseek-chat', input: 'Two' })
    // Their output item ids name them (a whole answer's and a stream's): read by key, not searched for.
    assert.equal(responseOfItem(first.output[0].id), first.id)
    assert.equal(responseOfItem(second.output[0].id), second.id)
    const store = (await gateway()).responses
    await store.flush()
    store.forgetCached()
    await openai(user.key).responses.create({
      model: 'claude-x',
      input: [
        { role: 'user', content: 'One' },
        { type: 'item_reference', id: first.output[0].id },
        { role: 'user', content: 'Two' },
        { type: 'item_reference', id: second.output[0].id },
        { role: 'user', content: 'Three' },
      ],
    } as any)
    const answer = (r: any) => r.output[0].content[0].text.trim()
    assert.deepEqual(turnsOf(JSON.parse(mock.lastRequest()!.body)), [
      ['user', 'One'],
      ['assistant', answer(first)],
      ['user', 'Two'],
      ['assistant', answer(second)],
      ['user', 'Three'],
    ])
  })

  test('an item id the client gave in an earlier stored input is found among its latest responses (queued, then in the table)', async ({ assert }) => {
    const user = await seedUser()
    await openai(user.key).responses.create({
      model: 'claude-x',
      input: [{ type: 'message', id: 'msg_client_note', role: 'user', content: [{ type: 'input_text', text: 'The code is 42' }] }],
    } as any)
    const input = [{ type: 'item_reference', id: 'msg_client_note' }, { role: 'user', content: 'What is the code?' }]
    await openai(user.key).responses.create({ model: 'claude-x', input } as any)
    assert.deepEqual(turnsOf(JSON.parse(mock.lastRequest()!.body)), [['user', 'The code is 42What is the code?']])
    const store = (await gateway()).responses
    await store.flush()
    store.forgetCached()
    await openai(user.key).responses.create({ model: 'claude-x', input } as any)
    assert.deepEqual(turnsOf(JSON.parse(mock.lastRequest()!.body)), [['user', 'The code is 42What is the code?']])
  })

  test('with previous_response_id: a reference to an item of that conversation is the item', async ({ assert }) => {
    const user = await seedUser()
    const first = await openai(user.key).responses.create({ model: 'claude-x', input: 'First question' })
    const second = await openai(user.key).responses.create({ model: 'claude-x', input: 'Second question', previous_response_id: first.id })
    const answer = (first.output[0] as any).content[0].text.trim()
    await openai(user.key).responses.create({
      model: 'claude-x',
      previous_response_id: second.id,
      input: [{ role: 'user', content: 'Repeat your first answer:' }, { type: 'item_reference', id: first.output[0].id! }],
    } as any)
    const turns = turnsOf(JSON.parse(mock.lastRequest()!.body))
    assert.deepEqual(turns.slice(-2), [['user', 'Repeat your first answer:'], ['assistant', answer]])
  })

  test("an unknown item, or another user's: a 400 naming the id, nothing sent upstream", async ({ assert }) => {
    const owner = await seedUser()
    const other = await seedUser()
    const mine = await openai(owner.key).responses.create({ model: 'claude-x', input: 'Mine' })
    await (await gateway()).responses.flush()
    for (const [key, id] of [[owner.key, 'msg_nowhere'], [other.key, mine.output[0].id!], [other.key, 'msg_nowhere']] as const) {
      const before = mock.requests.length
      const response = await post('/v1/responses', { model: 'claude-x', input: [{ type: 'item_reference', id }, { role: 'user', content: 'Go on' }] }, { authorization: `Bearer ${key}` })
      assert.equal(response.status, 400)
      const body: any = await response.json()
      assert.deepEqual(body.error, { message: `Item with id '${id}' not found.`, type: 'invalid_request_error', param: 'input', code: 'item_not_found' })
      assert.equal(mock.requests.length, before)
    }
  })

  test('RESPONSES_STORE_DAYS=0 (nothing stored): a reference is the 400, saying to send the item itself', async ({ assert }) => {
    const user = await seedUser()
    const first = await openai(user.key).responses.create({ model: 'claude-x', input: 'Hi' })
    const store = (await gateway()).responses
    store.options.days = 0
    try {
      const response = await post('/v1/responses', { model: 'claude-x', input: [{ type: 'item_reference', id: first.output[0].id }, { role: 'user', content: 'Go on' }] }, { authorization: `Bearer ${user.key}` })
      assert.equal(response.status, 400)
      const body: any = await response.json()
      assert.equal(body.error.code, 'item_not_found')
      assert.include(body.error.message, `Item with id '${first.output[0].id}' not found. Responses are not stored by this gateway`)
    } finally {
      store.options.days = 30
    }
  })

  test('on a Responses-native channel the reference passes as sent (the upstream holds the item)', async ({ assert }) => {
    const user = await seedUser()
    const input = [{ type: 'item_reference', id: 'msg_upstream_1' }, { role: 'user', content: 'Go on' }]
    await openai(user.key).responses.create({ model: 'gpt-5', input } as any)
    assert.deepEqual(JSON.parse(mock.lastRequest()!.body).input, input)
  })
})

test.group('Responses item_reference on a route mixing native and translated channels', (group) => {
  let native: MockUpstream
  let translated: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    native = await startMock()
    translated = await startMock()
    await seedChannel({ name: 'claude', provider: 'anthropic', baseUrl: translated.url, models: ['mix-1'], priority: 10 })
    await seedChannel({ name: 'openai', provider: 'openai', baseUrl: native.url, models: ['mix-1'], priority: 0 })
    return async () => {
      await native.stop()
      await translated.stop()
    }
  })

  test('a reference the gateway does not hold goes to the native channel only, as sent', async ({ assert }) => {
    const user = await seedUser()
    const input = [{ type: 'item_reference', id: 'msg_upstream_1' }, { role: 'user', content: 'Go on' }]
    const seenByTranslated = translated.requests.length
    const response = await fetch(`${baseUrl()}/v1/responses`, {
      method: 'POST',
      headers: { 'authorization': `Bearer ${user.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'mix-1', input }),
    })
    assert.equal(response.status, 200)
    assert.equal(translated.requests.length, seenByTranslated)
    assert.deepEqual(JSON.parse(native.lastRequest()!.body).input, input)
  })
})
