import type { ServerResponse } from 'node:http'
import { test } from '@japa/runner'
import { dialectOf } from '#gateway/dialects/registry'
import { ClientStream } from '#gateway/relay/client_stream'
import { relayPassThroughStream } from '#gateway/relay/pass_through_stream'
import { endsWithBlankLine, SseParser } from '#gateway/sse/sse_parser'

/** A response that keeps what is written to it, as the client would receive it. */
function clientResponse() {
  const written: Buffer[] = []
  const res = {
    destroyed: false,
    writableEnded: false,
    writableFinished: false,
    writeHead() {},
    write(piece: string | Buffer) {
      written.push(Buffer.from(piece))
      return true
    },
    end(piece?: string | Buffer) {
      if (piece) written.push(Buffer.from(piece))
      this.writableEnded = true
      this.writableFinished = true
    },
  }
  return { res: res as unknown as ServerResponse, written }
}

async function relay(chunks: Array<string | Buffer>, options: { includeUsage?: boolean; clientModel?: string | null } = {}) {
  const { res, written } = clientResponse()
  const stream = new ClientStream(res, {}, () => {})
  const upstream = (async function* () {
    for (const chunk of chunks) yield Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk)
  })()
  const outcome = await relayPassThroughStream(upstream, dialectOf('openai_chat'), {
    encoder: { model: 'm', includeUsage: options.includeUsage ?? true },
    clientModel: options.clientModel ?? null,
    stream,
  })
  return { written, text: Buffer.concat(written).toString('utf8'), outcome }
}

const delta = (text: string) => `{"id":"c1","model":"up","choices":[{"index":0,"delta":{"content":"${text}"}}]}`
const usage = '{"id":"c1","model":"up","choices":[],"usage":{"prompt_tokens":7,"completion_tokens":2,"total_tokens":9}}'

test.group('Pass-through streams reach the client byte for byte', () => {
  test('whole events go as the upstream sent them: comments, ids and CRLF line ends kept, the same Buffers written', async ({ assert }) => {
    const chunks = [
      `: OPENROUTER PROCESSING\r\n\r\n`,
      `id: 1\r\ndata: ${delta('Hel')}\r\n\r\n`,
      `data: ${delta('lo')}\r\n\r\ndata: ${usage}\r\n\r\n`,
      `data: [DONE]\r\n\r\n`,
    ]
    const { text, written, outcome } = await relay(chunks)
    assert.equal(text, chunks.join(''))
    assert.lengthOf(written, chunks.length)
    assert.deepInclude(outcome.usage, { inputTokens: 7, outputTokens: 2 })
    assert.isTrue(outcome.usageFinal)
  })

  test('a chunk that ends inside an event, and the one after it, are re-framed; the events are all there', async ({ assert }) => {
    const whole = `data: ${delta('a')}\n\n`
    const split = `data: ${delta('b')}\n\n`
    const { text } = await relay([whole, split.slice(0, 20), split.slice(20), `data: ${usage}\n\ndata: [DONE]\n\n`])
    assert.equal(text, whole + split + `data: ${usage}\n\ndata: [DONE]\n\n`)
  })

  test('a UTF-8 character split across chunks is never half sent', async ({ assert }) => {
    // The first chunk ends one byte into "é" (a line of an unknown field), after a whole event.
    const e = Buffer.from('é')
    const first = Buffer.concat([Buffer.from(`data: ${delta('a')}\n\n`), e.subarray(0, 1)])
    const second = Buffer.concat([e.subarray(1), Buffer.from(`: x\n\ndata: ${delta('b')}\n\ndata: ${usage}\n\ndata: [DONE]\n\n`)])
    const { text } = await relay([first, second])
    assert.notInclude(text, '\uFFFD')
    assert.equal(text, `data: ${delta('a')}\n\ndata: ${delta('b')}\n\ndata: ${usage}\n\ndata: [DONE]\n\n`)
  })

  test('the usage chunk the client did not ask for is dropped: that chunk is re-framed, the others go as they came', async ({ assert }) => {
    const first = `data: ${delta('a')}\r\n\r\n`
    const last = `data: ${delta('b')}\r\n\r\ndata: ${usage}\r\n\r\ndata: [DONE]\r\n\r\n`
    const { text, outcome } = await relay([first, last], { includeUsage: false })
    assert.equal(text, first + `data: ${delta('b')}\n\ndata: [DONE]\n\n`)
    assert.deepInclude(outcome.usage, { inputTokens: 7, outputTokens: 2 })
  })

  test('with the model mapped, every event is re-framed with the client’s model name', async ({ assert }) => {
    const { text } = await relay([`data: ${delta('a')}\r\n\r\n`, `data: ${usage}\r\n\r\ndata: [DONE]\r\n\r\n`], { clientModel: 'mine' })
    assert.notInclude(text, '"up"')
    assert.include(text, '"model":"mine"')
    assert.notInclude(text, '\r')
  })
})

test.group('SSE event boundaries', () => {
  test('endsWithBlankLine: LF LF, CRLF CRLF and CR CR end an event; a single line end does not', ({ assert }) => {
    assert.isTrue(endsWithBlankLine(Buffer.from('data: x\n\n')))
    assert.isTrue(endsWithBlankLine(Buffer.from('data: x\r\n\r\n')))
    assert.isTrue(endsWithBlankLine(Buffer.from('data: x\r\r')))
    assert.isFalse(endsWithBlankLine(Buffer.from('data: x\n')))
    assert.isFalse(endsWithBlankLine(Buffer.from('data: x\r\n')))
    assert.isFalse(endsWithBlankLine(Buffer.from('\n')))
  })

  test('atBoundary: false while a line or an event is unfinished', ({ assert }) => {
    const parser = new SseParser()
    assert.isTrue(parser.atBoundary)
    parser.push('data: a')
    assert.isFalse(parser.atBoundary)
    parser.push('\n')
    assert.isFalse(parser.atBoundary)
    parser.push('\n')
    assert.isTrue(parser.atBoundary)
    parser.push('event: x\n')
    assert.isFalse(parser.atBoundary)
  })
})
