import { test } from '@japa/runner'
import { readMultipart } from '#gateway/http/multipart'

const B = 'XyZ'

test.group('readMultipart', () => {
  test('parts with CRLF and bare-LF headers are found, content offsets exact', ({ assert }) => {
    const body = Buffer.from(
      `--${B}\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper-1` +
        `\r\n--${B}\nContent-Disposition: form-data; name="file"; filename="a.mp3"\nContent-Type: audio/mpeg\n\nBYTES` +
        `\r\n--${B}--\r\n`
    )
    const form = readMultipart(body, B)
    assert.deepEqual(
      form.parts.map((p) => [p.name, p.filename, p.contentType, body.toString('utf8', p.bodyStart, p.bodyEnd)]),
      [
        ['model', null, null, 'whisper-1'],
        ['file', 'a.mp3', 'audio/mpeg', 'BYTES'],
      ]
    )
  })

  test('a part whose blank line comes only in a later part is refused, not matched across parts', ({ assert }) => {
    const body = Buffer.from(
      `--${B}\r\nContent-Disposition: form-data; name="model"\r\nwhisper-1` +
        `\r\n--${B}\r\nContent-Disposition: form-data; name="x"\r\n\r\nv\r\n--${B}--`
    )
    assert.throws(() => readMultipart(body, B), 'a part has no blank line after its headers')
  })

  test('headers past 16 KB are refused as such', ({ assert }) => {
    const body = Buffer.from(`--${B}\r\nContent-Disposition: form-data; name="model"\r\nX-Pad: ${'p'.repeat(17 * 1024)}\r\n\r\nv\r\n--${B}--`)
    assert.throws(() => readMultipart(body, B), 'a part has too many header bytes')
  })
})
