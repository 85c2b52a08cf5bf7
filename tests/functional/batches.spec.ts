import { test } from '@japa/runner'
import app from '@adonisjs/core/services/app'
import db from '@adonisjs/lucid/services/db'
import OpenAI, { toFile } from 'openai'
import { createApiKey } from '#actions/issue_api_key'
import { setPrice } from '#actions/set_price'
import { BatchHolds } from '#gateway/batches/batch_holds'
import { hashApiKey } from '#gateway/auth/api_key_token'
import { toPico } from '#gateway/metering/money'
import { BatchService } from '#gateway/batches/batch_service'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { mockUsageOf } from '#tests/fixtures/mock_upstream/openai_batches'
import { PageClient, htmlText } from '#tests/page_client'
import { PanelClient, textOf } from '#tests/panel_client'
import { createUser } from '#actions/create_user'
import { failure } from '#tests/clients'
import {
  balanceAndLedger,
  baseUrl,
  gateway,
  multipartBody,
  openai,
  refreshCaches,
  resetDatabase,
  seedChannel,
  seedUser,
  startMock,
  usageRows,
} from '#tests/helpers'

/**
 * OpenAI's Files and Batch API through the gateway, with the official SDK:
 * a batch input file uploaded to the channel its model routes to, a batch
 * made of it (held on the balance at the batch price), polled to its end,
 * its output read, and the batch billed exactly once, as one usage row at
 * half the model's price, whoever looks (the client, twice, and the sweep).
 * Files and batches are the key's own: any other key gets OpenAI's 404.
 */

/** Prices of the test model, USD per 1M tokens */
const INPUT = 2n
const OUTPUT = 8n
/** pico-USD per token of a price per 1M tokens */
const PER_TOKEN = 1_000_000n

/** A batch input file: `lines` chat requests for `model` (or the model of each line), each with max_tokens. */
function jsonl(lines: number, model: string | ((i: number) => string) = 'gpt-4o-mini', maxTokens = 50): Buffer {
  const out: string[] = []
  for (let i = 0; i < lines; i++) {
    out.push(
      JSON.stringify({
        custom_id: `req-${i}`,
        method: 'POST',
        url: '/v1/chat/completions',
        body: { model: typeof model === 'string' ? model : model(i), messages: [{ role: 'user', content: `question ${i}` }], max_tokens: maxTokens },
      })
    )
  }
  return Buffer.from(`${out.join('\n')}\n`, 'utf8')
}

/** What the gateway must hold for a file at half price: ceil(bytes / 3) prompt tokens, max_tokens per line. */
function expectedHold(bytes: number, lines: number, maxTokens = 50): bigint {
  const pico = BigInt(Math.ceil(bytes / 3)) * INPUT * PER_TOKEN + BigInt(lines * maxTokens) * OUTPUT * PER_TOKEN
  return (pico * 50n + 50n) / 100n
}

/** What `lines` answered lines of the mock cost at half price, as numeric(24,12) prints it. */
function expectedCost(lines: number): string {
  const usage = mockUsageOf(lines)
  const pico = (BigInt(usage.prompt_tokens) * INPUT * PER_TOKEN + BigInt(usage.completion_tokens) * OUTPUT * PER_TOKEN) * 50n / 100n
  return `0.${pico.toString().padStart(12, '0')}`
}

async function upload(client: OpenAI, bytes: Buffer) {
  return client.files.create({ file: await toFile(bytes, 'requests.jsonl'), purpose: 'batch' })
}

async function batchRow(publicId: string) {
  return db.from('batch_objects').where('public_id', publicId).first()
}

test.group('Files and Batch API', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({
      name: 'openai',
      provider: 'openai',
      baseUrl: mock.url,
      models: ['gpt-4o-mini', 'gpt-4o', 'batch-alias'],
      modelMapping: { 'batch-alias': 'gpt-4o-mini-2024-07-18' },
    })
    await seedChannel({ name: 'claude', provider: 'anthropic', baseUrl: mock.url, models: ['claude-*'] })
    for (const model of ['gpt-4o-mini', 'gpt-4o', 'batch-alias', 'claude-*']) {
      await setPrice({ model, input: String(INPUT), output: String(OUTPUT) })
    }
    await refreshCaches()
    return () => mock.stop()
  })

  test('upload, create, poll, output, list through the openai SDK; billed once at half price however often it is looked at', async ({ assert }) => {
    const gw = await gateway()
    const user = await seedUser({ balance: '1' })
    const client = openai(user.key)
    const input = jsonl(3)

    const file = await upload(client, input)
    assert.match(file.id, /^file-gw[A-Za-z0-9]{24}$/)
    assert.include(file, { object: 'file', bytes: input.length, purpose: 'batch', filename: 'requests.jsonl' })
    const stored = [...mock.batches.files.values()]
    assert.lengthOf(stored, 1)
    assert.isTrue(stored[0].bytes.equals(input), 'the client\'s file reached the upstream byte for byte')
    assert.equal(mock.lastRequest()!.headers.authorization, 'Bearer upstream-secret')

    const batch = await client.batches.create({
      input_file_id: file.id,
      endpoint: '/v1/chat/completions',
      completion_window: '24h',
      metadata: { mock_polls: '1' },
    })
    assert.match(batch.id, /^batch_gw[A-Za-z0-9]{24}$/)
    assert.include(batch, { status: 'validating', input_file_id: file.id, endpoint: '/v1/chat/completions' })
    const upstreamBatch = [...mock.batches.batches.values()][0]
    assert.equal(upstreamBatch.input_file_id, stored[0].id, 'the upstream was given its own file id')
    // Held at half price while it runs, on the balance every priced request checks.
    const hold = expectedHold(input.length, 3)
    assert.equal(gw.batches.holds.heldFor(user.userId), hold)
    assert.equal((await gw.catalog.user(user.userId))!.reservedPico, hold)

    const running = await client.batches.retrieve(batch.id)
    assert.equal(running.status, 'in_progress')
    assert.lengthOf(await usageRows(user.userId), 0, 'nothing billed before the batch ends')

    const done = await client.batches.retrieve(batch.id)
    assert.equal(done.status, 'completed')
    assert.match(done.output_file_id!, /^file-gw/)
    assert.equal(done.input_file_id, file.id)

    const content = await (await client.files.content(done.output_file_id!)).text()
    const lines = content.trim().split('\n').map((line) => JSON.parse(line))
    assert.deepEqual(lines.map((l) => l.custom_id), ['req-0', 'req-1', 'req-2'])
    const output = await client.files.retrieve(done.output_file_id!)
    assert.include(output, { id: done.output_file_id, purpose: 'batch_output', bytes: Buffer.byteLength(content) })

    const batches = await client.batches.list()
    assert.deepEqual(batches.data.map((b) => [b.id, b.status]), [[batch.id, 'completed']])
    const files = await client.files.list()
    assert.sameMembers(files.data.map((f) => f.id), [file.id, done.output_file_id!])

    // Looked at again, twice, and swept twice: still one bill.
    await client.batches.retrieve(batch.id)
    await client.batches.retrieve(batch.id)
    await gw.batches.sweep()
    await gw.batches.sweep()

    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 1)
    const usage = mockUsageOf(3)
    const row = (await batchRow(batch.id))!
    assert.include(rows[0], {
      endpoint: 'batch',
      request_id: row.request_id,
      model: 'gpt-4o-mini',
      served_model: 'gpt-4o-mini',
      status: 200,
      error_code: null,
      prompt_tokens: usage.prompt_tokens,
      completion_tokens: usage.completion_tokens,
      cached_tokens: usage.cached_tokens,
      estimated: false,
      cost: expectedCost(3),
    })
    assert.equal(row.billed_cost, expectedCost(3))
    const money = await balanceAndLedger(user.userId)
    assert.equal(money.balance, (1 - Number(expectedCost(3))).toFixed(12))
    assert.equal(money.ledger, money.balance, 'the ledger is the balance: one charge')
    // The hold is released; the cached balance is the database's (charged once in memory too).
    assert.equal(gw.batches.holds.heldFor(user.userId), 0n)
    const cached = (await gw.catalog.user(user.userId))!
    assert.equal(cached.reservedPico, 0n)
    assert.equal(cached.balancePico, BigInt(money.balance.replace('.', '')))
  })

  test('the sweep bills a batch nobody asks about; a later look bills nothing more', async ({ assert }) => {
    const gw = await gateway()
    const user = await seedUser({ balance: '1' })
    const client = openai(user.key)
    const file = await upload(client, jsonl(4))
    const batch = await client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' })
    assert.isAbove(Number(gw.batches.holds.heldFor(user.userId)), 0)

    await gw.batches.sweep()
    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 1)
    assert.equal(rows[0].cost, expectedCost(4))
    assert.equal(gw.batches.holds.heldFor(user.userId), 0n)
    const seen = await client.batches.retrieve(batch.id)
    assert.equal(seen.status, 'completed')
    await gw.batches.sweep()
    assert.lengthOf(await usageRows(user.userId), 1)
    assert.equal((await balanceAndLedger(user.userId)).balance, (1 - Number(expectedCost(4))).toFixed(12))
  })

  test('an output file that cannot be read yet leaves the batch unbilled and held; the next look bills it', async ({ assert }) => {
    const gw = await gateway()
    const user = await seedUser({ balance: '1' })
    const client = openai(user.key)
    const file = await upload(client, jsonl(2))
    const batch = await client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' })
    // The batch's GET answers; the output file's download fails.
    mock.script({}).script({ status: 500 })
    const seen = await client.batches.retrieve(batch.id)
    assert.equal(seen.status, 'completed')
    assert.lengthOf(await usageRows(user.userId), 0)
    assert.isAbove(Number(gw.batches.holds.heldFor(user.userId)), 0)
    await client.batches.retrieve(batch.id)
    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 1)
    assert.equal(rows[0].cost, expectedCost(2))
    assert.equal(gw.batches.holds.heldFor(user.userId), 0n)
  })

  test('completed without an output file: every request failed (only an error file) is billed 0; answers counted but no output file yet waits for it', async ({ assert }) => {
    const gw = await gateway()
    const user = await seedUser({ balance: '1' })
    const client = openai(user.key)
    // As OpenAI: every line failed, so the batch is `completed` with only an error file, and answered nothing.
    const failed = await client.batches.create({
      input_file_id: (await upload(client, jsonl(3))).id,
      endpoint: '/v1/chat/completions',
      completion_window: '24h',
      metadata: { mock_polls: '0', mock_failed: 'all' },
    })
    const ended = await client.batches.retrieve(failed.id)
    assert.include(ended, { status: 'completed', output_file_id: null })
    assert.deepEqual(ended.request_counts, { total: 3, completed: 0, failed: 3 })
    assert.match(ended.error_file_id!, /^file-gw/)
    assert.include((await client.files.content(ended.error_file_id!).then((r) => r.text())), '"status_code":400')
    let rows = await usageRows(user.userId)
    assert.lengthOf(rows, 1)
    assert.include(rows[0], { endpoint: 'batch', cost: '0.000000000000', error_code: null })
    assert.equal(gw.batches.holds.heldFor(user.userId), 0n)

    // It counts 3 answered but names no output file for two more looks: not billed 0 for good, held until it does.
    const late = await client.batches.create({
      input_file_id: (await upload(client, jsonl(3))).id,
      endpoint: '/v1/chat/completions',
      completion_window: '24h',
      metadata: { mock_polls: '0', mock_output_late: '2' },
    })
    const counted = await client.batches.retrieve(late.id)
    assert.include(counted, { status: 'completed', output_file_id: null })
    assert.equal(counted.request_counts!.completed, 3)
    await gw.batches.sweep()
    assert.lengthOf(await usageRows(user.userId), 1)
    assert.isNull((await batchRow(late.id)).billed_at)
    assert.isAbove(Number(gw.batches.holds.heldFor(user.userId)), 0)
    // The third look finds it named: billed for all three answers, once.
    await gw.batches.sweep()
    rows = await usageRows(user.userId)
    assert.lengthOf(rows, 2)
    assert.include(rows[1], { endpoint: 'batch', cost: expectedCost(3), error_code: null })
    assert.equal(gw.batches.holds.heldFor(user.userId), 0n)
    assert.match((await client.batches.retrieve(late.id)).output_file_id!, /^file-gw/)
    await gw.batches.sweep()
    assert.lengthOf(await usageRows(user.userId), 2)
    const money = await balanceAndLedger(user.userId)
    assert.equal(money.balance, (1 - Number(expectedCost(3))).toFixed(12))
    assert.equal(money.ledger, money.balance)
  })

  test('a bill whose usage row a crash lost (claimed, never metered) is written by the sweep, once', async ({ assert }) => {
    const gw = await gateway()
    const user = await seedUser({ balance: '1' })
    const client = openai(user.key)
    const file = await upload(client, jsonl(3))
    const batch = await client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h', metadata: { mock_polls: '5' } })
    // What a process that died right after its claim left: the batch billed, no usage row.
    const usage = mockUsageOf(3)
    const billedAt = new Date(Date.now() - 11 * 60_000)
    await db.from('batch_objects').where('public_id', batch.id).update({
      status: 'completed',
      billed_at: billedAt,
      billed_cost: expectedCost(3),
      prompt_tokens: usage.prompt_tokens,
      completion_tokens: usage.completion_tokens,
      cached_tokens: usage.cached_tokens,
      reasoning_tokens: 0,
    })
    await gw.batches.sweep()
    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 1)
    assert.include(rows[0], { endpoint: 'batch', cost: expectedCost(3), prompt_tokens: usage.prompt_tokens, error_code: null })
    assert.equal(new Date(rows[0].created_at).getTime(), billedAt.getTime(), 'dated when it was billed')
    await gw.batches.sweep()
    assert.lengthOf(await usageRows(user.userId), 1)
    const money = await balanceAndLedger(user.userId)
    assert.equal(money.balance, (1 - Number(expectedCost(3))).toFixed(12))
    assert.equal(money.ledger, money.balance)
    // The hold of a batch billed elsewhere ends at the sweep's sync; the cached balance is charged once.
    assert.equal(gw.batches.holds.heldFor(user.userId), 0n)
    const cached = (await gw.catalog.user(user.userId))!
    assert.equal(cached.balancePico, BigInt(money.balance.replace('.', '')))
    assert.equal(cached.reservedPico, 0n)
  })

  test('two instances and a client looking at a finished batch at once bill it once', async ({ assert }) => {
    const gw = await gateway()
    const user = await seedUser({ balance: '1' })
    const client = openai(user.key)
    const file = await upload(client, jsonl(3))
    const batch = await client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' })
    // Another gateway instance on the same database: its own bills in flight, its own holds.
    const other = new BatchService(gw.catalog, gw.meter, await app.container.make('logger'))
    try {
      await Promise.all([gw.batches.sweep(), other.sweep(), client.batches.retrieve(batch.id), gw.batches.sweep()])
    } finally {
      gw.catalog.standingHolds = (id) => gw.batches.holds.heldFor(id)
    }
    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 1)
    assert.equal(rows[0].cost, expectedCost(3))
    const money = await balanceAndLedger(user.userId)
    assert.equal(money.balance, (1 - Number(expectedCost(3))).toFixed(12))
    assert.equal(money.ledger, money.balance)
    // Charged once in this instance's cached balance too, and nothing held any more.
    const cached = (await gw.catalog.user(user.userId))!
    assert.equal(cached.balancePico, BigInt(money.balance.replace('.', '')))
    assert.equal(cached.reservedPico, 0n)
  })

  test('a batch whose channel is deleted is closed by the sweep: a row billing nothing, its hold released', async ({ assert }) => {
    const gw = await gateway()
    const channel = await seedChannel({ name: 'doomed', provider: 'custom', baseUrl: mock.url, models: ['doomed-model'] })
    await setPrice({ model: 'doomed-model', input: String(INPUT), output: String(OUTPUT) })
    await refreshCaches()
    const user = await seedUser({ balance: '1' })
    const client = openai(user.key)
    const file = await upload(client, jsonl(2, 'doomed-model'))
    const batch = await client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' })
    assert.isAbove(Number(gw.batches.holds.heldFor(user.userId)), 0)
    await db.from('channels').where('id', channel.id).delete()
    await refreshCaches()
    await gw.batches.sweep()
    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 1)
    assert.include(rows[0], { endpoint: 'batch', error_code: 'batch_channel_deleted', cost: '0.000000000000', channel_id: null })
    assert.equal(gw.batches.holds.heldFor(user.userId), 0n)
    assert.equal((await client.batches.retrieve(batch.id)).id, batch.id)
    await gw.batches.sweep()
    assert.lengthOf(await usageRows(user.userId), 1)
  })

  test('a restarted process finds the holds of unbilled batches in the table', async ({ assert }) => {
    const gw = await gateway()
    const user = await seedUser({ balance: '1' })
    const client = openai(user.key)
    const input = jsonl(2)
    const file = await upload(client, input)
    const batch = await client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' })
    const row = (await batchRow(batch.id))!
    assert.equal(row.hold, `0.${expectedHold(input.length, 2).toString().padStart(12, '0')}`)
    // A new process's holds (what Gateway.start syncs at boot), over the same catalog.
    const restarted = new BatchHolds(gw.catalog)
    try {
      await restarted.sync()
      assert.equal(restarted.heldFor(user.userId), expectedHold(input.length, 2))
    } finally {
      restarted.release(Number(row.id))
      gw.catalog.standingHolds = (id) => gw.batches.holds.heldFor(id)
    }
  })

  test('a batch the balance cannot cover is refused with 402; the holds of batches made count', async ({ assert }) => {
    const gw = await gateway()
    const input = jsonl(2)
    const hold = expectedHold(input.length, 2)
    // Room for one batch's hold, not two.
    const balance = (hold * 3n) / 2n
    const user = await seedUser({ balance: `0.${balance.toString().padStart(12, '0')}` })
    const client = openai(user.key)
    const file = await upload(client, input)
    const first = await client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h', metadata: { mock_polls: '5' } })
    assert.equal(first.status, 'validating')
    const made = mock.batches.batches.size
    const refused = await failure(client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' }))
    assert.equal(refused.status, 402)
    assert.include(refused.error, { type: 'insufficient_quota', code: 'insufficient_balance' })
    assert.match(refused.error.message, /holds up to \$/)
    assert.equal(mock.batches.batches.size, made, 'the upstream was not asked')
    assert.equal(gw.batches.holds.heldFor(user.userId), hold, 'only the first batch holds')

    // A big file on a small balance: refused alone.
    const poor = await seedUser({ balance: '0.0001' })
    const big = await upload(openai(poor.key), jsonl(3, 'gpt-4o-mini', 100_000))
    const alone = await failure(openai(poor.key).batches.create({ input_file_id: big.id, endpoint: '/v1/chat/completions', completion_window: '24h' }))
    assert.equal(alone.status, 402)
    assert.equal(gw.batches.holds.heldFor(poor.userId), 0n)
  })

  test("a key's budget for the model holds the batch, counts its bill, and refuses a batch it cannot cover (budget_exceeded)", async ({ assert }) => {
    const gw = await gateway()
    const input = jsonl(2)
    const hold = expectedHold(input.length, 2)
    // Room for one batch's hold, not two.
    const budget = `0.${((hold * 3n) / 2n).toString().padStart(12, '0')}`
    const user = await seedUser({ balance: '1', key: { modelLimits: { 'gpt-4o-mini': { budget } } } })
    const client = openai(user.key)
    const file = await upload(client, input)
    const first = await client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h', metadata: { mock_polls: '5' } })
    const refused = await failure(client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' }))
    assert.equal(refused.status, 402)
    assert.include(refused.error, { code: 'budget_exceeded' })
    assert.include(refused.error.message, "budget for model 'gpt-4o-mini'")
    // Billed: the hold goes, the bill counts on the model's spend (in the row, and in memory).
    for (let i = 0; i < 6; i++) await client.batches.retrieve(first.id)
    await gw.batches.sweep()
    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 1)
    const spend = await db.from('api_key_model_spend').where('api_key_id', user.keyId).where('model', 'gpt-4o-mini').first()
    assert.equal(spend.spent, rows[0].cost)
    const { catalog } = gw
    const cached = catalog.cachedKey(hashApiKey(user.key))!.modelLimits!.get('gpt-4o-mini')!.budget!
    assert.equal(cached.heldPico, 0n)
    assert.equal(cached.spentPico, toPico(rows[0].cost))
  })

  test("a batch under another spelling of the model (GPT-4o-mini) holds on, is refused by, and bills the key's 'gpt-4o-mini' budget", async ({ assert }) => {
    const gw = await gateway()
    const input = jsonl(2, 'GPT-4o-mini')
    const hold = expectedHold(input.length, 2)
    // Room for one batch's hold, not two.
    const budget = `0.${((hold * 3n) / 2n).toString().padStart(12, '0')}`
    const user = await seedUser({ balance: '1', key: { modelLimits: { 'gpt-4o-mini': { budget } } } })
    const client = openai(user.key)
    const upper = await upload(client, input)
    const first = await client.batches.create({ input_file_id: upper.id, endpoint: '/v1/chat/completions', completion_window: '24h', metadata: { mock_polls: '5' } })
    const cached = gw.catalog.cachedKey(hashApiKey(user.key))!.modelLimits!.get('gpt-4o-mini')!.budget!
    assert.equal(cached.heldPico, hold)
    assert.equal((await batchRow(first.id)).budget_model, 'gpt-4o-mini')
    // After a restart the hold is found again on the same budget (a new BatchHolds' sync reads the budget's name).
    // The stand-in holds every unbilled batch of the database and takes over the catalog's standing holds: all of
    // them given back, and the gateway's own restored, or later files' users (ids restart) inherit the holds.
    const standing = gw.catalog.standingHolds
    const fresh = new BatchHolds(gw.catalog)
    try {
      await fresh.sync()
      assert.equal(cached.heldPico, hold * 2n)
    } finally {
      const unbilled = await db.from('batch_objects').whereNull('billed_at').where('hold', '>', 0).select('id')
      for (const row of unbilled) fresh.release(Number(row.id))
      gw.catalog.standingHolds = standing
    }
    assert.equal(cached.heldPico, hold)
    const lower = await upload(client, jsonl(2))
    const refused = await failure(client.batches.create({ input_file_id: lower.id, endpoint: '/v1/chat/completions', completion_window: '24h' }))
    assert.equal(refused.status, 402)
    assert.include(refused.error, { code: 'budget_exceeded' })
    // Billed: the hold goes, the bill counts on the budget's own name (in the row, and in memory).
    for (let i = 0; i < 6; i++) await client.batches.retrieve(first.id)
    await gw.batches.sweep()
    await gw.meter.drain()
    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 1)
    const spend = await db.from('api_key_model_spend').where('api_key_id', user.keyId).where('model', 'gpt-4o-mini').first()
    assert.equal(spend?.spent, rows[0].cost)
    assert.equal(cached.heldPico, 0n)
    assert.equal(cached.spentPico, toPico(rows[0].cost))
  })

  test("another key's files and batches are not there for it: OpenAI's 404", async ({ assert }) => {
    const owner = await seedUser({ balance: '1' })
    const other = await seedUser({ balance: '1' })
    const file = await upload(openai(owner.key), jsonl(1))
    const batch = await openai(owner.key).batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h', metadata: { mock_polls: '5' } })
    // The owner's second key too: a file is its key's.
    const { key: secondKey } = await createApiKey({ userRef: owner.email })
    await refreshCaches()
    for (const key of [other.key, secondKey]) {
      const client = openai(key)
      for (const call of [
        () => client.files.retrieve(file.id),
        () => client.files.content(file.id),
        () => client.files.delete(file.id),
        () => client.batches.retrieve(batch.id),
        () => client.batches.cancel(batch.id),
        () => client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' }),
      ]) {
        const { status, error } = await failure(call())
        assert.equal(status, 404)
        assert.equal(error.type, 'invalid_request_error')
        assert.match(error.message, /^(No such File object: file-gw|No batch found with id 'batch_gw)/)
      }
      assert.lengthOf((await client.files.list()).data, 0)
      assert.lengthOf((await client.batches.list()).data, 0)
    }
    // Still the owner's.
    assert.equal((await openai(owner.key).files.retrieve(file.id)).id, file.id)
  })

  test('a file whose lines name two models is refused with 400 before any upload', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const before = mock.batches.files.size
    const mixed = await failure(upload(openai(user.key), jsonl(3, (i) => (i === 2 ? 'gpt-4o' : 'gpt-4o-mini'))))
    assert.equal(mixed.status, 400)
    assert.include(mixed.error, { type: 'invalid_request_error', code: 'mixed_models', param: 'file' })
    assert.match(mixed.error.message, /^Line 3 names the model 'gpt-4o', line 1 'gpt-4o-mini'/)
    const broken = await failure(upload(openai(user.key), Buffer.from('{"custom_id": "a", "method": "POST"\n')))
    assert.equal(broken.status, 400)
    assert.equal(broken.error.message, 'Line 1 of the file is not valid JSON')
    const purpose = await failure(openai(user.key).files.create({ file: await toFile(jsonl(1), 'a.jsonl'), purpose: 'fine-tune' }))
    assert.equal(purpose.status, 400)
    assert.equal(purpose.error.code, 'unsupported_purpose')
    const anthropic = await failure(upload(openai(user.key), jsonl(1, 'claude-sonnet-4')))
    assert.equal(anthropic.status, 400)
    assert.equal(anthropic.error.code, 'unsupported_endpoint')
    assert.equal(mock.batches.files.size, before, 'nothing reached the upstream')
  })

  test("a key not allowed the model gets 403; a mapped model's lines go up renamed and are billed as the client's name", async ({ assert }) => {
    const limited = await seedUser({ balance: '1', keyModels: ['gpt-4o'] })
    const refused = await failure(upload(openai(limited.key), jsonl(1)))
    assert.equal(refused.status, 403)
    assert.equal(refused.error.code, 'model_not_allowed')

    const user = await seedUser({ balance: '1' })
    const client = openai(user.key)
    const file = await upload(client, jsonl(2, 'batch-alias'))
    const upstream = [...mock.batches.files.values()].at(-1)!
    const models = upstream.bytes.toString('utf8').trim().split('\n').map((line) => JSON.parse(line).body.model)
    assert.deepEqual(models, ['gpt-4o-mini-2024-07-18', 'gpt-4o-mini-2024-07-18'])
    const batch = await client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' })
    assert.equal((await client.batches.retrieve(batch.id)).status, 'completed')
    const [row] = await usageRows(user.userId)
    assert.include(row, { endpoint: 'batch', model: 'batch-alias', served_model: 'gpt-4o-mini-2024-07-18', cost: expectedCost(2) })
  })

  test('cancel: billed for what was answered, the row says it was cancelled', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const client = openai(user.key)
    const file = await upload(client, jsonl(4))
    const batch = await client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h', metadata: { mock_polls: '5' } })
    const cancelling = await client.batches.cancel(batch.id)
    assert.include(cancelling, { id: batch.id, status: 'cancelling' })
    assert.lengthOf(await usageRows(user.userId), 0)
    const cancelled = await client.batches.retrieve(batch.id)
    assert.equal(cancelled.status, 'cancelled')
    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 1)
    assert.include(rows[0], { endpoint: 'batch', error_code: 'batch_cancelled', cost: expectedCost(2) })
    assert.equal((await gateway()).batches.holds.heldFor(user.userId), 0n)
  })

  test('the paths without /v1 (a LiteLLM base URL) and a bad endpoint or unknown file', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const form = multipartBody([['purpose', 'batch'], ['file', jsonl(1), 'x.jsonl']])
    const uploaded = await fetch(`${baseUrl()}/files`, {
      method: 'POST',
      headers: { 'authorization': `Bearer ${user.key}`, 'content-type': form.contentType },
      body: form.body,
    })
    assert.equal(uploaded.status, 200)
    const file = (await uploaded.json()) as any
    const client = new OpenAI({ apiKey: user.key, baseURL: baseUrl(), maxRetries: 0 })
    assert.equal((await client.files.retrieve(file.id)).id, file.id)
    const wrong = await failure(client.batches.create({ input_file_id: file.id, endpoint: '/v1/embeddings', completion_window: '24h' }))
    assert.equal(wrong.status, 400)
    assert.equal(wrong.error.param, 'endpoint')
    const missing = await failure(client.batches.create({ input_file_id: 'file-nothing', endpoint: '/v1/chat/completions', completion_window: '24h' }))
    assert.equal(missing.status, 404)
    assert.equal(missing.error.message, 'No such File object: file-nothing')
    const deleted = await client.files.delete(file.id)
    assert.include(deleted, { id: file.id, deleted: true })
    assert.equal((await failure(client.files.retrieve(file.id))).status, 404)
  })

  test("the batch's usage row shows on the portal's usage page", async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const client = openai(user.key)
    const file = await upload(client, jsonl(1))
    const batch = await client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' })
    await client.batches.retrieve(batch.id)
    const [row] = await usageRows(user.userId)
    const portal = new PageClient()
    await portal.login(user.email)
    const page = await portal.get('/dashboard/usage')
    assert.equal(page.status, 200)
    assert.include(page.body, `data-usage-id="${row.id}"`)
    assert.include(htmlText(page.body), 'batch')
    const detail = await portal.get(`/dashboard/usage/${row.id}`)
    assert.equal(detail.status, 200)
    assert.include(htmlText(detail.body), 'gpt-4o-mini · batch')

    const { user: admin } = await createUser({ email: `batch-admin-${Date.now()}@test.local`, password: 'password123', role: 'admin' })
    const panel = new PanelClient()
    await panel.login(admin.email, 'password123')
    const list = await panel.get(`/admin/usage?user=${user.userId}`)
    assert.include(list.html, `/admin/usage/${row.id}"`)
    const shown = textOf((await panel.get(`/admin/usage/${row.id}`)).html)
    assert.include(shown, 'batch')
    assert.include(shown, row.request_id)
  })
})
