import { test } from '@japa/runner'
import db from '@adonisjs/lucid/services/db'
import { GoogleGenAI } from '@google/genai'
import { setPrice } from '#actions/set_price'
import { toPico } from '#gateway/metering/money'
import { createUser } from '#actions/create_user'
import { PanelClient, textOf } from '#tests/panel_client'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { mockGeminiBatchUsage } from '#tests/fixtures/mock_upstream/gemini_batches'
import { failure, genai } from '#tests/clients'
import { balanceAndLedger, baseUrl, gateway, refreshCaches, resetDatabase, seedChannel, seedUser, startMock, usageRows } from '#tests/helpers'

/**
 * Gemini's Batch API through the gateway, with @google/genai and REST:
 * inline batches created on the google channel their model routes to (held
 * at the batch price), looked at until they end, listed, cancelled,
 * deleted; billed exactly once, as one usage row (endpoint
 * `gemini.batchGenerateContent`) at half the model's price, from each
 * answered request's usageMetadata (failed requests cost nothing); file
 * batches sent to the channel holding their input file, held from its lines
 * read back, billed from their results file, which only their owner
 * downloads. Another key's batch, another user's file: Google's 404.
 */

/** USD per 1M tokens: input, output, cache reads */
const INPUT = 1n
const OUTPUT = 4n
const CACHE_READ_PICO = 250_000n
const PER_TOKEN = 1_000_000n

/** What the mock's answered requests (their indexes) cost at half price, as numeric(24,12) prints it. */
function expectedCost(indexes: number[]): string {
  let pico = 0n
  for (const i of indexes) {
    const u = mockGeminiBatchUsage(i)
    const output = BigInt(u.candidatesTokenCount + u.thoughtsTokenCount)
    pico += BigInt(u.promptTokenCount - u.cachedContentTokenCount) * INPUT * PER_TOKEN + BigInt(u.cachedContentTokenCount) * CACHE_READ_PICO + output * OUTPUT * PER_TOKEN
  }
  pico = (pico * 50n + 50n) / 100n
  return `${pico / 1_000_000_000_000n}.${(pico % 1_000_000_000_000n).toString().padStart(12, '0')}`
}

/** The hold of a batch of `bytes` with `count` requests of maxOutputTokens 50, at half price */
function expectedHold(bytes: number, count: number): bigint {
  const pico = BigInt(Math.ceil(bytes / 3)) * INPUT * PER_TOKEN + BigInt(count * 50) * OUTPUT * PER_TOKEN
  return (pico * 50n + 50n) / 100n
}

/** `count` inline requests (REST's snake_case), keys `req-i` unless `keys` names them */
function inline(count: number, keys = (i: number) => `req-${i}`) {
  return Array.from({ length: count }, (_, i) => ({
    request: { contents: [{ role: 'user', parts: [{ text: `question ${i}` }] }], generation_config: { max_output_tokens: 50 } },
    metadata: { key: keys(i) },
  }))
}

function rest(key: string, method: string, path: string, body?: unknown) {
  return fetch(`${baseUrl()}${path}`, {
    method,
    headers: { 'x-goog-api-key': key, 'content-type': 'application/json' },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  })
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i)

test.group('Gemini Batch API', (group) => {
  let first: MockUpstream
  let second: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    first = await startMock()
    second = await startMock()
    await seedChannel({ name: 'google-a', provider: 'google', baseUrl: `${first.origin}/v1beta`, models: ['gemini-2.5-flash', 'gemini-alias'], modelMapping: { 'gemini-alias': 'gemini-2.5-pro' } })
    await seedChannel({ name: 'google-b', provider: 'google', baseUrl: `${second.origin}/v1beta`, models: ['gemini-2.5-flash', 'gemini-b-only'] })
    for (const model of ['gemini-2.5-flash', 'gemini-alias', 'gemini-b-only']) await setPrice({ model, input: String(INPUT), output: String(OUTPUT), cacheRead: '0.25' })
    await refreshCaches()
    return async () => {
      await first.stop()
      await second.stop()
    }
  })

  test('@google/genai: create inline, get until done, list, delete; held, then billed once at half price, a failed request free', async ({ assert }) => {
    const gw = await gateway()
    const user = await seedUser({ balance: '1' })
    const ai = genai(user.key)
    const before = first.geminiBatches.batches.size + second.geminiBatches.batches.size
    const job = await ai.batches.create({
      model: 'gemini-2.5-flash',
      src: range(3).map((i) => ({
        contents: [{ role: 'user', parts: [{ text: `question ${i}` }] }],
        config: { maxOutputTokens: 50 },
        metadata: { key: i === 1 ? 'fail-1' : `req-${i}` },
      })),
      config: { displayName: 'sdk batch' },
    })
    assert.match(job.name!, /^batches\/gw[A-Za-z0-9]{24}$/)
    assert.equal(job.state, 'JOB_STATE_PENDING')
    assert.equal(job.model, 'models/gemini-2.5-flash')
    assert.equal(first.geminiBatches.batches.size + second.geminiBatches.batches.size, before + 1)
    const mock = [...first.geminiBatches.batches.values(), ...second.geminiBatches.batches.values()].find((b) => b.displayName === 'sdk batch')!
    const upstream = first.geminiBatches.batches.has(mock.name) ? first : second
    const sent = upstream.requests.find((r) => r.path.endsWith(':batchGenerateContent'))!
    assert.equal(sent.path, '/v1beta/models/gemini-2.5-flash:batchGenerateContent')
    assert.equal(sent.headers['x-goog-api-key'], 'upstream-secret')
    // Held while it runs, on the balance every priced request checks.
    const hold = expectedHold(sent.bytes.length, 3)
    assert.equal(gw.batches.holds.heldFor(user.userId), hold)
    assert.equal((await gw.catalog.user(user.userId))!.reservedPico, hold)
    assert.lengthOf(await usageRows(user.userId), 0)

    const done = await ai.batches.get({ name: job.name! })
    assert.equal(done.state, 'JOB_STATE_SUCCEEDED')
    const answers = done.dest!.inlinedResponses!
    assert.lengthOf(answers, 3)
    assert.equal(answers[0].response!.candidates![0].content!.parts![0].text, 'answer 0')
    assert.equal(answers[0].metadata!.key, 'req-0')
    assert.isDefined(answers[1].error)
    assert.equal(gw.batches.holds.heldFor(user.userId), 0n)

    // Looked at again and swept twice: one bill.
    await ai.batches.get({ name: job.name! })
    await gw.batches.sweep()
    await gw.batches.sweep()
    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 1)
    const row = await db.from('batch_objects').where('public_id', job.name!).first()
    assert.include(rows[0], { endpoint: 'gemini.batchGenerateContent', request_id: row.request_id, model: 'gemini-2.5-flash', error_code: null })
    assert.equal(rows[0].cost, expectedCost([0, 2]))
    const u0 = mockGeminiBatchUsage(0)
    const u2 = mockGeminiBatchUsage(2)
    assert.equal(Number(rows[0].prompt_tokens), u0.promptTokenCount + u2.promptTokenCount)
    assert.equal(Number(rows[0].completion_tokens), u0.candidatesTokenCount + u2.candidatesTokenCount + 10)
    assert.equal(Number(rows[0].cached_tokens), 20)
    assert.equal(Number(rows[0].reasoning_tokens), 10)
    const money = await balanceAndLedger(user.userId)
    assert.equal(money.balance, money.ledger)
    assert.equal(Number(money.balance), 1 - Number(expectedCost([0, 2])))
    // The row keeps no inline answers (the list answers from it); a get asks the upstream for them.
    assert.deepEqual(row.object.response.inlinedResponses.inlinedResponses, [])

    const listed: string[] = []
    for await (const b of await ai.batches.list()) listed.push(b.name!)
    assert.deepEqual(listed, [job.name])

    const stranger = genai((await seedUser({ balance: '1' })).key)
    // Thunks, started one at a time (promises awaited in turn reject unhandled first).
    for (const call of [() => stranger.batches.get({ name: job.name! }), () => stranger.batches.delete({ name: job.name! }), () => stranger.batches.cancel({ name: job.name! })]) {
      const refused = await failure(call())
      assert.equal(refused.status, 404)
      assert.include(refused.message, 'NOT_FOUND')
    }
    const strangerList: string[] = []
    for await (const b of await stranger.batches.list()) strangerList.push(b.name!)
    assert.deepEqual(strangerList, [])

    await ai.batches.delete({ name: job.name! })
    assert.isFalse(upstream.geminiBatches.batches.has(mock.name))
    assert.equal((await failure(ai.batches.get({ name: job.name! }))).status, 404)
    // A look that asked before the delete and hears back after it: the batch stays deleted (it came back in lists and gets).
    await gw.batches.settleGeminiBatch(row, row.object)
    assert.equal((await failure(ai.batches.get({ name: job.name! }))).status, 404)
    const after: string[] = []
    for await (const b of await ai.batches.list()) after.push(b.name!)
    assert.deepEqual(after, [])
    assert.lengthOf(await usageRows(user.userId), 1)
  })

  test('REST: a mapped model, held exactly, cancelled: billed for what completed, error code batch_cancelled; the sweep bills one nobody looks at', async ({ assert }) => {
    const gw = await gateway()
    const user = await seedUser({ balance: '1' })
    const body = { batch: { display_name: 'mapped', input_config: { requests: { requests: inline(4) } } }, mock_polls: 5 }
    const created = await rest(user.key, 'POST', '/v1beta/models/gemini-alias:batchGenerateContent', body)
    assert.equal(created.status, 200)
    const op = (await created.json()) as any
    assert.match(op.name, /^batches\/gw/)
    assert.equal(op.metadata.model, 'models/gemini-alias')
    assert.equal(op.metadata.name, op.name)
    const sent = first.requests.findLast((r) => r.path.endsWith(':batchGenerateContent'))!
    assert.equal(sent.path, '/v1beta/models/gemini-2.5-pro:batchGenerateContent')
    assert.equal(gw.batches.holds.heldFor(user.userId), expectedHold(sent.bytes.length, 4))

    const running = (await (await rest(user.key, 'GET', `/v1beta/${op.name}`)).json()) as any
    assert.equal(running.metadata.state, 'BATCH_STATE_RUNNING')
    const cancel = await rest(user.key, 'POST', `/v1beta/${op.name}:cancel`, {})
    assert.equal(cancel.status, 200)
    assert.deepEqual(await cancel.json(), {})
    const ended = (await (await rest(user.key, 'GET', `/v1beta/${op.name}`)).json()) as any
    assert.equal(ended.metadata.state, 'BATCH_STATE_CANCELLED')
    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 1)
    assert.include(rows[0], { error_code: 'batch_cancelled', model: 'gemini-alias', served_model: 'gemini-2.5-pro' })
    assert.equal(rows[0].cost, expectedCost([0, 1]))
    assert.equal(gw.batches.holds.heldFor(user.userId), 0n)

    // One nobody looks at again: the sweep finds it done and bills it once.
    const other = (await (
      await rest(user.key, 'POST', '/v1beta/models/gemini-2.5-flash:batchGenerateContent', { batch: { input_config: { requests: { requests: inline(2) } } }, mock_polls: 0 })
    ).json()) as any
    await gw.batches.sweep()
    await gw.batches.sweep()
    const after = await usageRows(user.userId)
    assert.lengthOf(after, 2)
    assert.equal(after[1].cost, expectedCost([0, 1]))
    const stored = await db.from('batch_objects').where('public_id', other.name).first()
    assert.equal(stored.status, 'BATCH_STATE_SUCCEEDED')
    // A running batch cannot be deleted (Google's delete would leave it running, unbilled): cancel first.
    const third = (await (
      await rest(user.key, 'POST', '/v1beta/models/gemini-2.5-flash:batchGenerateContent', { batch: { input_config: { requests: { requests: inline(1) } } }, mock_polls: 9 })
    ).json()) as any
    const refused = await rest(user.key, 'DELETE', `/v1beta/${third.name}`)
    assert.equal(refused.status, 400)
    assert.equal(((await refused.json()) as any).error.status, 'INVALID_ARGUMENT')
  })

  test('a succeeded batch whose answer lacks its output is not billed yet; a FAILED one bills what completed', async ({ assert }) => {
    const gw = await gateway()
    const user = await seedUser({ balance: '1' })
    const broken = (await (
      await rest(user.key, 'POST', '/v1beta/models/gemini-2.5-flash:batchGenerateContent', { batch: { input_config: { requests: { requests: inline(2) } } }, mock_no_output: true })
    ).json()) as any
    await rest(user.key, 'GET', `/v1beta/${broken.name}`)
    assert.lengthOf(await usageRows(user.userId), 0)
    assert.isNull((await db.from('batch_objects').where('public_id', broken.name).first()).billed_at)
    assert.isAbove(Number(gw.batches.holds.heldFor(user.userId)), 0)

    const failed = (await (
      await rest(user.key, 'POST', '/v1beta/models/gemini-2.5-flash:batchGenerateContent', {
        batch: { input_config: { requests: { requests: inline(4) } } },
        mock_state: 'BATCH_STATE_FAILED',
      })
    ).json()) as any
    await rest(user.key, 'GET', `/v1beta/${failed.name}`)
    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 1)
    assert.include(rows[0], { error_code: 'batch_failed' })
    assert.equal(rows[0].cost, expectedCost([0, 1]))
  })

  test('inline requests of an image model without maxOutputTokens hold one image a candidate at the image price, as each request alone', async ({ assert }) => {
    await seedChannel({ name: 'google-image', provider: 'google', baseUrl: `${first.origin}/v1beta`, models: ['gemini-2.5-flash-image'] })
    await setPrice({ model: 'gemini-2.5-flash-image', input: '0.3', output: '2.5', imageOutput: '30' })
    await refreshCaches()
    const user = await seedUser({ balance: '1' })
    // One request of two candidates, one of one: three images of 1,290 tokens (not 3 x 1,024) at $30 per 1M, at half price.
    const requests = [
      { request: { contents: [{ role: 'user', parts: [{ text: 'draw a banana' }] }], generation_config: { candidate_count: 2 } }, metadata: { key: 'a' } },
      { request: { contents: [{ role: 'user', parts: [{ text: 'draw a pear' }] }] }, metadata: { key: 'b' } },
    ]
    const body = { batch: { display_name: 'images', input_config: { requests: { requests } } }, mock_polls: 5 }
    const created = await rest(user.key, 'POST', '/v1beta/models/gemini-2.5-flash-image:batchGenerateContent', body)
    assert.equal(created.status, 200)
    const row = await db.from('batch_objects').where('public_id', ((await created.json()) as any).name).first()
    const bytes = Buffer.byteLength(JSON.stringify(body))
    const pico = BigInt(Math.ceil(bytes / 3)) * 300_000n + 3n * 1290n * 30n * PER_TOKEN
    assert.equal(toPico(row.hold), (pico * 50n + 50n) / 100n)
  })

  test("bad input in Google's shape; a batch too large for the balance is a 402 and never sent", async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const cases: Array<[unknown, number]> = [
      ['{not json', 400],
      [{}, 400],
      [{ batch: { input_config: {} } }, 400],
      [{ batch: { input_config: { requests: { requests: [] } } } }, 400],
      [{ batch: { input_config: { requests: { requests: inline(1) }, file_name: 'files/abc' } } }, 400],
      [{ batch: { input_config: { file_name: 'gs://bucket/x' } } }, 400],
      [{ batch: { input_config: { requests: { requests: [{ request: { model: 'models/gemini-b-only', contents: [] } }] } } } }, 400],
      [{ batch: { input_config: { requests: { requests: ['x'] } } } }, 400],
      // A file the gateway never recorded (or another user's): its lines cannot be held
      [{ batch: { input_config: { file_name: 'files/nobodys' } } }, 404],
    ]
    const sentBefore = first.requests.length + second.requests.length
    for (const [body, status] of cases) {
      const response = await rest(user.key, 'POST', '/v1beta/models/gemini-2.5-flash:batchGenerateContent', body)
      assert.equal(response.status, status, JSON.stringify(body))
      const error = ((await response.json()) as any).error
      assert.equal(error.code, status)
      assert.equal(error.status, status === 404 ? 'NOT_FOUND' : 'INVALID_ARGUMENT')
    }
    const unknown = await rest(user.key, 'GET', '/v1beta/batches/gwnope')
    assert.equal(unknown.status, 404)
    assert.equal(((await unknown.json()) as any).error.status, 'NOT_FOUND')

    const poor = await seedUser({ balance: '0.0001' })
    const big = inline(50).map((r) => ({ ...r, request: { ...r.request, generation_config: { max_output_tokens: 100000 } } }))
    const refused = await rest(poor.key, 'POST', '/v1beta/models/gemini-2.5-flash:batchGenerateContent', { batch: { input_config: { requests: { requests: big } } } })
    assert.equal(refused.status, 402)
    assert.equal(first.requests.length + second.requests.length, sentBefore, 'nothing went upstream')
  })

  test('a file batch goes to the channel holding its file, held from its lines, billed from its results file, which only its owner downloads', async ({ assert }) => {
    const gw = await gateway()
    const user = await seedUser({ balance: '1' })
    // The file lands on the second channel (the model hint), so its batch must go there, out of two.
    const hinted = new GoogleGenAI({ apiKey: user.key, httpOptions: { baseUrl: baseUrl(), headers: { 'x-gateway-model': 'gemini-b-only' } } })
    const lines = range(3).map((i) =>
      JSON.stringify({ key: i === 2 ? 'fail-2' : `line-${i}`, request: { contents: [{ parts: [{ text: `q${i}` }] }], generationConfig: { maxOutputTokens: 50 } } })
    )
    const bytes = Buffer.from(`${lines.join('\n')}\n`)
    const file = await hinted.files.upload({ file: new Blob([bytes], { type: 'application/jsonl' }), config: { mimeType: 'application/jsonl' } })
    assert.isTrue(second.providerFiles.gemini.has(file.name!))

    const ai = genai(user.key)
    const stranger = genai((await seedUser({ balance: '1' })).key)
    const refused = await failure(stranger.batches.create({ model: 'gemini-2.5-flash', src: file.name! }))
    assert.equal(refused.status, 404)

    const onFirst = first.geminiBatches.batches.size
    const job = await ai.batches.create({ model: 'gemini-2.5-flash', src: file.name!, config: { displayName: 'from a file' } })
    assert.equal(first.geminiBatches.batches.size, onFirst, 'not sent to the channel without the file')
    const mock = [...second.geminiBatches.batches.values()].find((b) => b.displayName === 'from a file')!
    assert.equal(mock.fromFile, file.name)
    // Held from the file's lines read back from its channel: its bytes, three requests of 50 tokens.
    assert.isTrue(second.requests.some((r) => r.path === `/download/v1beta/${file.name}:download?alt=media`))
    assert.equal(gw.batches.holds.heldFor(user.userId), expectedHold(bytes.length, 3))

    const done = await ai.batches.get({ name: job.name! })
    assert.equal(done.state, 'JOB_STATE_SUCCEEDED')
    const resultsFile = done.dest!.fileName!
    assert.equal(resultsFile, mock.resultsFile)
    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 1)
    assert.equal(rows[0].cost, expectedCost([0, 1]))
    assert.equal(gw.batches.holds.heldFor(user.userId), 0n)

    const download = await rest(user.key, 'GET', `/download/v1beta/${resultsFile}:download?alt=media`)
    assert.equal(download.status, 200)
    const results = (await download.text()).trim().split('\n').map((l) => JSON.parse(l))
    assert.deepEqual(results.map((r) => r.key), ['line-0', 'line-1', 'fail-2'])
    // files.get works for it too: it is the owner's file on that channel.
    assert.equal((await ai.files.get({ name: resultsFile })).name, resultsFile)
    const theirs = await fetch(`${baseUrl()}/download/v1beta/${resultsFile}:download?alt=media`, { headers: { 'x-goog-api-key': (await seedUser({ balance: '1' })).key } })
    assert.equal(theirs.status, 404)
    assert.equal(((await theirs.json()) as any).error.status, 'NOT_FOUND')
  })
  test('a file batch whose keys repeat (or differ only in lone surrogates) is billed for every request answered; more than 100,000 lines are refused', async ({ assert }) => {
    const gw = await gateway()
    const user = await seedUser({ balance: '1' })
    const hinted = new GoogleGenAI({ apiKey: user.key, httpOptions: { baseUrl: baseUrl(), headers: { 'x-gateway-model': 'gemini-b-only' } } })
    const ai = genai(user.key)
    const request = { contents: [{ parts: [{ text: 'q' }] }], generationConfig: { maxOutputTokens: 50 } }
    // Four requests of one key, then two whose keys are one in UTF-8 (each lone surrogate is U+FFFD there).
    const keys = ['same', 'same', 'same', 'same', 'x\ud800', 'x\ud801']
    const lines = keys.map((key) => JSON.stringify({ key, request }))
    const upload = async (text: string) =>
      (await hinted.files.upload({ file: new Blob([Buffer.from(text)], { type: 'application/jsonl' }), config: { mimeType: 'application/jsonl' } })).name!
    const job = await ai.batches.create({ model: 'gemini-2.5-flash', src: await upload(`${lines.join('\n')}\n`) })
    assert.equal((await ai.batches.get({ name: job.name! })).state, 'JOB_STATE_SUCCEEDED')
    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 1)
    // Each of the six answered, each billed (the repeated key's four were one request's bill, the surrogates' two one).
    assert.equal(rows[0].cost, expectedCost(range(6)))
    assert.equal(gw.batches.holds.heldFor(user.userId), 0n)

    const sent = second.geminiBatches.batches.size
    const huge = await upload('{}\n'.repeat(100_001))
    const refused = await rest(user.key, 'POST', '/v1beta/models/gemini-2.5-flash:batchGenerateContent', { batch: { input_config: { file_name: huge } } })
    assert.equal(refused.status, 400)
    const body = (await refused.json()) as any
    assert.equal(body.error.status, 'INVALID_ARGUMENT')
    assert.include(body.error.message, 'at most 100000 requests')
    assert.equal(second.geminiBatches.batches.size, sent, 'never sent')
    assert.equal(gw.batches.holds.heldFor(user.userId), 0n)
  })

  test("the panel's Batches page: a Gemini batch under its kind, its state and counts; cancelled there, billed once", async ({ assert }) => {
    const admin = { email: 'gem-admin@example.com', password: 'correct horse battery' }
    await createUser({ ...admin, role: 'admin' })
    const user = await seedUser({ balance: '1' })
    const op = (await (
      await rest(user.key, 'POST', '/v1beta/models/gemini-2.5-flash:batchGenerateContent', { batch: { input_config: { requests: { requests: inline(2) } } }, mock_polls: 9 })
    ).json()) as any
    const panel = new PanelClient()
    await panel.login(admin.email, admin.password)
    const page = await panel.get('/admin/batches?kind=google')
    assert.equal(page.status, 200)
    assert.include(page.html, `data-batch="${op.name}" data-kind="google"`)
    assert.include(textOf(page.html), 'Gemini')
    // Gemini's state reads as OpenAI's do: the word after BATCH_STATE_ (the status itself on the badge's data attribute)
    assert.match(page.html, /data-batch-status="BATCH_STATE_PENDING">pending<\/span>/)
    assert.notInclude((await panel.get('/admin/batches?kind=openai')).html, op.name)
    const row = await db.from('batch_objects').where('public_id', op.name).first()
    const detail = await panel.get(`/admin/batches/${row.id}`)
    assert.include(textOf(detail.html), 'BATCH_STATE_PENDING')
    assert.include(textOf(detail.html), 'Gemini Batch API')
    const cancelled = await panel.post(`/admin/batches/${row.id}/cancel`, {})
    assert.isBelow(cancelled.status, 400)
    const after = await db.from('batch_objects').where('public_id', op.name).first()
    assert.equal(after.status, 'BATCH_STATE_CANCELLED')
    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, 1)
    assert.include(rows[0], { error_code: 'batch_cancelled' })
    assert.equal(rows[0].cost, expectedCost([0]))
  })
})
