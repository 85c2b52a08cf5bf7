import { test } from '@japa/runner'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { openai, resetDatabase, seedChannel, seedUser, startMock, usageRows, type SeededUser } from '#tests/helpers'
import { anthropic, genai } from '#tests/clients'
import { scripted, type ScriptedAnswer, type UpstreamKind } from '#tests/fixtures/upstream_scripts'

/**
 * Cross-format translation as the real SDKs see it: every upstream answers
 * the same scripted answer (upstream_scripts.ts) in its own format, and each
 * client format's official SDK assembles the gateway's translation with its
 * own accumulator (openai `finalChatCompletion()` / `finalResponse()`,
 * anthropic `finalMessage()`, @google/genai's stream chunks). What it
 * assembled is read back into one neutral shape and compared with what the
 * upstream sent, and so is the usage row.
 */

interface Assembled {
  text: string
  reasoning: string
  calls: Array<{ id: string; name: string; args: unknown }>
  stop: string
  usage: { input: number; output: number; cacheRead: number; reasoning: number } | null
}

type Client = 'chat' | 'responses' | 'anthropic' | 'gemini'

const MODELS: Record<UpstreamKind, string> = { chat: 'gpt-scripted', anthropic: 'claude-scripted', gemini: 'gemini-scripted' }
/** Every channel format for each client: translated, and passed through where the formats match (usage read on the way) */
const UPSTREAMS: Record<Client, UpstreamKind[]> = {
  chat: ['chat', 'anthropic', 'gemini'],
  responses: ['chat', 'anthropic', 'gemini'],
  anthropic: ['anthropic', 'chat', 'gemini'],
  gemini: ['gemini', 'chat', 'anthropic'],
}

const WEATHER = { type: 'object', properties: { location: { type: 'string' }, unit: { type: 'string' } }, required: ['location'] }
const PROMPT = 'What is the weather?'

async function ask(client: Client, key: string, model: string, stream: boolean): Promise<Assembled> {
  if (client === 'chat') {
    const params: any = { model, messages: [{ role: 'user', content: PROMPT }], tools: [{ type: 'function', function: { name: 'get_weather', parameters: WEATHER } }] }
    // The SDK's accumulator keeps only the last piece of a delta field it does not know (Object.assign):
    // streamed reasoning_content (DeepSeek's field, which the gateway writes) is read from the chunks.
    let streamedReasoning = ''
    let completion: any
    if (stream) {
      const runner = openai(key).chat.completions.stream({ ...params, stream_options: { include_usage: true } })
      runner.on('chunk', (chunk: any) => (streamedReasoning += chunk.choices[0]?.delta?.reasoning_content ?? ''))
      completion = await runner.finalChatCompletion()
    } else {
      completion = await openai(key).chat.completions.create(params)
    }
    const message = completion.choices[0].message
    const u = completion.usage
    return {
      text: message.content ?? '',
      reasoning: stream ? streamedReasoning : (message.reasoning_content ?? ''),
      calls: (message.tool_calls ?? []).map((c: any) => ({ id: c.id, name: c.function.name, args: JSON.parse(c.function.arguments) })),
      stop: ({ stop: 'end_turn', length: 'max_tokens', tool_calls: 'tool_use', content_filter: 'content_filter' } as any)[completion.choices[0].finish_reason],
      usage: u
        ? { input: u.prompt_tokens, output: u.completion_tokens, cacheRead: u.prompt_tokens_details?.cached_tokens ?? 0, reasoning: u.completion_tokens_details?.reasoning_tokens ?? 0 }
        : null,
    }
  }
  if (client === 'responses') {
    const params: any = { model, input: PROMPT, tools: [{ type: 'function', name: 'get_weather', parameters: WEATHER, strict: false }] }
    const response: any = stream ? await openai(key).responses.stream(params).finalResponse() : await openai(key).responses.create(params)
    const calls = response.output.filter((i: any) => i.type === 'function_call')
    const reasoning = response.output.filter((i: any) => i.type === 'reasoning').flatMap((i: any) => i.summary.map((s: any) => s.text)).join('')
    const stop =
      response.status === 'incomplete'
        ? response.incomplete_details?.reason === 'content_filter'
          ? 'content_filter'
          : 'max_tokens'
        : calls.length > 0
          ? 'tool_use'
          : 'end_turn'
    const u = response.usage
    return {
      text: response.output_text ?? '',
      reasoning,
      calls: calls.map((c: any) => ({ id: c.call_id, name: c.name, args: JSON.parse(c.arguments) })),
      stop,
      usage: u
        ? { input: u.input_tokens, output: u.output_tokens, cacheRead: u.input_tokens_details?.cached_tokens ?? 0, reasoning: u.output_tokens_details?.reasoning_tokens ?? 0 }
        : null,
    }
  }
  if (client === 'anthropic') {
    const params: any = {
      model,
      max_tokens: 1000,
      messages: [{ role: 'user', content: PROMPT }],
      tools: [{ name: 'get_weather', input_schema: WEATHER }],
    }
    const message: any = stream ? await anthropic(key).messages.stream(params).finalMessage() : await anthropic(key).messages.create(params)
    const u = message.usage
    return {
      text: message.content.filter((b: any) => b.type === 'text').map((b: any) => b.text).join(''),
      reasoning: message.content.filter((b: any) => b.type === 'thinking').map((b: any) => b.thinking).join(''),
      calls: message.content.filter((b: any) => b.type === 'tool_use').map((b: any) => ({ id: b.id, name: b.name, args: b.input })),
      stop: message.stop_reason === 'refusal' ? 'content_filter' : message.stop_reason,
      usage: {
        input: u.input_tokens + (u.cache_read_input_tokens ?? 0) + (u.cache_creation_input_tokens ?? 0),
        output: u.output_tokens,
        cacheRead: u.cache_read_input_tokens ?? 0,
        reasoning: u.output_tokens_details?.thinking_tokens ?? 0,
      },
    }
  }
  const params: any = {
    model,
    contents: PROMPT,
    config: { tools: [{ functionDeclarations: [{ name: 'get_weather', parametersJsonSchema: WEATHER }] }] },
  }
  const ai = genai(key)
  const chunks: any[] = []
  if (stream) for await (const chunk of await ai.models.generateContentStream(params)) chunks.push(chunk)
  else chunks.push(await ai.models.generateContent(params))
  const parts = chunks.flatMap((c) => c.candidates?.[0]?.content?.parts ?? [])
  const last = chunks[chunks.length - 1]
  const calls = parts.filter((p: any) => p.functionCall).map((p: any) => ({ id: p.functionCall.id, name: p.functionCall.name, args: p.functionCall.args }))
  const finish = last.candidates?.[0]?.finishReason
  const u = last.usageMetadata
  return {
    text: parts.filter((p: any) => typeof p.text === 'string' && !p.thought).map((p: any) => p.text).join(''),
    reasoning: parts.filter((p: any) => p.thought).map((p: any) => p.text ?? '').join(''),
    calls,
    stop: finish === 'MAX_TOKENS' ? 'max_tokens' : finish === 'SAFETY' ? 'content_filter' : calls.length > 0 ? 'tool_use' : 'end_turn',
    usage: u
      ? {
          input: u.promptTokenCount,
          output: (u.candidatesTokenCount ?? 0) + (u.thoughtsTokenCount ?? 0),
          cacheRead: u.cachedContentTokenCount ?? 0,
          reasoning: u.thoughtsTokenCount ?? 0,
        }
      : null,
  }
}

/** What the client should have assembled from the scripted answer. */
function expected(a: ScriptedAnswer): Assembled {
  return {
    text: a.text ?? '',
    reasoning: a.reasoning ?? '',
    calls: (a.calls ?? []).map((c) => ({ id: c.id, name: c.name, args: JSON.parse(c.args) })),
    stop: a.stop === 'stop_sequence' ? 'end_turn' : a.stop,
    usage: { input: a.usage.input, output: a.usage.output, cacheRead: a.usage.cacheRead ?? 0, reasoning: a.usage.reasoning ?? 0 },
  }
}

const RICH: ScriptedAnswer = {
  reasoning: 'The user wants weather in two cities.',
  signature: 'sig-abc123',
  text: 'Checking both cities.',
  calls: [
    { id: 'call_one_1', name: 'get_weather', args: '{"location":"Paris, France","unit":"celsius"}' },
    { id: 'call_two_2', name: 'get_weather', args: '{"location":"Tokyo","unit":"celsius"}' },
  ],
  stop: 'tool_use',
  usage: { input: 120, output: 57, cacheRead: 40, reasoning: 11 },
}

const CASES: Array<{ name: string; answer: ScriptedAnswer }> = [
  { name: 'reasoning, text and two parallel tool calls', answer: RICH },
  { name: 'cut at max tokens', answer: { text: 'The weather is', stop: 'max_tokens', usage: { input: 12, output: 4 } } },
  { name: 'content filter', answer: { text: 'I cannot', stop: 'content_filter', usage: { input: 12, output: 2 } } },
  { name: 'empty content', answer: { stop: 'end_turn', usage: { input: 12, output: 0 } } },
]

test.group('SDK translation fidelity: scripted upstream answers assembled by the real SDKs', (group) => {
  let mock: MockUpstream
  let user: SeededUser

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'chat', provider: 'custom', baseUrl: mock.url, models: ['gpt-*'] })
    await seedChannel({ name: 'claude', provider: 'anthropic', baseUrl: mock.url, models: ['claude-*'] })
    await seedChannel({ name: 'google', provider: 'google', baseUrl: mock.url, models: ['gemini-*'] })
    user = await seedUser()
    return () => mock.stop()
  })

  for (const client of Object.keys(UPSTREAMS) as Client[]) {
    for (const upstream of UPSTREAMS[client]) {
      for (const stream of [true, false]) {
        for (const c of CASES) {
          test(`${client} <- ${upstream}${stream ? ' (stream)' : ''}: ${c.name}`, async ({ assert }) => {
            mock.script({ raw: scripted(upstream, c.answer, stream) })
            const got = await ask(client, user.key, MODELS[upstream], stream)
            const want = expected(c.answer)
            assert.equal(got.text, want.text, 'text')
            assert.equal(got.reasoning, want.reasoning, 'reasoning')
            assert.deepEqual(got.calls, want.calls, 'tool calls')
            assert.equal(got.stop, want.stop, 'stop reason')
            assert.deepEqual(got.usage, want.usage, 'usage the client saw')
            const rows = await usageRows(user.userId)
            const row = rows[rows.length - 1]
            const u = c.answer.usage
            assert.deepEqual(
              [row.status, row.prompt_tokens, row.completion_tokens, row.cached_tokens, row.reasoning_tokens, row.estimated],
              [200, u.input, u.output, u.cacheRead ?? 0, u.reasoning ?? 0, false],
              'usage row'
            )
          })
        }
      }
    }
  }
})
