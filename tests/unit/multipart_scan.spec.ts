import { test } from '@japa/runner'
import { MultipartError, readMultipart } from '#gateway/http/multipart'
import { MultipartScan } from '#gateway/http/multipart_scan'

/**
 * MultipartScan reads a form as it streams past (a streamed provider file
 * upload) and must tell what readMultipart tells of the whole body, however
 * the body is cut into chunks: a delimiter or a part's headers split between
 * two chunks (down to one byte a chunk), and refuse the same malformed forms.
 */
const B = 'xYz-boundary'

function form(parts: Array<{ name: string; filename?: string; content: string }>, options: { preamble?: string; lf?: boolean } = {}): Buffer {
  const eol = options.lf ? '\n' : '\r\n'
  let text = options.preamble === undefined ? '' : `${options.preamble}\r\n`
  for (const part of parts) {
    const file = part.filename === undefined ? '' : `; filename="${part.filename}"`
    text += `--${B}  ${eol}content-disposition: form-data; name="${part.name}"${file}${eol}content-type: text/plain${eol}${eol}${part.content}\r\n`
  }
  return Buffer.from(`${text}--${B}--\r\nepilogue`)
}

function scanned(body: Buffer, size: number, onPart?: (part: any) => void) {
  const scan = new MultipartScan(B, onPart)
  for (let i = 0; i < body.length; i += size) scan.push(body.subarray(i, i + size))
  scan.end()
  return scan.parts
}

test.group('MultipartScan', () => {
  test('the parts, their names and content lengths, as readMultipart finds them, for every chunk size', ({ assert }) => {
    // Contents that look like a delimiter's start, a CR LF, a dash: the scan must not stop on them.
    const bodies = [
      form([
        { name: 'purpose', content: 'user_data' },
        { name: 'file', filename: 'a.txt', content: `line one\r\n--${B.slice(0, 5)} not a delimiter\r\n-` },
        { name: 'empty', content: '' },
      ]),
      form([{ name: 'file', filename: 'b.bin', content: 'x'.repeat(5000) }], { preamble: 'a preamble nobody reads' }),
      form([{ name: 'file', filename: 'lf.txt', content: 'bare LF headers' }], { lf: true }),
      // An empty preamble: the body opens with the CRLF of the first delimiter, as some clients send it
      form([{ name: 'file', filename: 'crlf.txt', content: 'after a leading CRLF' }], { preamble: '' }),
    ]
    for (const body of bodies) {
      const whole = readMultipart(body, B).parts.map((p) => ({ name: p.name, filename: p.filename, contentType: p.contentType, bytes: p.bodyEnd - p.bodyStart }))
      for (const size of [1, 2, 3, 7, B.length + 1, B.length + 4, 64, 1000, body.length]) {
        assert.deepEqual(scanned(body, size), whole, `chunks of ${size}`)
      }
    }
  })

  test('each part is handed to the check as its headers are read; a check that throws stops the scan there', ({ assert }) => {
    const body = form([
      { name: 'file', filename: 'one', content: 'first' },
      { name: 'file', filename: 'two', content: 'second' },
    ])
    const seen: string[] = []
    const scan = new MultipartScan(B, (part) => {
      seen.push(part.filename ?? '')
      if (seen.length === 2) throw new Error('twice')
    })
    const second = body.indexOf('filename="two"')
    scan.push(body.subarray(0, second))
    assert.deepEqual(seen, ['one'])
    assert.throws(() => scan.push(body.subarray(second)), 'twice')
  })

  test('a part\'s headers sent a byte at a time are read in linear time (no search of all that was held, per byte)', ({ assert }) => {
    const body = Buffer.from(`--${B}\r\ncontent-disposition: form-data; name="file"; filename="f"\r\nx-pad: ${'p'.repeat(16_000)}\r\n\r\nabc\r\n--${B}--`)
    const started = performance.now()
    const parts = scanned(body, 1)
    assert.equal(parts[0].bytes, 3)
    assert.isBelow(performance.now() - started, 250)
  })

  test('malformed forms are refused as readMultipart refuses them', ({ assert }) => {
    const good = form([{ name: 'file', filename: 'f', content: 'abc' }])
    const cases: Array<[string, Buffer]> = [
      ['the body ends before its closing boundary', good.subarray(0, good.indexOf(`--${B}--`) - 2)],
      ['no part delimited', Buffer.from('no delimiter at all')],
      ['no form-data name', Buffer.from(`--${B}\r\ncontent-type: text/plain\r\n\r\nx\r\n--${B}--`)],
      ['not followed by a line break', Buffer.from(`--${B}garbage\r\n\r\n--${B}--`)],
      ['too many header bytes', Buffer.from(`--${B}\r\nx-pad: ${'p'.repeat(20_000)}\r\n\r\nx\r\n--${B}--`)],
      // A delimiter inside a part's headers: the scan read on to the next blank line, the second part's headers taken
      // for the first's (one file part to the gateway, two to the upstream).
      [
        'no blank line after its headers',
        Buffer.from(`--${B}\r\ncontent-disposition: form-data; name="file"; filename="a"\r\n--${B}\r\ncontent-disposition: form-data; name="file"; filename="b"\r\n\r\nx\r\n--${B}--`),
      ],
    ]
    for (const [message, body] of cases) {
      assert.throws(() => readMultipart(body, B), MultipartError, message)
      for (const size of [1, 5, 4096, body.length]) {
        assert.throws(() => scanned(body, size), MultipartError, message)
      }
    }
  })
})
