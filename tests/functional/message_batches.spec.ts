import { test } from '@japa/runner'
import app from '@adonisjs/core/services/app'
import db from '@adonisjs/lucid/services/db'
import Anthropic from '@anthropic-ai/sdk'
import { createApiKey } from '#actions/issue_api_key'
import { setPrice } from '#actions/set_price'
import { createUser } from '#actions/create_user'
import { BatchService } from '#gateway/batches/batch_service'
import { batchReadTiming } from '#gateway/batches/read_deadline'
import { answerBudget, answerLimits } from '#gateway/upstream/answer_limits'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { mockResultUsage } from '#tests/fixtures/mock_upstream/anthropic_batches'
import { anthropic, failure } from '#tests/clients'
import { PageClient, htmlText } from '#tests/page_client'
import { PanelClient, textOf } from '#tests/panel_client'
import {
  balanceAndLedger,
  baseUrl,
  gateway,
  openai,
  refreshCaches,
  resetDatabase,
  seedChannel,
  seedUser,
  startMock,
  usageRows,
} from '#tests/helpers'

/**
 * Anthropic's Message Batches through the gateway, with the official
 * @anthropic-ai/sdk: a batch created on the Anthropic channel its model
 * routes to (held on the balance at the batch price), retrieved until it
 * ends, its results read through the SDK's JSONL decoder, listed, canceled,
 * deleted; billed exactly once, as one usage row (endpoint
 * `messages.batch`) at half the model's price with its cache prices,
 * whoever looks (retrieve, results, cancel, the sweep). A batch is its
 * key's only: any other key gets Anthropic's 404.
 */

/** Prices of the test models, USD per 1M tokens */
const INPUT = 3n
const OUTPUT = 15n
/** Cache reads and writes, in tenths and hundredths of a USD per 1M tokens: 0.30 and 3.75 */
const CACHE_READ_PICO = 300_000n
const CACHE_WRITE_PICO = 3_750_000n
/** pico-USD per token of a price per 1M tokens */
const PER_TOKEN = 1_000_000n

type BatchRequest = Anthropic.Messages.BatchCreateParams.Request

/** `count` requests for `model` (or each request's model), each with max_tokens. */
function requests(count: number, model: string | ((i: number) => string) = 'claude-sonnet-4', ids = (i: number) => `req-${i}`): BatchRequest[] {
  return Array.from({ length: count }, (_, i) => ({
    custom_id: ids(i),
    params: {
      model: typeof model === 'string' ? model : model(i),
      max_tokens: 50,
      messages: [{ role: 'user' as const, content: `question ${i}` }],
    },
  }))
}

/** What the mock's succeeded requests (their indexes) cost at half price, as numeric(24,12) prints it. */
function expectedCost(indexes: number[]): string {
  let pico = 0n
  for (const i of indexes) {
    const usage = mockResultUsage(i)
    pico +=
      BigInt(usage.input_tokens) * INPUT * PER_TOKEN +
      BigInt(usage.cache_read_input_tokens) * CACHE_READ_PICO +
      BigInt(usage.cache_creation_input_tokens) * CACHE_WRITE_PICO +
      BigInt(usage.output_tokens) * OUTPUT * PER_TOKEN
  }
  pico = (pico * 50n + 50n) / 100n
  return `${pico / 1_000_000_000_000n}.${(pico % 1_000_000_000_000n).toString().padStart(12, '0')}`
}

/** The usage row's counts for those requests: prompt tokens include cache reads and writes. */
function expectedTokens(indexes: number[]) {
  const sums = { prompt_tokens: 0, completion_tokens: 0, cached_tokens: 0, cache_write_tokens: 0 }
  for (const i of indexes) {
    const usage = mockResultUsage(i)
    sums.prompt_tokens += usage.input_tokens + usage.cache_read_input_tokens + usage.cache_creation_input_tokens
    sums.completion_tokens += usage.output_tokens
    sums.cached_tokens += usage.cache_read_input_tokens
    sums.cache_write_tokens += usage.cache_creation_input_tokens
  }
  return sums
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i)

/** The hold of a batch whose body was `bytes` long with `count` requests of max_tokens 50, at half price. */
function expectedHold(bytes: number, count: number): bigint {
  const pico = BigInt(Math.ceil(bytes / 3)) * INPUT * PER_TOKEN + BigInt(count * 50) * OUTPUT * PER_TOKEN
  return (pico * 50n + 50n) / 100n
}

async function batchRow(publicId: string) {
  return db.from('batch_objects').where('public_id', publicId).first()
}

/** Creates a batch; `polls` GETs before the mock ends it (a field the gateway passes on untouched). */
function create(client: Anthropic, batch: BatchRequest[], polls = 0) {
  return client.messages.batches.create({ requests: batch, mock_polls: polls } as Anthropic.Messages.BatchCreateParams)
}

test.group('Message Batches API', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({
      name: 'claude',
      provider: 'anthropic',
      baseUrl: mock.url,
      models: ['claude-sonnet-4', 'claude-haiku-4', 'claude-alias', 'claude-free'],
      modelMapping: { 'claude-alias': 'claude-sonnet-4-20250514' },
    })
    await seedChannel({ name: 'openai', provider: 'openai', baseUrl: mock.url, models: ['gpt-4o-mini'] })
    for (const model of ['claude-sonnet-4', 'claude-haiku-4', 'claude-alias', 'gpt-4o-mini']) {
      await setPrice({ model, input: String(INPUT), output: String(OUTPUT), cacheRead: '0.3', cacheWrite: '3.75' })
    }
    await setPrice({ model: 'claude-free', input: '0', output: '0' })
    await refreshCaches()
    return () => mock.stop()
  })

  test('create, retrieve until ended, results through the SDK decoder, list; billed once at half price with cache prices however often it is looked at', async ({ assert }) => {
    const gw = await gateway()
    const user = await seedUser({ balance: '1' })
    const client = anthropic(user.key)

    const batch = await create(client, requests(3), 1)
    assert.match(batch.id, /^msgbatch_gw[A-Za-z0-9]{24}$/)
    assert.include(batch, { type: 'message_batch', processing_status: 'in_progress', results_url: null })
    const upstream = [...mock.messageBatches.batches.values()].at(-1)!
    const sent = mock.lastRequest()!
    assert.equal(sent.path, '/v1/messages/batches')
    assert.equal(sent.headers['x-api-key'], 'upstream-secret')
    // The client's anthropic-version goes up, as for /v1/messages (2023-06-01 when it sent none: the sweep's looks).
    assert.match(String(sent.headers['anthropic-version']), /^\d{4}-\d{2}-\d{2}$/)
    assert.isUndefined(sent.headers.authorization)
    assert.deepEqual(upstream.requests.map((r) => [r.custom_id, r.params.model]), [
      ['req-0', 'claude-sonnet-4'],
      ['req-1', 'claude-sonnet-4'],
      ['req-2', 'claude-sonnet-4'],
    ])
    // Held at half price while it runs, on the balance every priced request checks: the client's bytes went up as sent.
    const hold = expectedHold(sent.bytes.length, 3)
    assert.equal(gw.batches.holds.heldFor(user.userId), hold)
    assert.equal((await gw.catalog.user(user.userId))!.reservedPico, hold)

    const running = await client.messages.batches.retrieve(batch.id)
    assert.include(running, { id: batch.id, processing_status: 'in_progress' })
    assert.lengthOf(await usageRows(user.userId), 0, 'nothing billed before the batch ends')

    const ended = await client.messages.batches.retrieve(batch.id)
    assert.include(ended, { id: batch.id, processing_status: 'ended' })
    assert.deepEqual(ended.request_counts, { processing: 0, succeeded: 3, errored: 0, canceled: 0, expired: 0 })
    // The results are the gateway's to serve: never the upstream's address.
    assert.equal(ended.results_url, `${baseUrl()}/v1/messages/batches/${batch.id}/results`)

    const results: Anthropic.Messages.MessageBatchIndividualResponse[] = []
    for await (const line of await client.messages.batches.results(batch.id)) results.push(line)
    assert.deepEqual(results.map((r) => [r.custom_id, r.result.type]), [
      ['req-0', 'succeeded'],
      ['req-1', 'succeeded'],
      ['req-2', 'succeeded'],
    ])
    const first = results[0].result as Anthropic.Messages.MessageBatchSucceededResult
    assert.deepEqual(first.message.usage, { ...mockResultUsage(0) } as any)

    const listed = await client.messages.batches.list()
    assert.deepEqual(listed.data.map((b) => [b.id, b.processing_status]), [[batch.id, 'ended']])

    // Looked at again, its results read twice, and swept twice: still one bill.
    await client.messages.batches.retrieve(batch.id)
    for await (const _ of await client.messages.batches.results(batch.id)) void _
    await gw.batches.sweep()
    await gw.batches.sweep()

    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 1)
    const row = (await batchRow(batch.id))!
    assert.include(rows[0], {
      endpoint: 'messages.batch',
      request_id: row.request_id,
      model: 'claude-sonnet-4',
      served_model: 'claude-sonnet-4',
      provider: 'anthropic',
      status: 200,
      error_code: null,
      ...expectedTokens(range(3)),
      estimated: false,
      cost: expectedCost(range(3)),
    })
    assert.equal(row.billed_cost, expectedCost(range(3)))
    const money = await balanceAndLedger(user.userId)
    assert.equal(money.balance, (1 - Number(expectedCost(range(3)))).toFixed(12))
    assert.equal(money.ledger, money.balance, 'the ledger is the balance: one charge')
    assert.equal(gw.batches.holds.heldFor(user.userId), 0n)
    const cached = (await gw.catalog.user(user.userId))!
    assert.equal(cached.reservedPico, 0n)
    assert.equal(cached.balancePico, BigInt(money.balance.replace('.', '')))
  })

  test('the results of a batch nobody retrieved bill it (the SDK retrieves first); an errored request adds nothing', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const client = anthropic(user.key)
    const batch = await create(client, requests(3, 'claude-sonnet-4', (i) => (i === 1 ? 'fail-1' : `req-${i}`)))
    const results: Anthropic.Messages.MessageBatchIndividualResponse[] = []
    for await (const line of await client.messages.batches.results(batch.id)) results.push(line)
    assert.deepEqual(results.map((r) => r.result.type), ['succeeded', 'errored', 'succeeded'])
    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 1)
    assert.include(rows[0], { endpoint: 'messages.batch', cost: expectedCost([0, 2]), ...expectedTokens([0, 2]) })
  })

  test('a batch whose requests expired: billed for what succeeded, the row says it expired; Bearer auth as /v1/messages', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const client = new Anthropic({ authToken: user.key, apiKey: null, baseURL: baseUrl(), maxRetries: 0 })
    const batch = await create(client, requests(3, 'claude-sonnet-4', (i) => (i === 2 ? 'expire-2' : `req-${i}`)))
    const ended = await client.messages.batches.retrieve(batch.id)
    assert.deepEqual(ended.request_counts, { processing: 0, succeeded: 2, errored: 0, canceled: 0, expired: 1 })
    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 1)
    assert.include(rows[0], { endpoint: 'messages.batch', error_code: 'batch_expired', cost: expectedCost([0, 1]) })
  })

  test('the sweep bills a batch nobody asks about; two instances and a client at once bill it once', async ({ assert }) => {
    const gw = await gateway()
    const user = await seedUser({ balance: '1' })
    const client = anthropic(user.key)
    await create(client, requests(2))
    await gw.batches.sweep()
    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 1)
    assert.equal(rows[0].cost, expectedCost(range(2)))
    assert.equal(gw.batches.holds.heldFor(user.userId), 0n)

    const second = await create(client, requests(4))
    const other = new BatchService(gw.catalog, gw.meter, await app.container.make('logger'))
    try {
      await Promise.all([gw.batches.sweep(), other.sweep(), client.messages.batches.retrieve(second.id), gw.batches.sweep()])
      // The other instance shares this one's catalog here: a hold its sync took just before this one billed
      // the batch ends at its next sync, as it would in its own process.
      await other.holds.sync()
    } finally {
      gw.catalog.standingHolds = (id) => gw.batches.holds.heldFor(id)
    }
    const after = await usageRows(user.userId)
    assert.lengthOf(after, 2)
    assert.equal(after[1].cost, expectedCost(range(4)))
    const money = await balanceAndLedger(user.userId)
    assert.equal(money.balance, (1 - Number(expectedCost(range(2))) - Number(expectedCost(range(4)))).toFixed(12))
    assert.equal(money.ledger, money.balance)
    const cached = (await gw.catalog.user(user.userId))!
    assert.equal(cached.balancePico, BigInt(money.balance.replace('.', '')))
    assert.equal(cached.reservedPico, 0n)
  })

  test('a results line that never ends: the bill\'s read stops at the line bound (a whole answer\'s), the batch stays unbilled and held; billed once when its results read whole', async ({ assert }) => {
    const gw = await gateway()
    const user = await seedUser({ balance: '1' })
    const client = anthropic(user.key)
    const bound = answerLimits.bodyBytes
    answerLimits.bodyBytes = 1024 * 1024
    try {
      // 16 MB of one line, then the end: before, read whole into one buffer, found no JSON and billed at nothing.
      const batch = await client.messages.batches.create({ requests: requests(2), mock_polls: 0, mock_results: { endless_line: 16 * 1024 * 1024 } } as any)
      const upstream = [...mock.messageBatches.batches.values()].at(-1)!
      const held = gw.batches.holds.heldFor(user.userId)
      assert.isAbove(Number(held), 0)
      const ended = await client.messages.batches.retrieve(batch.id)
      assert.equal(ended.processing_status, 'ended')
      assert.lengthOf(await usageRows(user.userId), 0, 'not billed from results it could not read')
      assert.isNull((await batchRow(batch.id)).billed_at)
      assert.equal(gw.batches.holds.heldFor(user.userId), held, 'still held: billable at the next look')
      for (let i = 0; i < 50 && upstream.resultsAbandoned === 0; i++) await new Promise((r) => setTimeout(r, 20))
      assert.equal(upstream.resultsAbandoned, 1, 'the gateway hung up on the endless line')
      assert.equal(answerBudget.used, 0, 'what the line took of the answers\' budget is given back')
      // A delete waits for the bill, as for any batch whose results could not be read yet.
      const early = await failure(client.messages.batches.delete(batch.id))
      assert.equal(early.status, 503)

      upstream.resultsFault = undefined
      await gw.batches.sweep()
      await gw.batches.sweep()
      const rows = await usageRows(user.userId)
      assert.lengthOf(rows, 1)
      assert.include(rows[0], { endpoint: 'messages.batch', cost: expectedCost(range(2)) })
      assert.equal(gw.batches.holds.heldFor(user.userId), 0n)
      const money = await balanceAndLedger(user.userId)
      assert.equal(money.balance, (1 - Number(expectedCost(range(2)))).toFixed(12))
      assert.equal(money.ledger, money.balance)
    } finally {
      answerLimits.bodyBytes = bound
    }
  })

  test('results that drip in a byte at a time: the read ends at BATCH_READ_DEADLINE_SECONDS, unbilled and held; the sweep bills another batch meanwhile', async ({ assert }) => {
    const gw = await gateway()
    const user = await seedUser({ balance: '1' })
    const client = anthropic(user.key)
    // The slow one first: the sweep looks at it before the other (longest unpolled first).
    const slow = await client.messages.batches.create({ requests: requests(2), mock_polls: 0, mock_results: { drip_ms: 50 } } as any)
    const slowUpstream = [...mock.messageBatches.batches.values()].at(-1)!
    const slowHold = gw.batches.holds.heldFor(user.userId)
    await create(client, requests(3), 0)
    const deadline = batchReadTiming.deadlineMs
    batchReadTiming.deadlineMs = 3000
    try {
      const started = Date.now()
      const sweeping = gw.batches.sweep()
      let rows: any[] = []
      for (let i = 0; i < 150 && rows.length === 0; i++) {
        await new Promise((r) => setTimeout(r, 20))
        rows = await usageRows(user.userId)
      }
      const billedAfter = Date.now() - started
      assert.lengthOf(rows, 1)
      assert.include(rows[0], { endpoint: 'messages.batch', cost: expectedCost(range(3)) })
      // Before: the sweep read the dripping results first (its idle limit never trips) and billed the other after.
      assert.isBelow(billedAfter, 2000, 'billed while the other batch\'s results were still dripping in')
      await sweeping
      const took = Date.now() - started
      assert.isAtLeast(took, 2900, 'the dripping read ran to the deadline')
      assert.isBelow(took, 8000, 'and ended there')
      assert.isNull((await batchRow(slow.id)).billed_at)
      assert.equal(gw.batches.holds.heldFor(user.userId), slowHold, 'the slow batch is still held')
      for (let i = 0; i < 50 && slowUpstream.resultsAbandoned === 0; i++) await new Promise((r) => setTimeout(r, 20))
      assert.equal(slowUpstream.resultsAbandoned, 1, 'the gateway ended the dripping download')

      slowUpstream.resultsFault = undefined
      await gw.batches.sweep()
      rows = await usageRows(user.userId)
      assert.lengthOf(rows, 2)
      assert.include(rows[1], { endpoint: 'messages.batch', cost: expectedCost(range(2)) })
      assert.equal(gw.batches.holds.heldFor(user.userId), 0n)
      const money = await balanceAndLedger(user.userId)
      assert.equal(money.ledger, money.balance)
    } finally {
      batchReadTiming.deadlineMs = deadline
    }
  })

  test('shutdown ends a sweep held by dripping results at once; the batch stays held and is billed after', async ({ assert }) => {
    const gw = await gateway()
    const user = await seedUser({ balance: '1' })
    const client = anthropic(user.key)
    const slow = await client.messages.batches.create({ requests: requests(2), mock_polls: 0, mock_results: { drip_ms: 50 } } as any)
    const slowUpstream = [...mock.messageBatches.batches.values()].at(-1)!
    const held = gw.batches.holds.heldFor(user.userId)
    try {
      const started = Date.now()
      const sweeping = gw.batches.sweep()
      await new Promise((r) => setTimeout(r, 300))
      gw.batches.stopReads()
      await sweeping
      // Before: the shutdown waited for the read deadline (300 s by default).
      assert.isBelow(Date.now() - started, 2000, 'the sweep ended with the shutdown')
      assert.isNull((await batchRow(slow.id)).billed_at)
      assert.equal(gw.batches.holds.heldFor(user.userId), held, 'still held: billed after the restart')
    } finally {
      gw.batches.resumeReads()
    }
    slowUpstream.resultsFault = undefined
    await gw.batches.sweep()
    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 1)
    assert.include(rows[0], { endpoint: 'messages.batch', cost: expectedCost(range(2)) })
    assert.equal(gw.batches.holds.heldFor(user.userId), 0n)
  })

  test('a bill whose usage row a crash lost is written by the sweep with its cache writes, once', async ({ assert }) => {
    const gw = await gateway()
    const user = await seedUser({ balance: '1' })
    const batch = await create(anthropic(user.key), requests(2), 5)
    const tokens = expectedTokens(range(2))
    const billedAt = new Date(Date.now() - 11 * 60_000)
    // What a process that died right after its claim left: the batch billed, no usage row.
    await db.from('batch_objects').where('public_id', batch.id).update({
      status: 'ended',
      billed_at: billedAt,
      billed_cost: expectedCost(range(2)),
      prompt_tokens: tokens.prompt_tokens,
      completion_tokens: tokens.completion_tokens,
      cached_tokens: tokens.cached_tokens,
      cache_write_tokens: tokens.cache_write_tokens,
      reasoning_tokens: 0,
    })
    await gw.batches.sweep()
    await gw.batches.sweep()
    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 1)
    assert.include(rows[0], { endpoint: 'messages.batch', cost: expectedCost(range(2)), ...tokens, error_code: null })
    const money = await balanceAndLedger(user.userId)
    assert.equal(money.ledger, money.balance)
    assert.equal(money.balance, (1 - Number(expectedCost(range(2)))).toFixed(12))
    // Charged once in this process's cached balance too: the second sweep, within the meter's flush window, did not write the row again.
    assert.equal((await gw.catalog.user(user.userId))!.balancePico, BigInt(money.balance.replace('.', '')))
  })

  test('cancel: canceling, then ended; billed for what was answered, the row says it was canceled; delete after', async ({ assert }) => {
    const gw = await gateway()
    const user = await seedUser({ balance: '1' })
    const client = anthropic(user.key)
    const batch = await create(client, requests(4), 5)
    // In progress: not deletable (as at Anthropic), and nothing sent upstream for it.
    const early = await failure(client.messages.batches.delete(batch.id))
    assert.equal(early.status, 400)
    assert.equal(early.error.error.type, 'invalid_request_error')
    assert.isTrue(mock.messageBatches.batches.has([...mock.messageBatches.batches.keys()].at(-1)!))

    const canceling = await client.messages.batches.cancel(batch.id)
    assert.include(canceling, { id: batch.id, processing_status: 'canceling' })
    assert.isString(canceling.cancel_initiated_at)
    assert.lengthOf(await usageRows(user.userId), 0)
    const ended = await client.messages.batches.retrieve(batch.id)
    assert.equal(ended.processing_status, 'ended')
    assert.deepEqual(ended.request_counts, { processing: 0, succeeded: 2, errored: 0, canceled: 2, expired: 0 })
    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 1)
    assert.include(rows[0], { endpoint: 'messages.batch', error_code: 'batch_canceled', cost: expectedCost([0, 1]) })
    assert.equal(gw.batches.holds.heldFor(user.userId), 0n)

    const upstreamId = (await batchRow(batch.id))!.upstream_id
    const deleted = await client.messages.batches.delete(batch.id)
    assert.deepEqual(deleted, { id: batch.id, type: 'message_batch_deleted' })
    assert.isFalse(mock.messageBatches.batches.has(upstreamId), 'deleted upstream')
    const gone = await failure(client.messages.batches.retrieve(batch.id))
    assert.equal(gone.status, 404)
    assert.lengthOf((await client.messages.batches.list()).data.filter((b) => b.id === batch.id), 0)
    // The bill stays: one row, the money charged once.
    await gw.batches.sweep()
    assert.lengthOf(await usageRows(user.userId), 1)
    const money = await balanceAndLedger(user.userId)
    assert.equal(money.balance, (1 - Number(expectedCost([0, 1]))).toFixed(12))
  })

  test('a batch whose channel is deleted is closed by the sweep: a row billing nothing, its hold released', async ({ assert }) => {
    const gw = await gateway()
    const channel = await seedChannel({ name: 'doomed-claude', provider: 'anthropic', baseUrl: mock.url, models: ['claude-doomed'] })
    await setPrice({ model: 'claude-doomed', input: String(INPUT), output: String(OUTPUT) })
    await refreshCaches()
    const user = await seedUser({ balance: '1' })
    const client = anthropic(user.key)
    const batch = await create(client, requests(2, 'claude-doomed'), 5)
    assert.isAbove(Number(gw.batches.holds.heldFor(user.userId)), 0)
    await db.from('channels').where('id', channel.id).delete()
    await refreshCaches()
    await gw.batches.sweep()
    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 1)
    assert.include(rows[0], { endpoint: 'messages.batch', error_code: 'batch_channel_deleted', cost: '0.000000000000', channel_id: null })
    assert.equal(gw.batches.holds.heldFor(user.userId), 0n)
    assert.equal((await client.messages.batches.retrieve(batch.id)).id, batch.id, 'still its key\'s, as last seen')
    await gw.batches.sweep()
    assert.lengthOf(await usageRows(user.userId), 1)
  })

  test('a client that leaves while the upstream makes its batch: the batch is recorded, held and billed all the same', async ({ assert }) => {
    const gw = await gateway()
    const user = await seedUser({ balance: '1' })
    const made = mock.messageBatches.batches.size
    // The upstream takes 400 ms; the client hangs up after 100.
    mock.script({ latency_ms: 400 })
    const abort = new AbortController()
    const leaving = fetch(`${baseUrl()}/v1/messages/batches`, {
      method: 'POST',
      headers: { 'x-api-key': user.key, 'anthropic-version': '2023-06-01', 'content-type': 'application/json' },
      body: JSON.stringify({ requests: requests(2), mock_polls: 1 }),
      signal: abort.signal,
    }).catch(() => null)
    setTimeout(() => abort.abort(), 100)
    assert.isNull(await leaving)
    for (let i = 0; i < 40 && mock.messageBatches.batches.size === made; i++) await new Promise((r) => setTimeout(r, 25))
    assert.equal(mock.messageBatches.batches.size, made + 1, 'the upstream made the batch')
    const upstreamId = [...mock.messageBatches.batches.keys()].at(-1)!
    let row: any = null
    for (let i = 0; i < 40 && !row; i++) {
      row = await db.from('batch_objects').where({ kind: 'batch', upstream_id: upstreamId }).first()
      if (!row) await new Promise((r) => setTimeout(r, 25))
    }
    assert.isOk(row, 'the gateway recorded it (before the fix the call was aborted with the client: never recorded, never billed)')
    assert.isTrue(gw.batches.holds.heldFor(user.userId) > 0n, "held while it runs")
    const client = anthropic(user.key)
    for (let look = 0; look < 4; look++) {
      if ((await client.messages.batches.retrieve(row.public_id)).processing_status === 'ended') break
    }
    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 1)
    assert.equal(rows[0].endpoint, 'messages.batch')
    assert.equal(gw.batches.holds.heldFor(user.userId), 0n)
  })

  test("another key's message batches are not there for it: Anthropic's 404", async ({ assert }) => {
    const owner = await seedUser({ balance: '1' })
    const other = await seedUser({ balance: '1' })
    const batch = await create(anthropic(owner.key), requests(1), 5)
    const { key: secondKey } = await createApiKey({ userRef: owner.email })
    await refreshCaches()
    for (const key of [other.key, secondKey]) {
      const client = anthropic(key)
      for (const call of [
        () => client.messages.batches.retrieve(batch.id),
        () => client.messages.batches.cancel(batch.id),
        () => client.messages.batches.delete(batch.id),
        () => fetch(`${baseUrl()}/v1/messages/batches/${batch.id}/results`, { headers: { 'x-api-key': key } }).then(async (r) => {
          throw Object.assign(new Error('404'), { status: r.status, error: await r.json() })
        }),
      ]) {
        const { status, error } = await failure(call())
        assert.equal(status, 404)
        assert.deepEqual(error, { type: 'error', error: { type: 'not_found_error', message: `No message batch found with id '${batch.id}'` } })
      }
      assert.lengthOf((await client.messages.batches.list()).data, 0)
    }
    // An OpenAI batch id space apart: the OpenAI Batch API does not see a message batch, nor the other way.
    const asOpenAi = await openai(owner.key).batches.retrieve(batch.id).catch((error) => error)
    assert.equal(asOpenAi.status, 404)
    assert.lengthOf((await openai(owner.key).batches.list()).data, 0)
    assert.equal((await anthropic(owner.key).messages.batches.retrieve(batch.id)).id, batch.id)
  })

  test("an id or a list cursor with a NUL names no batch: Anthropic's 404, an empty page (not a 400 about storage)", async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    await create(anthropic(user.key), requests(1))
    const headers = { 'x-api-key': user.key, 'anthropic-version': '2023-06-01' }
    for (const [method, path] of [['GET', '/v1/messages/batches/a%00b'], ['GET', '/v1/messages/batches/a%00b/results'], ['POST', '/v1/messages/batches/a%00b/cancel'], ['DELETE', '/v1/messages/batches/a%00b']]) {
      const response = await fetch(`${baseUrl()}${path}`, { method, headers })
      assert.equal(response.status, 404, `${method} ${path}`)
      assert.deepEqual(await response.json(), { type: 'error', error: { type: 'not_found_error', message: "No message batch found with id 'a\u0000b'" } })
    }
    for (const cursor of ['after_id', 'before_id']) {
      const response = await fetch(`${baseUrl()}/v1/messages/batches?${cursor}=a%00b`, { headers })
      assert.equal(response.status, 200, cursor)
      assert.deepEqual(await response.json(), { data: [], has_more: false, first_id: null, last_id: null })
    }
  })

  test('mixed models, a non-Anthropic model, bad custom ids: a clear 400 before anything goes upstream', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const client = anthropic(user.key)
    const before = mock.messageBatches.batches.size
    const mixed = await failure(create(client, requests(3, (i) => (i === 2 ? 'claude-haiku-4' : 'claude-sonnet-4'))))
    assert.equal(mixed.status, 400)
    assert.equal(mixed.error.type, 'error')
    assert.equal(mixed.error.error.type, 'invalid_request_error')
    assert.match(mixed.error.error.message, /^requests\.2\.params\.model is 'claude-haiku-4', requests\.0's 'claude-sonnet-4'/)
    const notAnthropic = await failure(create(client, requests(1, 'gpt-4o-mini')))
    assert.equal(notAnthropic.status, 400)
    assert.match(notAnthropic.error.error.message, /offers Message Batches: they go to Anthropic channels/)
    for (const ids of [() => 'same', (i: number) => (i === 0 ? 'has space' : 'ok'), (i: number) => (i === 0 ? 'x'.repeat(65) : 'ok')]) {
      const refused = await failure(create(client, requests(2, 'claude-sonnet-4', ids)))
      assert.equal(refused.status, 400)
      assert.match(refused.error.error.message, /custom_id/)
    }
    const empty = await failure(client.messages.batches.create({ requests: [] }))
    assert.equal(empty.status, 400)
    assert.equal(mock.messageBatches.batches.size, before, 'nothing reached the upstream')
  })

  test("a key twice in a request's params (the model): Anthropic's 400 before anything is held or sent; the same key in different requests is fine", async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const before = mock.messageBatches.batches.size
    const post = (body: string) =>
      fetch(`${baseUrl()}/v1/messages/batches`, {
        method: 'POST',
        headers: { 'x-api-key': user.key, 'anthropic-version': '2023-06-01', 'content-type': 'application/json' },
        body,
      })
    // Held and billed as the last model (JSON.parse), sent as these bytes: Anthropic may read the first
    const params = (i: number) => `{"max_tokens":5,"messages":[{"role":"user","content":"hi ${i}"}],"model":"claude-free"`
    // Every request alike: held and billed as the free model, Anthropic may serve the priced one it reads first
    const twice = `{"requests":[{"custom_id":"a","params":{"model":"claude-sonnet-4",${params(0).slice(1)}}},{"custom_id":"b","params":{"model":"claude-sonnet-4",${params(1).slice(1)}}}]}`
    const refused = await post(twice)
    assert.equal(refused.status, 400)
    const body = (await refused.json()) as any
    assert.equal(body.type, 'error')
    assert.equal(body.error.type, 'invalid_request_error')
    assert.equal(body.error.message, "Duplicate key 'model' in 'requests[0].params' of the request body")
    assert.equal(mock.messageBatches.batches.size, before, 'nothing reached the upstream')
    assert.equal((await db.from('batch_objects').where('user_id', user.userId).count('* as n'))[0].n, '0')
    // A key named alike in each request, in the requests' metadata or in a nested object: no duplicate
    const fine = `{"requests":[{"custom_id":"a","params":${params(0)},"metadata":{"user_id":"u","user_id":"v"}}},{"custom_id":"b","params":${params(1)}}}]}`
    const created = await post(fine)
    assert.equal(created.status, 200)
    assert.equal(mock.messageBatches.batches.size, before + 1)
  })

  test('max_tokens of 1e300 (an integer to JSON): a free model\'s batch is recorded, not a 500 leaving it unrecorded upstream; a priced one 402', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const client = anthropic(user.key)
    const huge = (model: string) => requests(2, model).map((r) => ({ ...r, params: { ...r.params, max_tokens: 1e300 } }))
    const before = mock.messageBatches.batches.size
    const batch = await create(client, huge('claude-free'))
    assert.equal(mock.messageBatches.batches.size, before + 1)
    const row = await batchRow(batch.id)
    assert.exists(row, 'the batch made upstream is recorded')
    assert.equal(Number(row.completion_hold), Number.MAX_SAFE_INTEGER)
    const priced = await failure(create(client, huge('claude-sonnet-4')))
    assert.equal(priced.status, 402)
    assert.equal(mock.messageBatches.batches.size, before + 1, 'nothing more went upstream')
  })

  test("an upstream's create answer the row cannot hold as sent: a status past 32 characters is kept cut (the batch recorded, held); an id past 255 or with a NUL is the upstream's fault (502), not the client's (400)", async ({ assert }) => {
    const gw = await gateway()
    const user = await seedUser({ balance: '1' })
    const client = anthropic(user.key)
    const answer = (fields: Record<string, unknown>) =>
      mock.script({ raw: { status: 200, body: JSON.stringify({ type: 'message_batch', created_at: '2026-12-05T00:00:00Z', ...fields }) } })
    answer({ id: 'msgbatch_longstatus', processing_status: 'in_progress_and_then_some_more_words' })
    const batch = await create(client, requests(1))
    const row = await batchRow(batch.id)
    assert.exists(row, 'the batch made upstream is recorded')
    assert.equal(row.status, 'in_progress_and_then_some_more_w')
    assert.isAbove(Number(row.hold), 0)
    const held = gw.batches.holds.heldFor(user.userId)
    for (const id of ['msgbatch_' + 'x'.repeat(300), 'msgbatch_\u0000nul']) {
      answer({ id, processing_status: 'in_progress' })
      const refused = await failure(create(client, requests(1)))
      assert.equal(refused.status, 502, JSON.stringify(refused.error))
      assert.equal(refused.error.type, 'error')
      assert.equal(refused.error.error.type, 'api_error')
    }
    assert.equal(gw.batches.holds.heldFor(user.userId), held, 'a refused create holds nothing more')
  })

  test("an upstream that answers a create with the id of a batch the gateway has already: the upstream's fault (502), nothing more held, the first batch untouched", async ({ assert }) => {
    const gw = await gateway()
    const user = await seedUser({ balance: '1' })
    const client = anthropic(user.key)
    const first = await create(client, requests(1), 5)
    const row = await batchRow(first.id)
    const held = gw.batches.holds.heldFor(user.userId)
    mock.script({ raw: { status: 200, body: JSON.stringify({ id: row.upstream_id, type: 'message_batch', processing_status: 'in_progress' }) } })
    const refused = await failure(create(client, requests(1)))
    assert.equal(refused.status, 502, JSON.stringify(refused.error))
    assert.equal(refused.error.error.type, 'api_error')
    assert.match(refused.error.error.message, /already/)
    assert.equal(gw.batches.holds.heldFor(user.userId), held)
    assert.equal((await db.from('batch_objects').where('upstream_id', row.upstream_id).count('* as n').first()).n, '1')
  })

  test('a batch the balance cannot cover: 402 billing_error, as /v1/messages answers; nothing sent upstream', async ({ assert }) => {
    const gw = await gateway()
    const poor = await seedUser({ balance: '0.0001' })
    const before = mock.messageBatches.batches.size
    const refused = await failure(create(anthropic(poor.key), requests(3)))
    assert.equal(refused.status, 402)
    assert.equal(refused.error.error.type, 'billing_error')
    assert.match(refused.error.error.message, /holds up to \$/)
    assert.equal(mock.messageBatches.batches.size, before)
    assert.equal(gw.batches.holds.heldFor(poor.userId), 0n)
    // What /v1/messages answers the same user when its balance is spent: the same status and type.
    const empty = await seedUser({})
    const message = await failure(anthropic(empty.key).messages.create({ model: 'claude-sonnet-4', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] }))
    const batch = await failure(create(anthropic(empty.key), requests(1)))
    assert.equal(batch.status, message.status)
    assert.equal(batch.error.error.type, message.error.error.type)
  })

  test("a key not allowed the model gets 403; a mapped model's requests go up renamed and are billed as the client's name", async ({ assert }) => {
    const limited = await seedUser({ balance: '1', keyModels: ['claude-haiku-4'] })
    const refused = await failure(create(anthropic(limited.key), requests(1)))
    assert.equal(refused.status, 403)
    assert.equal(refused.error.error.type, 'permission_error')

    const user = await seedUser({ balance: '1' })
    const client = anthropic(user.key)
    const batch = await create(client, requests(2, 'claude-alias'))
    const upstream = [...mock.messageBatches.batches.values()].at(-1)!
    assert.deepEqual(upstream.requests.map((r) => r.params.model), ['claude-sonnet-4-20250514', 'claude-sonnet-4-20250514'])
    assert.equal((await client.messages.batches.retrieve(batch.id)).processing_status, 'ended')
    const [row] = await usageRows(user.userId)
    assert.include(row, { endpoint: 'messages.batch', model: 'claude-alias', served_model: 'claude-sonnet-4-20250514', cost: expectedCost(range(2)) })
  })

  test("a history with the gateway's own web citations (empty encrypted_index) goes up without them; Anthropic's own stay", async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const ours = { type: 'web_search_result_location', url: 'https://example.com/a', title: 'A', encrypted_index: '', cited_text: '' }
    const theirs = { type: 'web_search_result_location', url: 'https://example.com/b', title: 'B', encrypted_index: 'EpMBCioIAhgBIiQ', cited_text: 'b' }
    const batch = requests(2)
    batch[1].params.messages = [
      { role: 'user', content: 'what is new?' },
      { role: 'assistant', content: [{ type: 'text', text: 'Café', citations: [ours] }, { type: 'text', text: ' olé', citations: [ours, theirs] }] },
      { role: 'user', content: 'more?' },
    ] as any
    await create(anthropic(user.key), batch)
    const upstream = [...mock.messageBatches.batches.values()].at(-1)!
    assert.deepEqual(upstream.requests[0].params.messages, batch[0].params.messages)
    assert.deepEqual(upstream.requests[1].params.messages[1].content, [
      { type: 'text', text: 'Café' },
      { type: 'text', text: ' olé', citations: [theirs] },
    ])
  })

  test('list pages newest first by after_id and before_id, as the SDK pages them', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const client = anthropic(user.key)
    const ids: string[] = []
    for (let i = 0; i < 5; i++) ids.push((await create(client, requests(1), 5)).id)
    const newestFirst = [...ids].reverse()
    const first = await client.messages.batches.list({ limit: 2 })
    assert.deepEqual(first.data.map((b) => b.id), newestFirst.slice(0, 2))
    assert.include(first, { has_more: true, first_id: newestFirst[0], last_id: newestFirst[1] })
    const all: string[] = []
    for await (const batch of client.messages.batches.list({ limit: 2 })) all.push(batch.id)
    assert.deepEqual(all, newestFirst)
    const newer = await client.messages.batches.list({ limit: 2, before_id: ids[1] })
    assert.deepEqual(newer.data.map((b) => b.id), [ids[3], ids[2]])
    assert.isTrue(newer.has_more)
    const newest = await client.messages.batches.list({ limit: 2, before_id: ids[3] })
    assert.deepEqual(newest.data.map((b) => b.id), [ids[4]])
    assert.isFalse(newest.has_more)
    const bad = await fetch(`${baseUrl()}/v1/messages/batches?limit=0`, { headers: { 'x-api-key': user.key } })
    assert.equal(bad.status, 400)
    assert.equal(((await bad.json()) as any).error.type, 'invalid_request_error')
  })

  test("results before the batch ends: the upstream's refusal in Anthropic's shape; the SDK's beta paths (?beta=true) answer alike", async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const client = anthropic(user.key)
    const batch = await client.beta.messages.batches.create({ requests: requests(2), mock_polls: 1, betas: ['message-batches-2024-09-24'] } as any)
    assert.match(batch.id, /^msgbatch_gw/)
    // The client's beta flags go up with its requests, as /v1/messages forwards them.
    assert.equal(mock.lastRequest()!.headers['anthropic-beta'], 'message-batches-2024-09-24')
    const early = await fetch(`${baseUrl()}/v1/messages/batches/${batch.id}/results`, { headers: { 'x-api-key': user.key } })
    assert.equal(early.status, 400)
    const refusal = (await early.json()) as any
    assert.equal(refusal.type, 'error')
    assert.match(refusal.error.message, /still in_progress/)
    assert.lengthOf(await usageRows(user.userId), 0)
    assert.equal((await client.beta.messages.batches.retrieve(batch.id)).processing_status, 'ended')
    const lines: string[] = []
    for await (const line of await client.beta.messages.batches.results(batch.id)) lines.push(line.custom_id)
    assert.deepEqual(lines, ['req-0', 'req-1'])
    const [row] = await usageRows(user.userId)
    assert.include(row, { endpoint: 'messages.batch', cost: expectedCost(range(2)) })
  })

  test("the batch's usage row shows on the portal's and the panel's usage pages", async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const client = anthropic(user.key)
    const batch = await create(client, requests(1))
    await client.messages.batches.retrieve(batch.id)
    const [row] = await usageRows(user.userId)
    const portal = new PageClient()
    await portal.login(user.email)
    const page = await portal.get('/dashboard/usage')
    assert.equal(page.status, 200)
    assert.include(page.body, `data-usage-id="${row.id}"`)
    const detail = await portal.get(`/dashboard/usage/${row.id}`)
    assert.equal(detail.status, 200)
    assert.include(htmlText(detail.body), 'claude-sonnet-4 · messages.batch')

    const { user: admin } = await createUser({ email: `msgbatch-admin-${Date.now()}@test.local`, password: 'password123', role: 'admin' })
    const panel = new PanelClient()
    await panel.login(admin.email, 'password123')
    const list = await panel.get(`/admin/usage?user=${user.userId}`)
    assert.include(list.html, `/admin/usage/${row.id}"`)
    const shown = textOf((await panel.get(`/admin/usage/${row.id}`)).html)
    assert.include(shown, 'messages.batch')
    assert.include(shown, row.request_id)
  })
})
