import { test } from '@japa/runner'
import { GatewayError } from '#exceptions/gateway_error'
import { imageDimensions, imagenMaskOf } from '#gateway/image_masks'
import { grayPixels, pngFile, pngOf, rgbaMask } from '#tests/fixtures/image_files'

/**
 * OpenAI's edit mask (transparent = edit) made Imagen's (white = edit): every
 * PNG color type that can carry transparency, every row filter, and the
 * masks refused in words.
 */

/** The rows Imagen should get: 255 where `clear`, else 0 */
function expected(width: number, height: number, clear: (x: number, y: number) => boolean): number[][] {
  return Array.from({ length: height }, (_, y) => Array.from({ length: width }, (_, x) => (clear(x, y) ? 255 : 0)))
}

async function refusal(run: () => Promise<unknown>): Promise<GatewayError> {
  try {
    await run()
  } catch (error) {
    if (error instanceof GatewayError) return error
    throw error
  }
  throw new Error('expected a refusal')
}

test.group('Imagen masks from OpenAI masks', () => {
  test('RGBA, 8-bit, rows with each of the five filters: transparent pixels white, the rest black, a gray PNG the same size', async ({ assert }) => {
    const clear = (x: number, y: number) => (x + y) % 3 === 0 || (x > 5 && y < 4)
    const mask = rgbaMask(9, 7, clear, [0, 1, 2, 3, 4])
    const out = grayPixels(await imagenMaskOf(mask, { width: 9, height: 7 }))
    assert.include(out, { width: 9, height: 7, colorType: 0 })
    assert.deepEqual(out.rows, expected(9, 7, clear))
    // Past a slice of rows (the event loop let go between them)
    const tall = (x: number, y: number) => (x * 7 + y) % 5 === 0
    assert.deepEqual(grayPixels(await imagenMaskOf(rgbaMask(5, 600, tall, [4, 3, 2, 1, 0]), null)).rows, expected(5, 600, tall))
  })

  test('gray + alpha (8 and 16 bits), RGBA 16-bit, a palette with tRNS at 2 bits, RGB and gray with a transparent color key', async ({ assert }) => {
    const clear = (x: number, y: number) => x === y || x === 0
    const [w, h] = [6, 5]
    const rowsOf = (bytesPerPixel: number, write: (row: Buffer, x: number, transparent: boolean) => void) =>
      Array.from({ length: h }, (_, y) => {
        const row = Buffer.alloc(Math.ceil(w * bytesPerPixel))
        for (let x = 0; x < w; x++) write(row, x, clear(x, y))
        return row
      })
    const cases: Array<[string, Buffer]> = [
      ['LA 8', pngOf(w, h, 4, 8, rowsOf(2, (r, x, t) => ((r[x * 2] = 90 + x), (r[x * 2 + 1] = t ? 0 : 1))), { filters: [4, 1] })],
      ['LA 16', pngOf(w, h, 4, 16, rowsOf(4, (r, x, t) => (r.writeUInt16BE(1000, x * 4), r.writeUInt16BE(t ? 0 : 65535, x * 4 + 2))), { filters: [3] })],
      ['RGBA 16', pngOf(w, h, 6, 16, rowsOf(8, (r, x, t) => r.writeUInt16BE(t ? 0 : 256, x * 8 + 6)), { filters: [2, 4] })],
      [
        'palette 2-bit',
        // index 1 is transparent (tRNS: 255, 0), indices 2 and 3 opaque (no tRNS entry)
        pngOf(w, h, 3, 2, rowsOf(0.25, (r, x, t) => (r[x >> 2] |= (t ? 1 : 2 + (x & 1)) << (6 - 2 * (x & 3)))), {
          chunks: [['PLTE', Buffer.alloc(12, 7)], ['tRNS', Buffer.from([255, 0])]],
        }),
      ],
      ['RGB key', pngOf(w, h, 2, 8, rowsOf(3, (r, x, t) => r.fill(t ? 9 : 10 + x, x * 3, x * 3 + 3)), { chunks: [['tRNS', Buffer.from([0, 9, 0, 9, 0, 9])]], filters: [1] })],
      ['gray key 16', pngOf(w, h, 0, 16, rowsOf(2, (r, x, t) => r.writeUInt16BE(t ? 300 : 301 + x, x * 2)), { chunks: [['tRNS', Buffer.from([1, 44])]] })],
    ]
    for (const [name, mask] of cases) {
      assert.deepEqual(grayPixels(await imagenMaskOf(mask, null)).rows, expected(w, h, clear), name)
    }
  })

  test("masks refused as the client's 400 invalid_mask: not a PNG, no alpha, another size, nothing clear, interlaced, damaged", async ({ assert }) => {
    const gray = pngOf(4, 4, 0, 8, Array.from({ length: 4 }, () => Buffer.alloc(4, 128)))
    const opaque = rgbaMask(4, 4, () => false)
    // IDAT's bytes overwritten: no zlib stream
    const damaged = rgbaMask(4, 4, () => true)
    const idat = damaged.indexOf('IDAT')
    damaged.fill(1, idat + 4, idat + 4 + damaged.readUInt32BE(idat - 4))
    const cases: Array<[string, () => Promise<unknown>, RegExp]> = [
      ['not a PNG', () => imagenMaskOf(Buffer.from('GIF89a this is not a png at all.....'), null), /a PNG file is required/],
      ['no alpha', () => imagenMaskOf(gray, null), /alpha channel is required/],
      ['other size', () => imagenMaskOf(rgbaMask(4, 4, () => true), { width: 8, height: 4 }), /4x4, the image 8x4/],
      ['nothing clear', () => imagenMaskOf(opaque, null), /no fully transparent pixel/],
      ['interlaced', () => imagenMaskOf(pngOf(2, 2, 6, 8, [Buffer.alloc(8), Buffer.alloc(8)], { interlaced: true }), null), /interlaced/],
      ['too big', () => imagenMaskOf(pngOf(5000, 1, 4, 8, [Buffer.alloc(10000)]), null), /at most 4096 pixels a side/],
      ['damaged data', () => imagenMaskOf(damaged, null), /could not be read \(a damaged PNG\)/],
    ]
    for (const [name, run, message] of cases) {
      const error = await refusal(run)
      assert.equal(error.status, 400, name)
      assert.equal(error.code, 'invalid_mask', name)
      assert.match(error.message, message, name)
    }
  })

  test('image sizes from PNG and JPEG headers; other bytes: unknown', ({ assert }) => {
    assert.deepEqual(imageDimensions(pngFile(12)), { width: 12, height: 12 })
    // SOI, an APP0 segment, then a baseline frame header: 480 high, 640 wide
    const jpeg = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x04, 0x4a, 0x46, 0xff, 0xc0, 0x00, 0x0b, 0x08, 0x01, 0xe0, 0x02, 0x80, 0x01, 0x01, 0x11, 0x00])
    assert.deepEqual(imageDimensions(jpeg), { width: 640, height: 480 })
    assert.isNull(imageDimensions(Buffer.from('RIFF....WEBPVP8 ')))
  })
})
