import { test } from '@japa/runner'
import { camelCaseKeys } from '#gateway/dialects/gemini/snake_case'
import { dialectOf } from '#gateway/dialects/registry'

test.group('Gemini requests in snake_case', () => {
  test('decode the same as camelCase; the client\'s own names under args, response and schemas are kept', ({ assert }) => {
    const camel = {
      systemInstruction: { parts: [{ text: 'sys' }] },
      contents: [
        { role: 'user', parts: [{ text: 'hi' }, { inlineData: { mimeType: 'image/png', data: 'AAAA' } }, { fileData: { mimeType: 'application/pdf', fileUri: 'https://x/a.pdf' } }] },
        { role: 'model', parts: [{ functionCall: { name: 'f', args: { some_arg: 1 } } }] },
        { role: 'user', parts: [{ functionResponse: { name: 'f', response: { some_result: 2 } } }] },
      ],
      tools: [{ functionDeclarations: [{ name: 'f', parameters: { type: 'object', properties: { some_arg: { type: 'integer' } } } }] }],
      toolConfig: { functionCallingConfig: { mode: 'ANY' } },
      generationConfig: { maxOutputTokens: 9, topP: 0.5, topK: 3, responseMimeType: 'application/json', responseModalities: ['TEXT'], thinkingConfig: { thinkingBudget: 2048 } },
    }
    const snake = {
      system_instruction: { parts: [{ text: 'sys' }] },
      contents: [
        { role: 'user', parts: [{ text: 'hi' }, { inline_data: { mime_type: 'image/png', data: 'AAAA' } }, { file_data: { mime_type: 'application/pdf', file_uri: 'https://x/a.pdf' } }] },
        { role: 'model', parts: [{ function_call: { name: 'f', args: { some_arg: 1 } } }] },
        { role: 'user', parts: [{ function_response: { name: 'f', response: { some_result: 2 } } }] },
      ],
      tools: [{ function_declarations: [{ name: 'f', parameters: { type: 'object', properties: { some_arg: { type: 'integer' } } } }] }],
      tool_config: { function_calling_config: { mode: 'ANY' } },
      generation_config: { max_output_tokens: 9, top_p: 0.5, top_k: 3, response_mime_type: 'application/json', response_modalities: ['TEXT'], thinking_config: { thinking_budget: 2048 } },
    }
    const gemini = dialectOf('gemini')
    assert.deepEqual(gemini.decodeRequest(snake), gemini.decodeRequest(camel))
    assert.deepEqual(camelCaseKeys(snake), camel)
  })

  test('a camelCase body is not copied; a field named both ways keeps the camelCase one', ({ assert }) => {
    const body = { contents: [{ role: 'user', parts: [{ text: 'a_b' }] }], generationConfig: { maxOutputTokens: 5 } }
    assert.strictEqual(camelCaseKeys(body), body)
    assert.deepEqual(camelCaseKeys({ generationConfig: { maxOutputTokens: 5 }, generation_config: { max_output_tokens: 7 } }), {
      generationConfig: { maxOutputTokens: 5 },
    })
  })
})

test.group('Gemini requests in snake_case, hostile keys', () => {
  test('a __proto__ key is never copied into the rewritten body', ({ assert }) => {
    const body = JSON.parse('{"__proto__": {"generationConfig": {"maxOutputTokens": 1}}, "generation_config": {"max_output_tokens": 4}}')
    const out = camelCaseKeys(body) as any
    assert.deepEqual(out, { generationConfig: { maxOutputTokens: 4 } })
    assert.strictEqual(Object.getPrototypeOf(out), Object.prototype)
  })

  test('key spellings: each underscore before a lowercase letter or digit goes, others stay (as the regex did)', ({ assert }) => {
    const names = ['max_output_tokens', 'a__b', '_lead', 'trail_', 'x_1_y', 'A_B', 'a_b_c', 'snake_Ü', 'plain']
    const out = camelCaseKeys(Object.fromEntries(names.map((n) => [n, 1]))) as Record<string, number>
    assert.deepEqual(Object.keys(out), ['maxOutputTokens', 'a_B', 'Lead', 'trail_', 'x1Y', 'A_B', 'aBC', 'snake_Ü', 'plain'])
  })
})
