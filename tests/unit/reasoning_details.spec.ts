import { test } from '@japa/runner'
import { dialectOf } from '#gateway/dialects/registry'

/**
 * OpenRouter's reasoning_details read back from a chat request's assistant
 * message (openai_chat/reasoning_details.ts), as clients send them: merged
 * as OpenRouter's SDKs merge them, or as the stream's pieces came.
 */
const chat = dialectOf('openai_chat')

function assistantOf(message: Record<string, unknown>) {
  const request = chat.decodeRequest({
    model: 'm',
    messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'Done.', ...message }],
  })
  return request.messages[1].content
}

const call = { id: 'call_1', type: 'function', function: { name: 'f', arguments: '{}' } }

test.group('Chat requests: reasoning_details on assistant messages', () => {
  test("a stream's pieces sent back unmerged are one signed block; the next index is the next block", ({ assert }) => {
    const parts = assistantOf({
      reasoning: 'ignored: the details hold the text',
      reasoning_details: [
        { type: 'reasoning.text', text: 'Let ', format: 'anthropic-claude-v1', index: 0 },
        { type: 'reasoning.text', text: 'me think.', format: 'anthropic-claude-v1', index: 0 },
        { type: 'reasoning.text', text: '', signature: 'sig_1', format: 'anthropic-claude-v1', index: 0 },
        { type: 'reasoning.encrypted', data: 'BLOB', format: 'anthropic-claude-v1', index: 1 },
        { type: 'reasoning.text', text: 'Again.', signature: 'sig_2', index: 2 },
      ],
      tool_calls: [call],
    })
    assert.deepEqual(parts, [
      { type: 'reasoning', text: 'Let me think.', signature: 'sig_1' },
      { type: 'reasoning', text: '', redacted: 'BLOB' },
      { type: 'reasoning', text: 'Again.', signature: 'sig_2' },
      { type: 'text', text: 'Done.' },
      { type: 'tool_call', id: 'call_1', name: 'f', arguments: '{}' },
    ])
  })

  test("other vendors' details are unsigned reasoning; Gemini's encrypted detail signs the call it names", ({ assert }) => {
    const parts = assistantOf({
      reasoning_details: [
        { type: 'reasoning.text', text: 'Gemini thought.', signature: 'g', format: 'google-gemini-v1', index: 0 },
        { type: 'reasoning.encrypted', data: 'GSIG', id: 'call_1', format: 'google-gemini-v1', index: 1 },
        { type: 'reasoning.encrypted', data: 'not-claude', format: 'unknown', index: 2 },
        { type: 'reasoning.encrypted', data: 'OPENAI', format: 'openai-responses-v1', index: 3 },
        { type: 'reasoning.summary', summary: 'In short.', format: 'openai-responses-v1', index: 4 },
        { type: 'reasoning.text', text: 'Unknown.', signature: 'u', format: 'unknown', index: 5 },
      ],
      tool_calls: [call],
    })
    assert.deepEqual(parts, [
      { type: 'reasoning', text: 'Gemini thought.' },
      { type: 'reasoning', text: 'In short.' },
      { type: 'reasoning', text: 'Unknown.' },
      { type: 'text', text: 'Done.' },
      { type: 'tool_call', id: 'call_1', name: 'f', arguments: '{}', signature: 'GSIG' },
    ])
  })

  test('details that hold no reasoning leave the plain reasoning text; damaged ones are skipped', ({ assert }) => {
    assert.deepEqual(assistantOf({ reasoning: 'Plain.', reasoning_details: [{ type: 'reasoning.encrypted', data: 'GSIG', id: 'call_1', format: 'google-gemini-v1' }], tool_calls: [call] }), [
      { type: 'reasoning', text: 'Plain.' },
      { type: 'text', text: 'Done.' },
      { type: 'tool_call', id: 'call_1', name: 'f', arguments: '{}', signature: 'GSIG' },
    ])
    for (const damaged of ['text', 42, null, [null, 'x', 7, { type: 'reasoning.text', text: 5 }, { type: 'reasoning.encrypted', data: '' }, { type: 'other' }]]) {
      assert.deepEqual(assistantOf({ reasoning_content: 'Plain.', reasoning_details: damaged }), [{ type: 'reasoning', text: 'Plain.' }, { type: 'text', text: 'Done.' }])
    }
  })
})
