import { test } from '@japa/runner'
import { CompletionStreamDecoder, completionText, promptParts, promptProblem } from '#gateway/completions_wire'
import { adapterFor } from '#gateway/providers/registry'
import type { ChannelInfo, ProviderKind } from '#gateway/types'

function channel(provider: ProviderKind, baseUrl: string): ChannelInfo {
  return {
    id: 1, name: provider, provider, baseUrl, apiKey: 'k', models: ['*'], modelMapping: {}, extraHeaders: {},
    priority: 0, weight: 1, enabled: true, disabledReason: null,
    timeouts: { connect: 1000, firstByte: 1000, idle: 1000, total: 1000 },
  }
}

function completionsPath(provider: ProviderKind, baseUrl: string): string {
  const c = channel(provider, baseUrl)
  const request = adapterFor(provider).request(c, { operation: 'completions', dialect: 'openai_chat', model: 'm', stream: false, body: '{}', clientHeaders: {} })
  return `${request.origin}${request.path}`
}

test.group('Completions wire: prompt', () => {
  test('the four prompt forms are accepted', ({ assert }) => {
    for (const prompt of ['', 'def f(', ['a', 'b'], [1, 2, 3], [[1, 2], [3]]]) assert.isNull(promptProblem(prompt), JSON.stringify(prompt))
  })

  test('anything else is named', ({ assert }) => {
    for (const prompt of [undefined, null, 3, {}, [], [1, 'a'], ['a', 1], [1.5], [-1], [[1], []], [[1], 'a'], [{}], [null], [[1, '2']]]) {
      const problem = promptProblem(prompt)
      assert.isString(problem, JSON.stringify(prompt))
      assert.match(problem!, /^prompt: /)
    }
  })

  test('what an estimate counts: texts with the suffix, token ids as given', ({ assert }) => {
    assert.deepEqual(promptParts({ prompt: 'def f(', suffix: 'return 1' }), { text: 'def f(\nreturn 1', tokenIds: 0 })
    assert.deepEqual(promptParts({ prompt: ['a', 'b'], suffix: null }), { text: 'a\nb', tokenIds: 0 })
    assert.deepEqual(promptParts({ prompt: [1, 2, 3] }), { text: '', tokenIds: 3 })
    assert.deepEqual(promptParts({ prompt: [[1, 2], [3]], suffix: 'x' }), { text: 'x', tokenIds: 3 })
  })
})

test.group('Completions wire: answers', () => {
  test('the text of every choice', ({ assert }) => {
    assert.equal(completionText({ choices: [{ text: 'a' }, { text: 'b' }, {}] }), 'ab')
    assert.equal(completionText({ choices: null }), '')
    assert.equal(completionText(null), '')
  })

  test('stream chunks decode into text deltas; the usage chunk, [DONE] and junk into nothing', ({ assert }) => {
    const decoder = new CompletionStreamDecoder()
    const events = [
      '{"id":"c","object":"text_completion","choices":[{"text":"Hel","index":0,"finish_reason":null}]}',
      '{"id":"c","choices":[{"text":"lo","index":0,"finish_reason":"stop"}]}',
      '{"id":"c","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2}}',
      'not json',
      '[DONE]',
    ].flatMap((data) => decoder.push({ data }))
    assert.deepEqual(
      events.map((e) => (e.type === 'delta' ? e.value : e.type)),
      ['Hel', 'lo']
    )
    assert.deepEqual(decoder.push({ data: '{"error":{"message":"boom"}}' }), [{ type: 'error', message: 'boom' }])
  })
})

test.group('Completions addressing', () => {
  test('OpenAI-compatible channels get {base}/completions; DeepSeek its /beta/completions', ({ assert }) => {
    assert.equal(completionsPath('openai', 'https://api.openai.com/v1'), 'https://api.openai.com/v1/completions')
    assert.equal(completionsPath('custom', 'http://127.0.0.1:8000/v1'), 'http://127.0.0.1:8000/v1/completions')
    assert.equal(completionsPath('openrouter', 'https://openrouter.ai/api/v1'), 'https://openrouter.ai/api/v1/completions')
    assert.equal(completionsPath('deepseek', 'https://api.deepseek.com/v1'), 'https://api.deepseek.com/beta/completions')
    // A base already on the beta path, or a proxy's own path, is kept.
    assert.equal(completionsPath('deepseek', 'https://api.deepseek.com/beta'), 'https://api.deepseek.com/beta/completions')
    assert.equal(completionsPath('deepseek', 'https://proxy.example.com/deepseek'), 'https://proxy.example.com/deepseek/completions')
    // Chat on DeepSeek stays under /v1.
    const chat = adapterFor('deepseek').request(channel('deepseek', 'https://api.deepseek.com/v1'), {
      operation: 'generate', dialect: 'openai_chat', model: 'm', stream: false, body: '{}', clientHeaders: {},
    })
    assert.equal(chat.path, '/v1/chat/completions')
  })

  test('which kinds serve completions', ({ assert }) => {
    const serves = (kind: ProviderKind) => adapterFor(kind).offers(channel(kind, 'https://x.example/v1'), 'completions')
    assert.deepEqual(
      (['openai', 'openrouter', 'deepseek', 'zai', 'custom', 'gemini', 'google', 'anthropic'] as ProviderKind[]).filter(serves),
      ['openai', 'openrouter', 'deepseek', 'zai', 'custom']
    )
  })
})
