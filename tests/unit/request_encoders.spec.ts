import { test } from '@japa/runner'
import type { CanonicalRequest } from '#gateway/dialects/canonical'
import { decodeAnthropicRequest, encodeAnthropicRequest } from '#gateway/dialects/anthropic_messages/request'
import { decodeChatRequest, encodeChatRequest } from '#gateway/dialects/openai_chat/request'
import { VENDORS } from '#gateway/providers/vendors'

const weather = { name: 'get_weather', description: 'Weather', input_schema: { type: 'object', properties: { location: { type: 'string' } } } }

/** Claude Code's second turn: its thinking and call, then the tool's result. */
function anthropicToolTurn(thinking: boolean): CanonicalRequest {
  const assistant: any[] = [{ type: 'tool_use', id: 'call_1', name: 'get_weather', input: { location: 'Paris' } }]
  if (thinking) assistant.unshift({ type: 'thinking', thinking: 'Let me think.', signature: '' })
  return decodeAnthropicRequest({
    model: 'claude-x',
    max_tokens: 1000,
    tools: [weather],
    messages: [
      { role: 'user', content: 'Weather in Paris?' },
      { role: 'assistant', content: assistant },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'call_1', content: 'Sunny' }] },
      { role: 'assistant', content: [{ type: 'thinking', thinking: 'Done.', signature: '' }, { type: 'text', text: 'Sunny.' }] },
      { role: 'user', content: 'Thanks' },
    ],
  } as any)
}

test.group('Request encoders: reasoning sent back to chat servers in thinking mode', () => {
  test('DeepSeek gets reasoning_content on every assistant turn that has it, and the field on every tool turn', ({ assert }) => {
    const hints = VENDORS.deepseek.encodeHints
    const withThinking = encodeChatRequest(anthropicToolTurn(true), 'deepseek-v4', hints).messages
    assert.equal(withThinking[1].reasoning_content, 'Let me think.')
    assert.equal(withThinking[3].reasoning_content, 'Done.')
    // The client dropped its thinking: DeepSeek still needs the field on the turn that called tools.
    const without = encodeChatRequest(anthropicToolTurn(false), 'deepseek-v4', hints).messages
    assert.strictEqual(without[1].reasoning_content, '')
  })

  test('other OpenAI-compatible servers get it only where it is known; OpenAI, Google and OpenRouter never', ({ assert }) => {
    for (const kind of ['custom', 'zai'] as const) {
      const messages = encodeChatRequest(anthropicToolTurn(true), 'm', VENDORS[kind].encodeHints).messages
      assert.equal(messages[1].reasoning_content, 'Let me think.', kind)
      const without = encodeChatRequest(anthropicToolTurn(false), 'm', VENDORS[kind].encodeHints).messages
      assert.notProperty(without[1], 'reasoning_content', kind)
    }
    for (const kind of ['openai', 'gemini', 'openrouter'] as const) {
      const messages = encodeChatRequest(anthropicToolTurn(true), 'gpt-5', VENDORS[kind].encodeHints).messages
      for (const message of messages) assert.notProperty(message, 'reasoning_content', kind)
    }
  })
})

test.group('Request encoders: what Anthropic accepts', () => {
  const chat = (extra: Record<string, unknown>) =>
    decodeChatRequest({ model: 'claude-sonnet-4-5', messages: [{ role: 'user', content: 'Hi' }], ...extra } as any)

  test('temperature and top_p: never both (temperature wins), temperature within 0-1', ({ assert }) => {
    const both = encodeAnthropicRequest(chat({ temperature: 1.6, top_p: 0.9 }), 'claude-sonnet-4-5')
    assert.equal(both.temperature, 1)
    assert.notProperty(both, 'top_p')
    const topOnly = encodeAnthropicRequest(chat({ top_p: 0.9 }), 'claude-sonnet-4-5')
    assert.equal(topOnly.top_p, 0.9)
    assert.notProperty(topOnly, 'temperature')
    assert.equal(encodeAnthropicRequest(chat({ temperature: 0.3 }), 'c').temperature, 0.3)
  })

  test('a forced tool call drops thinking (Anthropic refuses both); an optional one keeps it', ({ assert }) => {
    const tools = [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: {} } } }]
    const forced = encodeAnthropicRequest(chat({ tools, tool_choice: 'required', reasoning_effort: 'high' }), 'c')
    assert.deepEqual(forced.tool_choice, { type: 'any' })
    assert.notProperty(forced, 'thinking')
    const named = encodeAnthropicRequest(chat({ tools, tool_choice: { type: 'function', function: { name: 'get_weather' } }, reasoning_effort: 'high' }), 'c')
    assert.notProperty(named, 'thinking')
    const auto = encodeAnthropicRequest(chat({ tools, tool_choice: 'auto', reasoning_effort: 'high' }), 'c')
    assert.equal(auto.thinking?.type, 'enabled')
  })

  test('a JSON schema answer goes as structured output, every object closed', ({ assert }) => {
    const schema = {
      type: 'object',
      properties: {
        name: { type: 'string' },
        type: { type: 'string', enum: ['object', 'array'] },
        tags: { type: 'array', items: { type: 'object', properties: { v: { type: 'string' } } } },
        extra: { type: 'object', additionalProperties: { type: 'string' } },
      },
      required: ['name'],
    }
    const body = encodeAnthropicRequest(chat({ response_format: { type: 'json_schema', json_schema: { name: 'person', schema, strict: true } } }), 'c')
    const sent = body.output_config?.format as any
    assert.equal(sent.type, 'json_schema')
    assert.isFalse(sent.schema.additionalProperties)
    assert.isFalse(sent.schema.properties.tags.items.additionalProperties)
    assert.deepEqual(sent.schema.properties.extra.additionalProperties, { type: 'string' })
    // A property named "type" is a property, not a keyword.
    assert.deepEqual(sent.schema.properties.type, { type: 'string', enum: ['object', 'array'] })
    assert.deepEqual(sent.schema.required, ['name'])
    // The client's schema is not changed in place.
    assert.notProperty(schema, 'additionalProperties')
  })
})
