import { test } from '@japa/runner'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import app from '@adonisjs/core/services/app'
import db from '@adonisjs/lucid/services/db'
import { AzureOpenAI, toFile } from 'openai'
import { withApiLane } from '#gateway/http/api_lane'
import { setPrice } from '#actions/set_price'
import { setWordFilter } from '#actions/set_word_filter'
import { cliActor } from '#actions/audit'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { formParts, MOCK_EDIT_TOKENS } from '#tests/fixtures/mock_upstream/openai_image_uploads'
import { pngFile } from '#tests/fixtures/image_files'
import { balanceAndLedger, baseUrl, gateway, multipartBody, openai, post, refreshCaches, resetDatabase, seedChannel, seedUser, startMock, usageRows } from '#tests/helpers'

/**
 * OpenAI's image edits and variations through the gateway: multipart uploads
 * passed through byte for byte (only the model part rewritten for a mapped
 * name), answers relayed as the upstream's bytes, an edit's stream relayed as
 * it arrives, each request's one usage row billed like image generations
 * (per image, plus tokens when reported), refusals in OpenAI's shape with
 * nothing sent or charged.
 */

async function upload(path: string, key: string, form: { body: Buffer; contentType: string }, base = baseUrl()) {
  return fetch(`${base}${path}`, {
    method: 'POST',
    headers: { 'authorization': `Bearer ${key}`, 'content-type': form.contentType },
    body: form.body,
  })
}

/** pico-USD as Postgres prints numeric(24,12) */
function usd(pico: bigint) {
  const text = pico.toString().padStart(13, '0')
  return `${text.slice(0, -12)}.${text.slice(-12)}`
}

/** $5 / $40 per 1M tokens (gpt-image's text input and image output) and $0.01 per image, in pico-USD */
const INPUT_PICO = 5_000_000n
const OUTPUT_PICO = 40_000_000n
const IMAGE_PICO = 10_000_000_000n
/** dall-e-2: $0.02 per image */
const DALLE_PICO = 20_000_000_000n

/** What the mock's gpt-image usage costs for `inputs` uploaded images and `outputs` answered ones, plus the per-image price */
function editCost(inputs: number, outputs: number): bigint {
  const input = BigInt(MOCK_EDIT_TOKENS.text + MOCK_EDIT_TOKENS.perInputImage * inputs)
  const output = BigInt(MOCK_EDIT_TOKENS.perOutputImage * outputs)
  return input * INPUT_PICO + output * OUTPUT_PICO + BigInt(outputs) * IMAGE_PICO
}

test.group('POST /v1/images/edits and /v1/images/variations', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({
      name: 'openai',
      provider: 'openai',
      baseUrl: mock.url,
      models: ['gpt-image-*', 'dall-e-2', 'edit-alias'],
      modelMapping: { 'edit-alias': 'gpt-image-1' },
    })
    await seedChannel({ name: 'claude', provider: 'anthropic', baseUrl: mock.url, models: ['claude-*'] })
    await setPrice({ model: 'gpt-image-*', input: '5', output: '40', perImage: '0.01' })
    await setPrice({ model: 'edit-alias', input: '5', output: '40', perImage: '0.01' })
    await setPrice({ model: 'dall-e-2', input: '0', output: '0', perImage: '0.02' })
    await refreshCaches()
    return () => mock.stop()
  })

  test('an edit through the openai SDK: the PNG reaches the upstream intact; images and tokens billed', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const png = pngFile(16)
    const answer = await openai(user.key).images.edit({
      model: 'gpt-image-1',
      image: await toFile(png, 'cat.png', { type: 'image/png' }),
      prompt: 'Add a red hat, "quoted" and ünïcode',
      n: 2,
      size: '1024x1024',
      quality: 'low',
      background: 'transparent',
      output_format: 'png',
    })
    assert.lengthOf(answer.data!, 2)
    assert.equal(answer.data![0].b64_json, 'aW1hZ2U=')
    assert.equal(answer.usage?.output_tokens, 2 * MOCK_EDIT_TOKENS.perOutputImage)

    const upstream = mock.lastRequest()!
    assert.equal(upstream.path, '/v1/images/edits')
    assert.equal(upstream.headers.authorization, 'Bearer upstream-secret')
    assert.match(String(upstream.headers['content-type']), /^multipart\/form-data; boundary=/)
    const parts = formParts(upstream.bytes, upstream.headers['content-type'])
    const image = parts.find((p) => p.name === 'image')!
    assert.isTrue(image.data.equals(png), 'the PNG arrived byte for byte')
    assert.deepEqual([image.filename, image.contentType], ['cat.png', 'image/png'])
    const fields = Object.fromEntries(parts.filter((p) => p.filename === null).map((p) => [p.name, p.data.toString('utf8')]))
    assert.deepInclude(fields, { model: 'gpt-image-1', prompt: 'Add a red hat, "quoted" and ünïcode', n: '2', size: '1024x1024', quality: 'low', background: 'transparent', output_format: 'png' })

    const [row] = await usageRows(user.userId)
    assert.include(row, {
      endpoint: 'images.edits',
      status: 200,
      model: 'gpt-image-1',
      images: 2,
      prompt_tokens: MOCK_EDIT_TOKENS.text + MOCK_EDIT_TOKENS.perInputImage,
      completion_tokens: 2 * MOCK_EDIT_TOKENS.perOutputImage,
      stream: false,
      estimated: false,
    })
    assert.equal(row.cost, usd(editCost(1, 2)))
    assert.equal((await balanceAndLedger(user.userId)).balance, usd(1_000_000_000_000n - editCost(1, 2)))
  })

  test('several images (image[]) and a mask through the SDK, each file intact; url answers', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const [a, b, mask] = [pngFile(8, 1), pngFile(12, 2), pngFile(8, 3)]
    const answer = await openai(user.key).images.edit({
      model: 'gpt-image-1',
      image: [await toFile(a, 'a.png', { type: 'image/png' }), await toFile(b, 'b.png', { type: 'image/png' })],
      mask: await toFile(mask, 'mask.png', { type: 'image/png' }),
      prompt: 'Put both in a basket',
      response_format: 'url',
    })
    assert.equal(answer.data![0].url, 'https://mock.example/edit0.png')
    const parts = formParts(mock.lastRequest()!.bytes, mock.lastRequest()!.headers['content-type'])
    const files = parts.filter((p) => p.filename !== null)
    assert.deepEqual(files.map((p) => [p.name, p.filename]), [['image[]', 'a.png'], ['image[]', 'b.png'], ['mask', 'mask.png']])
    assert.isTrue(files[0].data.equals(a) && files[1].data.equals(b) && files[2].data.equals(mask))
    const [row] = await usageRows(user.userId)
    assert.include(row, { images: 1, prompt_tokens: MOCK_EDIT_TOKENS.text + 2 * MOCK_EDIT_TOKENS.perInputImage })
    assert.equal(row.cost, usd(editCost(2, 1)))
  })

  test('a mapped model: only the model part is rewritten, every other byte reaches the upstream as sent', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const fields: Array<[string, string | Buffer, string?]> = [
      ['image', Buffer.concat([pngFile(4), Buffer.from('\r\n--tricky\r\n\r\n')]), 'a.png'],
      ['prompt', 'Make it blue'],
      ['model', 'edit-alias'],
      ['n', '1'],
    ]
    const sent = multipartBody(fields)
    const response = await upload('/v1/images/edits', user.key, sent)
    assert.equal(response.status, 200)
    const upstream = mock.lastRequest()!
    const expected = multipartBody(fields.map(([name, value, filename]) => [name, name === 'model' ? 'gpt-image-1' : value, filename]))
    assert.isTrue(upstream.bytes.equals(expected.body), "the upstream saw the client's bytes with the model part replaced")
    assert.equal(upstream.headers['content-type'], sent.contentType, 'the boundary unchanged')
    // Without a mapping, the client's bytes themselves.
    const plain = multipartBody([['model', 'gpt-image-1'], ['prompt', 'p'], ['image', pngFile(4), 'b.png']], 'other-boundary')
    await upload('/v1/images/edits', user.key, plain)
    assert.isTrue(mock.lastRequest()!.bytes.equals(plain.body))

    const rows = await usageRows(user.userId)
    assert.include(rows[0], { model: 'edit-alias', served_model: 'gpt-image-1', images: 1 })
    assert.equal(rows[0].cost, usd(editCost(1, 1)))
  })

  test("a streamed edit (gpt-image's SSE) is relayed as it arrives; each completed image billed with its tokens", async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const stream = await openai(user.key).images.edit({
      model: 'gpt-image-1',
      image: await toFile(pngFile(8), 'a.png', { type: 'image/png' }),
      prompt: 'Stream it',
      stream: true,
      partial_images: 1,
    })
    const events: string[] = []
    for await (const event of stream) events.push(event.type)
    assert.deepEqual(events, ['image_edit.partial_image', 'image_edit.completed'])
    const [row] = await usageRows(user.userId)
    assert.include(row, {
      endpoint: 'images.edits',
      status: 200,
      stream: true,
      images: 1,
      prompt_tokens: MOCK_EDIT_TOKENS.text + MOCK_EDIT_TOKENS.perInputImage,
      completion_tokens: MOCK_EDIT_TOKENS.perOutputImage,
    })
    assert.equal(row.cost, usd(editCost(1, 1)))
  })

  test('a variation through the SDK: no model part means dall-e-2, the body goes as sent, billed per image', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const png = pngFile(16, 5)
    const answer = await openai(user.key).images.createVariation({ image: await toFile(png, 'otter.png', { type: 'image/png' }), n: 3 })
    assert.lengthOf(answer.data!, 3)
    const upstream = mock.lastRequest()!
    assert.equal(upstream.path, '/v1/images/variations')
    const parts = formParts(upstream.bytes, upstream.headers['content-type'])
    assert.isUndefined(parts.find((p) => p.name === 'model'), 'no model part added: the upstream defaults to dall-e-2 too')
    assert.isTrue(parts.find((p) => p.name === 'image')!.data.equals(png))
    const [row] = await usageRows(user.userId)
    assert.include(row, { endpoint: 'images.variations', model: 'dall-e-2', images: 3, prompt_tokens: 0, completion_tokens: 0 })
    assert.equal(row.cost, usd(3n * DALLE_PICO))
  })

  test('while it runs, an edit holds n images at the per-image price plus its tokens, not its bytes', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const gw = await gateway()
    mock.script({ latency_ms: 300 })
    const png = pngFile(64)
    const call = upload('/v1/images/edits', user.key, multipartBody([['model', 'gpt-image-1'], ['prompt', 'add a hat'], ['n', '3'], ['image', png, 'a.png']]))
    let held = 0n
    for (let i = 0; i < 50 && held === 0n; i++) {
      await new Promise((resolve) => setTimeout(resolve, 10))
      held = gw.catalog.cachedUser(user.userId)?.reservedPico ?? 0n
    }
    // 'add a hat' (9 bytes: 3 tokens) + 8,192 tokens for the one input image; 2,000 output tokens per image (IMAGE_TOKENS_HELD); 3 images.
    assert.equal(held, (3n + 8192n) * INPUT_PICO + 3n * 2000n * OUTPUT_PICO + 3n * IMAGE_PICO)
    assert.equal((await call).status, 200)
    assert.equal(gw.catalog.cachedUser(user.userId)?.reservedPico, 0n)
  })

  test("refusals, each in OpenAI's shape with its usage row; nothing sent or charged", async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const before = mock.requests.length
    const png = pngFile(4)
    const cases: Array<[string, { body: Buffer; contentType: string }, number, string]> = [
      ['/v1/images/edits', multipartBody([['prompt', 'p'], ['image', png, 'a.png']]), 400, 'missing_model'],
      ['/v1/images/edits', multipartBody([['model', 'gpt-image-1'], ['image', png, 'a.png']]), 400, 'missing_prompt'],
      ['/v1/images/edits', multipartBody([['model', 'gpt-image-1'], ['prompt', 'p']]), 400, 'missing_file'],
      ['/v1/images/edits', multipartBody([['model', 'gpt-image-1'], ['prompt', 'p'], ['image', png, 'a.png'], ['n', '11']]), 400, 'invalid_n'],
      ['/v1/images/edits', multipartBody([['model', 'gpt-image-1'], ['prompt', 'p'], ['image', png, 'a.png'], ['n', '2.5']]), 400, 'invalid_n'],
      ['/v1/images/edits', multipartBody([['model', 'gpt-image-1'], ['model', 'dall-e-2'], ['prompt', 'p'], ['image', png, 'a.png']]), 400, 'duplicate_field'],
      ['/v1/images/edits', multipartBody([['model', 'claude-x'], ['prompt', 'p'], ['image', png, 'a.png']]), 400, 'unsupported_endpoint'],
      ['/v1/images/variations', multipartBody([['model', 'dall-e-2'], ['n', '1']]), 400, 'missing_file'],
      // A model sent as a file: not read as the model by the gateway (it would bill dall-e-2), maybe by an upstream.
      ['/v1/images/variations', multipartBody([['model', 'gpt-image-1', 'model.txt'], ['image', png, 'a.png']]), 400, 'invalid_multipart'],
      ['/v1/images/variations', { body: Buffer.from('--b\r\nContent-Disposition: form-data; name="model"\r\n\r\ndall-e-2'), contentType: 'multipart/form-data; boundary=b' }, 400, 'invalid_multipart'],
    ]
    for (const [path, form, status, code] of cases) {
      const response = await upload(path, user.key, form)
      const body = (await response.json()) as any
      assert.equal(response.status, status, code)
      assert.equal(body.error.code, code)
      assert.equal(body.error.type, 'invalid_request_error', code)
      assert.isString(response.headers.get('x-request-id'))
    }
    const json = await post('/v1/images/edits', { model: 'gpt-image-1', prompt: 'p', image: 'x' }, { authorization: `Bearer ${user.key}` })
    assert.equal(json.status, 400)
    assert.equal(((await json.json()) as any).error.code, 'invalid_content_type')
    // 51 MB announced, a few bytes sent: refused before the body is read.
    const big = await new Promise<{ status: number; body: any }>((resolve, reject) => {
      const url = new URL(`${baseUrl()}/v1/images/edits`)
      const req = http.request(
        {
          host: url.hostname,
          port: url.port,
          path: url.pathname,
          method: 'POST',
          headers: { 'authorization': `Bearer ${user.key}`, 'content-type': 'multipart/form-data; boundary=x', 'content-length': String(51 * 1024 * 1024) },
        },
        (res) => {
          let text = ''
          res.on('data', (chunk) => (text += chunk))
          res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text) }))
        }
      )
      req.on('error', (error) => ((error as any).code === 'EPIPE' || (error as any).code === 'ECONNRESET' ? undefined : reject(error)))
      req.write('--x\r\n')
    })
    assert.equal(big.status, 413)
    assert.equal(big.body.error.code, 'request_too_large')
    assert.match(big.body.error.message, /at most 50 MB/)
    assert.equal(mock.requests.length, before, 'no refusal reached the upstream')

    const rows = await usageRows(user.userId)
    assert.deepEqual(
      rows.map((r) => [r.endpoint, r.status, r.error_code]),
      [
        ...cases.map(([path, , status, code]) => [path.endsWith('edits') ? 'images.edits' : 'images.variations', status, code]),
        ['images.edits', 400, 'invalid_content_type'],
        ['images.edits', 413, 'request_too_large'],
      ]
    )
    for (const row of rows) assert.equal(Number(row.cost), 0)
    assert.equal((await balanceAndLedger(user.userId)).balance, '1.000000000000')
  })

  test("an Azure v1 client's edit (/openai/v1/images/edits, key in api-key) is served as /v1's", async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const png = pngFile(4)
    const form = multipartBody([['model', 'gpt-image-1'], ['prompt', 'a hat'], ['image', png, 'a.png']])
    const response = await fetch(`${baseUrl()}/openai/v1/images/edits?api-version=preview`, {
      method: 'POST',
      headers: { 'api-key': user.key, 'content-type': form.contentType },
      body: form.body,
    })
    assert.equal(response.status, 200)
    assert.isArray(((await response.json()) as any).data)
    const [row] = await usageRows(user.userId)
    assert.include(row, { endpoint: 'images.edits', model: 'gpt-image-1', status: 200, images: 1 })
  })

  test("the key's RPM counts uploads: the second edit in a minute is 429 in OpenAI's shape, not sent", async ({ assert }) => {
    const user = await seedUser({ balance: '1', key: { rpm: 1 } })
    const form = multipartBody([['model', 'gpt-image-1'], ['prompt', 'p'], ['image', pngFile(4), 'a.png']])
    const first = await upload('/v1/images/edits', user.key, form)
    assert.equal(first.status, 200)
    assert.equal(first.headers.get('x-ratelimit-remaining-requests'), '0')
    await first.arrayBuffer()
    const before = mock.requests.length
    const second = await upload('/v1/images/variations', user.key, multipartBody([['image', pngFile(4), 'a.png']]))
    assert.equal(second.status, 429)
    assert.deepInclude(((await second.json()) as any).error, { code: 'rate_limit_exceeded', type: 'rate_limit_error' })
    assert.equal(mock.requests.length, before)
  })

  test('a priced model with an empty balance is 402 before any upstream call', async ({ assert }) => {
    const user = await seedUser()
    const before = mock.requests.length
    const response = await upload('/v1/images/variations', user.key, multipartBody([['image', pngFile(4), 'a.png']]))
    assert.equal(response.status, 402)
    assert.equal(((await response.json()) as any).error.code, 'insufficient_balance')
    assert.equal(mock.requests.length, before)
    const [row] = await usageRows(user.userId)
    assert.include(row, { status: 402, endpoint: 'images.variations', model: 'dall-e-2' })
  })

  test("an edit's prompt is screened for sensitive words: refused before routing, nothing charged", async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    await setWordFilter({ enabled: true, words: ['Forbidden Phrase'], checkCompletions: false, hideMatches: false }, cliActor())
    const gw = await gateway()
    for (let i = 0; i < 60 && gw.catalog.wordFilter === null; i++) await new Promise((resolve) => setTimeout(resolve, 50))
    try {
      const before = mock.requests.length
      const response = await upload('/v1/images/edits', user.key, multipartBody([['model', 'gpt-image-1'], ['prompt', 'draw the FORBIDDEN phrase'], ['image', pngFile(4), 'a.png']]))
      assert.equal(response.status, 400)
      assert.deepInclude(((await response.json()) as any).error, {
        code: 'sensitive_words_detected',
        message: 'The request was refused: it contains sensitive words: Forbidden Phrase',
      })
      const clean = await upload('/v1/images/edits', user.key, multipartBody([['model', 'gpt-image-1'], ['prompt', 'a clean prompt'], ['image', pngFile(4), 'a.png']]))
      assert.equal(clean.status, 200)
      assert.equal(mock.requests.length, before + 1, 'only the clean edit went upstream')
      const rows = await usageRows(user.userId)
      assert.deepEqual(rows.map((r) => [r.status, r.error_code, Number(r.cost) > 0]), [[400, 'sensitive_words_detected', false], [200, null, true]])
    } finally {
      await db.from('app_settings').where('key', 'sensitive_words').delete()
      await gw.catalog.reload()
    }
  })
})

test.group('Image uploads: failover, answers that are none, Azure, the router', (group) => {
  let mock: MockUpstream
  let routed: { server: http.Server; url: string }

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'first', provider: 'openai', baseUrl: mock.url, models: ['gpt-image-1', 'dall-e-2'], apiKey: 'key-first', priority: 10 })
    await seedChannel({
      name: 'second',
      provider: 'openai',
      baseUrl: mock.url,
      models: ['gpt-image-1', 'dall-e-2'],
      modelMapping: { 'dall-e-2': 'dall-e-2-upstream' },
      apiKey: 'key-second',
      priority: 1,
    })
    await seedChannel({ name: 'azure', provider: 'azure', baseUrl: `${mock.origin}/openai`, models: ['az-image'], apiKey: 'az-key' })
    await setPrice({ model: 'gpt-image-1', input: '5', output: '40', perImage: '0.01' })
    await refreshCaches()
    const adonis = await app.container.make('server')
    const server = http.createServer(withApiLane(adonis.handle.bind(adonis) as any, false))
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    routed = { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` }
    return async () => {
      await new Promise((resolve) => routed.server.close(resolve))
      await mock.stop()
    }
  })
  // Each test's failures are its own: a circuit opened by the previous test's would skip a channel here.
  group.each.setup(async () => (await gateway()).health.reset())

  test('a 503, or a 200 that is no answer, moves the same upload to the next channel; a 4xx is relayed', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const form = multipartBody([['model', 'gpt-image-1'], ['prompt', 'p'], ['image', pngFile(8), 'a.png']])
    mock.script({ status: 503 })
    let before = mock.requests.length
    const ok = await upload('/v1/images/edits', user.key, form)
    assert.equal(ok.status, 200)
    const [failed, served] = mock.requests.slice(before)
    assert.deepEqual([failed.headers.authorization, served.headers.authorization], ['Bearer key-first', 'Bearer key-second'])
    assert.isTrue(failed.bytes.equals(form.body) && served.bytes.equals(form.body), "both attempts carried the client's bytes")

    for (const raw of [
      { status: 200, headers: { 'content-type': 'text/html' }, body: '<html>proxy</html>' },
      { status: 200, body: '{"error":{"message":"quota","type":"server_error"}}' },
    ]) {
      mock.script({ raw })
      before = mock.requests.length
      const answer = await upload('/v1/images/edits', user.key, form)
      assert.equal(answer.status, 200)
      assert.equal(((await answer.json()) as any).data[0].b64_json, 'aW1hZ2U=')
      assert.equal(mock.requests.length - before, 2, 'the answer that was none failed over')
    }

    mock.script({ status: 400 })
    const refused = await upload('/v1/images/edits', user.key, form)
    assert.equal(refused.status, 400)
    assert.deepEqual(((await refused.json()) as any).error, { message: 'mock upstream failure 400', type: 'invalid_request_error', code: 'mock_400', param: null })

    const rows = await usageRows(user.userId)
    assert.deepEqual(rows.map((r) => [r.status, r.attempts, r.images]), [[200, 2, 1], [200, 2, 1], [200, 2, 1], [400, 1, 0]])
  })

  test('a stream whose first event is an error fails over before a byte reached the client', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    mock.script({ raw: { status: 200, headers: { 'content-type': 'text/event-stream' }, chunks: ['event: error\ndata: {"type":"error","error":{"message":"overloaded"}}\n\n'] } })
    const response = await upload('/v1/images/edits', user.key, multipartBody([['model', 'gpt-image-1'], ['prompt', 'p'], ['stream', 'true'], ['image', pngFile(8), 'a.png']]))
    assert.equal(response.headers.get('content-type'), 'text/event-stream; charset=utf-8', await response.clone().text())
    const text = await response.text()
    assert.include(text, 'image_edit.completed')
    assert.notInclude(text, 'overloaded')
    const [row] = await usageRows(user.userId)
    assert.include(row, { status: 200, attempts: 2, stream: true, images: 1 })
  })

  test('a client that hangs up during a streamed edit: a 499 row billed the images completed before it left', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const completed = { type: 'image_edit.completed', b64_json: 'aW1hZ2U=', usage: { input_tokens: 120, output_tokens: 272, total_tokens: 392 } }
    mock.script({
      raw: {
        status: 200,
        headers: { 'content-type': 'text/event-stream' },
        chunks: [`event: image_edit.completed\ndata: ${JSON.stringify(completed)}\n\n`, `event: image_edit.completed\ndata: ${JSON.stringify(completed)}\n\n`],
        chunk_delay_ms: 400,
      },
    })
    const form = multipartBody([['model', 'gpt-image-1'], ['prompt', 'p'], ['n', '2'], ['stream', 'true'], ['image', pngFile(8), 'a.png']])
    await new Promise<void>((resolve, reject) => {
      const url = new URL(`${baseUrl()}/v1/images/edits`)
      const req = http.request(
        { host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers: { 'authorization': `Bearer ${user.key}`, 'content-type': form.contentType } },
        (res) => {
          res.once('data', () => {
            req.destroy()
            resolve()
          })
        }
      )
      req.on('error', (error) => ((error as any).code === 'ECONNRESET' ? undefined : reject(error)))
      req.end(form.body)
    })
    let rows = await usageRows(user.userId)
    for (let i = 0; i < 50 && rows.length === 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20))
      rows = await usageRows(user.userId)
    }
    assert.include(rows[0], { status: 499, error_code: 'client_closed', stream: true, images: 1, prompt_tokens: 120, completion_tokens: 272 })
    assert.equal(rows[0].cost, usd(120n * INPUT_PICO + 272n * OUTPUT_PICO + IMAGE_PICO))
  })

  test("a variation's default model mapped by a channel: the model part is added in front, the rest as sent", async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const form = multipartBody([['image', pngFile(8), 'a.png'], ['n', '1']])
    mock.script({ status: 503 })
    const before = mock.requests.length
    const response = await upload('/v1/images/variations', user.key, form)
    assert.equal(response.status, 200, await response.clone().text())
    const [first, second] = mock.requests.slice(before)
    assert.isTrue(first.bytes.equals(form.body), 'the first channel got the client bytes (no mapping)')
    const expected = multipartBody([['model', 'dall-e-2-upstream'], ['image', pngFile(8), 'a.png'], ['n', '1']])
    assert.isTrue(second.bytes.equals(expected.body), 'the mapped name was added as the first part')
    const [row] = await usageRows(user.userId)
    assert.include(row, { model: 'dall-e-2', served_model: 'dall-e-2-upstream', images: 1 })
  })

  test("Azure: edits at the deployment's path with a version that serves them; no variations there", async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const form = multipartBody([['model', 'az-image'], ['prompt', 'p'], ['image', pngFile(8), 'a.png']])
    const edit = await upload('/v1/images/edits', user.key, form)
    assert.equal(edit.status, 200)
    const upstream = mock.lastRequest()!
    assert.equal(upstream.path, '/openai/deployments/az-image/images/edits?api-version=2025-04-01-preview')
    assert.equal(upstream.headers['api-key'], 'az-key')
    assert.isTrue(upstream.bytes.equals(form.body))
    const before = mock.requests.length
    const variation = await upload('/v1/images/variations', user.key, multipartBody([['model', 'az-image'], ['image', pngFile(8), 'a.png']]))
    assert.equal(variation.status, 400)
    assert.deepInclude(((await variation.json()) as any).error, { code: 'unsupported_endpoint', message: "No channel serving 'az-image' offers image variations" })
    assert.equal(mock.requests.length, before)
  })

  test("an Azure client's deployment path (/openai/deployments/{d}/images/edits): the form names the deployment, lane and router alike", async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const png = pngFile(8)
    // AzureOpenAI with a deployment posts the edit under it; the form's own model is another, the deployment wins (as Azure and LiteLLM).
    const client = new AzureOpenAI({ endpoint: baseUrl(), apiKey: user.key, apiVersion: '2025-04-01-preview', deployment: 'gpt-image-1', maxRetries: 0 })
    const answer = await client.images.edit({ model: 'dall-e-2', image: await toFile(png, 'a.png', { type: 'image/png' }), prompt: 'a hat' })
    assert.equal(answer.data![0].b64_json, 'aW1hZ2U=')
    let sent = mock.lastRequest()!
    assert.equal(sent.path, '/v1/images/edits')
    let fields = formParts(sent.bytes, sent.headers['content-type'])
    assert.deepEqual(fields.filter((p) => p.name === 'model').map((p) => p.data.toString()), ['gpt-image-1'])
    assert.isTrue(fields.find((p) => p.name === 'image')!.data.equals(png), 'the image arrived byte for byte')

    // A form without a model part (as Azure clients send it) gets one, in front; through the router too, and to an Azure channel.
    const bare = multipartBody([['prompt', 'a hat'], ['image', png, 'a.png']])
    for (const [base, deployment] of [[baseUrl(), 'gpt-image-1'], [routed.url, 'gpt-image-1'], [routed.url, 'az-image']]) {
      const response = await fetch(`${base}/openai/deployments/${deployment}/images/edits?api-version=2025-04-01-preview`, {
        method: 'POST',
        headers: { 'api-key': user.key, 'content-type': bare.contentType },
        body: bare.body,
      })
      assert.equal(response.status, 200, `${base} ${deployment}`)
      sent = mock.lastRequest()!
      const expected = multipartBody([['model', deployment], ['prompt', 'a hat'], ['image', png, 'a.png']])
      assert.isTrue(sent.bytes.equals(expected.body), `the model part was added in front (${deployment})`)
    }
    assert.equal(sent.path, '/openai/deployments/az-image/images/edits?api-version=2025-04-01-preview')

    const rows = await usageRows(user.userId)
    assert.deepEqual(
      rows.map((r) => [r.endpoint, r.model, r.status, r.images]),
      [
        ['images.edits', 'gpt-image-1', 200, 1],
        ['images.edits', 'gpt-image-1', 200, 1],
        ['images.edits', 'gpt-image-1', 200, 1],
        ['images.edits', 'az-image', 200, 1],
      ]
    )
  })

  test('through the router (API_LANE=false), and at the paths without /v1, the same answers and rows', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const form = multipartBody([['model', 'gpt-image-1'], ['prompt', 'p'], ['image', pngFile(8), 'a.png']])
    for (const [base, path] of [[routed.url, '/v1/images/edits'], [routed.url, '/images/edits'], [baseUrl(), '/images/edits']]) {
      const response = await upload(path, user.key, form, base)
      assert.equal(response.status, 200, `${base}${path}`)
      assert.equal(((await response.json()) as any).data.length, 1)
    }
    const variation = await upload('/v1/images/variations', user.key, multipartBody([['model', 'gpt-image-1'], ['image', pngFile(8), 'a.png']]), routed.url)
    assert.equal(variation.status, 200)
    const rows = await usageRows(user.userId)
    assert.deepEqual(rows.map((r) => [r.endpoint, r.status, r.images]), [
      ['images.edits', 200, 1],
      ['images.edits', 200, 1],
      ['images.edits', 200, 1],
      ['images.variations', 200, 1],
    ])
  })
})
