import { test } from '@japa/runner'
import db from '@adonisjs/lucid/services/db'
import { setPrice } from '#actions/set_price'
import { createUser } from '#actions/create_user'
import { countTokens } from '#gateway/metering/tokenizer'
import { PanelClient, textOf } from '#tests/panel_client'
import { PageClient, htmlText } from '#tests/page_client'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { mockEmbedTokenCount } from '#tests/fixtures/mock_upstream/gemini_batches'
import { genai } from '#tests/clients'
import { balanceAndLedger, baseUrl, gateway, refreshCaches, resetDatabase, seedChannel, seedUser, startMock, usageRows } from '#tests/helpers'

/**
 * Gemini's embedding batches (`models/{m}:asyncBatchEmbedContent`,
 * @google/genai `batches.createEmbeddings`) through the gateway: held at
 * the batch price on their inputs' tokens as the gateway counts them, on
 * the google channel their model routes to; looked at, listed, cancelled,
 * deleted as Gemini's other batches; billed once, one usage row (endpoint
 * `gemini.asyncBatchEmbedContent`) at half the input price, each answered
 * request for the tokenCount Google reports or, when it reports none, the
 * gateway's count of its text (the row marked estimated); errors free. File
 * batches billed from their results file by key. Another key's batch:
 * Google's 404. A batch beyond the balance: 402, never sent.
 */

/** USD per 1M input tokens */
const INPUT = 1n
const PER_TOKEN = 1_000_000n
const MODEL = 'gemini-embedding-001'

/** `tokens` input tokens at half price, in pico-USD */
function halfPrice(tokens: number): bigint {
  return (BigInt(tokens) * INPUT * PER_TOKEN * 50n + 50n) / 100n
}

/** pico-USD as numeric(24,12) prints it */
function usd(pico: bigint): string {
  return `${pico / 1_000_000_000_000n}.${(pico % 1_000_000_000_000n).toString().padStart(12, '0')}`
}

/** The gateway's count of each text (the tokenizer `:batchEmbedContents` counts with when Google reports none) */
async function counts(texts: string[]): Promise<number[]> {
  return Promise.all(texts.map((text) => countTokens(text)))
}

const sum = (values: number[]) => values.reduce((a, b) => a + b, 0)

/** Texts of clearly different lengths: a bill that took one request's count for another's would be off */
const TEXTS = ['short text', 'a somewhat longer text to embed, with a few more words in it than the first', 'x', 'the fourth and last text of the batch, of middling length']

function inline(texts: string[], keys = (i: number) => `req-${i}`) {
  return texts.map((text, i) => ({ request: { content: { parts: [{ text }] }, task_type: 'RETRIEVAL_DOCUMENT' }, metadata: { key: keys(i) } }))
}

function rest(key: string, method: string, path: string, body?: unknown) {
  return fetch(`${baseUrl()}${path}`, {
    method,
    headers: { 'x-goog-api-key': key, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  })
}

async function failure(call: Promise<unknown>): Promise<{ status: number; message: string }> {
  try {
    await call
  } catch (error: any) {
    return { status: error.status, message: String(error.message) }
  }
  throw new Error('the call succeeded')
}

test.group('Gemini embedding batches (asyncBatchEmbedContent)', (group) => {
  let upstream: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    upstream = await startMock()
    await seedChannel({
      name: 'google-embed',
      provider: 'google',
      baseUrl: `${upstream.origin}/v1beta`,
      models: [MODEL, 'embed-alias', 'gemini-2.5-flash'],
      modelMapping: { 'embed-alias': 'text-embedding-004' },
    })
    for (const model of [MODEL, 'embed-alias']) await setPrice({ model, input: String(INPUT), output: '0' })
    await setPrice({ model: 'gemini-2.5-flash', input: '1', output: '4' })
    await refreshCaches()
    return () => upstream.stop()
  })

  test('@google/genai createEmbeddings: held on the counted tokens, get until done, list, delete; billed once, estimated, at half price', async ({ assert }) => {
    const gw = await gateway()
    const user = await seedUser({ balance: '1' })
    const ai = genai(user.key)
    const job = await ai.batches.createEmbeddings({
      model: MODEL,
      src: { inlinedRequests: { contents: TEXTS.map((text) => ({ parts: [{ text }] })), config: { taskType: 'RETRIEVAL_DOCUMENT' } } },
      config: { displayName: 'sdk embeddings' },
    })
    assert.match(job.name!, /^batches\/gw[A-Za-z0-9]{24}$/)
    assert.equal(job.state, 'JOB_STATE_PENDING')
    const mock = [...upstream.geminiBatches.batches.values()].find((b) => b.displayName === 'sdk embeddings')!
    assert.isTrue(mock.embeds)
    assert.lengthOf(mock.requests, TEXTS.length)
    assert.equal(mock.requests[1].request.taskType, 'RETRIEVAL_DOCUMENT')
    const sent = upstream.requests.findLast((r) => r.path.endsWith(':asyncBatchEmbedContent'))!
    assert.equal(sent.path, `/v1beta/models/${MODEL}:asyncBatchEmbedContent`)
    assert.equal(sent.headers['x-goog-api-key'], 'upstream-secret')

    // Held on the texts' tokens (the gateway's count) at the input price, halved: no output allowance for an embedding.
    const expected = await counts(TEXTS)
    assert.isAbove(expected[1], expected[0])
    const hold = halfPrice(sum(expected))
    assert.equal(gw.batches.holds.heldFor(user.userId), hold)
    assert.equal((await gw.catalog.user(user.userId))!.reservedPico, hold)
    const row = await db.from('batch_objects').where('public_id', job.name!).first()
    assert.include(row, { endpoint: 'asyncBatchEmbedContent', lines: TEXTS.length, model: MODEL })
    assert.lengthOf(await usageRows(user.userId), 0)

    const done = await ai.batches.get({ name: job.name! })
    assert.equal(done.state, 'JOB_STATE_SUCCEEDED')
    // The SDK reads an embedding batch's inline answers as its own kind
    const answers = done.dest!.inlinedEmbedContentResponses!
    assert.lengthOf(answers, TEXTS.length)
    assert.deepEqual(answers[1].response!.embedding!.values, [TEXTS[1].length, 1, 0.5])
    assert.equal(gw.batches.holds.heldFor(user.userId), 0n)

    await ai.batches.get({ name: job.name! })
    await gw.batches.sweep()
    await gw.batches.sweep()
    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 1)
    assert.include(rows[0], { endpoint: 'gemini.asyncBatchEmbedContent', request_id: row.request_id, model: MODEL, error_code: null, estimated: true })
    assert.equal(Number(rows[0].prompt_tokens), sum(expected))
    assert.equal(Number(rows[0].completion_tokens), 0)
    assert.equal(rows[0].cost, usd(halfPrice(sum(expected))))
    const money = await balanceAndLedger(user.userId)
    assert.equal(money.balance, money.ledger)
    assert.equal(money.balance, usd(1_000_000_000_000n - halfPrice(sum(expected))))
    const stored = await db.from('batch_objects').where('public_id', job.name!).first()
    assert.deepEqual(stored.object.response.inlinedResponses.inlinedResponses, [], 'the row keeps no embeddings')

    const listed: string[] = []
    for await (const b of await ai.batches.list()) listed.push(b.name!)
    assert.deepEqual(listed, [job.name])

    const stranger = genai((await seedUser({ balance: '1' })).key)
    for (const call of [() => stranger.batches.get({ name: job.name! }), () => stranger.batches.cancel({ name: job.name! }), () => stranger.batches.delete({ name: job.name! })]) {
      const refused = await failure(call())
      assert.equal(refused.status, 404)
      assert.include(refused.message, 'NOT_FOUND')
    }
    const theirs: string[] = []
    for await (const b of await stranger.batches.list()) theirs.push(b.name!)
    assert.deepEqual(theirs, [])

    await ai.batches.delete({ name: job.name! })
    assert.isFalse(upstream.geminiBatches.batches.has(mock.name))
    assert.equal((await failure(ai.batches.get({ name: job.name! }))).status, 404)
    assert.lengthOf(await usageRows(user.userId), 1)
  })

  test('REST: reported tokenCounts are billed as reported (not estimated), a failed request free, a mapped model, the other output field name', async ({ assert }) => {
    const gw = await gateway()
    const user = await seedUser({ balance: '1' })
    const body = {
      batch: { display_name: 'reported', input_config: { requests: { requests: inline(TEXTS, (i) => (i === 2 ? 'fail-2' : `req-${i}`)) } } },
      mock_token_count: true,
      mock_embed_field: 'inlinedEmbedContentResponses',
    }
    const created = await rest(user.key, 'POST', '/v1beta/models/embed-alias:asyncBatchEmbedContent', body)
    assert.equal(created.status, 200)
    const op = (await created.json()) as any
    assert.match(op.name, /^batches\/gw/)
    assert.equal(op.metadata.model, 'models/embed-alias')
    assert.equal(upstream.requests.findLast((r) => r.path.endsWith(':asyncBatchEmbedContent'))!.path, '/v1beta/models/text-embedding-004:asyncBatchEmbedContent')
    assert.equal(gw.batches.holds.heldFor(user.userId), halfPrice(sum(await counts(TEXTS))))

    const ended = (await (await rest(user.key, 'GET', `/v1beta/${op.name}`)).json()) as any
    assert.equal(ended.metadata.state, 'BATCH_STATE_SUCCEEDED')
    assert.lengthOf(ended.response.inlinedEmbedContentResponses.inlinedResponses, TEXTS.length)
    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 1)
    const reported = [0, 1, 3].map(mockEmbedTokenCount)
    assert.include(rows[0], { endpoint: 'gemini.asyncBatchEmbedContent', model: 'embed-alias', served_model: 'text-embedding-004', estimated: false, error_code: null })
    assert.equal(Number(rows[0].prompt_tokens), sum(reported))
    assert.equal(rows[0].cost, usd(halfPrice(sum(reported))))
    assert.equal(gw.batches.holds.heldFor(user.userId), 0n)
    const money = await balanceAndLedger(user.userId)
    assert.equal(money.balance, money.ledger)
  })

  test('a bill whose usage row a crash lost is written again by the sweep still marked estimated (the claim keeps the mark)', async ({ assert }) => {
    const gw = await gateway()
    const user = await seedUser({ balance: '1' })
    const create = async (extra: Record<string, unknown>) =>
      (await (await rest(user.key, 'POST', `/v1beta/models/${MODEL}:asyncBatchEmbedContent`, { batch: { input_config: { requests: { requests: inline(TEXTS) } } }, ...extra })).json()) as any
    // Billed as usual: the gateway's count (no tokenCount) marked estimated, Google's not; the claim keeps which.
    const counted = await create({})
    const reported = await create({ mock_token_count: true })
    for (const op of [counted, reported]) await rest(user.key, 'GET', `/v1beta/${op.name}`)
    const billed = await db.from('batch_objects').where('public_id', counted.name).first()
    assert.isTrue(billed.estimated)
    assert.isFalse((await db.from('batch_objects').where('public_id', reported.name).first()).estimated)
    assert.lengthOf(await usageRows(user.userId), 2)

    // What a process that died right after its claim left: a third batch billed with the first's figures, no usage row.
    const lost = await create({ mock_polls: 5 })
    const billedAt = new Date(Date.now() - 11 * 60_000)
    await db.from('batch_objects').where('public_id', lost.name).update({
      status: billed.status,
      billed_at: billedAt,
      billed_cost: billed.billed_cost,
      prompt_tokens: billed.prompt_tokens,
      completion_tokens: 0,
      cached_tokens: 0,
      reasoning_tokens: 0,
      estimated: true,
    })
    await gw.batches.sweep()
    await gw.batches.sweep()
    const request = (await db.from('batch_objects').where('public_id', lost.name).first()).request_id
    const rows = (await usageRows(user.userId)).filter((r: any) => r.request_id === request)
    assert.lengthOf(rows, 1)
    assert.include(rows[0], { endpoint: 'gemini.asyncBatchEmbedContent', estimated: true, cost: billed.billed_cost, error_code: null })
    assert.equal(Number(rows[0].prompt_tokens), sum(await counts(TEXTS)))
    assert.equal(new Date(rows[0].created_at).getTime(), billedAt.getTime(), 'dated when it was billed')
    assert.equal(gw.batches.holds.heldFor(user.userId), 0n)
    const money = await balanceAndLedger(user.userId)
    assert.equal(money.balance, money.ledger)
  })

  test('cancelled: billed for what finished (the first half), error code batch_cancelled; cancelled before anything finished: billed nothing', async ({ assert }) => {
    const gw = await gateway()
    const user = await seedUser({ balance: '1' })
    const op = (await (
      await rest(user.key, 'POST', `/v1beta/models/${MODEL}:asyncBatchEmbedContent`, { batch: { input_config: { requests: { requests: inline(TEXTS) } } }, mock_polls: 5 })
    ).json()) as any
    const running = (await (await rest(user.key, 'GET', `/v1beta/${op.name}`)).json()) as any
    assert.equal(running.metadata.state, 'BATCH_STATE_RUNNING')
    const cancel = await rest(user.key, 'POST', `/v1beta/${op.name}:cancel`, {})
    assert.equal(cancel.status, 200)
    assert.deepEqual(await cancel.json(), {})
    const stored = await db.from('batch_objects').where('public_id', op.name).first()
    assert.equal(stored.status, 'BATCH_STATE_CANCELLED')
    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 1)
    const finished = (await counts(TEXTS)).slice(0, 2)
    assert.include(rows[0], { error_code: 'batch_cancelled', estimated: true })
    assert.equal(Number(rows[0].prompt_tokens), sum(finished))
    assert.equal(rows[0].cost, usd(halfPrice(sum(finished))))
    assert.equal(gw.batches.holds.heldFor(user.userId), 0n)

    // A single request, cancelled before it ran: nothing answered, nothing billed (a row of 0 says how it ended).
    const lone = (await (
      await rest(user.key, 'POST', `/v1beta/models/${MODEL}:asyncBatchEmbedContent`, { batch: { input_config: { requests: { requests: inline(['only one']) } } }, mock_polls: 5 })
    ).json()) as any
    assert.isAbove(Number(gw.batches.holds.heldFor(user.userId)), 0)
    assert.equal((await rest(user.key, 'POST', `/v1beta/${lone.name}:cancel`, {})).status, 200)
    const after = await usageRows(user.userId)
    assert.lengthOf(after, 2)
    assert.include(after[1], { error_code: 'batch_cancelled' })
    assert.equal(Number(after[1].prompt_tokens), 0)
    assert.equal(after[1].cost, usd(0n))
    assert.equal(gw.batches.holds.heldFor(user.userId), 0n)
    const money = await balanceAndLedger(user.userId)
    assert.equal(money.balance, money.ledger)
    assert.equal(money.balance, usd(1_000_000_000_000n - halfPrice(sum(finished))))
  })

  test('a file batch: held from its lines read back, billed from its results file by key (in any order), a failed line free', async ({ assert }) => {
    const gw = await gateway()
    const user = await seedUser({ balance: '1' })
    const ai = genai(user.key)
    // The longest text fails: a bill that read the results by place rather than by key would bill it.
    const texts = ['tiny', 'a medium sized text with several words', 'by far the longest of the three texts, many more words than any other line of the file has']
    const keys = ['line-0', 'line-1', 'fail-2']
    const lines = texts.map((text, i) => JSON.stringify({ key: keys[i], request: { content: { parts: [{ text }] } } }))
    const file = await ai.files.upload({ file: new Blob([Buffer.from(`${lines.join('\n')}\n`)], { type: 'application/jsonl' }), config: { mimeType: 'application/jsonl' } })
    const expected = await counts(texts)

    // The SDK's file source: held on all three lines' tokens.
    const sdkJob = await ai.batches.createEmbeddings({ model: MODEL, src: { fileName: file.name! }, config: { displayName: 'sdk file' } })
    assert.isTrue(upstream.requests.some((r) => r.path === `/download/v1beta/${file.name}:download?alt=media`))
    assert.equal(gw.batches.holds.heldFor(user.userId), halfPrice(sum(expected)))
    assert.equal([...upstream.geminiBatches.batches.values()].find((b) => b.displayName === 'sdk file')!.fromFile, file.name)
    const sdkDone = await ai.batches.get({ name: sdkJob.name! })
    assert.equal(sdkDone.state, 'JOB_STATE_SUCCEEDED')
    const resultsFile = sdkDone.dest!.fileName!
    assert.match(resultsFile, /^files\/batch-/)
    let rows = await usageRows(user.userId)
    assert.lengthOf(rows, 1)
    assert.equal(Number(rows[0].prompt_tokens), expected[0] + expected[1])

    // The results last first: each line billed by its key's count.
    const op = (await (
      await rest(user.key, 'POST', `/v1beta/models/${MODEL}:asyncBatchEmbedContent`, { batch: { input_config: { file_name: file.name } }, mock_reverse: true })
    ).json()) as any
    const ended = (await (await rest(user.key, 'GET', `/v1beta/${op.name}`)).json()) as any
    const results = await rest(user.key, 'GET', `/download/v1beta/${ended.response.responsesFile}:download?alt=media`)
    assert.deepEqual((await results.text()).trim().split('\n').map((l) => JSON.parse(l).key), ['fail-2', 'line-1', 'line-0'])
    rows = await usageRows(user.userId)
    assert.lengthOf(rows, 2)
    assert.include(rows[1], { endpoint: 'gemini.asyncBatchEmbedContent', estimated: true })
    assert.equal(Number(rows[1].prompt_tokens), expected[0] + expected[1])
    assert.equal(rows[1].cost, usd(halfPrice(expected[0] + expected[1])))
    assert.equal(gw.batches.holds.heldFor(user.userId), 0n)

    // Only the owner reads the results
    const other = await seedUser({ balance: '1' })
    assert.equal((await rest(other.key, 'GET', `/download/v1beta/${resultsFile}:download?alt=media`)).status, 404)
    assert.equal((await failure(genai(other.key).batches.createEmbeddings({ model: MODEL, src: { fileName: file.name! } }))).status, 404)
  })

  test("Google's counts absent or absurd (negative, not a number, 1e300, a billion, Infinity): the gateway's count billed for each, never a negative or astronomical bill; sane ones as reported", async ({ assert }) => {
    const gw = await gateway()
    const user = await seedUser({ balance: '1' })
    const texts = ['one', 'two words', 'three words here', 'four words right here', 'five is the count now', 'six words for the last one', 'seven']
    // Per request: -5, 'abc', 1e300, 999,999,999 (under the per-count bound, over what the text can hold), 'Infinity', '12' (believed), absent
    const given = [-5, 'abc', 1e300, 999_999_999, 'Infinity', '12']
    const op = (await (
      await rest(user.key, 'POST', `/v1beta/models/${MODEL}:asyncBatchEmbedContent`, { batch: { input_config: { requests: { requests: inline(texts) } } }, mock_token_counts: given })
    ).json()) as any
    const ended = (await (await rest(user.key, 'GET', `/v1beta/${op.name}`)).json()) as any
    assert.equal(ended.metadata.state, 'BATCH_STATE_SUCCEEDED')
    const ours = await counts(texts)
    const billed = ours[0] + ours[1] + ours[2] + ours[3] + ours[4] + 12 + ours[6]
    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 1)
    assert.include(rows[0], { endpoint: 'gemini.asyncBatchEmbedContent', estimated: true })
    assert.equal(Number(rows[0].prompt_tokens), billed)
    assert.equal(rows[0].cost, usd(halfPrice(billed)))
    assert.equal(gw.batches.holds.heldFor(user.userId), 0n)
    const money = await balanceAndLedger(user.userId)
    assert.equal(money.balance, money.ledger)
    assert.equal(money.balance, usd(1_000_000_000_000n - halfPrice(billed)))
  })

  test('a file batch whose keys repeat (and one line without a key): each answered line billed once, by its place, its own count', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const ai = genai(user.key)
    const texts = ['tiny', 'a medium sized text with several words', 'by far the longest of the texts, many more words than any other line of the file has', 'last']
    const keys = ['same', 'same', undefined, 'same']
    const lines = texts.map((text, i) => JSON.stringify({ ...(keys[i] === undefined ? {} : { key: keys[i] }), request: { content: { parts: [{ text }] } } }))
    const file = await ai.files.upload({ file: new Blob([Buffer.from(`${lines.join('\n')}\n`)], { type: 'application/jsonl' }), config: { mimeType: 'application/jsonl' } })
    const op = (await (await rest(user.key, 'POST', `/v1beta/models/${MODEL}:asyncBatchEmbedContent`, { batch: { input_config: { file_name: file.name } } })).json()) as any
    const ended = (await (await rest(user.key, 'GET', `/v1beta/${op.name}`)).json()) as any
    assert.equal(ended.metadata.state, 'BATCH_STATE_SUCCEEDED')
    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 1)
    const expected = sum(await counts(texts))
    assert.equal(Number(rows[0].prompt_tokens), expected)
    assert.equal(rows[0].cost, usd(halfPrice(expected)))
  })

  test('cancel, delete, looks and the sweep at once on a finished batch: billed once, the hold released once', async ({ assert }) => {
    const gw = await gateway()
    const user = await seedUser({ balance: '1' })
    const op = (await (
      await rest(user.key, 'POST', `/v1beta/models/${MODEL}:asyncBatchEmbedContent`, { batch: { input_config: { requests: { requests: inline(TEXTS) } } }, mock_polls: 1 })
    ).json()) as any
    assert.isAbove(Number(gw.batches.holds.heldFor(user.userId)), 0)
    // The first look runs it; then everything at once (thunks: each started inside the map)
    await rest(user.key, 'GET', `/v1beta/${op.name}`)
    const calls = [
      () => rest(user.key, 'GET', `/v1beta/${op.name}`).then((r) => r.status),
      () => rest(user.key, 'POST', `/v1beta/${op.name}:cancel`, {}).then((r) => r.status),
      () => gw.batches.sweep().then(() => 0),
      () => rest(user.key, 'GET', `/v1beta/${op.name}`).then((r) => r.status),
      () => rest(user.key, 'DELETE', `/v1beta/${op.name}`).then((r) => r.status),
      () => gw.batches.sweep().then(() => 0),
    ]
    const settled = await Promise.allSettled(calls.map((call) => call()))
    assert.isTrue(settled.every((s) => s.status === 'fulfilled'), JSON.stringify(settled.map((s) => (s.status === 'rejected' ? String(s.reason) : s.value))))
    await gw.batches.sweep()
    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 1)
    assert.isAtLeast(Number(rows[0].prompt_tokens), 1)
    assert.equal(gw.batches.holds.heldFor(user.userId), 0n)
    const money = await balanceAndLedger(user.userId)
    assert.equal(money.balance, money.ledger)
    assert.equal(money.balance, usd(1_000_000_000_000n - BigInt(Math.round(Number(rows[0].cost) * 1e12))))
  })

  test("bad input in Google's shape; a batch beyond the balance is a 402 and never sent", async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const sentBefore = upstream.requests.length
    const cases: Array<[unknown, number]> = [
      [{}, 400],
      [{ batch: { input_config: { requests: { requests: [] } } } }, 400],
      [{ batch: { input_config: { requests: { requests: [{ request: { model: 'models/other', content: { parts: [{ text: 'x' }] } } }] } } } }, 400],
      [{ batch: { input_config: { file_name: 'files/nobodys' } } }, 404],
    ]
    for (const [body, status] of cases) {
      const response = await rest(user.key, 'POST', `/v1beta/models/${MODEL}:asyncBatchEmbedContent`, body)
      assert.equal(response.status, status, JSON.stringify(body))
      const error = ((await response.json()) as any).error
      assert.equal(error.code, status)
      assert.equal(error.status, status === 404 ? 'NOT_FOUND' : 'INVALID_ARGUMENT')
    }

    // 2,000 texts of ~100 tokens: ~200,000 tokens, $0.10 at half price; the balance is $0.01.
    const poor = await seedUser({ balance: '0.01' })
    const long = Array.from({ length: 2000 }, (_, i) => `text ${i}: ${'lorem ipsum dolor sit amet '.repeat(20)}`)
    const refused = await rest(poor.key, 'POST', `/v1beta/models/${MODEL}:asyncBatchEmbedContent`, { batch: { input_config: { requests: { requests: inline(long) } } } })
    assert.equal(refused.status, 402)
    assert.equal(((await refused.json()) as any).error.code, 402)
    assert.equal(upstream.requests.length, sentBefore, 'nothing went upstream')
    assert.equal((await gateway()).batches.holds.heldFor(poor.userId), 0n)
    // The same batch, a tenth as long, is within it.
    const fits = await rest(poor.key, 'POST', `/v1beta/models/${MODEL}:asyncBatchEmbedContent`, { batch: { input_config: { requests: { requests: inline(long.slice(0, 150)) } } }, mock_polls: 9 })
    assert.equal(fits.status, 200)
  })

  test('the Batches pages show an embedding batch as one: the panel (kind filter google) and the portal', async ({ assert }) => {
    const admin = { email: 'embed-batch-admin@example.com', password: 'correct horse battery' }
    await createUser({ ...admin, role: 'admin' })
    const user = await seedUser({ balance: '1' })
    const embed = (await (
      await rest(user.key, 'POST', `/v1beta/models/${MODEL}:asyncBatchEmbedContent`, { batch: { input_config: { requests: { requests: inline(TEXTS) } } }, mock_polls: 9 })
    ).json()) as any
    const generate = (await (
      await rest(user.key, 'POST', '/v1beta/models/gemini-2.5-flash:batchGenerateContent', {
        batch: { input_config: { requests: { requests: [{ request: { contents: [{ parts: [{ text: 'q' }] }] } }] } } },
        mock_polls: 9,
      })
    ).json()) as any
    const panel = new PanelClient()
    await panel.login(admin.email, admin.password)
    const page = await panel.get('/admin/batches?kind=google')
    assert.include(page.html, `data-batch="${embed.name}" data-kind="google"`)
    assert.include(page.html, `data-batch="${generate.name}" data-kind="google"`)
    const rowText = (name: string) => {
      const at = page.html.indexOf(`data-batch="${name}"`)
      return textOf(page.html.slice(at, page.html.indexOf('</tr>', at)))
    }
    assert.include(rowText(embed.name), 'Gemini · embeddings')
    assert.notInclude(rowText(generate.name), 'embeddings')
    const openai = await panel.get('/admin/batches?kind=openai')
    assert.notInclude(openai.html, embed.name)
    const row = await db.from('batch_objects').where('public_id', embed.name).first()
    assert.include(textOf((await panel.get(`/admin/batches/${row.id}`)).html), 'Gemini Batch API · embeddings')

    const portal = new PageClient()
    await portal.login(user.email)
    const mine = htmlText((await portal.get('/dashboard/batches')).body)
    assert.include(mine, 'Gemini Batch API · embeddings')
    // Gemini's batchStats read in the page's words (pendingRequestCount: "4 pending"), not a missing translation
    assert.include(mine, `${TEXTS.length} pending`)
    assert.notInclude(mine, 'translation missing')

    // Cancelled from the panel: billed once, for what finished.
    assert.isBelow((await panel.post(`/admin/batches/${row.id}/cancel`, {})).status, 400)
    const rows = (await usageRows(user.userId)).filter((r) => r.request_id === row.request_id)
    assert.lengthOf(rows, 1)
    assert.include(rows[0], { error_code: 'batch_cancelled', endpoint: 'gemini.asyncBatchEmbedContent' })
    assert.equal(Number(rows[0].prompt_tokens), sum((await counts(TEXTS)).slice(0, 2)))
  })
})
