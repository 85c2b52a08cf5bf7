import { test } from '@japa/runner'
import { openAiChat } from '#gateway/dialects/openai_chat/index'

/**
 * What a same-dialect OpenAI chat upstream is sent. A stream always asks for
 * usage; when that is the only change, the client's bytes are edited rather
 * than the (possibly 200 KB) body serialised again.
 */
test.group('OpenAI chat pass-through body', () => {
  const rules = openAiChat.passThrough

  test('a stream without stream_options gets the member spliced into the client bytes', ({ assert }) => {
    const raw = Buffer.from(' \n{"model":"m","stream":true,"messages":[{"role":"user","content":"héllo {x}"}]}')
    const body = JSON.parse(raw.toString())
    const sent = rules.upstreamBody(body, 'm', 'm', true, raw)
    assert.isTrue(Buffer.isBuffer(sent))
    const text = (sent as Buffer).toString()
    assert.deepEqual(JSON.parse(text), { ...body, stream_options: { include_usage: true } })
    // Everything the client wrote is still there, byte for byte, after the new member.
    assert.isTrue(text.endsWith(raw.toString().slice(raw.indexOf('{') + 1)))
  })

  test('other changes are a re-serialised copy; nothing to change is null', ({ assert }) => {
    const body = { model: 'alias', stream: true, stream_options: { include_usage: false }, messages: [] }
    const raw = Buffer.from(JSON.stringify(body))
    assert.deepEqual(rules.upstreamBody(body, 'real', 'alias', true, raw), {
      ...body,
      model: 'real',
      stream_options: { include_usage: true },
    })
    assert.deepEqual(rules.upstreamBody(body, 'alias', 'alias', true, raw), { ...body, stream_options: { include_usage: true } })
    assert.isNull(rules.upstreamBody({ model: 'm', messages: [] }, 'm', 'm', false, raw))
    const asked = { model: 'm', stream: true, stream_options: { include_usage: true }, messages: [] }
    assert.isNull(rules.upstreamBody(asked, 'm', 'm', true, Buffer.from(JSON.stringify(asked))))
  })
})
