import { once } from 'node:events'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import zlib from 'node:zlib'
import { GatewayError } from '#exceptions/gateway_error'

/**
 * OpenAI's edit mask as Imagen's. OpenAI's `mask` is a PNG the size of the
 * image whose fully transparent pixels (alpha 0) mark where to edit;
 * Imagen's `REFERENCE_TYPE_MASK` marks them by non-zero values (white on
 * black), so the same file sent as it is would edit everything but the
 * area asked. The mask is decoded here (node:zlib, no image library: only
 * the alpha of each pixel is read) and written again as an 8-bit grayscale
 * PNG, 255 where the client's was transparent, 0 elsewhere.
 *
 * Only an Imagen edit with a mask pays this (once per request, whatever the
 * candidates). The rows stream: inflated off the event loop a piece at a
 * time, each row unfiltered as it completes, the gray rows deflated as they
 * come, so a request holds two rows and zlib's windows, not the image: a
 * 130 KB file can declare 4096x4096 16-bit RGBA, 134 MB inflated (it held
 * that, twice over, when the data was inflated whole). The loop is let go
 * every BYTES_A_SLICE of rows (a few ms of Paeth) and the decode stops when
 * the client leaves (`signal`). Bounded by MAX_SIDE a side, MAX_CHUNKS
 * chunks (the walk over them is synchronous) and the exact size the header
 * promises (more data, or less, is a damaged PNG).
 */

/** Pixels a side of a mask read (Imagen edits images of a few megapixels) */
export const MAX_SIDE = 4096

/** Filtered bytes unfiltered before the event loop is let go (Paeth, the slowest filter, ~30 µs a KB on a loaded 2-core box: ~8 ms) */
const BYTES_A_SLICE = 64 * 1024

/**
 * Chunks a mask may have: encoders write IDAT in pieces of 8 KB (libpng) to
 * a few hundred KB, so a 50 MB upload has some thousands; 4 million empty
 * ones (48 MB) held the event loop 650 ms in the walk.
 */
export const MAX_CHUNKS = 65_536

/** Inflated bytes a piece (zlib's default is 16 KB: more pieces, more turns of the loop) */
const INFLATE_CHUNK = 64 * 1024
const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])

export interface Dimensions {
  width: number
  height: number
}

/** A PNG's or JPEG's width and height from its header, or null (another format, a truncated file). */
export function imageDimensions(bytes: Buffer): Dimensions | null {
  if (bytes.length >= 24 && bytes.subarray(0, 8).equals(SIGNATURE) && bytes.toString('latin1', 12, 16) === 'IHDR') {
    return { width: bytes.readUInt32BE(16), height: bytes.readUInt32BE(20) }
  }
  if (bytes.length >= 4 && bytes[0] === 0xff && bytes[1] === 0xd8) return jpegDimensions(bytes)
  return null
}

/** The first start-of-frame marker's size (SOF0 to SOF15 but DHT, JPG and DAC), walking the segments from SOI. */
function jpegDimensions(bytes: Buffer): Dimensions | null {
  let at = 2
  while (at + 9 < bytes.length) {
    if (bytes[at] !== 0xff) return null
    const marker = bytes[at + 1]
    // Fill bytes, and the markers without a length (RSTn, TEM)
    if (marker === 0xff) {
      at++
      continue
    }
    if ((marker >= 0xd0 && marker <= 0xd7) || marker === 0x01) {
      at += 2
      continue
    }
    const length = bytes.readUInt16BE(at + 2)
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      return { width: bytes.readUInt16BE(at + 7), height: bytes.readUInt16BE(at + 5) }
    }
    at += 2 + length
  }
  return null
}

function badMask(message: string): GatewayError {
  return GatewayError.invalidRequest(`mask: ${message}`, 'invalid_mask', 'mask')
}

interface PngHeader extends Dimensions {
  depth: number
  colorType: number
  interlaced: boolean
}

/**
 * Imagen's mask (a grayscale PNG, white where to edit) of OpenAI's `mask`;
 * a mask that is no PNG, has no alpha (no transparency at all), is not the
 * image's size or marks nothing to edit is the client's 400 `invalid_mask`.
 * `signal` (the client gone) stops the decode: it rejects with the abort.
 */
export async function imagenMaskOf(mask: Buffer, image: Dimensions | null, signal?: AbortSignal): Promise<Buffer> {
  const { header, data, palette, transparency } = readChunks(mask)
  if (header.interlaced) throw badMask('an interlaced PNG is not read; save the mask without interlacing')
  if (header.width > MAX_SIDE || header.height > MAX_SIDE) throw badMask(`at most ${MAX_SIDE} pixels a side`)
  if (image !== null && (image.width !== header.width || image.height !== header.height)) {
    throw badMask(`it is ${header.width}x${header.height}, the image ${image.width}x${image.height}: they must be the same size`)
  }
  const hasAlpha = header.colorType === 4 || header.colorType === 6 || transparency !== null
  if (!hasAlpha) throw badMask('a PNG with an alpha channel is required: its fully transparent pixels mark where to edit')
  const channels = CHANNELS[header.colorType]
  const bitsPerPixel = channels * header.depth
  const stride = Math.ceil((header.width * bitsPerPixel) / 8)
  const line = stride + 1
  const { width, height } = header
  const bpp = Math.max(1, bitsPerPixel >> 3)
  const isTransparent = transparencyTest(header, palette, transparency)
  const rgba8 = header.colorType === 6 && header.depth === 8

  let previous = Buffer.alloc(stride)
  let row = Buffer.alloc(stride)
  /** A row split between two inflated pieces, joined here */
  const partial = Buffer.alloc(line)
  let filled = 0
  let y = 0
  let transparent = 0
  let sliced = 0

  const gray = zlib.createDeflate()
  const deflated: Buffer[] = []
  gray.on('data', (piece: Buffer) => deflated.push(piece))
  const grayEnded = once(gray, 'end')
  // Rejected (the decode refused or aborted) with nobody left to await it: no unhandled rejection
  grayEnded.catch(() => {})

  /** One filtered row (its filter byte first): unfiltered, its transparent pixels written white in `out` (the gray row, filter 0 first) */
  const readRow = (filtered: Buffer, out: Buffer, outStart: number) => {
    if (y === height) throw badMask('its image data is longer than its size says (a damaged PNG)')
    unfilter(filtered[0], filtered.subarray(1), previous, row, bpp)
    const start = outStart + 1
    if (rgba8) {
      // OpenAI's usual mask, RGBA: its alpha bytes read straight
      for (let x = 0, a = 3; x < width; x++, a += 4) {
        if (row[a] === 0) {
          out[start + x] = 255
          transparent++
        }
      }
    } else {
      for (let x = 0; x < width; x++) {
        if (isTransparent(row, x)) {
          out[start + x] = 255
          transparent++
        }
      }
    }
    const used = previous
    previous = row
    row = used
    y++
  }

  try {
    await pipeline(Readable.from(data), zlib.createInflate({ chunkSize: INFLATE_CHUNK }), async (inflated: AsyncIterable<Buffer>) => {
      for await (const piece of inflated) {
        // The gray rows this piece completes
        const out = Buffer.alloc(Math.floor((filled + piece.length) / line) * (width + 1))
        let written = 0
        for (let at = 0; at < piece.length; ) {
          if (filled === 0 && piece.length - at >= line) {
            readRow(piece.subarray(at, at + line), out, written)
            written += width + 1
            at += line
          } else {
            const take = Math.min(line - filled, piece.length - at)
            piece.copy(partial, filled, at, at + take)
            filled += take
            at += take
            if (filled === line) {
              readRow(partial, out, written)
              written += width + 1
              filled = 0
            }
          }
        }
        if (out.length > 0 && !gray.write(out)) await once(gray, 'drain', { signal })
        // Other requests run between slices
        sliced += piece.length
        if (sliced >= BYTES_A_SLICE) {
          sliced = 0
          await new Promise((resolve) => setImmediate(resolve))
        }
      }
    }, { signal })
  } catch (error) {
    gray.destroy()
    if (error instanceof GatewayError || signal?.aborted) throw error
    throw badMask('its image data could not be read (a damaged PNG)')
  }
  if (y < height || filled > 0) {
    gray.destroy()
    throw badMask(`its image data is ${y < height ? 'shorter' : 'longer'} than its size says (a damaged PNG)`)
  }
  gray.end()
  await grayEnded
  if (transparent === 0) throw badMask('it has no fully transparent pixel, so nothing would be edited (transparent marks where to edit)')
  return png(width, height, Buffer.concat(deflated))
}

/** Samples a pixel of each PNG color type: gray, -, RGB, palette, gray + alpha, -, RGBA */
const CHANNELS: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 }
const DEPTHS: Record<number, number[]> = { 0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16] }

/**
 * The header, the IDAT chunks, the palette's size and its alpha (tRNS) or the
 * transparent color key; a bad file: 400. IHDR first and once, as PNG has
 * it; the CRCs of the small chunks read (IHDR, PLTE, tRNS) checked (IDAT's
 * data is checked by zlib's own Adler-32 as it inflates).
 */
function readChunks(bytes: Buffer): { header: PngHeader; data: Buffer[]; palette: number; transparency: Buffer | null } {
  if (bytes.length < 33 || !bytes.subarray(0, 8).equals(SIGNATURE)) throw badMask('a PNG file is required')
  let header: PngHeader | null = null
  const data: Buffer[] = []
  let transparency: Buffer | null = null
  let palette = -1
  let at = 8
  let chunks = 0
  while (at + 8 <= bytes.length) {
    if (++chunks > MAX_CHUNKS) throw badMask(`more than ${MAX_CHUNKS} PNG chunks (a damaged PNG)`)
    const length = bytes.readUInt32BE(at)
    const type = bytes.toString('latin1', at + 4, at + 8)
    const body = bytes.subarray(at + 8, at + 8 + length)
    if (body.length < length) break
    if ((chunks === 1) !== (type === 'IHDR')) throw badMask('its first chunk, and only that one, must be the image header IHDR (a damaged PNG)')
    if (type === 'IHDR' || type === 'PLTE' || type === 'tRNS') {
      if (at + 12 + length > bytes.length || zlib.crc32(bytes.subarray(at + 4, at + 8 + length)) !== bytes.readUInt32BE(at + 8 + length)) {
        throw badMask(`its ${type} chunk fails its CRC (a damaged PNG)`)
      }
    }
    if (type === 'IHDR') {
      if (length !== 13) throw badMask('its image header is not 13 bytes (a damaged PNG)')
      if (body[12] > 1) throw badMask(`interlace method ${body[12]} is not PNG's (a damaged PNG)`)
      header = { width: body.readUInt32BE(0), height: body.readUInt32BE(4), depth: body[8], colorType: body[9], interlaced: body[12] === 1 }
    } else if (type === 'PLTE') palette = Math.floor(length / 3)
    else if (type === 'tRNS') transparency = body
    else if (type === 'IDAT') data.push(body)
    else if (type === 'IEND') break
    at += 12 + length
  }
  if (header === null || data.length === 0) throw badMask('a PNG file is required (no image header or data found)')
  if (header.width < 1 || header.height < 1) throw badMask(`it is ${header.width}x${header.height}: a mask has pixels`)
  if (!(DEPTHS[header.colorType] ?? []).includes(header.depth)) {
    throw badMask(`a PNG of color type ${header.colorType} and bit depth ${header.depth} is not read`)
  }
  if (header.colorType === 3 && palette < 1) throw badMask('a palette PNG without its palette (PLTE) (a damaged PNG)')
  return { header, data, palette, transparency }
}

/** Whether pixel x of an unfiltered row is fully transparent, by its color type */
function transparencyTest(header: PngHeader, palette: number, tRNS: Buffer | null): (row: Buffer, x: number) => boolean {
  const wide = header.depth === 16
  switch (header.colorType) {
    case 6:
      return wide ? (row, x) => row.readUInt16BE(x * 8 + 6) === 0 : (row, x) => row[x * 4 + 3] === 0
    case 4:
      return wide ? (row, x) => row.readUInt16BE(x * 4 + 2) === 0 : (row, x) => row[x * 2 + 1] === 0
    case 3: {
      // tRNS holds the first entries' alpha; the others are opaque
      const alpha = tRNS!
      return (row, x) => {
        const index = sample(row, x, header.depth)
        return index < alpha.length && index < palette && alpha[index] === 0
      }
    }
    case 0: {
      const key = tRNS!.length >= 2 ? tRNS!.readUInt16BE(0) : -1
      return (row, x) => (wide ? row.readUInt16BE(x * 2) : sample(row, x, header.depth)) === key
    }
    default: {
      // RGB with one color keyed transparent
      if (tRNS!.length < 6) return () => false
      const [r, g, b] = [tRNS!.readUInt16BE(0), tRNS!.readUInt16BE(2), tRNS!.readUInt16BE(4)]
      return wide
        ? (row, x) => row.readUInt16BE(x * 6) === r && row.readUInt16BE(x * 6 + 2) === g && row.readUInt16BE(x * 6 + 4) === b
        : (row, x) => row[x * 3] === r && row[x * 3 + 1] === g && row[x * 3 + 2] === b
    }
  }
}

/** A sample of 1 to 8 bits, most significant first */
function sample(row: Buffer, x: number, depth: number): number {
  if (depth === 8) return row[x]
  const bit = x * depth
  return (row[bit >> 3] >> (8 - depth - (bit & 7))) & ((1 << depth) - 1)
}

/** Undoes a row's PNG filter (None, Sub, Up, Average, Paeth) into `out`: a loop per filter, no branch per byte */
function unfilter(filter: number, line: Uint8Array, previous: Uint8Array, out: Uint8Array, bpp: number) {
  const length = line.length
  switch (filter) {
    case 0:
      out.set(line)
      return
    case 1:
      for (let i = 0; i < length; i++) out[i] = (line[i] + (i >= bpp ? out[i - bpp] : 0)) & 0xff
      return
    case 2:
      for (let i = 0; i < length; i++) out[i] = (line[i] + previous[i]) & 0xff
      return
    case 3:
      for (let i = 0; i < length; i++) out[i] = (line[i] + (((i >= bpp ? out[i - bpp] : 0) + previous[i]) >> 1)) & 0xff
      return
    case 4:
      for (let i = 0; i < length; i++) {
        const left = i >= bpp ? out[i - bpp] : 0
        const up = previous[i]
        const upLeft = i >= bpp ? previous[i - bpp] : 0
        const pa = up > upLeft ? up - upLeft : upLeft - up
        const pb = left > upLeft ? left - upLeft : upLeft - left
        const pc = left + up > 2 * upLeft ? left + up - 2 * upLeft : 2 * upLeft - left - up
        out[i] = (line[i] + (pa <= pb && pa <= pc ? left : pb <= pc ? up : upLeft)) & 0xff
      }
      return
    default:
      throw badMask(`row filter ${filter} is not PNG's (a damaged PNG)`)
  }
}

/** An 8-bit grayscale PNG of the deflated rows (each with filter byte 0) */
function png(width: number, height: number, idat: Buffer): Buffer {
  const header = Buffer.alloc(13)
  header.writeUInt32BE(width, 0)
  header.writeUInt32BE(height, 4)
  header[8] = 8
  header[9] = 0
  return Buffer.concat([SIGNATURE, chunk('IHDR', header), chunk('IDAT', idat), chunk('IEND', Buffer.alloc(0))])
}

function chunk(type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8)
  head.writeUInt32BE(data.length, 0)
  head.write(type, 4, 'latin1')
  const crc = Buffer.alloc(4)
  crc.writeUInt32BE(zlib.crc32(data, zlib.crc32(head.subarray(4))))
  return Buffer.concat([head, data, crc])
}
