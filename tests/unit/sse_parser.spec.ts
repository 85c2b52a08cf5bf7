import { test } from '@japa/runner'
import { SseParser } from '#gateway/sse/sse_parser'

test.group('SseParser', () => {
  test('events split at every possible byte boundary parse the same', ({ assert }) => {
    const text = 'event: a\r\ndata: {"x":"é"}\r\n\r\n: comment\n\ndata: line1\ndata: line2\n\ndata: [DONE]\r\r'
    const bytes = Buffer.from(text)
    for (let cut = 0; cut <= bytes.length; cut++) {
      const parser = new SseParser()
      const events = [...parser.push(bytes.subarray(0, cut)), ...parser.push(bytes.subarray(cut)), ...parser.end()]
      assert.deepEqual(
        events.map((e) => [e.event, e.data]),
        [
          ['a', '{"x":"é"}'],
          [undefined, 'line1\nline2'],
          [undefined, '[DONE]'],
        ],
        `cut at ${cut}`
      )
    }
  })

  test('an unterminated last event is flushed at end()', ({ assert }) => {
    const parser = new SseParser()
    assert.deepEqual(parser.push('data: a'), [])
    assert.deepEqual(parser.end(), [{ event: undefined, data: 'a', id: undefined }])
  })
})
