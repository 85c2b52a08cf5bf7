import zlib from 'node:zlib'
import { test } from '@japa/runner'
import { toFile } from 'openai'
import { setPrice } from '#actions/set_price'
import { forgetTokens } from '#gateway/providers/vertex/google_token'
import { grayPixels, pngFile, pngOf, rgbaMask } from '#tests/fixtures/image_files'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { PNG_1X1 } from '#tests/fixtures/mock_upstream/scenario'
import { MockVertex } from '#tests/fixtures/mock_vertex'
import { balanceAndLedger, baseUrl, gateway, multipartBody, openai, post, refreshCaches, resetDatabase, seedChannel, seedUser, startMock, usageRows } from '#tests/helpers'

/**
 * Vertex AI's Imagen editing through OpenAI's `/v1/images/edits` (the
 * OpenAI SDK's images.edit): the capability model's `:predict` with the image
 * as REFERENCE_TYPE_RAW and OpenAI's mask made Imagen's REFERENCE_TYPE_MASK
 * (inpaint insertion), or Imagen's own background mask (bgswap) without one;
 * the upscaler; the Gemini-native `:predict` of the capability model relayed;
 * each billed per image returned, held at `n` images.
 */

const auth = (key: string) => ({ authorization: `Bearer ${key}` })
/** Imagen: $0.04 an image */
const IMAGEN_PICO = 40_000_000_000n
const ONE_USD = 1_000_000_000_000n
const EDIT = 'imagen-3.0-capability-001'

function usd(pico: bigint) {
  const text = pico.toString().padStart(13, '0')
  return `${text.slice(0, -12)}.${text.slice(-12)}`
}

/** PNG chunks for a mask larger than the fixtures build row by row */
function pngChunk(type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8)
  head.writeUInt32BE(data.length)
  head.write(type, 4, 'latin1')
  const crc = Buffer.alloc(4)
  crc.writeUInt32BE(zlib.crc32(data, zlib.crc32(head.subarray(4))))
  return Buffer.concat([head, data, crc])
}
/** A 16-bit RGBA header */
function ihdrChunk(width: number, height: number): Buffer {
  const body = Buffer.alloc(13)
  body.writeUInt32BE(width, 0)
  body.writeUInt32BE(height, 4)
  body[8] = 16
  body[9] = 6
  return pngChunk('IHDR', body)
}
function idatChunk(rows: Buffer): Buffer {
  return Buffer.concat([pngChunk('IDAT', zlib.deflateSync(rows, { level: 9 })), pngChunk('IEND', Buffer.alloc(0))])
}

async function upload(key: string, fields: Array<[string, string | Buffer, string?]>) {
  const form = multipartBody(fields)
  return fetch(`${baseUrl()}/v1/images/edits`, { method: 'POST', headers: { 'authorization': `Bearer ${key}`, 'content-type': form.contentType }, body: form.body })
}

test.group('Imagen edits on vertex channels', (group) => {
  let vertex: MockVertex
  let google: MockUpstream
  const sent = () => JSON.parse(vertex.lastRequest().body)

  group.setup(async () => {
    await resetDatabase()
    forgetTokens()
    vertex = new MockVertex()
    await vertex.start()
    google = await startMock()
    await seedChannel({
      name: 'vertex',
      provider: 'vertex',
      baseUrl: `${vertex.origin}/v1?location=us-central1`,
      apiKey: vertex.serviceAccount(),
      models: [EDIT, 'imagen-4.0-upscale-preview', 'imagen-4.0-generate-001', 'gemini-2.5-flash-image'],
    })
    // The Gemini API has no capability model: a name mapped to it there is refused before Google is asked.
    await seedChannel({ name: 'gemini-api', provider: 'google', baseUrl: google.url, models: ['studio-edit'], modelMapping: { 'studio-edit': EDIT } })
    await setPrice({ model: 'imagen-*', input: '0', output: '0', perImage: '0.04' })
    await setPrice({ model: 'studio-edit', input: '0', output: '0', perImage: '0.04' })
    await setPrice({ model: 'gemini-*-image*', input: '0.3', output: '2.5', imageOutput: '30' })
    await refreshCaches()
    return async () => {
      await vertex.stop()
      await google.stop()
    }
  })

  test("the OpenAI SDK's images.edit with a mask: inpaint insertion, the image as RAW, the mask made Imagen's (white where it was clear); url answers; billed per image", async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const image = pngFile(8, 3)
    const clear = (x: number, y: number) => y < 3 && x >= 2
    const answer = await openai(user.key).images.edit({
      model: EDIT,
      image: await toFile(image, 'photo.png', { type: 'image/png' }),
      mask: await toFile(rgbaMask(8, 8, clear, [0, 1, 4]), 'mask.png', { type: 'image/png' }),
      prompt: 'a hot air balloon in the sky',
      n: 2,
      size: '1024x1024',
      response_format: 'url',
    })
    assert.deepEqual(
      answer.data!.map((d) => d.url),
      [`data:image/png;base64,${PNG_1X1}`, `data:image/png;base64,${PNG_1X1}`]
    )

    const upstream = vertex.lastRequest()
    assert.match(upstream.path, /^\/v1\/projects\/mock-project\/locations\/us-central1\/publishers\/google\/models\/imagen-3.0-capability-001:predict$/)
    assert.match(String(upstream.headers.authorization), /^Bearer ya29\./)
    const body = sent()
    const [raw, mask] = body.instances[0].referenceImages
    assert.deepEqual(raw, { referenceType: 'REFERENCE_TYPE_RAW', referenceId: 1, referenceImage: { bytesBase64Encoded: image.toString('base64'), mimeType: 'image/png' } })
    assert.deepEqual({ ...mask, referenceImage: { mimeType: mask.referenceImage.mimeType } }, {
      referenceType: 'REFERENCE_TYPE_MASK',
      referenceId: 2,
      referenceImage: { mimeType: 'image/png' },
      maskImageConfig: { maskMode: 'MASK_MODE_USER_PROVIDED' },
    })
    const pixels = grayPixels(Buffer.from(mask.referenceImage.bytesBase64Encoded, 'base64'))
    assert.include(pixels, { width: 8, height: 8, colorType: 0 })
    assert.deepEqual(
      pixels.rows,
      Array.from({ length: 8 }, (_, y) => Array.from({ length: 8 }, (_, x) => (clear(x, y) ? 255 : 0)))
    )
    assert.equal(body.instances[0].prompt, 'a hot air balloon in the sky')
    assert.deepEqual(body.parameters, { editMode: 'EDIT_MODE_INPAINT_INSERTION', sampleCount: 2, includeRaiReason: true })

    const [row] = await usageRows(user.userId)
    assert.include(row, { endpoint: 'images.edits', provider: 'vertex', model: EDIT, status: 200, images: 2, prompt_tokens: 0, completion_tokens: 0 })
    assert.equal(row.cost, usd(2n * IMAGEN_PICO))
    const money = await balanceAndLedger(user.userId)
    assert.equal(money.balance, usd(ONE_USD - 2n * IMAGEN_PICO))
    assert.equal(money.ledger, money.balance)
  })

  test('no mask: Imagen masks the background itself (bgswap); edit_mode, mask_mode, negative_prompt, person_generation, output_format taken; a JPEG', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const jpeg = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x04, 0x4a, 0x46, 0xff, 0xc0, 0x00, 0x0b, 0x08, 0x00, 0x10, 0x00, 0x10, 0x01, 0x01, 0x11, 0x00, 0xff, 0xd9])
    const answer = await openai(user.key).images.edit({ model: EDIT, image: await toFile(jpeg, 'shoe.jpg', { type: 'image/jpeg' }), prompt: 'on a marble table' })
    assert.equal(answer.data![0].b64_json, PNG_1X1)
    assert.deepEqual(sent(), {
      instances: [
        {
          prompt: 'on a marble table',
          referenceImages: [
            { referenceType: 'REFERENCE_TYPE_RAW', referenceId: 1, referenceImage: { bytesBase64Encoded: jpeg.toString('base64'), mimeType: 'image/jpeg' } },
            { referenceType: 'REFERENCE_TYPE_MASK', referenceId: 2, maskImageConfig: { maskMode: 'MASK_MODE_BACKGROUND' } },
          ],
        },
      ],
      parameters: { editMode: 'EDIT_MODE_BGSWAP', sampleCount: 1, includeRaiReason: true },
    })

    const response = await upload(user.key, [
      ['model', EDIT],
      ['prompt', 'remove the person'],
      ['image', pngFile(4), 'a.png'],
      ['edit_mode', 'inpaint_removal'],
      ['mask_mode', 'foreground'],
      ['negative_prompt', 'blur'],
      ['person_generation', 'dont_allow'],
      ['output_format', 'jpeg'],
    ])
    assert.equal(response.status, 200)
    const body = sent()
    assert.deepEqual(body.instances[0].referenceImages[1], { referenceType: 'REFERENCE_TYPE_MASK', referenceId: 2, maskImageConfig: { maskMode: 'MASK_MODE_FOREGROUND' } })
    assert.deepEqual(body.parameters, {
      editMode: 'EDIT_MODE_INPAINT_REMOVAL',
      sampleCount: 1,
      includeRaiReason: true,
      negativePrompt: 'blur',
      personGeneration: 'dont_allow',
      outputOptions: { mimeType: 'image/jpeg' },
    })
    const rows = await usageRows(user.userId)
    assert.deepEqual(rows.map((r) => [r.images, r.cost]), [[1, usd(IMAGEN_PICO)], [1, usd(IMAGEN_PICO)]])
  })

  test('filtered images are not billed; all of them filtered: 400 content_policy_violation, nothing billed', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const fields = (n: string): Array<[string, string | Buffer, string?]> => [['model', EDIT], ['prompt', 'p'], ['image', pngFile(4), 'a.png'], ['n', n]]
    vertex.filtered = 1
    try {
      const some = await upload(user.key, fields('3'))
      assert.equal(some.status, 200)
      assert.lengthOf(((await some.json()) as any).data, 2)
      const all = await upload(user.key, fields('1'))
      assert.equal(all.status, 400)
      const error = ((await all.json()) as any).error
      assert.include(error, { code: 'content_policy_violation', type: 'invalid_request_error' })
      assert.match(error.message, /usage guidelines/)
    } finally {
      vertex.filtered = 0
    }
    const rows = await usageRows(user.userId)
    assert.deepEqual(rows.map((r) => [r.status, r.images, r.cost]), [[200, 2, usd(2n * IMAGEN_PICO)], [400, 0, usd(0n)]])
    assert.equal((await balanceAndLedger(user.userId)).balance, usd(ONE_USD - 2n * IMAGEN_PICO))
  })

  test('a Vertex answering more images than asked (n, sampleCount): billed and relayed at most n; the native :predict billed at most its sampleCount', async ({ assert }) => {
    const user = await seedUser({ balance: '10' })
    vertex.extraImages = 40
    try {
      const response = await upload(user.key, [['model', EDIT], ['prompt', 'p'], ['image', pngFile(4), 'a.png'], ['n', '2']])
      assert.equal(response.status, 200)
      assert.lengthOf(((await response.json()) as any).data, 2)
      const native = await post(`/v1beta/models/${EDIT}:predict`, { instances: [{ prompt: 'p' }], parameters: { sampleCount: 3 } }, { 'x-goog-api-key': user.key })
      assert.equal(native.status, 200)
      // Relayed as Google sent it, billed for the three asked
      assert.lengthOf(((await native.json()) as any).predictions, 43)
    } finally {
      vertex.extraImages = 0
    }
    const rows = await usageRows(user.userId)
    assert.deepEqual(rows.map((r) => [r.endpoint, r.images, r.cost]), [['images.edits', 2, usd(2n * IMAGEN_PICO)], ['gemini.predict', 3, usd(3n * IMAGEN_PICO)]])
  })

  test('held at n images while Vertex works, released after; an empty balance is a 402, nothing sent', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const gw = await gateway()
    vertex.predictDelayMs = 300
    const call = upload(user.key, [['model', EDIT], ['prompt', 'p'], ['image', pngFile(4), 'a.png'], ['n', '3']])
    let held = 0n
    try {
      for (let i = 0; i < 50 && held === 0n; i++) {
        await new Promise((resolve) => setTimeout(resolve, 10))
        held = gw.catalog.cachedUser(user.userId)?.reservedPico ?? 0n
      }
      assert.equal((await call).status, 200)
    } finally {
      vertex.predictDelayMs = 0
    }
    assert.equal(held, 3n * IMAGEN_PICO)
    assert.equal(gw.catalog.cachedUser(user.userId)?.reservedPico, 0n)

    const poor = await seedUser()
    const before = vertex.requests.length
    const response = await upload(poor.key, [['model', EDIT], ['prompt', 'p'], ['image', pngFile(4), 'a.png'], ['n', '3']])
    assert.equal(response.status, 402)
    assert.equal(((await response.json()) as any).error.code, 'insufficient_balance')
    assert.equal(vertex.requests.length, before)
  })

  test('a client gone while its 4096x4096 mask is decoded: 499 client_closed, nothing billed, nothing sent to Vertex, the hold released', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const gw = await gateway()
    // 16-bit RGBA, every row Paeth: a 140 KB file whose 134 MB of rows take a second or more to read
    const side = 4096
    const rows = Buffer.alloc(side * (side * 8 + 1))
    for (let y = 0; y < side; y++) rows[y * (side * 8 + 1)] = 4
    const mask = pngOf(1, 1, 6, 16, [Buffer.alloc(8)])
    const header = mask.indexOf('IHDR')
    const big = Buffer.concat([mask.subarray(0, header - 4), ihdrChunk(side, side), idatChunk(rows)])
    const before = vertex.requests.length
    const abort = new AbortController()
    const form = multipartBody([['model', EDIT], ['prompt', 'p'], ['image', big, 'a.png'], ['mask', big, 'm.png']])
    const call = fetch(`${baseUrl()}/v1/images/edits`, { method: 'POST', headers: { ...auth(user.key), 'content-type': form.contentType }, body: form.body, signal: abort.signal })
    // Held while it runs: the mask is being read
    let held = 0n
    for (let i = 0; i < 200 && held === 0n; i++) {
      await new Promise((resolve) => setTimeout(resolve, 5))
      held = gw.catalog.cachedUser(user.userId)?.reservedPico ?? 0n
    }
    assert.equal(held, IMAGEN_PICO)
    abort.abort()
    await call.catch(() => {})
    let rowsSeen: any[] = []
    for (let i = 0; i < 200 && rowsSeen.length === 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 25))
      rowsSeen = await usageRows(user.userId)
    }
    assert.lengthOf(rowsSeen, 1)
    assert.include(rowsSeen[0], { status: 499, error_code: 'client_closed', images: 0, cost: usd(0n) })
    assert.equal(vertex.requests.length, before)
    assert.equal(gw.catalog.cachedUser(user.userId)?.reservedPico, 0n)
    assert.equal((await balanceAndLedger(user.userId)).balance, usd(ONE_USD))
  }).timeout(60_000)

  test('the upscaler: instances[0].image, mode upscale, the factor from size over the image (or upscale_factor); one image billed', async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const image = pngFile(8, 5)
    const answer = await openai(user.key).images.edit({ model: 'imagen-4.0-upscale-preview', image: await toFile(image, 'small.png'), prompt: 'upscale', size: '32x32' as any })
    assert.equal(answer.data![0].b64_json, PNG_1X1)
    assert.match(vertex.lastRequest().path, /models\/imagen-4.0-upscale-preview:predict$/)
    assert.deepEqual(sent(), {
      instances: [{ image: { bytesBase64Encoded: image.toString('base64'), mimeType: 'image/png' } }],
      parameters: { mode: 'upscale', sampleCount: 1, upscaleConfig: { upscaleFactor: 'x4' }, includeRaiReason: true },
    })
    const response = await upload(user.key, [['model', 'imagen-4.0-upscale-preview'], ['prompt', 'p'], ['image', image, 'a.png'], ['upscale_factor', 'x3']])
    assert.equal(response.status, 200)
    assert.deepEqual(sent().parameters.upscaleConfig, { upscaleFactor: 'x3' })
    const rows = await usageRows(user.userId)
    assert.deepEqual(rows.map((r) => [r.model, r.images, r.cost]), [['imagen-4.0-upscale-preview', 1, usd(IMAGEN_PICO)], ['imagen-4.0-upscale-preview', 1, usd(IMAGEN_PICO)]])
  })

  test("edits refused in OpenAI's format before Vertex is asked: no image, bad masks, more than one image, WEBP, n, unknown modes, models on the wrong path or channel", async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const png = pngFile(8)
    const webp = Buffer.concat([Buffer.from('RIFF'), Buffer.alloc(4), Buffer.from('WEBPVP8 '), Buffer.alloc(20)])
    const noAlpha = pngOf(8, 8, 2, 8, Array.from({ length: 8 }, () => Buffer.alloc(24, 40)))
    // A PNG whose header says 0x0
    const empty = Buffer.from(png)
    empty.writeUInt32BE(0, 16)
    empty.writeUInt32BE(0, 20)
    const before = vertex.requests.length
    const googleBefore = google.requests.length
    const base = (model = EDIT): Array<[string, string | Buffer, string?]> => [['model', model], ['prompt', 'p']]
    const cases: Array<[Array<[string, string | Buffer, string?]>, string, RegExp]> = [
      [[...base(), ['mask', rgbaMask(8, 8, () => true), 'm.png']], 'missing_file', /image \(or image\[\]\)/],
      [[...base(), ['image', png, 'a.png'], ['mask', Buffer.from('not a png, not at all, no'), 'm.png']], 'invalid_mask', /mask: a PNG file is required/],
      [[...base(), ['image', png, 'a.png'], ['mask', noAlpha, 'm.png']], 'invalid_mask', /mask: a PNG with an alpha channel/],
      [[...base(), ['image', png, 'a.png'], ['mask', rgbaMask(4, 8, () => true), 'm.png']], 'invalid_mask', /4x8, the image 8x8/],
      [[...base(), ['image', png, 'a.png'], ['mask', rgbaMask(8, 8, () => false), 'm.png']], 'invalid_mask', /no fully transparent pixel/],
      [[...base(), ['image', png, 'a.png'], ['image', png, 'b.png']], 'invalid_value', /edits one image a request \(2 sent\)/],
      [[...base(), ['image', webp, 'a.webp']], 'invalid_image', /Imagen takes PNG or JPEG images, not image\/webp/],
      [[...base(), ['image', png, 'a.png'], ['n', '5']], 'invalid_n', /1 to 4 images/],
      [[...base(), ['image', png, 'a.png'], ['edit_mode', 'sketch']], 'invalid_value', /edit_mode: 'sketch' is not one of/],
      [[...base(), ['image', png, 'a.png'], ['edit_mode', 'outpaint']], 'invalid_value', /outpaint needs a mask/],
      [[...base(), ['image', png, 'a.png'], ['stream', 'true']], 'unsupported_value', /answer whole/],
      [[...base('imagen-4.0-generate-001'), ['image', png, 'a.png']], 'unsupported_value', /not served \(it makes images from a prompt\): edit with imagen-3.0-capability-001/],
      [[...base('gemini-2.5-flash-image'), ['image', png, 'a.png'], ['mask', rgbaMask(8, 8, () => true), 'm.png']], 'unsupported_value', /Gemini image models take no mask .* imagen-3.0-capability-001's, on a vertex channel/],
      [[...base('studio-edit'), ['image', png, 'a.png']], 'unsupported_value', /are Vertex AI's: route the model to a vertex channel/],
      [[...base('imagen-4.0-upscale-preview'), ['image', png, 'a.png'], ['n', '2']], 'invalid_n', /an upscale makes one image/],
      [[...base('imagen-4.0-upscale-preview'), ['image', empty, 'a.png']], 'invalid_image', /image: it is 0x0; an image to edit has pixels/],
      [[...base(), ['image', empty, 'a.png']], 'invalid_image', /image: it is 0x0/],
      [[...base(), ['image', empty, 'a.png'], ['mask', rgbaMask(8, 8, () => true), 'm.png']], 'invalid_mask', /it is 8x8, the image 0x0/],
    ]
    for (const [fields, code, message] of cases) {
      const response = await upload(user.key, fields)
      assert.equal(response.status, 400, String(message))
      const error = ((await response.json()) as any).error
      assert.include(error, { type: 'invalid_request_error', code }, String(message))
      assert.match(error.message, message)
    }
    // The capability model makes no image from a prompt alone
    const generation = await post('/v1/images/generations', { model: EDIT, prompt: 'a cat' }, auth(user.key))
    assert.equal(generation.status, 400)
    const error = ((await generation.json()) as any).error
    assert.include(error, { type: 'invalid_request_error', code: 'unsupported_value' })
    assert.match(error.message, /edits images: send it the image at \/v1\/images\/edits/)

    assert.equal(vertex.requests.length, before)
    assert.equal(google.requests.length, googleBefore)
    assert.equal((await balanceAndLedger(user.userId)).balance, usd(ONE_USD))
  })

  test("the Gemini-native :predict of the capability model relayed as sent, billed per image; gs:// sources and storageUri outputs refused before Vertex", async ({ assert }) => {
    const user = await seedUser({ balance: '1' })
    const edit = {
      instances: [
        {
          prompt: 'a red door',
          referenceImages: [
            { referenceType: 'REFERENCE_TYPE_RAW', referenceId: 1, referenceImage: { bytesBase64Encoded: PNG_1X1 } },
            { referenceType: 'REFERENCE_TYPE_MASK', referenceId: 2, maskImageConfig: { maskMode: 'MASK_MODE_BACKGROUND' } },
          ],
        },
      ],
      parameters: { editMode: 'EDIT_MODE_INPAINT_INSERTION', sampleCount: 2 },
    }
    const response = await post(`/v1beta/models/${EDIT}:predict`, edit, { 'x-goog-api-key': user.key })
    assert.equal(response.status, 200)
    assert.lengthOf(((await response.json()) as any).predictions, 2)
    assert.match(vertex.lastRequest().path, /models\/imagen-3.0-capability-001:predict$/)
    assert.deepEqual(sent(), edit)
    const [row] = await usageRows(user.userId)
    assert.include(row, { endpoint: 'gemini.predict', provider: 'vertex', images: 2, cost: usd(2n * IMAGEN_PICO) })

    const before = vertex.requests.length
    const gcs = structuredClone(edit) as any
    gcs.instances[0].referenceImages[0].referenceImage = { gcsUri: 'gs://operator-private/photo.png' }
    const stored = { ...edit, parameters: { ...edit.parameters, storageUri: 'gs://operator-bucket/out/' } }
    for (const [body, key] of [[gcs, 'gcsUri'], [stored, 'storageUri']] as const) {
      const refused = await post(`/v1beta/models/${EDIT}:predict`, body, { 'x-goog-api-key': user.key })
      assert.equal(refused.status, 400)
      const message = ((await refused.json()) as any).error.message
      assert.include(message, `${key}: Cloud Storage URIs (gs://) are not accepted`)
    }
    assert.equal(vertex.requests.length, before)
  })
})
