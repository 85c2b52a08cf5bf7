import { test } from '@japa/runner'
import db from '@adonisjs/lucid/services/db'
import OpenAI, { AzureOpenAI, toFile } from 'openai'
import { setPrice } from '#actions/set_price'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { mockUsageOf } from '#tests/fixtures/mock_upstream/openai_batches'
import { balanceAndLedger, baseUrl, gateway, openai, refreshCaches, resetDatabase, seedChannel, seedUser, startMock, usageRows } from '#tests/helpers'

/**
 * OpenAI's Files and Batch API relayed to Azure OpenAI channels (global-batch
 * deployments), with the openai SDK against the gateway's /v1: the input file
 * goes to the resource's `/openai/files?api-version=` (classic) or
 * `/openai/v1/files`, with its `api-key`, each line naming the deployment and
 * Azure's url (`/chat/completions`); the batch is held, polled, billed once at
 * the batch price, and its output read back through the gateway. The mock
 * serves only under /openai and refuses what Azure refuses (openai_batches.ts
 * azureRefusal).
 */

const INPUT = 2n
const OUTPUT = 8n
const PER_TOKEN = 1_000_000n

function jsonl(lines: number, model: string): Buffer {
  const out: string[] = []
  for (let i = 0; i < lines; i++) {
    out.push(
      JSON.stringify({
        custom_id: `req-${i}`,
        method: 'POST',
        url: '/v1/chat/completions',
        body: { model, messages: [{ role: 'user', content: `question ${i}` }], max_tokens: 50 },
      })
    )
  }
  return Buffer.from(`${out.join('\n')}\n`, 'utf8')
}

/** The hold at half price: ceil(bytes / 3) prompt tokens, max_tokens (50) per line. */
function expectedHold(bytes: number, lines: number): bigint {
  const pico = BigInt(Math.ceil(bytes / 3)) * INPUT * PER_TOKEN + BigInt(lines * 50) * OUTPUT * PER_TOKEN
  return (pico * 50n + 50n) / 100n
}

/** What `lines` answered lines of the mock cost at half price, as numeric(24,12) prints it. */
function expectedCost(lines: number): string {
  const usage = mockUsageOf(lines)
  const pico = ((BigInt(usage.prompt_tokens) * INPUT * PER_TOKEN + BigInt(usage.completion_tokens) * OUTPUT * PER_TOKEN) * 50n) / 100n
  return `0.${pico.toString().padStart(12, '0')}`
}

async function upload(client: OpenAI, bytes: Buffer) {
  return client.files.create({ file: await toFile(bytes, 'requests.jsonl'), purpose: 'batch' })
}

/** The lines of the one file the mock holds whose name is `requests.jsonl` (the uploaded input), newest first. */
function storedInputs(mock: MockUpstream) {
  return [...mock.batches.files.values()]
    .filter((f) => f.filename === 'requests.jsonl')
    .map((f) => f.bytes.toString('utf8').trim().split('\n').map((line) => JSON.parse(line)))
}

test.group('Batch API on Azure OpenAI channels', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock({ basePath: '/openai' })
    await seedChannel({
      name: 'az-classic',
      provider: 'azure',
      baseUrl: `${mock.origin}/openai`,
      apiKey: 'az-classic-key',
      models: ['gpt-4o', 'gpt-4o-standard'],
      modelMapping: { 'gpt-4o': 'gpt-4o-batch', 'gpt-4o-standard': 'standard-gpt-4o' },
    })
    await seedChannel({
      name: 'az-v1',
      provider: 'azure',
      baseUrl: `${mock.origin}/openai/v1`,
      apiKey: 'az-v1-key',
      models: ['gpt-4.1-mini'],
      modelMapping: { 'gpt-4.1-mini': 'mini-global-batch' },
    })
    for (const model of ['gpt-4o', 'gpt-4o-standard', 'gpt-4.1-mini']) await setPrice({ model, input: String(INPUT), output: String(OUTPUT) })
    await refreshCaches()
    return () => mock.stop()
  })

  test('classic: file and batch under /openai with api-version and api-key, lines for the deployment; held, polled, billed once at half price', async ({
    assert,
  }) => {
    const gw = await gateway()
    const user = await seedUser({ balance: '1' })
    const client = openai(user.key)
    const input = jsonl(3, 'gpt-4o')

    const file = await upload(client, input)
    assert.match(file.id, /^file-gw/)
    assert.include(file, { object: 'file', bytes: input.length, purpose: 'batch' })
    const sent = mock.lastRequest()!
    assert.equal(sent.path, '/openai/files?api-version=2024-10-21')
    assert.equal(sent.headers['api-key'], 'az-classic-key')
    assert.notProperty(sent.headers, 'authorization')
    // Azure's lines: the deployment as the model, its url without /v1; the rest as the client wrote it.
    const lines = storedInputs(mock).at(-1)!
    assert.deepEqual(
      lines.map((l) => [l.custom_id, l.method, l.url, l.body.model, l.body.max_tokens]),
      [0, 1, 2].map((i) => [`req-${i}`, 'POST', '/chat/completions', 'gpt-4o-batch', 50])
    )

    const batch = await client.batches.create({
      input_file_id: file.id,
      endpoint: '/v1/chat/completions',
      completion_window: '24h',
      metadata: { mock_polls: '1' },
    })
    assert.match(batch.id, /^batch_gw/)
    assert.include(batch, { status: 'validating', input_file_id: file.id, endpoint: '/v1/chat/completions' })
    assert.equal(mock.lastRequest()!.path, '/openai/batches?api-version=2024-10-21')
    const upstreamBatch = [...mock.batches.batches.values()].at(-1)!
    assert.equal(upstreamBatch.endpoint, '/chat/completions', "Azure's endpoint form")
    assert.equal(gw.batches.holds.heldFor(user.userId), expectedHold(input.length, 3))

    const running = await client.batches.retrieve(batch.id)
    assert.equal(running.status, 'in_progress')
    assert.equal(mock.lastRequest()!.path, `/openai/batches/${upstreamBatch.id}?api-version=2024-10-21`)
    assert.lengthOf(await usageRows(user.userId), 0)

    const done = await client.batches.retrieve(batch.id)
    assert.equal(done.status, 'completed')
    assert.match(done.output_file_id!, /^file-gw/)
    const content = await (await client.files.content(done.output_file_id!)).text()
    assert.match(mock.lastRequest()!.path, /^\/openai\/files\/file-mockout[0-9a-z]+\/content\?api-version=2024-10-21$/)
    assert.deepEqual(
      content.trim().split('\n').map((line) => JSON.parse(line).custom_id),
      ['req-0', 'req-1', 'req-2']
    )

    await client.batches.retrieve(batch.id)
    await gw.batches.sweep()
    await gw.batches.sweep()
    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 1)
    const usage = mockUsageOf(3)
    assert.include(rows[0], {
      endpoint: 'batch',
      provider: 'azure',
      model: 'gpt-4o',
      served_model: 'gpt-4o-batch',
      error_code: null,
      prompt_tokens: usage.prompt_tokens,
      completion_tokens: usage.completion_tokens,
      cost: expectedCost(3),
    })
    const money = await balanceAndLedger(user.userId)
    assert.equal(money.balance, (1 - Number(expectedCost(3))).toFixed(12))
    assert.equal(money.ledger, money.balance, 'one charge')
    assert.equal(gw.batches.holds.heldFor(user.userId), 0n)
  })

  test('v1 API: /openai/v1/files and /openai/v1/batches without api-version; a cancelled batch billed for what it answered', async ({ assert }) => {
    const gw = await gateway()
    const user = await seedUser({ balance: '1' })
    const client = openai(user.key)
    const file = await upload(client, jsonl(4, 'gpt-4.1-mini'))
    assert.equal(mock.lastRequest()!.path, '/openai/v1/files')
    assert.equal(mock.lastRequest()!.headers['api-key'], 'az-v1-key')
    assert.deepEqual(
      storedInputs(mock).at(-1)!.map((l) => [l.url, l.body.model]),
      Array(4).fill(['/chat/completions', 'mini-global-batch'])
    )

    const batch = await client.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h', metadata: { mock_polls: '5' } })
    assert.equal(mock.lastRequest()!.path, '/openai/v1/batches')
    const upstreamId = [...mock.batches.batches.values()].at(-1)!.id
    const cancelling = await client.batches.cancel(batch.id)
    assert.equal(cancelling.status, 'cancelling')
    assert.equal(mock.lastRequest()!.path, `/openai/v1/batches/${upstreamId}/cancel`)
    const cancelled = await client.batches.retrieve(batch.id)
    assert.equal(cancelled.status, 'cancelled')
    // Looked at, then its output file read for the bill: both on the v1 paths.
    assert.deepEqual(
      mock.requests.slice(-2).map((r) => r.path.replace(/file-mockout\w+/, 'OUT')),
      [`/openai/v1/batches/${upstreamId}`, '/openai/v1/files/OUT/content']
    )
    await gw.batches.sweep()

    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 1)
    assert.include(rows[0], { endpoint: 'batch', provider: 'azure', served_model: 'mini-global-batch', error_code: 'batch_cancelled', cost: expectedCost(2) })
    assert.equal(gw.batches.holds.heldFor(user.userId), 0n)
  })

  test('clients set up for Azure: AzureOpenAI (/openai/files, /openai/batches, ?api-version=) and the openai SDK at /openai/v1', async ({
    assert,
  }) => {
    const gw = await gateway()
    const user = await seedUser({ balance: '1' })
    const azure = new AzureOpenAI({ endpoint: baseUrl(), apiKey: user.key, apiVersion: '2024-10-21', maxRetries: 0 })
    const v1 = new OpenAI({ baseURL: `${baseUrl()}/openai/v1`, apiKey: user.key, maxRetries: 0 })

    const file = await azure.files.create({ file: await toFile(jsonl(2, 'gpt-4o'), 'requests.jsonl'), purpose: 'batch' })
    assert.match(file.id, /^file-gw/)
    const batch = await azure.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h', metadata: { mock_polls: '0' } })
    assert.match(batch.id, /^batch_gw/)
    // The same objects through the v1 path, and the key's only: listed, read, done.
    assert.include((await v1.batches.list()).data.map((b) => b.id), batch.id)
    const done = await v1.batches.retrieve(batch.id)
    assert.equal(done.status, 'completed')
    const content = await (await azure.files.content(done.output_file_id!)).text()
    assert.lengthOf(content.trim().split('\n'), 2)
    await azure.batches.retrieve(batch.id)
    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 1)
    assert.include(rows[0], { endpoint: 'batch', provider: 'azure', served_model: 'gpt-4o-batch', cost: expectedCost(2) })
    assert.equal(gw.batches.holds.heldFor(user.userId), 0n)

    // Another key gets OpenAI's 404 at Azure's path too.
    const other = await seedUser({ balance: '1' })
    const stranger = new AzureOpenAI({ endpoint: baseUrl(), apiKey: other.key, apiVersion: '2024-10-21', maxRetries: 0 })
    const refused = await stranger.batches.retrieve(batch.id).catch((error) => error)
    assert.equal(refused.status, 404)
    assert.equal(refused.error.code, 'batch_not_found')
  })

  test("Azure's refusal (not a global-batch deployment) answered in OpenAI's error format; nothing held, recorded or billed", async ({ assert }) => {
    const gw = await gateway()
    const user = await seedUser({ balance: '1' })
    const client = openai(user.key)
    const file = await upload(client, jsonl(2, 'gpt-4o-standard'))
    const before = await db.from('batch_objects').where('kind', 'batch').count('* as n').first()

    const response = await fetch(`${client.baseURL}/batches`, {
      method: 'POST',
      headers: { 'authorization': `Bearer ${user.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' }),
    })
    assert.equal(response.status, 400)
    const body = (await response.json()) as any
    assert.deepEqual(Object.keys(body), ['error'])
    assert.includeMembers(Object.keys(body.error), ['message', 'type', 'code'])
    assert.include(body.error.message, 'not a global batch deployment')
    assert.equal(body.error.type, 'invalid_request_error')

    const after = await db.from('batch_objects').where('kind', 'batch').count('* as n').first()
    assert.equal(Number(after.n), Number(before.n), 'no batch recorded')
    assert.equal(gw.batches.holds.heldFor(user.userId), 0n)
    assert.lengthOf(await usageRows(user.userId), 0)
  })
})
