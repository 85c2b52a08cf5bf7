import { test } from '@japa/runner'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { anthropic, genai } from '#tests/clients'
import { openai, resetDatabase, seedChannel, seedUser, startMock } from '#tests/helpers'

/**
 * A model's refusal from an OpenAI-compatible upstream (`message.refusal`,
 * `delta.refusal`, content null, finish_reason "stop") reaches clients of the
 * other formats as their own refusal, through the real SDKs.
 */
const REFUSAL = "I'm sorry, but I can't help with that."

test.group('A chat upstream refusal, translated for each client format', (group) => {
  let mock: MockUpstream

  group.setup(async () => {
    await resetDatabase()
    mock = await startMock()
    await seedChannel({ name: 'chat', provider: 'custom', baseUrl: mock.url, models: ['gpt-*'] })
    return () => mock.stop()
  })

  test('Anthropic client: a text block with the refusal and stop_reason "refusal", streamed and not', async ({ assert }) => {
    const user = await seedUser()
    const client = anthropic(user.key)
    const ask = { model: 'gpt-4o', max_tokens: 100, messages: [{ role: 'user' as const, content: 'something refused' }] }
    mock.script({ refusal: REFUSAL })
    const message = await client.messages.create(ask)
    assert.deepEqual(message.content, [{ type: 'text', text: REFUSAL } as any])
    assert.equal(message.stop_reason, 'refusal')

    mock.script({ refusal: REFUSAL })
    const streamed = await client.messages.stream(ask).finalMessage()
    assert.deepEqual(streamed.content.map((b) => (b.type === 'text' ? b.text : b.type)), [REFUSAL])
    assert.equal(streamed.stop_reason, 'refusal')
  })

  test('Responses client: a message item with a refusal part, as OpenAI gives it, streamed and not', async ({ assert }) => {
    const user = await seedUser()
    const client = openai(user.key)
    mock.script({ refusal: REFUSAL })
    const answer = await client.responses.create({ model: 'gpt-4o', input: 'something refused' })
    assert.equal(answer.status, 'completed')
    assert.deepEqual(answer.output.map((item: any) => [item.type, item.content]), [['message', [{ type: 'refusal', refusal: REFUSAL }]]])
    assert.equal(answer.output_text, '')

    // The SDK's stream helper checks each refusal event against the part it was announced with.
    mock.script({ refusal: REFUSAL })
    const stream = client.responses.stream({ model: 'gpt-4o', input: 'something refused' })
    let deltas = ''
    stream.on('response.refusal.delta', (event) => (deltas += event.delta))
    const final = await stream.finalResponse()
    assert.equal(deltas, REFUSAL)
    assert.equal(final.status, 'completed')
    // (the SDK's finalResponse adds `parsed: null` to each content part)
    assert.deepEqual(final.output.map((item: any) => [item.type, item.content.map((p: any) => [p.type, p.refusal])]), [['message', [['refusal', REFUSAL]]]])
  })

  test('Gemini client: the refusal as text with finishReason SAFETY', async ({ assert }) => {
    const user = await seedUser()
    const ai = genai(user.key)
    mock.script({ refusal: REFUSAL })
    const answer = await ai.models.generateContent({ model: 'gpt-4o', contents: 'something refused' })
    assert.equal(answer.text, REFUSAL)
    assert.equal(answer.candidates![0].finishReason, 'SAFETY')

    mock.script({ refusal: REFUSAL })
    let text = ''
    let last: any
    for await (const chunk of await ai.models.generateContentStream({ model: 'gpt-4o', contents: 'something refused' })) {
      text += chunk.text ?? ''
      last = chunk
    }
    assert.equal(text, REFUSAL)
    assert.equal(last.candidates[0].finishReason, 'SAFETY')
  })
})
