import { test } from '@japa/runner'
import db from '@adonisjs/lucid/services/db'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { balanceAndLedger, baseUrl, gateway, openai, post, resetDatabase, seedChannel, seedPrice, seedUser, startMock, usageRows } from '#tests/helpers'

/**
 * Responses' background mode (`background: true`; responses_store/background_runs.ts):
 * run by the gateway on a translated channel (detached from the client,
 * cancel, resumable streams), passed through to a Responses-native one
 * (polled and billed once when it ends), and POST /v1/responses/{id}/cancel.
 */

async function eventually(done: () => Promise<boolean> | boolean, ms = 5000) {
  const until = Date.now() + ms
  while (!(await done())) {
    if (Date.now() > until) throw new Error('condition not met in time')
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

function call(path: string, key: string, method = 'GET') {
  return fetch(`${baseUrl()}${path}`, { method, headers: { authorization: `Bearer ${key}` } })
}

/** The events of an SSE body: their data objects */
function eventsOf(text: string): any[] {
  return text
    .split('\n\n')
    .map((block) => block.split('\n').find((line) => line.startsWith('data:')))
    .filter((line): line is string => line !== undefined)
    .map((line) => JSON.parse(line.slice(5)))
}

async function generationRows(userId: number) {
  return (await usageRows(userId)).filter((r: any) => r.endpoint === 'responses')
}

test.group('Background responses run by the gateway (translated channel)', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'claude', provider: 'anthropic', baseUrl: mock.url, models: ['claude-*'] })
    await seedPrice('claude-bg', '1', '2')
    return () => mock.stop()
  })

  group.each.teardown(async () => {
    ;(await gateway()).background.options.perUser = 16
  })

  test('answered queued at once; GET follows it to completed; billed once, the hold settled; the row says background; a follow-up reads it', async ({ assert }) => {
    const user = await seedUser({ balance: '10' })
    mock.script({ chunks: 5, chunk_delay_ms: 20 })
    const created: any = await openai(user.key).responses.create({ model: 'claude-bg', input: 'Hello', background: true } as any)
    assert.match(created.id, /^resp_[0-9a-f]{48}$/)
    assert.include(['queued', 'in_progress'], created.status)
    assert.isTrue(created.background)
    assert.isTrue(created.store)
    // The upstream is asked for a stream (a cancel bills what it streamed), without the field.
    await eventually(() => mock.requests.some((r) => r.path.endsWith('/messages')))
    const sent = JSON.parse(mock.lastRequest()!.body)
    assert.isTrue(sent.stream)
    assert.notProperty(sent, 'background')

    let fetched: any
    await eventually(async () => {
      fetched = await (await call(`/v1/responses/${created.id}`, user.key)).json()
      return fetched.status === 'completed'
    })
    assert.equal(fetched.output[0].content[0].text.trim(), 'tok0 tok1 tok2 tok3 tok4')
    assert.isTrue(fetched.background)
    assert.equal(fetched.usage.output_tokens, mock.lastUsage!.output)

    await eventually(async () => (await generationRows(user.userId)).length === 1)
    const [row] = await generationRows(user.userId)
    assert.equal(row.status, 200)
    assert.isNull(row.error_code)
    assert.equal(row.prompt_tokens, mock.lastUsage!.input)
    assert.equal(row.completion_tokens, mock.lastUsage!.output)
    const money = await balanceAndLedger(user.userId)
    assert.equal(Number(money.balance), 10 - Number(row.cost))
    assert.isAbove(Number(row.cost), 0)

    const store = (await gateway()).responses
    await store.flush()
    const [stored] = (await db.rawQuery('SELECT status, background, output_items FROM stored_responses WHERE id = ?', [created.id])).rows
    assert.deepEqual([stored.status, stored.background], ['completed', true])
    store.forgetCached()
    const again: any = await (await call(`/v1/responses/${created.id}`, user.key)).json()
    assert.equal(again.status, 'completed')
    assert.isTrue(again.background)

    await openai(user.key).responses.create({ model: 'claude-bg', input: 'And then?', previous_response_id: created.id })
    const turns = JSON.parse(mock.lastRequest()!.body).messages.map((m: any) => m.role)
    assert.deepEqual(turns, ['user', 'assistant', 'user'])
  })

  test('cancel: stopped mid-stream, billed what was streamed (499 client_closed), idempotent; stored cancelled; another user cannot', async ({ assert }) => {
    const user = await seedUser({ balance: '10' })
    const other = await seedUser()
    mock.script({ chunks: 200, chunk_delay_ms: 20 })
    const created: any = await openai(user.key).responses.create({ model: 'claude-bg', input: 'Long', background: true } as any)
    await eventually(async () => {
      const now: any = await (await call(`/v1/responses/${created.id}`, user.key)).json()
      return now.status === 'in_progress' && now.output.length === 0
    })
    await new Promise((resolve) => setTimeout(resolve, 200))

    const refused = await call(`/v1/responses/${created.id}/cancel`, other.key, 'POST')
    assert.equal(refused.status, 404)
    assert.equal(((await refused.json()) as any).error.code, 'not_found')

    const cancelled: any = await openai(user.key).responses.cancel(created.id)
    assert.equal(cancelled.status, 'cancelled')
    assert.isTrue(cancelled.background)
    const twice: any = await openai(user.key).responses.cancel(created.id)
    assert.equal(twice.status, 'cancelled')

    await eventually(async () => (await generationRows(user.userId)).length === 1)
    const [row] = await generationRows(user.userId)
    assert.equal(row.status, 499)
    assert.equal(row.error_code, 'client_closed')
    assert.isAbove(row.completion_tokens, 0)
    assert.isBelow(row.completion_tokens, 200)
    assert.isAbove(Number(row.cost), 0)
    await eventually(() => mock.requests.some((r) => r.clientGone === true))

    const store = (await gateway()).responses
    await store.flush()
    store.forgetCached()
    const [stored] = (await db.rawQuery('SELECT status, background FROM stored_responses WHERE id = ?', [created.id])).rows
    assert.deepEqual([stored.status, stored.background], ['cancelled', true])
    // Once it ended (out of this instance's memory too), still idempotent from the table.
    const fromTable: any = await (await call(`/v1/responses/${created.id}/cancel`, user.key, 'POST')).json()
    assert.equal(fromTable.status, 'cancelled')
  })

  test('cancel of a response not made in the background: OpenAI\'s 400; of a completed background one: 400; unknown: 404', async ({ assert }) => {
    const user = await seedUser({ balance: '10' })
    const plain = await openai(user.key).responses.create({ model: 'claude-bg', input: 'Hi' })
    await (await gateway()).responses.flush()
    const response = await call(`/v1/responses/${plain.id}/cancel`, user.key, 'POST')
    assert.equal(response.status, 400)
    assert.deepEqual(((await response.json()) as any).error, {
      message: 'Cannot cancel a synchronous response.',
      type: 'invalid_request_error',
      param: 'response_id',
      code: 'invalid_request',
    })

    const done: any = await openai(user.key).responses.create({ model: 'claude-bg', input: 'Hi', background: true } as any)
    await eventually(async () => ((await (await call(`/v1/responses/${done.id}`, user.key)).json()) as any).status === 'completed')
    const late = await call(`/v1/responses/${done.id}/cancel`, user.key, 'POST')
    assert.equal(late.status, 400)
    assert.equal(((await late.json()) as any).error.message, "Cannot cancel a response with status 'completed'.")

    const unknown = await call('/v1/responses/resp_nope/cancel', user.key, 'POST')
    assert.equal(unknown.status, 404)
  })

  test('stream: true: the events as they come; GET ?stream=true&starting_after=N resumes after N', async ({ assert }) => {
    const user = await seedUser({ balance: '10' })
    mock.script({ chunks: 4, chunk_delay_ms: 10 })
    const response = await post('/v1/responses', { model: 'claude-bg', input: 'Hi', background: true, stream: true }, { authorization: `Bearer ${user.key}` })
    assert.include(response.headers.get('content-type')!, 'text/event-stream')
    const events = eventsOf(await response.text())
    assert.equal(events[0].type, 'response.created')
    assert.isTrue(events[0].response.background)
    assert.equal(events[events.length - 1].type, 'response.completed')
    assert.deepEqual(events.map((e) => e.sequence_number), events.map((_, i) => i))
    const id = events[0].response.id

    const resumed = await call(`/v1/responses/${id}?stream=true&starting_after=3`, user.key)
    const rest = eventsOf(await resumed.text())
    assert.deepEqual(rest.map((e) => e.sequence_number), events.slice(4).map((e) => e.sequence_number))
    assert.equal(rest[rest.length - 1].type, 'response.completed')
    const rows = await generationRows(user.userId)
    assert.lengthOf(rows, 1)
    assert.equal(rows[0].status, 200)
  })

  test('at most RESPONSES_BACKGROUND_MAX per user at once: the next is a 429 until one ends; refused ones cost nothing', async ({ assert }) => {
    const user = await seedUser({ balance: '10' })
    ;(await gateway()).background.options.perUser = 1
    mock.script({ chunks: 200, chunk_delay_ms: 20 })
    const sentBefore = mock.requests.length
    const first: any = await openai(user.key).responses.create({ model: 'claude-bg', input: 'Long', background: true } as any)
    await eventually(() => mock.requests.length > sentBefore)
    const before = mock.requests.length
    const second = await post('/v1/responses', { model: 'claude-bg', input: 'More', background: true }, { authorization: `Bearer ${user.key}` })
    assert.equal(second.status, 429)
    const body: any = await second.json()
    assert.equal(body.error.code, 'too_many_background_responses')
    assert.equal(mock.requests.length, before)
    // A request in the foreground is not counted.
    await openai(user.key).responses.create({ model: 'claude-bg', input: 'Now' })

    await openai(user.key).responses.cancel(first.id)
    mock.script({ chunks: 200, chunk_delay_ms: 20 })
    let again: any
    await eventually(async () => {
      const response = await post('/v1/responses', { model: 'claude-bg', input: 'Again', background: true }, { authorization: `Bearer ${user.key}` })
      again = await response.json()
      return response.status === 200
    })
    await openai(user.key).responses.cancel(again.id)
    await eventually(async () => (await generationRows(user.userId)).filter((r: any) => r.status === 499).length === 2)
  })

  test('store: false or the store off: background is a 400 (nothing to read it back from)', async ({ assert }) => {
    const user = await seedUser({ balance: '10' })
    const response = await post('/v1/responses', { model: 'claude-bg', input: 'Hi', background: true, store: false }, { authorization: `Bearer ${user.key}` })
    assert.equal(response.status, 400)
    assert.equal(((await response.json()) as any).error.param, 'store')
    const rows = await generationRows(user.userId)
    assert.lengthOf(rows, 1)
    assert.equal(rows[0].status, 400)
  })
})

test.group('Background responses on a Responses-native channel (upstream runs it)', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'openai', provider: 'openai', baseUrl: mock.url, models: ['gpt-*'] })
    await seedPrice('gpt-bg', '1', '2')
    return () => mock.stop()
  })

  group.each.setup(async () => {
    mock.storedResponses.backgroundPolls = 2
    return async () => {
      ;(await gateway()).background.options.pollMs = 1000
    }
  })

  test('passed through queued; polled upstream until it ends, then billed once (the usage it reports); a GET after adds nothing', async ({ assert }) => {
    const user = await seedUser({ balance: '10' })
    ;(await gateway()).background.options.pollMs = 20
    const created: any = await openai(user.key).responses.create({ model: 'gpt-bg', input: 'Hello', background: true } as any)
    assert.equal(created.status, 'queued')
    assert.isTrue(JSON.parse(mock.lastRequest()!.body).background)
    // Nobody polls: the gateway does.
    await eventually(async () => (await generationRows(user.userId)).length === 1)
    const [row] = await generationRows(user.userId)
    assert.equal(row.status, 200)
    assert.equal(row.prompt_tokens, 12)
    assert.equal(row.completion_tokens, mock.lastUsage!.output)
    assert.isFalse(row.estimated)
    const polls = mock.requests.filter((r) => r.method === 'GET' && r.path.includes(created.id))
    assert.isAtLeast(polls.length, 2)
    assert.equal(polls[0].headers.authorization, 'Bearer upstream-secret')

    const fetched: any = await openai(user.key).responses.retrieve(created.id)
    assert.equal(fetched.status, 'completed')
    await new Promise((resolve) => setTimeout(resolve, 100))
    assert.lengthOf(await generationRows(user.userId), 1)
    const money = await balanceAndLedger(user.userId)
    assert.equal(Number(money.balance), 10 - Number(row.cost))
  })

  test("billed from the client's own GET when that is the first to see it ended; never twice", async ({ assert }) => {
    const user = await seedUser({ balance: '10' })
    ;(await gateway()).background.options.pollMs = 60_000
    const created: any = await openai(user.key).responses.create({ model: 'gpt-bg', input: 'Hello', background: true } as any)
    assert.lengthOf(await generationRows(user.userId), 0)
    assert.equal((await openai(user.key).responses.retrieve(created.id)).status, 'queued')
    assert.equal((await openai(user.key).responses.retrieve(created.id)).status, 'completed')
    await eventually(async () => (await generationRows(user.userId)).length === 1)
    await openai(user.key).responses.retrieve(created.id)
    await new Promise((resolve) => setTimeout(resolve, 100))
    const rows = await generationRows(user.userId)
    assert.lengthOf(rows, 1)
    assert.equal(rows[0].status, 200)
    assert.equal(rows[0].completion_tokens, mock.lastUsage!.output)
  })

  test('cancel relayed to the holding channel: billed what the upstream reports for it (499 cancelled); a synchronous one: the upstream\'s 400', async ({ assert }) => {
    const user = await seedUser({ balance: '10' })
    ;(await gateway()).background.options.pollMs = 60_000
    const created: any = await openai(user.key).responses.create({ model: 'gpt-bg', input: 'Hello', background: true } as any)
    const cancelled: any = await openai(user.key).responses.cancel(created.id)
    assert.equal(cancelled.status, 'cancelled')
    assert.equal(mock.lastRequest()!.method, 'POST')
    assert.match(mock.lastRequest()!.path, new RegExp(`/responses/${created.id}/cancel$`))
    await eventually(async () => (await generationRows(user.userId)).length === 1)
    const [row] = await generationRows(user.userId)
    assert.equal(row.status, 499)
    assert.equal(row.error_code, 'cancelled')
    assert.equal(row.completion_tokens, 1)

    const plain = await openai(user.key).responses.create({ model: 'gpt-bg', input: 'Hi' })
    await (await gateway()).responses.flush()
    const refused = await call(`/v1/responses/${plain.id}/cancel`, user.key, 'POST')
    assert.equal(refused.status, 400)
    assert.equal(((await refused.json()) as any).error.message, 'Cannot cancel a synchronous response.')
  })

  test('delete while it runs: cancelled upstream first, billed what the upstream reports for it (499 cancelled), then deleted there; billed once', async ({ assert }) => {
    const user = await seedUser({ balance: '10' })
    const gw = await gateway()
    gw.background.options.pollMs = 60_000
    const created: any = await openai(user.key).responses.create({ model: 'gpt-bg', input: 'Hello', background: true } as any)
    assert.equal(created.status, 'queued')
    const other = await seedUser({ balance: '10' })
    assert.equal((await call(`/v1/responses/${created.id}`, other.key, 'DELETE')).status, 404)
    assert.isFalse(mock.requests.some((r) => r.path.endsWith(`/responses/${created.id}/cancel`)))

    const deleted = await call(`/v1/responses/${created.id}`, user.key, 'DELETE')
    assert.equal(deleted.status, 200)
    assert.deepEqual(await deleted.json(), { id: created.id, object: 'response', deleted: true })
    // Billed the cancel's usage, not the prompt's estimate a poll of the deleted response billed (a minute on).
    await eventually(async () => (await generationRows(user.userId)).length === 1)
    const rows = await generationRows(user.userId)
    assert.include(rows[0], { status: 499, error_code: 'cancelled', completion_tokens: 1, estimated: false })
    const asked = mock.requests.filter((r) => r.path.includes(created.id)).map((r) => `${r.method} ${r.path.split(created.id)[1] || '/'}`)
    assert.deepEqual(asked.slice(-3), ['GET /', 'POST /cancel', 'DELETE /'])
    assert.equal((await call(`/v1/responses/${created.id}`, user.key)).status, 404)

    // Its poll is over: nothing more billed, the hold given back.
    await new Promise((resolve) => setTimeout(resolve, 100))
    assert.lengthOf(await generationRows(user.userId), 1)
    assert.equal(gw.catalog.cachedUser(user.userId)?.reservedPico ?? 0n, 0n)
    const money = await balanceAndLedger(user.userId)
    assert.equal(money.balance, money.ledger)
    assert.equal(Number(money.balance), 10 - Number(rows[0].cost))
  })

  test('stream: true: created upstream as one JSON answer, the client gets the upstream\'s stream of it; resumable; billed once', async ({ assert }) => {
    const user = await seedUser({ balance: '10' })
    ;(await gateway()).background.options.pollMs = 60_000
    const response = await post('/v1/responses', { model: 'gpt-bg', input: 'Hi', background: true, stream: true }, { authorization: `Bearer ${user.key}` })
    const events = eventsOf(await response.text())
    const sent = JSON.parse(mock.requests.filter((r) => r.method === 'POST').at(-1)!.body)
    assert.isFalse(sent.stream)
    assert.isTrue(sent.background)
    assert.equal(events[0].type, 'response.created')
    assert.equal(events[events.length - 1].type, 'response.completed')
    const id = events[0].response.id
    const rest = eventsOf(await (await call(`/v1/responses/${id}?stream=true&starting_after=0`, user.key)).text())
    assert.deepEqual(rest.map((e) => e.sequence_number), events.slice(1).map((e) => e.sequence_number))
    // The stream does not bill; the GET that sees it ended does, once.
    await openai(user.key).responses.retrieve(id)
    await eventually(async () => (await generationRows(user.userId)).length === 1)
    await openai(user.key).responses.retrieve(id)
    await new Promise((resolve) => setTimeout(resolve, 100))
    assert.lengthOf(await generationRows(user.userId), 1)
  })
})
