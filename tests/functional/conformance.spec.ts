import { test } from '@japa/runner'
import type { MockUpstream } from '#tests/fixtures/mock_upstream/server'
import { INGRESS_CLIENTS, type Case, type IngressClient } from '#tests/conformance/ingress_clients'
import { upstreamTurns } from '#tests/conformance/upstream_turns'
import { post, resetDatabase, seedChannel, seedUser, startMock, usageRows, type SeededUser } from '#tests/helpers'
import type { ProviderKind } from '#gateway/types'

/**
 * The conformance matrix: the same cases run for every ingress wire format
 * against every upstream adapter (same dialect = pass-through, otherwise a
 * translation through the canonical form). An adapter opts out of a case by
 * leaving it out of its capabilities.
 */
type Capability = 'text' | 'stream' | 'tools' | 'image' | 'error' | 'usage' | 'interrupted'
const ALL: Capability[] = ['text', 'stream', 'tools', 'image', 'error', 'usage', 'interrupted']

interface Upstream {
  name: string
  provider: ProviderKind
  prefix: string
  base: (mock: MockUpstream) => string
  capabilities: Capability[]
}

const UPSTREAMS: Upstream[] = [
  { name: 'openai-compatible', provider: 'custom', prefix: 'conf-chat', base: (m) => m.url, capabilities: ALL },
  { name: 'openai (chat + responses)', provider: 'openai', prefix: 'conf-openai', base: (m) => m.url, capabilities: ALL },
  { name: 'anthropic', provider: 'anthropic', prefix: 'conf-claude', base: (m) => m.url, capabilities: ALL },
  { name: 'google gemini', provider: 'google', prefix: 'conf-gemini', base: (m) => `${m.origin}/v1beta`, capabilities: ALL },
]

const IMAGE = 'iVBORw0KGgoAAAANSUhEUg=='
const TEXT = 'tok0 tok1 tok2 tok3 tok4 '

async function call(client: IngressClient, user: SeededUser, c: Case) {
  const { path, body } = client.request(c)
  const response = await post(path, body, client.auth(user.key))
  const text = await response.text()
  return { response, text, answer: response.status < 400 ? client.read(text, c.stream) : null }
}

for (const client of INGRESS_CLIENTS) {
  for (const upstream of UPSTREAMS) {
    test.group(`Conformance: ${client.name} client -> ${upstream.name} upstream`, (group) => {
      let mock: MockUpstream
      let user: SeededUser
      const model = `${upstream.prefix}-model`
      const can = (capability: Capability) => upstream.capabilities.includes(capability)

      group.setup(async () => {
        await resetDatabase()
        mock = await startMock()
        await seedChannel({ name: upstream.name, provider: upstream.provider, baseUrl: upstream.base(mock), models: [`${upstream.prefix}-*`] })
        user = await seedUser()
        return () => mock.stop()
      })

      test('text', async ({ assert }) => {
        const { answer } = await call(client, user, { model, stream: false, prompt: 'Hello' })
        assert.equal(answer!.text, TEXT)
        assert.isTrue(answer!.terminated)
      }).skip(!can('text'), 'adapter lacks text')

      test('stream', async ({ assert }) => {
        const { answer, response } = await call(client, user, { model, stream: true, prompt: 'Count' })
        assert.match(response.headers.get('content-type') ?? '', /text\/event-stream/)
        assert.equal(answer!.text, TEXT)
        assert.isTrue(answer!.terminated)
        assert.isFalse(answer!.streamError)
      }).skip(!can('stream'), 'adapter lacks streaming')

      test('tools round-trip (stream, then the result with the same id)', async ({ assert }) => {
        const first = await call(client, user, { model, stream: true, prompt: 'Weather in Paris?', tools: true })
        const [toolCall] = first.answer!.toolCalls
        assert.equal(toolCall?.name, 'get_weather')
        assert.deepEqual(toolCall.args, { location: 'Paris' })
        const second = await call(client, user, { model, stream: false, prompt: 'Weather in Paris?', tools: true, toolResults: [{ call: toolCall, result: '18C' }] })
        assert.equal(second.answer!.text, TEXT)
        assert.lengthOf(second.answer!.toolCalls, 0)
        const sent = mock.lastRequest()!.body
        if (toolCall.id) assert.include(sent, toolCall.id)
        assert.include(sent, '18C')
      }).skip(!can('tools'), 'adapter lacks tools')

      test('parallel tool calls round-trip, each result back with its own call', async ({ assert }) => {
        // Streamed in OpenAI's order, streamed interleaved by index (other chat servers), and whole.
        const modes = [{ stream: true }, { stream: true, interleave: true }, { stream: false }]
        for (const { stream, interleave } of modes) {
          const label = `stream=${stream}${interleave ? ' interleaved' : ''}`
          mock.script({ calls: 2, interleave })
          const first = await call(client, user, { model, stream, prompt: 'Weather in Paris and Tokyo?', tools: true })
          assert.equal(first.response.status, 200, first.text)
          const calls = first.answer!.toolCalls
          assert.deepEqual(calls.map((c) => [c.name, c.args]), [['get_weather', { location: 'Paris' }], ['get_weather', { location: 'Tokyo' }]], label)
          const ids = calls.map((c) => c.id).filter(Boolean)
          assert.equal(new Set(ids).size, ids.length, `${label}: the calls' ids are distinct`)

          const toolResults = [{ call: calls[0], result: '18C' }, { call: calls[1], result: '25C' }]
          const second = await call(client, user, { model, stream: false, prompt: 'Weather in Paris and Tokyo?', tools: true, toolResults })
          assert.equal(second.response.status, 200, `${label}: ${second.text}`)
          assert.equal(second.answer!.text, TEXT)
          const sent = upstreamTurns(mock.lastRequest()!)
          assert.deepEqual(sent.calls.map((c) => c.args), [{ location: 'Paris' }, { location: 'Tokyo' }], label)
          assert.lengthOf(sent.results, 2, label)
          sent.results.forEach((result, i) => {
            assert.include(result.text, ['18C', '25C'][i], label)
            if (result.id || sent.calls[i].id) assert.equal(result.id, sent.calls[i].id, `${label}: result ${i} names its call`)
          })
        }
      }).skip(!can('tools'), 'adapter lacks tools')

      test('image input reaches the upstream', async ({ assert }) => {
        const { answer } = await call(client, user, { model, stream: false, prompt: 'What is this?', image: IMAGE })
        assert.equal(answer!.text, TEXT)
        assert.include(mock.lastRequest()!.body, IMAGE)
      }).skip(!can('image'), 'adapter lacks image input')

      test('upstream error in the client error shape', async ({ assert }) => {
        mock.script({ status: 400 })
        const { response, text } = await call(client, user, { model, stream: false, prompt: 'fail' })
        assert.equal(response.status, 400)
        assert.isTrue(client.isError(JSON.parse(text), 400), text)
      }).skip(!can('error'), 'adapter lacks errors')

      test('usage (with cache reads) as the upstream reported it, to the client and the usage row', async ({ assert }) => {
        for (const stream of [false, true]) {
          mock.script({ cache_read: 30 })
          const { answer } = await call(client, user, { model, stream, prompt: 'Hello' })
          const reported = mock.lastUsage!
          assert.deepEqual(answer!.usage, { input: reported.input, output: reported.output, cacheRead: 30 }, `stream=${stream}`)
          const rows = await usageRows(user.userId)
          assert.include(rows.at(-1), { prompt_tokens: reported.input, completion_tokens: reported.output, cached_tokens: 30, estimated: false, stream })
        }
      }).skip(!can('usage'), 'adapter lacks usage')

      test('a mid-stream failure ends the stream with the client error event; partial usage billed', async ({ assert }) => {
        mock.script({ reset_after: 2, chunks: 6 })
        const { answer } = await call(client, user, { model, stream: true, prompt: 'Count slowly' })
        assert.isTrue(answer!.streamError)
        const rows = await usageRows(user.userId)
        assert.include(rows.at(-1), { error_code: 'stream_interrupted' })
        assert.isAbove(rows.at(-1).completion_tokens, 0)
      }).skip(!can('interrupted'), 'adapter lacks interruption')
    })
  }
}
