import { test } from '@japa/runner'
import { toFile } from 'openai'
import { setPrice } from '#actions/set_price'
import { forgetTokens } from '#gateway/providers/vertex/google_token'
import { pngFile } from '#tests/fixtures/image_files'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { IMAGE_TOKENS, PNG_1X1 } from '#tests/fixtures/mock_upstream/scenario'
import { MockVertex } from '#tests/fixtures/mock_vertex'
import { balanceAndLedger, baseUrl, gateway, multipartBody, openai, post, refreshCaches, resetDatabase, seedChannel, seedUser, startMock, usageRows } from '#tests/helpers'

/**
 * Images on Google's channels: OpenAI's `/v1/images/generations` (the
 * OpenAI SDK's images.generate, Open WebUI's and LibreChat's image buttons)
 * as Imagen's `:predict` or a Gemini image model's `generateContent`,
 * `/v1/images/edits` with a Gemini image model, and the Gemini-native
 * `:predict` (@google/genai's generateImages) relayed; each billed per image
 * (Imagen) or by its tokens at the image output price (Gemini).
 */

const auth = (key: string) => ({ authorization: `Bearer ${key}` })
const M = 1_000_000n
/** Imagen: $0.04 an image */
const IMAGEN_PICO = 40_000_000_000n
/** Gemini's image model: $0.30 / $2.50 per 1M, its image tokens $30 per 1M, and $0.001 an image on top */
const GEMINI_IMAGE_PICO = 1_000_000_000n
/** The mock's Gemini answer to one prompt: 12 prompt tokens, 5 of text and the image's (IMAGE_TOKENS) */
const GEMINI_COST = 12n * 300_000n + 5n * 2_500_000n + BigInt(IMAGE_TOKENS) * 30n * M + GEMINI_IMAGE_PICO

/** pico-USD as Postgres prints numeric(24,12) */
function usd(pico: bigint) {
  const text = pico.toString().padStart(13, '0')
  return `${text.slice(0, -12)}.${text.slice(-12)}`
}

async function upload(key: string, form: { body: Buffer; contentType: string }) {
  return fetch(`${baseUrl()}/v1/images/edits`, { method: 'POST', headers: { 'authorization': `Bearer ${key}`, 'content-type': form.contentType }, body: form.body })
}

test.group('Images on google channels: Imagen, Gemini image models, native :predict', (group) => {
  let mock: MockUpstream
  const sent = () => JSON.parse(mock.lastRequest()!.body)

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'google', provider: 'google', baseUrl: mock.url, models: ['imagen-4*', 'gemini-*', 'picture-alias'], modelMapping: { 'picture-alias': 'imagen-4.0-fast-generate-001' } })
    await seedChannel({ name: 'openai', provider: 'openai', baseUrl: mock.url, models: ['gpt-image-*'] })
    // Google's OpenAI endpoint has /images/generations itself (Imagen there): relayed as to any OpenAI-compatible channel.
    await seedChannel({ name: 'gemini-openai', provider: 'gemini', baseUrl: mock.url, models: ['imagen-3.0-generate-002'] })
    await setPrice({ model: 'imagen-*', input: '0', output: '0', perImage: '0.04' })
    await setPrice({ model: 'picture-alias', input: '0', output: '0', perImage: '0.04' })
    await setPrice({ model: 'gemini-*-image*', input: '0.3', output: '2.5', imageOutput: '30', perImage: '0.001' })
    await setPrice({ model: 'gpt-image-*', input: '5', output: '40', perImage: '0.01' })
    await refreshCaches()
    return () => mock.stop()
  })

  test('Imagen through the OpenAI SDK: :predict with sampleCount and the nearest aspect ratio; b64_json back; billed per image', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const answer = await openai(user.key).images.generate({ model: 'imagen-4.0-generate-001', prompt: 'a lighthouse at dusk', n: 2, size: '1792x1024' })
    assert.deepEqual(answer.data!.map((d) => d.b64_json), [PNG_1X1, PNG_1X1])

    const upstream = mock.lastRequest()!
    assert.equal(upstream.path, '/v1/models/imagen-4.0-generate-001:predict')
    assert.equal(upstream.headers['x-goog-api-key'], 'upstream-secret')
    assert.deepEqual(sent(), { instances: [{ prompt: 'a lighthouse at dusk' }], parameters: { sampleCount: 2, includeRaiReason: true, aspectRatio: '16:9' } })

    const [row] = await usageRows(user.userId)
    assert.include(row, { endpoint: 'images.generations', provider: 'google', model: 'imagen-4.0-generate-001', status: 200, images: 2, prompt_tokens: 0, completion_tokens: 0 })
    assert.equal(row.cost, usd(2n * IMAGEN_PICO))
    const money = await balanceAndLedger(user.userId)
    assert.equal(money.balance, usd(1_000_000_000_000n - 2n * IMAGEN_PICO))
    assert.equal(money.ledger, money.balance)
  })

  test('Imagen options: 1536x1024 is 4:3, image_size, negative_prompt, person_generation, output_format; url answers data URLs; a mapped name', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const response = await post(
      '/v1/images/generations',
      { model: 'picture-alias', prompt: 'a fox', size: '1536x1024', image_size: '2K', negative_prompt: 'blur', person_generation: 'dont_allow', output_format: 'jpeg', response_format: 'url' },
      auth(user.key)
    )
    assert.equal(response.status, 200)
    const body = (await response.json()) as any
    assert.deepEqual(body.data, [{ url: `data:image/jpeg;base64,${PNG_1X1}` }])
    assert.isNumber(body.created)
    assert.equal(mock.lastRequest()!.path, '/v1/models/imagen-4.0-fast-generate-001:predict')
    assert.deepEqual(sent().parameters, {
      sampleCount: 1,
      includeRaiReason: true,
      aspectRatio: '4:3',
      sampleImageSize: '2K',
      negativePrompt: 'blur',
      personGeneration: 'dont_allow',
      outputOptions: { mimeType: 'image/jpeg' },
    })
    const [row] = await usageRows(user.userId)
    assert.include(row, { model: 'picture-alias', images: 1, cost: usd(IMAGEN_PICO) })
  })

  test('Imagen filters some images: fewer billed; all of them: 400 content_policy_violation, nothing billed', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    mock.script({ filtered: 1 })
    const some = await post('/v1/images/generations', { model: 'imagen-4.0-generate-001', prompt: 'a crowd', n: 3 }, auth(user.key))
    assert.equal(some.status, 200)
    assert.lengthOf(((await some.json()) as any).data, 2)

    mock.script({ filtered: 2 })
    const none = await post('/v1/images/generations', { model: 'imagen-4.0-generate-001', prompt: 'a crowd', n: 2 }, auth(user.key))
    assert.equal(none.status, 400)
    const error = ((await none.json()) as any).error
    assert.include(error, { type: 'invalid_request_error', code: 'content_policy_violation' })
    assert.match(error.message, /No image was generated: .*usage guidelines/)

    const rows = await usageRows(user.userId)
    assert.include(rows[0], { status: 200, images: 2, cost: usd(2n * IMAGEN_PICO) })
    assert.include(rows[1], { status: 400, error_code: 'content_policy_violation', images: 0, cost: usd(0n) })
    assert.equal((await balanceAndLedger(user.userId)).balance, usd(1_000_000_000_000n - 2n * IMAGEN_PICO))
  })

  test("bad requests in OpenAI's format, before any channel is tried: a size, n past Imagen's 4 or Gemini's 1, no prompt, an aspect ratio", async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const before = mock.requests.length
    const cases: Array<[Record<string, unknown>, string, string | null]> = [
      [{ model: 'imagen-4.0-generate-001', prompt: 'p', size: 'big' }, 'invalid_size', 'size'],
      [{ model: 'imagen-4.0-generate-001', prompt: 'p', size: '0x1024' }, 'invalid_size', 'size'],
      [{ model: 'imagen-4.0-generate-001', prompt: 'p', n: 5 }, 'invalid_n', 'n'],
      [{ model: 'gemini-2.5-flash-image', prompt: 'p', n: 2 }, 'invalid_n', 'n'],
      [{ model: 'imagen-4.0-generate-001', prompt: 'p', aspect_ratio: '21:9' }, 'invalid_value', 'aspect_ratio'],
      [{ model: 'imagen-4.0-generate-001', prompt: 'p', response_format: 'png' }, 'invalid_value', 'response_format'],
      [{ model: 'imagen-4.0-generate-001' }, 'invalid_request', null],
    ]
    for (const [body, code, param] of cases) {
      const response = await post('/v1/images/generations', body, auth(user.key))
      assert.equal(response.status, 400, JSON.stringify(body))
      const error = ((await response.json()) as any).error
      assert.equal(error.type, 'invalid_request_error')
      if (code !== 'invalid_request') assert.equal(error.code, code, JSON.stringify(body))
      if (param !== null) assert.equal(error.param, param)
      else assert.match(error.message, /prompt/)
    }
    assert.equal(mock.requests.length, before, 'nothing was sent upstream')
    const rows = await usageRows(user.userId)
    assert.lengthOf(rows, cases.length)
    assert.isTrue(rows.every((r) => r.status === 400 && r.cost === usd(0n)))
  })

  test("a gemini channel (Google's OpenAI endpoint) gets the client's body at its /images/generations, billed per image", async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const body = { model: 'imagen-3.0-generate-002', prompt: 'a moth', n: 2, response_format: 'b64_json' }
    const response = await post('/v1/images/generations', body, auth(user.key))
    assert.equal(response.status, 200)
    assert.lengthOf(((await response.json()) as any).data, 2)
    assert.equal(mock.lastRequest()!.path, '/v1/openai/images/generations')
    assert.deepEqual(sent(), body)
    const [row] = await usageRows(user.userId)
    assert.include(row, { provider: 'gemini', images: 2, cost: usd(2n * IMAGEN_PICO) })
  })

  test('a Gemini image model: generateContent asking for the IMAGE modality and the ratio; the image as b64_json; billed by tokens at the image price plus the per-image price', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const answer = await openai(user.key).images.generate({ model: 'gemini-2.5-flash-image', prompt: 'a banana in space', size: '1536x1024' })
    assert.equal(answer.data![0].b64_json, PNG_1X1)
    assert.lengthOf(answer.data!, 1)
    assert.deepInclude(answer.usage as any, { input_tokens: 12, output_tokens: 5 + IMAGE_TOKENS })

    assert.equal(mock.lastRequest()!.path, '/v1/models/gemini-2.5-flash-image:generateContent')
    assert.deepEqual(sent(), {
      contents: [{ role: 'user', parts: [{ text: 'a banana in space' }] }],
      generationConfig: { responseModalities: ['IMAGE'], imageConfig: { aspectRatio: '3:2' } },
    })
    const [row] = await usageRows(user.userId)
    assert.include(row, { endpoint: 'images.generations', model: 'gemini-2.5-flash-image', images: 1, prompt_tokens: 12, completion_tokens: 5 + IMAGE_TOKENS, estimated: false })
    assert.equal(row.cost, usd(GEMINI_COST))
    const money = await balanceAndLedger(user.userId)
    assert.equal(money.balance, usd(1_000_000_000_000n - GEMINI_COST))
    assert.equal(money.ledger, money.balance)
  })

  test('a Gemini image request holds the image at the image output price while it runs', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const gw = await gateway()
    mock.script({ latency_ms: 300 })
    const body = JSON.stringify({ model: 'gemini-2.5-flash-image', prompt: 'a pear' })
    const call = post('/v1/images/generations', body, auth(user.key))
    let held = 0n
    for (let i = 0; i < 50 && held === 0n; i++) {
      await new Promise((resolve) => setTimeout(resolve, 10))
      held = gw.catalog.cachedUser(user.userId)?.reservedPico ?? 0n
    }
    // The body's tokens (a third of its bytes) at the input price, 2,000 image tokens at $30 per 1M, one image at its price.
    const expected = BigInt(Math.ceil(body.length / 3)) * 300_000n + 2000n * 30n * M + GEMINI_IMAGE_PICO
    assert.equal(held, expected)
    assert.isAbove(Number(held), Number(BigInt(IMAGE_TOKENS) * 30n * M), 'the hold covers the image')
    assert.equal((await call).status, 200)
    assert.equal(gw.catalog.cachedUser(user.userId)?.reservedPico, 0n)
  })

  test('a Gemini prompt blocked: 400 content_policy_violation naming the reason; the prompt tokens Google reports are billed', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    mock.script({ block_reason: 'PROHIBITED_CONTENT' })
    const response = await post('/v1/images/generations', { model: 'gemini-2.5-flash-image', prompt: 'something bad' }, auth(user.key))
    assert.equal(response.status, 400)
    const error = ((await response.json()) as any).error
    assert.include(error, { code: 'content_policy_violation', type: 'invalid_request_error' })
    assert.match(error.message, /PROHIBITED_CONTENT/)
    const [row] = await usageRows(user.userId)
    assert.include(row, { status: 400, error_code: 'content_policy_violation', images: 0, prompt_tokens: 12, completion_tokens: 0 })
    assert.equal(row.cost, usd(12n * 300_000n))
  })

  test('an edit with a Gemini image model: the uploaded images as inlineData before the prompt; billed by tokens and image', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const [a, b] = [pngFile(8, 1), pngFile(8, 2)]
    const answer = await openai(user.key).images.edit({
      model: 'gemini-2.5-flash-image',
      image: [await toFile(a, 'a.png', { type: 'image/png' }), await toFile(b, 'b.bin', { type: 'application/octet-stream' })],
      prompt: 'put them side by side',
      size: '1024x1792',
    })
    assert.equal(answer.data![0].b64_json, PNG_1X1)
    const upstream = mock.lastRequest()!
    assert.equal(upstream.path, '/v1/models/gemini-2.5-flash-image:generateContent')
    assert.match(String(upstream.headers['content-type']), /^application\/json/)
    assert.deepEqual(sent(), {
      contents: [
        {
          role: 'user',
          parts: [
            { inlineData: { mimeType: 'image/png', data: a.toString('base64') } },
            { inlineData: { mimeType: 'image/png', data: b.toString('base64') } },
            { text: 'put them side by side' },
          ],
        },
      ],
      generationConfig: { responseModalities: ['IMAGE'], imageConfig: { aspectRatio: '9:16' } },
    })
    const [row] = await usageRows(user.userId)
    assert.include(row, { endpoint: 'images.edits', status: 200, images: 1, prompt_tokens: 12, completion_tokens: 5 + IMAGE_TOKENS })
    assert.equal(row.cost, usd(GEMINI_COST))
  })

  test('edits Google cannot take are refused in words: Imagen, a mask, a stream; nothing sent', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const png = pngFile(4)
    const before = mock.requests.length
    const cases: Array<[Array<[string, string | Buffer, string?]>, RegExp]> = [
      [[['model', 'imagen-4.0-generate-001'], ['prompt', 'p'], ['image', png, 'a.png']], /'imagen-4.0-generate-001' are not served \(it makes images from a prompt\): edit with imagen-3.0-capability-001 on a vertex channel, or a Gemini image model/],
      [[['model', 'gemini-2.5-flash-image'], ['prompt', 'p'], ['image', png, 'a.png'], ['mask', png, 'm.png']], /mask: Gemini image models take no mask/],
      [[['model', 'gemini-2.5-flash-image'], ['prompt', 'p'], ['image', png, 'a.png'], ['stream', 'true']], /stream: Google's image models answer whole/],
      [[['model', 'gemini-2.5-flash-image'], ['prompt', 'p'], ['image', Buffer.from('not an image'), 'a.txt']], /is not a PNG, JPEG or WEBP image/],
    ]
    for (const [fields, message] of cases) {
      const response = await upload(user.key, multipartBody(fields))
      assert.equal(response.status, 400)
      const error = ((await response.json()) as any).error
      assert.equal(error.type, 'invalid_request_error')
      assert.match(error.message, message)
    }
    assert.equal(mock.requests.length, before)
  })

  test('the Gemini-native :predict (REST, @google/genai 1.x generateImages) relayed as sent, billed per image returned', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    mock.script({ filtered: 1 })
    // What @google/genai 1.x's generateImages sends on the Gemini API (2.x calls it only in Vertex mode)
    const sentBody = { instances: [{ prompt: 'a red kite' }], parameters: { sampleCount: 3, aspectRatio: '16:9', includeRaiReason: true } }
    const response = await post('/v1beta/models/imagen-4.0-generate-001:predict', sentBody, { 'x-goog-api-key': user.key })
    assert.equal(response.status, 200)
    const body = (await response.json()) as any
    assert.deepEqual(body.predictions.map((p: any) => p.bytesBase64Encoded ?? null), [PNG_1X1, PNG_1X1, null])
    assert.isString(body.predictions[2].raiFilteredReason)

    const upstream = mock.lastRequest()!
    assert.equal(upstream.path, '/v1/models/imagen-4.0-generate-001:predict')
    assert.deepEqual(JSON.parse(upstream.body), sentBody, 'the body went up as sent (no model added)')

    const [row] = await usageRows(user.userId)
    assert.include(row, { endpoint: 'gemini.predict', model: 'imagen-4.0-generate-001', status: 200, images: 2, cost: usd(2n * IMAGEN_PICO) })
  })

  test("the native :predict's refusals in Google's shape: no instances, a model no Google channel serves", async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const before = mock.requests.length
    const empty = await post('/v1beta/models/imagen-4.0-generate-001:predict', { parameters: {} }, { 'x-goog-api-key': user.key })
    assert.equal(empty.status, 400)
    const emptyError = ((await empty.json()) as any).error
    assert.include(emptyError, { code: 400, status: 'INVALID_ARGUMENT' })
    assert.match(emptyError.message, /instances/)

    const openaiModel = await post('/v1beta/models/gpt-image-1:predict', { instances: [{ prompt: 'p' }] }, { 'x-goog-api-key': user.key })
    assert.equal(openaiModel.status, 400)
    const error = ((await openaiModel.json()) as any).error
    assert.include(error, { code: 400, status: 'INVALID_ARGUMENT' })
    assert.match(error.message, /No channel serving 'gpt-image-1' serves Imagen's predict/)
    assert.equal(mock.requests.length, before)
  })
})

test.group('Images on vertex channels', (group) => {
  let vertex: MockVertex

  group.setup(async () => {
    await resetDatabase()
    forgetTokens()
    vertex = new MockVertex()
    await vertex.start()
    await seedChannel({
      name: 'vertex',
      provider: 'vertex',
      baseUrl: `${vertex.origin}/v1?location=us-central1`,
      apiKey: vertex.serviceAccount(),
      models: ['imagen-4.0-generate-001', 'gemini-2.5-flash-image'],
    })
    await setPrice({ model: 'imagen-*', input: '0', output: '0', perImage: '0.04' })
    await setPrice({ model: 'gemini-*-image*', input: '0.3', output: '2.5', imageOutput: '30' })
    await refreshCaches()
    return () => vertex.stop()
  })

  test("Imagen through the OpenAI SDK on Vertex: publishers/google/models/{m}:predict with the service account's token; billed per image", async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    vertex.filtered = 1
    const answer = await openai(user.key).images.generate({ model: 'imagen-4.0-generate-001', prompt: 'a bridge', n: 4, size: '1024x1024' })
    vertex.filtered = 0
    assert.lengthOf(answer.data!, 3)
    const upstream = vertex.lastRequest()
    assert.match(upstream.path, /^\/v1\/projects\/mock-project\/locations\/us-central1\/publishers\/google\/models\/imagen-4.0-generate-001:predict$/)
    assert.match(String(upstream.headers.authorization), /^Bearer ya29\./)
    assert.deepEqual(JSON.parse(upstream.body).parameters, { sampleCount: 4, includeRaiReason: true, aspectRatio: '1:1' })
    const [row] = await usageRows(user.userId)
    assert.include(row, { provider: 'vertex', images: 3, cost: usd(3n * IMAGEN_PICO) })
  })

  test('a Gemini image model on Vertex: generateContent, the image back, its tokens at the image price', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const answer = await openai(user.key).images.generate({ model: 'gemini-2.5-flash-image', prompt: 'a kiwi', response_format: 'b64_json' })
    assert.equal(answer.data![0].b64_json, PNG_1X1)
    assert.match(vertex.lastRequest().path, /publishers\/google\/models\/gemini-2.5-flash-image:generateContent$/)
    const cost = 11n * 300_000n + 5n * 2_500_000n + BigInt(IMAGE_TOKENS) * 30n * M
    const [row] = await usageRows(user.userId)
    assert.include(row, { provider: 'vertex', images: 1, prompt_tokens: 11, completion_tokens: 5 + IMAGE_TOKENS, cost: usd(cost) })
    assert.equal((await balanceAndLedger(user.userId)).balance, usd(1_000_000_000_000n - cost))
  })
})
