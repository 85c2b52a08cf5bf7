import { test } from '@japa/runner'
import { fieldValue, readMultipart, withLeadingField } from '#gateway/http/multipart'

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

  test('a field added in front: after the preamble, before the first part, every other byte as it was', ({ assert }) => {
    const parts = `--${B}\r\nContent-Disposition: form-data; name="image"; filename="--${B}.png"\r\n\r\nPNG\r\n--${B}--\r\n`
    // An empty preamble before a CRLF that opens the body: the CRLF is the first delimiter's (RFC 2046)
    for (const preamble of ['', 'ignored preamble\r\n', '\r\n']) {
      const body = Buffer.from(preamble + parts)
      const form = readMultipart(body, B)
      assert.equal(form.start, preamble.length)
      const added = withLeadingField(body, form, 'model', 'dall-e-2-upstream')
      assert.equal(added.toString(), `${preamble}--${B}\r\nContent-Disposition: form-data; name="model"\r\n\r\ndall-e-2-upstream\r\n${parts}`)
      const again = readMultipart(added, B)
      assert.deepEqual(again.parts.map((p) => p.name), ['model', 'image'])
      assert.equal(fieldValue(added, again, 'model'), 'dall-e-2-upstream')
    }
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
