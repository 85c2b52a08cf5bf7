import { test } from '@japa/runner'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { THINKING_TEXT } from '#tests/fixtures/mock_upstream/scenario'
import { post, resetDatabase, seedChannel, seedUser, startMock } from '#tests/helpers'

/**
 * OpenRouter's `reasoning_details` on chat completions: Claude's signed and
 * redacted thinking and Gemini's function-call thought signatures, written
 * on translated answers (whole and streamed) and read back from the
 * assistant messages of the next request, so that a Claude tool loop with
 * thinking works through /v1/chat/completions as it does through
 * OpenRouter (Cline, Roo Code, Kilo Code, the AI SDK's OpenRouter provider).
 * https://openrouter.ai/docs/guides/best-practices/reasoning-tokens
 */
test.group('Chat completions: OpenRouter reasoning_details', (group) => {
  let mock: MockUpstream
  let key: string

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'claude', provider: 'anthropic', baseUrl: mock.url, models: ['claude-*'] })
    await seedChannel({ name: 'google', provider: 'google', baseUrl: `${mock.origin}/v1beta`, models: ['gemini-*'] })
    await seedChannel({ name: 'router', provider: 'openrouter', baseUrl: mock.url, models: ['nex/*'] })
    key = (await seedUser({ balance: '100' })).key
    return () => mock.stop()
  })

  const ask = [{ role: 'user', content: 'Weather in Paris?' }]
  const tools = [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }]

  async function chat(body: Record<string, unknown>) {
    const answer = await post('/v1/chat/completions', body, { authorization: `Bearer ${key}` })
    return { status: answer.status, text: await answer.text() }
  }

  /** The details of a chat stream, put together as OpenRouter's clients do: pieces of one index are one detail. */
  function streamedDetails(text: string): any[] {
    const details: any[] = []
    for (const line of text.split('\n')) {
      if (!line.startsWith('data: {')) continue
      for (const piece of JSON.parse(line.slice(6)).choices?.[0]?.delta?.reasoning_details ?? []) {
        const last = details.at(-1)
        if (last && last.index === piece.index && last.type === 'reasoning.text' && piece.type === 'reasoning.text') {
          last.text += piece.text ?? ''
          if (piece.signature) last.signature = piece.signature
        } else {
          details.push({ ...piece })
        }
      }
    }
    return details
  }

  function streamedCalls(text: string): any[] {
    const calls: any[] = []
    for (const line of text.split('\n')) {
      if (!line.startsWith('data: {')) continue
      for (const piece of JSON.parse(line.slice(6)).choices?.[0]?.delta?.tool_calls ?? []) {
        if (piece.id) calls[piece.index] = { id: piece.id, type: 'function', function: { name: piece.function.name, arguments: '' } }
        calls[piece.index].function.arguments += piece.function?.arguments ?? ''
      }
    }
    return calls
  }

  /** The next turn of a tool loop: the assistant message as the client keeps it, and each call's result. */
  function nextTurn(model: string, message: any, extra: Record<string, unknown> = {}) {
    const results = message.tool_calls.map((call: any) => ({ role: 'tool', tool_call_id: call.id, content: '{"celsius": 21}' }))
    return { model, tools, messages: [...ask, message, ...results], ...extra }
  }

  test("Claude's signed thinking comes back as a reasoning.text detail, whole and streamed, and sent back it is Claude's thinking again", async ({ assert }) => {
    const expected = [{ type: 'reasoning.text', text: THINKING_TEXT, signature: 'sig_mock_1', format: 'anthropic-claude-v1', index: 0 }]
    for (const stream of [false, true]) {
      const first = await chat({ model: 'claude-sonnet', messages: ask, tools, stream, reasoning: { max_tokens: 2048 } })
      assert.equal(first.status, 200)
      let message: any
      if (stream) {
        assert.deepEqual(streamedDetails(first.text), expected)
        message = { role: 'assistant', content: null, reasoning: THINKING_TEXT, reasoning_details: streamedDetails(first.text), tool_calls: streamedCalls(first.text) }
      } else {
        message = JSON.parse(first.text).choices[0].message
        assert.deepEqual(message.reasoning_details, expected)
        assert.equal(message.reasoning, THINKING_TEXT)
      }

      // The tool loop goes on with thinking: Anthropic needs the turn's signed thinking first (the mock checks it as Anthropic does).
      const second = await chat(nextTurn('claude-sonnet', message, { stream, reasoning: { max_tokens: 2048 } }))
      assert.equal(second.status, 200, second.text)
      const upstream = JSON.parse(mock.lastRequest()!.body)
      assert.deepEqual(upstream.thinking, { type: 'enabled', budget_tokens: 2048 })
      assert.deepEqual(upstream.messages[1].content[0], { type: 'thinking', thinking: THINKING_TEXT, signature: 'sig_mock_1' })
      assert.equal(upstream.messages[1].content[1].type, 'tool_use')
    }
  })

  test('redacted thinking is a reasoning.encrypted detail, and goes back to Claude as redacted_thinking, in its place', async ({ assert }) => {
    const call = { type: 'tool_use', id: 'toolu_r1', name: 'get_weather', input: { city: 'Paris' } }
    const whole = {
      id: 'msg_r', type: 'message', role: 'assistant', model: 'up-model', stop_reason: 'tool_use', stop_sequence: null,
      content: [{ type: 'thinking', thinking: 'First.', signature: 'sig_a' }, { type: 'redacted_thinking', data: 'REDACTED_BLOB' }, call],
      usage: { input_tokens: 9, output_tokens: 7 },
    }
    const sse = (type: string, data: Record<string, unknown>) => `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`
    const streamed = [
      sse('message_start', { message: { ...whole, content: [], stop_reason: null, usage: { input_tokens: 9, output_tokens: 1 } } }),
      sse('content_block_start', { index: 0, content_block: { type: 'thinking', thinking: '', signature: '' } }),
      sse('content_block_delta', { index: 0, delta: { type: 'thinking_delta', thinking: 'Fir' } }),
      sse('content_block_delta', { index: 0, delta: { type: 'thinking_delta', thinking: 'st.' } }),
      sse('content_block_delta', { index: 0, delta: { type: 'signature_delta', signature: 'sig_a' } }),
      sse('content_block_stop', { index: 0 }),
      sse('content_block_start', { index: 1, content_block: { type: 'redacted_thinking', data: 'REDACTED_BLOB' } }),
      sse('content_block_stop', { index: 1 }),
      sse('content_block_start', { index: 2, content_block: { ...call, input: {} } }),
      sse('content_block_delta', { index: 2, delta: { type: 'input_json_delta', partial_json: '{"city": "Paris"}' } }),
      sse('content_block_stop', { index: 2 }),
      sse('message_delta', { delta: { stop_reason: 'tool_use', stop_sequence: null }, usage: { output_tokens: 7 } }),
      sse('message_stop', {}),
    ]
    const expected = [
      { type: 'reasoning.text', text: 'First.', signature: 'sig_a', format: 'anthropic-claude-v1', index: 0 },
      { type: 'reasoning.encrypted', data: 'REDACTED_BLOB', format: 'anthropic-claude-v1', index: 1 },
    ]
    for (const stream of [false, true]) {
      mock.script({ raw: stream ? { status: 200, headers: { 'content-type': 'text/event-stream' }, chunks: streamed } : { status: 200, body: JSON.stringify(whole) } })
      const first = await chat({ model: 'claude-sonnet', messages: ask, tools, stream, reasoning: { max_tokens: 2048 } })
      assert.equal(first.status, 200)
      const message = stream
        ? { role: 'assistant', content: null, reasoning_details: streamedDetails(first.text), tool_calls: streamedCalls(first.text) }
        : JSON.parse(first.text).choices[0].message
      assert.deepEqual(message.reasoning_details, expected)

      const second = await chat(nextTurn('claude-sonnet', message, { reasoning: { max_tokens: 2048 } }))
      assert.equal(second.status, 200, second.text)
      const sent = JSON.parse(mock.lastRequest()!.body).messages[1].content
      assert.deepEqual(sent.slice(0, 2), [{ type: 'thinking', thinking: 'First.', signature: 'sig_a' }, { type: 'redacted_thinking', data: 'REDACTED_BLOB' }])
      assert.deepEqual(sent[2], { type: 'tool_use', id: 'toolu_r1', name: 'get_weather', input: { city: 'Paris' } })
    }
  })

  test("Gemini's function-call thought signature is a reasoning.encrypted detail naming the call, and goes back on that call", async ({ assert }) => {
    const parts = [
      { text: 'Weighing it.', thought: true },
      { functionCall: { id: 'call_g1', name: 'get_weather', args: { city: 'Paris' } }, thoughtSignature: 'GEMINI_SIG' },
    ]
    const answer = { candidates: [{ content: { role: 'model', parts }, finishReason: 'STOP', index: 0 }], usageMetadata: { promptTokenCount: 5, candidatesTokenCount: 4, totalTokenCount: 9 }, modelVersion: 'up-model' }
    const expected = [
      { type: 'reasoning.text', text: 'Weighing it.', format: 'google-gemini-v1', index: 0 },
      { type: 'reasoning.encrypted', data: 'GEMINI_SIG', id: 'call_g1', format: 'google-gemini-v1', index: 1 },
    ]
    for (const stream of [false, true]) {
      mock.script({
        raw: stream
          ? { status: 200, headers: { 'content-type': 'text/event-stream' }, chunks: [`data: ${JSON.stringify({ ...answer, candidates: [{ content: { role: 'model', parts: [parts[0]] }, index: 0 }] })}\r\n\r\n`, `data: ${JSON.stringify({ ...answer, candidates: [{ content: { role: 'model', parts: [parts[1]] }, finishReason: 'STOP', index: 0 }] })}\r\n\r\n`] }
          : { status: 200, body: JSON.stringify(answer) },
      })
      const first = await chat({ model: 'gemini-2.5-pro', messages: ask, tools, stream, reasoning: { effort: 'low' } })
      assert.equal(first.status, 200)
      const message = stream
        ? { role: 'assistant', content: null, reasoning_details: streamedDetails(first.text), tool_calls: streamedCalls(first.text) }
        : JSON.parse(first.text).choices[0].message
      assert.deepEqual(message.reasoning_details, expected)
      assert.equal(message.tool_calls[0].id, 'call_g1')

      const second = await chat(nextTurn('gemini-2.5-pro', message))
      assert.equal(second.status, 200, second.text)
      const model = JSON.parse(mock.lastRequest()!.body).contents[1]
      assert.equal(model.role, 'model')
      assert.deepEqual(model.parts, [{ functionCall: { id: 'call_g1', name: 'get_weather', args: { city: 'Paris' } }, thoughtSignature: 'GEMINI_SIG' }])
    }
  })

  test('details are left out with reasoning.exclude; an OpenRouter channel gets the client’s bytes, details and all', async ({ assert }) => {
    for (const stream of [false, true]) {
      const first = await chat({ model: 'claude-sonnet', messages: ask, tools, stream, reasoning: { max_tokens: 2048, exclude: true } })
      assert.equal(first.status, 200)
      assert.notInclude(first.text, 'reasoning_details')
      assert.notInclude(first.text, 'sig_mock_1')
    }
    const message = {
      role: 'assistant',
      content: null,
      reasoning_details: [{ type: 'reasoning.text', text: 'x', signature: 's', format: 'anthropic-claude-v1', index: 0 }],
      tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{}' } }],
    }
    const body = JSON.stringify(nextTurn('nex/claude', message))
    assert.equal((await post('/v1/chat/completions', body, { authorization: `Bearer ${key}` })).status, 200)
    assert.equal(mock.lastRequest()!.body, body)
  })

  test('details without a signature, or of another vendor, are no signed thinking: Claude gets none, and thinking is off for the open loop', async ({ assert }) => {
    const message = {
      role: 'assistant',
      content: null,
      reasoning_details: [
        { type: 'reasoning.text', text: 'Unsigned.', format: 'anthropic-claude-v1', index: 0 },
        { type: 'reasoning.text', text: 'Gemini thought.', signature: 'g', format: 'google-gemini-v1', index: 1 },
      ],
      tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{}' } }],
    }
    const answer = await chat(nextTurn('claude-sonnet', message, { reasoning: { max_tokens: 2048 } }))
    assert.equal(answer.status, 200, answer.text)
    const upstream = JSON.parse(mock.lastRequest()!.body)
    assert.notProperty(upstream, 'thinking')
    assert.deepEqual(upstream.messages[1].content.map((b: any) => b.type), ['tool_use'])
  })
})
