import { test } from '@japa/runner'
import { boundaryOf, fieldValue, MultipartError, partNamed, readMultipart, replacePartContent } from '#gateway/http/multipart'
import { audioDurationMs, mp3DurationMs, mp3FrameAt, wavDurationMs } from '#gateway/audio/audio_duration'
import { mp3File, mp3Ms, wavFile } from '#tests/fixtures/audio_files'

/** A form as clients write it: CRLF everywhere, a file part with binary bytes containing CR, LF and dashes. */
function form(boundary: string, fields: Array<[string, string | Buffer, string?]>, preamble = ''): Buffer {
  const chunks: Buffer[] = [Buffer.from(preamble)]
  for (const [name, value, filename] of fields) {
    const disposition = filename ? `form-data; name="${name}"; filename="${filename}"` : `form-data; name="${name}"`
    const type = filename ? '\r\nContent-Type: audio/wav' : ''
    chunks.push(Buffer.from(`--${boundary}\r\nContent-Disposition: ${disposition}${type}\r\n\r\n`), Buffer.from(value), Buffer.from('\r\n'))
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`))
  return Buffer.concat(chunks)
}

test.group('multipart reader', () => {
  test('boundary from the content type, quoted or not, any case', ({ assert }) => {
    assert.equal(boundaryOf('multipart/form-data; boundary=abc123'), 'abc123')
    assert.equal(boundaryOf('Multipart/Form-Data; charset=utf-8; BOUNDARY="a b;c"'), 'a b;c')
    assert.equal(boundaryOf('multipart/form-data;boundary=----WebKitFormBoundaryX'), '----WebKitFormBoundaryX')
    assert.isNull(boundaryOf('application/json'))
    assert.isNull(boundaryOf('multipart/form-data'))
    assert.isNull(boundaryOf('multipart/form-data; boundary=""'))
    assert.isNull(boundaryOf(undefined))
  })

  test('finds fields and the file, whose bytes hold CRLF and dashes', ({ assert }) => {
    const audio = Buffer.from('RIFF\r\n--not-the-boundary\r\n\r\n\x00\xff', 'latin1')
    const body = form('XyZ', [['model', 'whisper-1'], ['file', audio, 'a.wav'], ['response_format', 'text']], 'preamble\r\n')
    const parsed = readMultipart(body, 'XyZ')
    assert.deepEqual(parsed.parts.map((p) => [p.name, p.filename, p.contentType]), [
      ['model', null, null],
      ['file', 'a.wav', 'audio/wav'],
      ['response_format', null, null],
    ])
    assert.equal(fieldValue(body, parsed, 'model'), 'whisper-1')
    assert.equal(fieldValue(body, parsed, 'response_format'), 'text')
    assert.isUndefined(fieldValue(body, parsed, 'file'))
    const file = partNamed(parsed, 'file')!
    assert.isTrue(body.subarray(file.bodyStart, file.bodyEnd).equals(audio))
  })

  test('an empty value, a bare-LF part header and padding after the boundary', ({ assert }) => {
    const body = Buffer.from('--b  \r\nContent-Disposition: form-data; name="prompt"\n\n\r\n--b\r\ncontent-disposition: form-data; name=language\r\n\r\nen\r\n--b--')
    const parsed = readMultipart(body, 'b')
    assert.equal(fieldValue(body, parsed, 'prompt'), '')
    assert.equal(fieldValue(body, parsed, 'language'), 'en')
  })

  test('replacing a part changes its content only', ({ assert }) => {
    const audio = Buffer.from([0, 1, 2, 13, 10, 255])
    const body = form('q', [['file', audio, 'x.mp3'], ['model', 'alias'], ['timestamp_granularities[]', 'word']])
    const parsed = readMultipart(body, 'q')
    const rebuilt = replacePartContent(body, partNamed(parsed, 'model')!, 'upstream-model-name')
    assert.equal(rebuilt.toString('latin1'), body.toString('latin1').replace('\r\n\r\nalias\r\n', '\r\n\r\nupstream-model-name\r\n'))
    const again = readMultipart(rebuilt, 'q')
    assert.equal(fieldValue(rebuilt, again, 'model'), 'upstream-model-name')
    assert.equal(fieldValue(rebuilt, again, 'timestamp_granularities[]'), 'word')
  })

  test('malformed bodies are refused', ({ assert }) => {
    const truncated = form('b', [['model', 'm']]).subarray(0, 40)
    assert.throws(() => readMultipart(truncated, 'b'), MultipartError)
    assert.throws(() => readMultipart(Buffer.from('{"model":"x"}'), 'b'), MultipartError)
    assert.throws(() => readMultipart(Buffer.from('--b\r\nX-Other: 1\r\n\r\nv\r\n--b--'), 'b'), /no form-data name/)
    assert.throws(() => readMultipart(Buffer.from('--b\r\nContent-Disposition: form-data; name="a"\r\nv\r\n--b--'), 'b'), /blank line/)
  })
})

test.group('audio durations', () => {
  test('WAV from its header, with an odd-sized chunk before the data', ({ assert }) => {
    assert.equal(wavDurationMs(wavFile(2500)), 2500)
    assert.equal(wavDurationMs(wavFile(1234, 8000, true)), 1234)
    assert.equal(audioDurationMs(wavFile(750, 44_100)), 750)
    assert.isNull(wavDurationMs(Buffer.from('RIFF0000AVI LIST')))
  })

  test('a streamed WAV (data size unknown) counts the bytes sent', ({ assert }) => {
    const file = wavFile(1000)
    const dataAt = file.indexOf('data') + 4
    file.writeUInt32LE(0xffffffff, dataAt)
    assert.equal(wavDurationMs(file), 1000)
  })

  test('MP3 frame headers', ({ assert }) => {
    assert.deepEqual(mp3FrameAt(Buffer.from([0xff, 0xfb, 0x90, 0x44]), 0), { length: 417, samples: 1152, sampleRate: 44_100 })
    assert.deepEqual(mp3FrameAt(Buffer.from([0xff, 0xfb, 0x92, 0x44]), 0), { length: 418, samples: 1152, sampleRate: 44_100 })
    // MPEG-2 Layer III, 64 kbps, 24 kHz: 576 samples, 72 * 64000 / 24000 = 192 bytes
    assert.deepEqual(mp3FrameAt(Buffer.from([0xff, 0xf3, 0x84, 0x44]), 0), { length: 192, samples: 576, sampleRate: 24_000 })
    assert.isNull(mp3FrameAt(Buffer.from([0xff, 0xfb, 0xf0, 0x44]), 0), 'bad bitrate')
    assert.isNull(mp3FrameAt(Buffer.from([0xff, 0xfb, 0x9c, 0x44]), 0), 'reserved sample rate')
    assert.isNull(mp3FrameAt(Buffer.from([0xff, 0xeb, 0x90, 0x44]), 0), 'reserved version')
  })

  test('MP3 by walking frames: ID3v2 (with a fake sync inside), ID3v1 at the end, a cut last frame', ({ assert }) => {
    assert.equal(mp3DurationMs(mp3File(100)), mp3Ms(100))
    assert.equal(mp3DurationMs(mp3File(383, { id3: true, id3v1: true })), mp3Ms(383))
    const cut = mp3File(10)
    assert.equal(mp3DurationMs(cut.subarray(0, cut.length - 209)), Math.round(((9.5 * 1152) / 44_100) * 1000))
    assert.equal(audioDurationMs(mp3File(50)), mp3Ms(50))
  })

  test('other formats are not guessed', ({ assert }) => {
    assert.isNull(audioDurationMs(Buffer.from('OggS\0\x02 some ogg')))
    assert.isNull(audioDurationMs(Buffer.from([0, 0, 0, 0x20, 0x66, 0x74, 0x79, 0x70])))
    assert.isNull(audioDurationMs(Buffer.alloc(0)))
  })
})
