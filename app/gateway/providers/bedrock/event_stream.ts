import { crc32 } from 'node:zlib'

/**
 * AWS's event stream (`application/vnd.amazon.eventstream`), the framing of
 * Bedrock's InvokeModelWithResponseStream: each message is
 *
 *   total length (u32 BE) | headers length (u32 BE) | prelude CRC32 (u32 BE)
 *   headers | payload | message CRC32 (u32 BE, over everything before it)
 *
 * and each header `name length (u8) | name | type (u8) | value`. Decoded
 * incrementally: only the part of a message not yet complete is kept
 * between chunks, never the stream. Its chunks are kept as they came and
 * joined once the message's length has arrived: joined on every chunk, a
 * 16 MB message trickled in 16 KB chunks copied 8 GB (12 s of the event
 * loop, every other request stalled), in 1 KB chunks minutes.
 */

export interface EventMessage {
  headers: Record<string, string | number | boolean | Buffer>
  payload: Buffer
}

export class EventStreamError extends Error {
  constructor(message: string) {
    super(`Bedrock event stream: ${message}`)
    this.name = 'EventStreamError'
  }
}

const PRELUDE = 12
/** Bigger than any answer event (AWS's own limit is 16 MB a message) */
const MAX_MESSAGE = 16 * 1024 * 1024
const NONE: EventMessage[] = []

export class EventStreamDecoder {
  /** The chunks (or the tail of one) holding the message not yet complete */
  #parts: Buffer[] = []
  #held = 0
  /** Bytes the message needs before it is read: its prelude, then its length (once the prelude is checked) */
  #need = PRELUDE

  /** The messages completed by this chunk (usually one, sometimes none or several). */
  push(chunk: Buffer): EventMessage[] {
    if (chunk.length === 0) return NONE
    if (this.#held + chunk.length < this.#need) {
      // A copy when the chunk is a small view into a larger read (which it would keep alive).
      this.#parts.push(chunk.length * 2 < chunk.buffer.byteLength ? Buffer.from(chunk) : chunk)
      this.#held += chunk.length
      return NONE
    }
    // The usual chunk (whole messages, nothing held) is read in place, with no array or copy made for it.
    let data = this.#held === 0 ? chunk : Buffer.concat([...this.#parts, chunk], this.#held + chunk.length)
    if (this.#held > 0) {
      this.#parts.length = 0
      this.#held = 0
    }
    this.#need = PRELUDE
    let messages = NONE
    while (data.length >= PRELUDE) {
      const total = data.readUInt32BE(0)
      const headersLength = data.readUInt32BE(4)
      if (crc32(data.subarray(0, 8)) !== data.readUInt32BE(8)) throw new EventStreamError('prelude checksum mismatch')
      if (total > MAX_MESSAGE || total < PRELUDE + 4 + headersLength) throw new EventStreamError(`bad message length ${total}`)
      if (data.length < total) {
        this.#need = total
        break
      }
      if (crc32(data.subarray(0, total - 4)) !== data.readUInt32BE(total - 4)) throw new EventStreamError('message checksum mismatch')
      if (messages === NONE) messages = []
      messages.push({
        headers: readHeaders(data.subarray(PRELUDE, PRELUDE + headersLength)),
        // A copy: the chunk it came in is not held for it.
        payload: Buffer.from(data.subarray(PRELUDE + headersLength, total - 4)),
      })
      data = data.subarray(total)
    }
    if (data.length > 0) {
      // A copy of the unfinished tail (not the whole chunk it is in).
      this.#parts.push(Buffer.from(data))
      this.#held = data.length
    }
    return messages
  }

  /** Bytes of an unfinished message are left (the stream was cut inside one) */
  get pending(): boolean {
    return this.#held > 0
  }

  /** The body ended: throws when it ended inside a message (a cut stream is no complete answer). */
  end(): void {
    if (this.#held > 0) throw new EventStreamError(`the stream ended inside a message (${this.#held} bytes of it)`)
  }
}

function readHeaders(bytes: Buffer): EventMessage['headers'] {
  const headers: EventMessage['headers'] = {}
  let at = 0
  const need = (n: number) => {
    if (at + n > bytes.length) throw new EventStreamError('header runs past its message')
  }
  while (at < bytes.length) {
    need(1)
    const nameLength = bytes[at++]
    need(nameLength + 1)
    const name = bytes.toString('utf8', at, at + nameLength)
    at += nameLength
    const type = bytes[at++]
    switch (type) {
      case 0:
      case 1:
        headers[name] = type === 0
        break
      case 2:
        need(1)
        headers[name] = bytes.readInt8(at)
        at += 1
        break
      case 3:
        need(2)
        headers[name] = bytes.readInt16BE(at)
        at += 2
        break
      case 4:
        need(4)
        headers[name] = bytes.readInt32BE(at)
        at += 4
        break
      case 5:
      case 8:
        need(8)
        headers[name] = Number(bytes.readBigInt64BE(at))
        at += 8
        break
      case 6:
      case 7: {
        need(2)
        const length = bytes.readUInt16BE(at)
        at += 2
        need(length)
        headers[name] = type === 7 ? bytes.toString('utf8', at, at + length) : Buffer.from(bytes.subarray(at, at + length))
        at += length
        break
      }
      case 9:
        need(16)
        headers[name] = bytes.toString('hex', at, at + 16)
        at += 16
        break
      default:
        throw new EventStreamError(`unknown header type ${type}`)
    }
  }
  return headers
}
