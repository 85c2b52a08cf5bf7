import zlib from 'node:zlib'
import { test } from '@japa/runner'
import { GatewayError } from '#exceptions/gateway_error'
import { imageDimensions, imagenMaskOf, MAX_CHUNKS } from '#gateway/image_masks'
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

/** A PNG chunk, its CRC right unless `badCrc` */
function chunk(type: string, data: Buffer, badCrc = false): Buffer {
  const head = Buffer.alloc(8)
  head.writeUInt32BE(data.length)
  head.write(type, 4, 'latin1')
  const crc = Buffer.alloc(4)
  crc.writeUInt32BE((zlib.crc32(data, zlib.crc32(head.subarray(4))) ^ (badCrc ? 1 : 0)) >>> 0)
  return Buffer.concat([head, data, crc])
}

function ihdr(width: number, height: number, depth: number, colorType: number, interlace = 0, badCrc = false): Buffer {
  const body = Buffer.alloc(13)
  body.writeUInt32BE(width, 0)
  body.writeUInt32BE(height, 4)
  body[8] = depth
  body[9] = colorType
  body[12] = interlace
  return chunk('IHDR', body, badCrc)
}

/** A PNG of these chunks (IEND added) */
function fileOf(chunks: Buffer[]): Buffer {
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), ...chunks, chunk('IEND', Buffer.alloc(0))])
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

  test('hostile masks refused as damaged, in words: header not first or twice, a bad header CRC, an unknown interlace, 0x0, a palette without PLTE, too many chunks, more data than the size, an unknown filter, JPEG and WEBP', async ({ assert }) => {
    // 4x4 RGBA, all clear
    const rows = zlib.deflateSync(Buffer.alloc(4 * 17))
    const idat = chunk('IDAT', rows)
    const cases: Array<[string, Buffer, RegExp]> = [
      ['data before the header', fileOf([idat, ihdr(4, 4, 8, 6)]), /first chunk, and only that one, must be the image header/],
      ['two headers', fileOf([ihdr(2, 2, 8, 6), ihdr(4, 4, 8, 6), idat]), /first chunk, and only that one/],
      ['header CRC', fileOf([ihdr(4, 4, 8, 6, 0, true), idat]), /IHDR chunk fails its CRC/],
      ['tRNS CRC', fileOf([ihdr(4, 4, 8, 0), chunk('tRNS', Buffer.from([0, 0]), true), idat]), /tRNS chunk fails its CRC/],
      ['interlace 2', fileOf([ihdr(4, 4, 8, 6, 2), idat]), /interlace method 2 is not PNG's/],
      ['0x0', fileOf([ihdr(0, 0, 8, 6), chunk('IDAT', zlib.deflateSync(Buffer.alloc(0)))]), /it is 0x0: a mask has pixels/],
      ['palette, no PLTE', fileOf([ihdr(4, 4, 8, 3), chunk('tRNS', Buffer.from([0])), chunk('IDAT', zlib.deflateSync(Buffer.alloc(4 * 5)))]), /without its palette \(PLTE\)/],
      ['too many chunks', fileOf([ihdr(4, 4, 8, 6), ...Array.from({ length: MAX_CHUNKS }, () => chunk('IDAT', Buffer.alloc(0))), idat]), /more than 65536 PNG chunks/],
      // A 1x1 header over 64 MB of data (a tiny file): refused at its second row, not inflated whole
      ['more data than its size', fileOf([ihdr(1, 1, 8, 6), chunk('IDAT', zlib.deflateSync(Buffer.alloc(64 * 1024 * 1024)))]), /image data is longer than its size says/],
      ['less data than its size', fileOf([ihdr(4, 5, 8, 6), idat]), /image data is shorter than its size says/],
      ['filter 9', fileOf([ihdr(4, 4, 8, 6), chunk('IDAT', zlib.deflateSync(Buffer.concat([Buffer.from([9]), Buffer.alloc(4 * 17 - 1)])))]), /row filter 9 is not PNG's/],
      ['truncated data', fileOf([ihdr(4, 4, 8, 6), chunk('IDAT', rows.subarray(0, rows.length - 6))]), /could not be read/],
      ['JPEG', Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), Buffer.alloc(40)]), /a PNG file is required/],
      ['WEBP', Buffer.concat([Buffer.from('RIFF'), Buffer.alloc(4), Buffer.from('WEBPVP8 '), Buffer.alloc(30)]), /a PNG file is required/],
    ]
    for (const [name, mask, message] of cases) {
      const error = await refusal(() => imagenMaskOf(mask, null))
      assert.equal(error.code, 'invalid_mask', name)
      assert.match(error.message, message, name)
    }
    // Still read: the data split into a chunk a byte, an unknown chunk whose length runs past the end (a truncated tail)
    const split = Array.from(rows, (byte) => chunk('IDAT', Buffer.from([byte])))
    assert.lengthOf(grayPixels(await imagenMaskOf(fileOf([ihdr(4, 4, 8, 6), ...split]), null)).rows, 4)
    const tail = Buffer.concat([fileOf([ihdr(4, 4, 8, 6), idat]).subarray(0, -12), Buffer.from([0x7f, 0xff, 0xff, 0xff]), Buffer.from('tEXt'), Buffer.alloc(20)])
    assert.lengthOf(grayPixels(await imagenMaskOf(tail, null)).rows, 4)
  })

  test('a 4096x4096 16-bit RGBA mask (a 130 KB file, 134 MB of rows) is read a piece at a time: memory stays far under its rows', async ({ assert }) => {
    const side = 4096
    const file = fileOf([ihdr(side, side, 16, 6), chunk('IDAT', zlib.deflateSync(Buffer.alloc(side * (side * 8 + 1)), { level: 9 }))])
    assert.isBelow(file.length, 200_000)
    const before = process.memoryUsage().arrayBuffers
    let peak = before
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().arrayBuffers)), 10)
    try {
      const out = grayPixels(await imagenMaskOf(file, { width: side, height: side }))
      assert.include(out, { width: side, height: side })
      assert.isTrue(out.rows[side - 1].every((v) => v === 255))
    } finally {
      clearInterval(sampler)
    }
    // Inflated whole it held 134 MB (and a copy); a piece at a time, some MB (the gray PNG's rows as they are deflated)
    assert.isBelow(peak - before, 48 * 1024 * 1024)
  }).timeout(60_000)

  test('the client gone (its signal aborted) stops the decode: the abort, not a 400', async ({ assert }) => {
    const side = 2048
    const file = fileOf([ihdr(side, side, 8, 6), chunk('IDAT', zlib.deflateSync(Buffer.alloc(side * (side * 4 + 1))))])
    const controller = new AbortController()
    const decode = imagenMaskOf(file, null, controller.signal)
    setImmediate(() => controller.abort())
    const error = await decode.then(
      () => null,
      (e) => e
    )
    assert.instanceOf(error, Error)
    assert.notInstanceOf(error, GatewayError)
    assert.equal(error.name, 'AbortError')
  })

  test('image sizes from PNG and JPEG headers; other bytes: unknown', ({ assert }) => {
    assert.deepEqual(imageDimensions(pngFile(12)), { width: 12, height: 12 })
    // SOI, an APP0 segment, then a baseline frame header: 480 high, 640 wide
    const jpeg = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x04, 0x4a, 0x46, 0xff, 0xc0, 0x00, 0x0b, 0x08, 0x01, 0xe0, 0x02, 0x80, 0x01, 0x01, 0x11, 0x00])
    assert.deepEqual(imageDimensions(jpeg), { width: 640, height: 480 })
    assert.isNull(imageDimensions(Buffer.from('RIFF....WEBPVP8 ')))
  })
})
