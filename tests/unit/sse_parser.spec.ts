import { test } from '@japa/runner'
import { SseParser } from '#gateway/sse/sse_parser'
import { UpstreamAnswerTooLarge } from '#gateway/upstream/answer_limits'

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

  test('events split into three pieces anywhere parse the same (a line held over two chunks)', ({ assert }) => {
    const text = 'data: {"a":1}\r\n\r\nevent: b\ndata: x\rdata: y\r\n\r\n'
    const bytes = Buffer.from(text)
    for (let first = 0; first <= bytes.length; first++) {
      for (let second = first; second <= bytes.length; second++) {
        const parser = new SseParser()
        const events = [
          ...parser.push(bytes.subarray(0, first)),
          ...parser.push(bytes.subarray(first, second)),
          ...parser.push(bytes.subarray(second)),
          ...parser.end(),
        ]
        assert.deepEqual(
          events.map((e) => [e.event, e.data]),
          [
            [undefined, '{"a":1}'],
            ['b', 'x\ny'],
          ],
          `cut at ${first}, ${second}`
        )
        assert.isTrue(parser.atBoundary)
      }
    }
  })

  test('a line longer than the bound throws once the unfinished part passes it', ({ assert }) => {
    const parser = new SseParser(100)
    parser.push('data: ')
    for (let i = 0; i < 9; i++) parser.push('x'.repeat(10))
    assert.throws(() => parser.push('x'.repeat(10)), /A line of the upstream's stream is larger than/)
    // Within the bound, the same line arrives whole.
    const within = new SseParser(100)
    within.push('data: ')
    for (let i = 0; i < 9; i++) within.push('x'.repeat(10))
    assert.deepEqual(within.push('\n\n'), [{ event: undefined, data: 'x'.repeat(90), id: undefined }])
  })

  test('an event whose data lines add up past the bound throws', ({ assert }) => {
    const parser = new SseParser(100)
    let thrown: unknown = null
    try {
      for (let i = 0; i < 20; i++) parser.push(`data: ${'y'.repeat(9)}\n`)
    } catch (error) {
      thrown = error
    }
    assert.instanceOf(thrown, UpstreamAnswerTooLarge)
  })
})
